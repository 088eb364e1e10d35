using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>
/// The service's own series on the <c>Audience</c> meter, in every process (the silo's partition series are on
/// <see cref="SiloMetrics"/>). Exported in Prometheus' text at <c>/metrics</c> (a counter gains <c>_total</c>) and over
/// OTLP when configured; docs/operations.md lists them with their meaning.
/// </summary>
public sealed class AudienceMetrics : IDisposable
{
    public const string MeterName = "Audience";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _accepted;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _duplicates;
    private readonly Histogram<double> _qualify;
    private readonly Counter<long> _changes;
    private readonly Counter<long> _deadLetters;
    private readonly Histogram<double> _storeDuration;
    private readonly Counter<long> _storeErrors;
    private readonly UpDownCounter<long> _writeBehind;
    private readonly Counter<long> _backfilled;
    private readonly Counter<long> _notifications;
    private readonly Counter<long> _erased;
    private readonly Counter<long> _retries;
    private readonly ConcurrentDictionary<string, Func<int>> _circuits = new(StringComparer.Ordinal);

    public AudienceMetrics()
    {
        _accepted = _meter.CreateCounter<long>("audience_events_accepted", description: "Events acknowledged (202), durable in the log or on user-events");
        _rejected = _meter.CreateCounter<long>("audience_events_rejected", description: "Events refused, by reason: invalid (400) or unavailable (503)");
        _duplicates = _meter.CreateCounter<long>("audience_events_duplicate", description: "Events acknowledged as duplicates of an event id already taken");
        _qualify = _meter.CreateHistogram<double>("audience_qualify_latency_seconds", unit: "s",
            description: "From an event's arrival to the membership change it caused being delivered",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _changes = _meter.CreateCounter<long>("audience_membership_changes", description: "Membership changes delivered, by action (added, removed) and reason");
        _deadLetters = _meter.CreateCounter<long>("audience_dead_letters", description: "Events that could not be applied and went to the dead letters");
        _storeDuration = _meter.CreateHistogram<double>("audience_store_operation_duration_seconds", unit: "s",
            description: "Profile store operations, by store and operation",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5] });
        _storeErrors = _meter.CreateCounter<long>("audience_store_errors", description: "Profile store operations that failed, by store and operation");
        _writeBehind = _meter.CreateUpDownCounter<long>("audience_writebehind_pending", description: "Users whose applied events wait for the next write round");
        _backfilled = _meter.CreateCounter<long>("audience_backfill_profiles", description: "Stored profiles a segment's backfill went through");
        _notifications = _meter.CreateCounter<long>("audience_notifications", description: "Notifications campaigns recorded, by type and status (sent, capped)");
        _erased = _meter.CreateCounter<long>("audience_users_erased", description: "Erasures of users applied (DELETE /api/users/{id}), a user with nothing stored included");
        _retries = _meter.CreateCounter<long>("audience_retries", description: "Failures a resilience pipeline waited out before trying again, by pipeline");
        _meter.CreateObservableGauge("audience_circuit_state", Circuits,
            description: "A circuit breaker's state, by pipeline: 0 closed, 1 open (calls wait), 2 half-open (one call tries)");
        _meter.CreateObservableGauge("audience_consumer_lag", () => Lag?.Invoke() ?? [],
            description: "Kafka mode: events of each partition produced by this Api and not yet checkpointed by the silos");
        // Present from the start, so a dashboard shows 0 rather than no data.
        _deadLetters.Add(0);
        _duplicates.Add(0);
        _erased.Add(0);
    }

    /// <summary>The lag per partition, where this process knows it (the Api in Kafka mode).</summary>
    public Func<IEnumerable<Measurement<long>>>? Lag { get; set; }

    public void Accepted(int events) => _accepted.Add(events);

    public void Duplicates(int events) => _duplicates.Add(events);

    public void Rejected(string reason, int events = 1) => _rejected.Add(events, new KeyValuePair<string, object?>("reason", reason));

    public void DeadLetter() => _deadLetters.Add(1);

    public void WriteBehind(long delta) => _writeBehind.Add(delta);

    public void Backfilled(long profiles) => _backfilled.Add(profiles);

    public void Erased() => _erased.Add(1);

    /// <summary>A pipeline (<see cref="Hosting.Resilience"/>) waits out a failure and tries again; 0 makes its series appear.</summary>
    public void Retried(string pipeline, int retries = 1) => _retries.Add(retries, new KeyValuePair<string, object?>("pipeline", pipeline));

    /// <summary>A circuit breaker whose state (Polly's <c>CircuitState</c> as a number) is reported.</summary>
    public void Circuit(string pipeline, Func<int> state) => _circuits[pipeline] = state;

    private IEnumerable<Measurement<int>> Circuits()
    {
        foreach (var (pipeline, state) in _circuits)
        {
            yield return new Measurement<int>(state(), new KeyValuePair<string, object?>("pipeline", pipeline));
        }
    }

    /// <summary>What one delivery carried: the changes (with their time to qualify) and the notifications.</summary>
    public void Delivered(IReadOnlyList<MembershipChangeMessage> changes, IReadOnlyList<Campaigns.CampaignFiring> notifications)
    {
        foreach (var change in changes)
        {
            _changes.Add(1, new KeyValuePair<string, object?>("action", change.Action), new KeyValuePair<string, object?>("reason", change.Reason));
            if (change.Metadata.Trigger == "event")
            {
                _qualify.Record(change.Metadata.EvaluationLatency / 1000);
            }
        }

        foreach (var notification in notifications)
        {
            _notifications.Add(1, new KeyValuePair<string, object?>("type", notification.Request.Type), new KeyValuePair<string, object?>("status", notification.Status));
        }
    }

    /// <summary>Times a store operation, counting it as an error if it throws.</summary>
    public async Task<T> Store<T>(string store, string operation, Func<Task<T>> run)
    {
        var started = Stopwatch.GetTimestamp();
        var tags = new TagList { { "store", store }, { "operation", operation } };
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch
        {
            _storeErrors.Add(1, tags);
            throw;
        }
        finally
        {
            _storeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
        }
    }

    public void Dispose() => _meter.Dispose();
}
