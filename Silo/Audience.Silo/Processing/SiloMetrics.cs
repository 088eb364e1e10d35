using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Audience.Silo.Processing;

/// <summary>
/// The silo's own measurements, on the <c>Audience.Silo</c> meter: events applied, grain calls that crossed silos,
/// the partitions this silo reads. Read in-process by tests and tools; exported with the other meters where telemetry
/// is configured.
/// </summary>
public sealed class SiloMetrics : IDisposable
{
    public const string MeterName = "Audience.Silo";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _events;
    private readonly Counter<long> _grainCalls;
    private readonly Counter<long> _remoteCalls;
    private readonly ConcurrentDictionary<int, byte> _partitions = new();
    private long _eventCount;
    private long _grainCallCount;
    private long _remoteCallCount;

    public SiloMetrics(ActiveUsers active)
    {
        _meter.CreateObservableGauge("audience_grains_active", () => active.Count, description: "User grains active on this silo");
        _events = _meter.CreateCounter<long>("audience_events_applied", description: "Events delivered to user grains");
        _grainCalls = _meter.CreateCounter<long>("audience_grain_calls", description: "Calls from partition readers to user grains");
        _remoteCalls = _meter.CreateCounter<long>("audience_grain_calls_remote", description: "Reader calls that reached a user grain on another silo");
        _meter.CreateObservableGauge("audience_partitions_owned", () => _partitions.Count, description: "Partitions this silo reads");
    }

    public long Events => Interlocked.Read(ref _eventCount);

    public long GrainCalls => Interlocked.Read(ref _grainCallCount);

    public long RemoteCalls => Interlocked.Read(ref _remoteCallCount);

    public IReadOnlyCollection<int> Partitions => [.. _partitions.Keys.Order()];

    public void Delivered(int partition, int events, int grainCalls)
    {
        Interlocked.Add(ref _eventCount, events);
        Interlocked.Add(ref _grainCallCount, grainCalls);
        var tag = new KeyValuePair<string, object?>("partition", partition);
        _events.Add(events, tag);
        _grainCalls.Add(grainCalls, tag);
    }

    /// <summary>A reader had its users' grains write what they applied: one call each.</summary>
    public void Wrote(int partition, int grainCalls)
    {
        Interlocked.Add(ref _grainCallCount, grainCalls);
        _grainCalls.Add(grainCalls, new KeyValuePair<string, object?>("partition", partition));
    }

    public void RemoteCall()
    {
        Interlocked.Increment(ref _remoteCallCount);
        _remoteCalls.Add(1);
    }

    public void Owns(int partition, bool owned)
    {
        if (owned)
        {
            _partitions[partition] = 0;
        }
        else
        {
            _partitions.TryRemove(partition, out _);
        }
    }

    public void Dispose() => _meter.Dispose();
}

/// <summary>The users whose grains are active on this silo: a backfill asks these grains instead of rewriting their records.</summary>
public sealed class ActiveUsers
{
    private readonly ConcurrentDictionary<string, byte> _users = new(StringComparer.Ordinal);

    public int Count => _users.Count;

    public void Add(string userId) => _users[userId] = 0;

    public void Remove(string userId) => _users.TryRemove(userId, out _);

    public bool Contains(string userId) => _users.ContainsKey(userId);
}
