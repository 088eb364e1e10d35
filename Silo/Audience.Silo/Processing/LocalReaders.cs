using System.Collections.Concurrent;
using Audience.Silo.Segments;

namespace Audience.Silo.Processing;

/// <summary>
/// The partition readers running on this silo. Segment changes go to each of them, to be applied to the stored
/// profiles of its partition; a reader that starts later finds what it missed among the backfills it has not
/// recorded as done.
/// </summary>
public sealed class LocalReaders
{
    private readonly ConcurrentDictionary<int, PartitionReader> _readers = new();

    public LocalReaders(SegmentService segments) => segments.Changed += change =>
    {
        foreach (var reader in _readers.Values)
        {
            reader.Enqueue(change);
        }
    };

    public IReadOnlyCollection<int> Partitions => [.. _readers.Keys.Order()];

    /// <summary>Each running reader's partition and checkpoint (the last sequence number written behind).</summary>
    public IReadOnlyDictionary<int, long> Checkpoints() => _readers.ToDictionary(r => r.Key, r => r.Value.Checkpoint);

    public void Add(PartitionReader reader) => _readers[reader.Partition] = reader;

    public void Remove(PartitionReader reader) => _readers.TryRemove(new KeyValuePair<int, PartitionReader>(reader.Partition, reader));
}
