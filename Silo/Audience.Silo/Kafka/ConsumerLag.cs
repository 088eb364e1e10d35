using System.Collections.Concurrent;
using Audience.Silo.Hosting;
using Audience.Silo.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// Bounds how far the silos may fall behind the events this Api produces (<c>Kafka:MaxLag</c> events per partition):
/// past it, the Api refuses events with 503 and <c>Retry-After</c> until the silos catch up, instead of letting the
/// backlog grow past what the topic keeps (the tests' mock cluster keeps about 5 MiB per partition; a real cluster's
/// retention is larger, but finite). The lag of a partition is the end of what this Api produced to it (from the
/// broker's acknowledgements) less the partition's checkpoint, which the silos keep in the profile store and this
/// reads every second; a partition no silo has claimed yet has checkpoint 0.
/// </summary>
public sealed partial class ConsumerLag(IProfileStore store, KafkaOptions options, TimeProvider time, ILogger<ConsumerLag> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>Per partition, the offset after the last event the broker acknowledged to this Api.</summary>
    private readonly ConcurrentDictionary<int, long> _produced = new();
    private volatile IReadOnlyDictionary<int, long> _checkpoints = new Dictionary<int, long>();
    private volatile string? _behind;

    /// <summary>Why events are refused now (the silos are too far behind), or null.</summary>
    public string? Behind => _behind;

    /// <summary>The broker acknowledged an event at <paramref name="offset"/> of <paramref name="partition"/>.</summary>
    public void Produced(int partition, long offset)
    {
        if (options.MaxLag <= 0)
        {
            return;
        }

        var end = _produced.AddOrUpdate(partition, offset + 1, (_, known) => Math.Max(known, offset + 1));
        if (_behind is null && end - _checkpoints.GetValueOrDefault(partition) > options.MaxLag)
        {
            Evaluate();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.MaxLag <= 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                _checkpoints = await store.CheckpointsAsync(stoppingToken).ConfigureAwait(false);
                Evaluate();
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested && e is StoreUnavailableException or System.Data.Common.DbException or TimeoutException)
            {
                // The last checkpoints read stand until the store answers again: a store outage neither opens nor shuts the gate.
                LogReadFailed(e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Each partition's lag as this Api sees it: the last offset it produced there, minus the partition's checkpoint.</summary>
    public IEnumerable<System.Diagnostics.Metrics.Measurement<long>> Lags()
    {
        var checkpoints = _checkpoints;
        return [.. _produced.Select(p => new System.Diagnostics.Metrics.Measurement<long>(Math.Max(0, p.Value - checkpoints.GetValueOrDefault(p.Key)),
            new KeyValuePair<string, object?>("partition", p.Key)))];
    }

    private void Evaluate()
    {
        var checkpoints = _checkpoints;
        string? behind = null;
        foreach (var (partition, end) in _produced)
        {
            var lag = end - checkpoints.GetValueOrDefault(partition);
            if (lag > options.MaxLag)
            {
                behind = $"The silos are {lag:N0} events behind on partition {partition} of the events topic (Kafka:MaxLag is {options.MaxLag:N0}).";
                break;
            }
        }

        if ((behind is null) != (_behind is null))
        {
            LogGate(behind ?? "the silos caught up");
        }

        _behind = behind;
    }

    [LoggerMessage(EventId = LogEvents.ConsumerLagReadFailed, Level = LogLevel.Warning, Message = "Reading the partitions' checkpoints failed; the last ones read stand")]
    private partial void LogReadFailed(Exception exception);

    [LoggerMessage(EventId = LogEvents.ConsumerLagGate, Level = LogLevel.Warning, Message = "Consumer lag: {State}")]
    private partial void LogGate(string state);
}
