using System.Collections.Concurrent;
using Audience.Silo.Processing;
using Audience.Silo.Storage;

namespace Audience.Silo.Kafka;

/// <summary>
/// A Kafka partition this Silo owns, as its worker sees it: the consumer thread puts the partition's messages
/// here (already parsed; an unreadable one as a marker, after it went to the dead-letter topic), and takes back
/// the sequence number up to which everything is durable, to commit it as the group's offset.
/// A message's sequence number is its offset + 1, so that 0 means "nothing applied".
/// </summary>
public sealed class KafkaPartitionSource(string topic, int partition) : IPartitionSource, IDisposable
{
    private readonly ConcurrentQueue<LoggedEvent> _queue = new();
    private readonly WakeSignal _signal = new();
    private long _durable = -1;

    public string Topic => topic;

    public int Partition => partition;

    public int Queued => _queue.Count;

    /// <summary>The offset to commit (everything before it is durable), or -1 before the first checkpoint.</summary>
    public long DurableOffset => Interlocked.Read(ref _durable);

    public void Add(LoggedEvent logged)
    {
        _queue.Enqueue(logged);
        Wake();
    }

    public long Start(IProfileStore store) => 0;

    /// <summary>
    /// Events stay queued until the worker has moved past them: a step that fails half-way (the store went away)
    /// reads the same events again on its next try, as it would from the embedded log.
    /// </summary>
    public IReadOnlyList<LoggedEvent> Read(long afterSeq, int max)
    {
        while (_queue.TryPeek(out var head) && head.Seq <= afterSeq)
        {
            _queue.TryDequeue(out _);
        }

        return [.. _queue.Take(max)];
    }

    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);

    public void Wake() => _signal.Wake();

    /// <summary>Kafka keeps no per-user index, so aggregates a new segment needs start from its creation.</summary>
    public IReadOnlyList<LoggedEvent> ReadUser(string userId, long uptoSeq, long receivedSince) => [];

    public void Checkpointed(long seq) => Interlocked.Exchange(ref _durable, seq);

    public void Dispose() => _signal.Dispose();
}
