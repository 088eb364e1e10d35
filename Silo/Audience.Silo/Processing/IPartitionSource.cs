using Audience.Silo.Contracts;
using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>
/// An entry of a partition at its sequence number (a Kafka offset + 1, so that 0 means "nothing yet"): an event, an
/// erasure of a user, or a message that could not be read, described as the dead letter it becomes.
/// </summary>
public sealed record PartitionEntry(long Seq, long ReceivedAt, UserEvent? Event, DeadLetterMessage? DeadLetter = null, UserErasure? Erasure = null,
    string? TraceParent = null);

/// <summary>Where a partition reader's entries come from: a partition of the embedded log, or a Kafka partition.</summary>
public interface IPartitionSource : IAsyncDisposable
{
    /// <summary>Where the entries come from, as a dead letter names its origin.</summary>
    string Topic { get; }

    int Partition { get; }

    /// <summary>Up to <paramref name="max"/> entries after <paramref name="afterSeq"/>, in order; waits up to <paramref name="wait"/> for the first.</summary>
    Task<IReadOnlyList<PartitionEntry>> ReadAsync(long afterSeq, int max, TimeSpan wait, CancellationToken cancellationToken);
}

/// <summary>Opens partitions of the event stream this process reads: the embedded log, or <c>user-events</c>.</summary>
public interface IPartitionSources
{
    /// <summary>How many partitions the stream has; waits for Kafka if it is away.</summary>
    Task<int> CountAsync(CancellationToken cancellationToken);

    Task<IPartitionSource> OpenAsync(int partition, long afterSeq, CancellationToken cancellationToken);
}

/// <summary>The embedded log's partitions; a commit of new events wakes the readers.</summary>
public sealed class LogPartitionSources(EventLog log) : IPartitionSources
{
    public Task<int> CountAsync(CancellationToken cancellationToken) => Task.FromResult(log.Partitions);

    public Task<IPartitionSource> OpenAsync(int partition, long afterSeq, CancellationToken cancellationToken) =>
        Task.FromResult<IPartitionSource>(new LogPartitionSource(log, partition));

    private sealed class LogPartitionSource(EventLog log, int partition) : IPartitionSource
    {
        private readonly PartitionLogReader _reader = log.OpenReader(partition);

        public string Topic => "embedded-log";

        public int Partition => partition;

        public async Task<IReadOnlyList<PartitionEntry>> ReadAsync(long afterSeq, int max, TimeSpan wait, CancellationToken cancellationToken)
        {
            var entries = _reader.Read(afterSeq, max);
            if (entries.Count == 0 && wait > TimeSpan.Zero)
            {
                // Completes at once if a commit came since the read found nothing.
                await _reader.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
                entries = _reader.Read(afterSeq, max);
            }

            return entries;
        }

        public ValueTask DisposeAsync()
        {
            _reader.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
