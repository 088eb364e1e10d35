using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Segments;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// Keeps this process's segments in step with PostgreSQL: reads <c>segment-updates</c> (every process reads all of
/// it, outside any group) and refreshes each announced segment from the database. The end of the topic is taken
/// when this object is built, before <see cref="SegmentService"/> loads the segments, so a change committed after
/// that load is announced after that point and is not missed (if Kafka is away then, it reads from the beginning
/// once Kafka is back). A full resync runs every minute as a safety net.
/// </summary>
public sealed partial class SegmentUpdatesListener : BackgroundService
{
    private static readonly TimeSpan ResyncInterval = TimeSpan.FromMinutes(1);

    private readonly KafkaOptions _kafka;
    private readonly IServiceProvider _services;
    private readonly Hosting.Resilience _resilience;
    private readonly ILogger<SegmentUpdatesListener> _logger;
    private readonly IConsumer<Ignore, byte[]> _consumer;
    private readonly List<TopicPartitionOffset>? _start;

    public SegmentUpdatesListener(KafkaOptions kafka, IServiceProvider services, Hosting.Resilience resilience, ILogger<SegmentUpdatesListener> logger)
    {
        _kafka = kafka;
        _services = services;
        _resilience = resilience;
        _logger = logger;
        _consumer = new ConsumerBuilder<Ignore, byte[]>(kafka.Consumer("audience-segments-" + Guid.NewGuid().ToString("N"))).Build();
        try
        {
            _start = Positions(TimeSpan.FromSeconds(5), beginning: false);
        }
        catch (KafkaException e)
        {
            // Kafka is away at start-up: read the topic from its beginning once it is back. Replaying old
            // announcements is harmless, because each one only makes this process re-read the definition.
            LogNoStart(e.Error.Reason);
        }
    }

    private List<TopicPartitionOffset> Positions(TimeSpan timeout, bool beginning)
    {
        var topic = _kafka.Topics.SegmentUpdates;
        using var admin = new DependentAdminClientBuilder(_consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, timeout).Topics.Single();
        if (metadata.Error.IsError)
        {
            throw new KafkaException(metadata.Error);
        }

        return [.. metadata.Partitions.Select(p =>
        {
            var tp = new TopicPartition(topic, p.PartitionId);
            return new TopicPartitionOffset(tp, beginning ? Offset.Beginning : _consumer.QueryWatermarkOffsets(tp, timeout).High);
        })];
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Listen(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Listen(CancellationToken stopping)
    {
        var segments = _services.GetRequiredService<SegmentService>();
        var start = _start;
        if (start is null)
        {
            // Kafka was away as this process started: asked until it answers, waiting longer each time (this thread is the
            // listener's own, so the pipeline's waits block it).
            var asking = _resilience.Retry(Hosting.Resilience.SegmentUpdatesStart, Hosting.Resilience.Connection, static e => e is KafkaException, args =>
            {
                LogFailed(args.Outcome.Exception!);
                return ValueTask.CompletedTask;
            });
            try
            {
                start = asking.Execute(static (listener, _) => listener.Positions(TimeSpan.FromSeconds(5), beginning: true), this, stopping);
            }
            catch (Exception e) when (stopping.IsCancellationRequested)
            {
                if (e is not OperationCanceledException)
                {
                    LogFailed(e);
                }

                return;
            }
        }

        _consumer.Assign(start);
        var lastResync = DateTime.UtcNow;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result?.Message?.Value is { } value)
                {
                    var update = JsonSerializer.Deserialize(value, SiloJsonContext.Default.SegmentUpdateMessage);
                    if (update is not null)
                    {
                        segments.Refresh(update.SegmentId);
                    }
                }

                if (DateTime.UtcNow - lastResync > ResyncInterval)
                {
                    segments.RefreshAll();
                    lastResync = DateTime.UtcNow;
                }
            }
            catch (Exception e) when (e is KafkaException or JsonException or System.Data.Common.DbException)
            {
                // Not a retry, so no pipeline: the consumer is past the message that failed (the minute's resync makes up
                // for an announcement missed), and the next round reads the next one. The pause only keeps a lasting
                // fault from spinning this thread and the log.
                LogFailed(e);
                stopping.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            }
        }

        _consumer.Close();
    }

    public override void Dispose()
    {
        _consumer.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = LogEvents.SegmentUpdatesNoStart, Level = LogLevel.Warning, Message = "Kafka is unavailable at start-up ({Reason}); segment-updates will be read from its beginning")]
    private partial void LogNoStart(string reason);

    [LoggerMessage(EventId = LogEvents.SegmentUpdatesFailed, Level = LogLevel.Warning, Message = "Applying segment updates failed; retrying")]
    private partial void LogFailed(Exception exception);
}
