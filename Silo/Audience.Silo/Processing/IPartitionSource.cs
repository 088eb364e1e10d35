using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>
/// Where a partition worker's events come from: a partition of the embedded log, or a Kafka partition this
/// Silo owns. Sequence numbers grow within the partition (a Kafka message's is its offset + 1), and a profile
/// keeps the last one applied to it, which makes replays harmless.
/// </summary>
public interface IPartitionSource
{
    /// <summary>Where the events come from, as a dead letter names its origin.</summary>
    string Topic { get; }

    int Partition { get; }

    /// <summary>The sequence number after which the worker starts reading.</summary>
    long Start(IProfileStore store);

    /// <summary>Up to <paramref name="max"/> events after <paramref name="afterSeq"/>, in order; never blocks.</summary>
    IReadOnlyList<LoggedEvent> Read(long afterSeq, int max);

    /// <summary>Waits until events may be ready, <see cref="Wake"/> is called, or the timeout passes.</summary>
    Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken);

    void Wake();

    /// <summary>
    /// The user's past events up to <paramref name="uptoSeq"/> and received since <paramref name="receivedSince"/>,
    /// to fill an aggregate a new segment needs; empty where the source keeps no per-user history.
    /// </summary>
    IReadOnlyList<LoggedEvent> ReadUser(string userId, long uptoSeq, long receivedSince);

    /// <summary>Everything up to <paramref name="seq"/> is durable in the store, and its outputs delivered.</summary>
    void Checkpointed(long seq);
}

/// <summary>A partition of the embedded <see cref="EventLog"/>; the checkpoint lives in the profile store.</summary>
public sealed class LogPartitionSource(EventLog log, Database database, int partition) : IPartitionSource, IDisposable
{
    private readonly Microsoft.Data.Sqlite.SqliteConnection _connection = database.Open(durable: false);

    public string Topic => "embedded-log";

    public int Partition => partition;

    public long Start(IProfileStore store) => store.LoadCheckpoint(partition);

    public IReadOnlyList<LoggedEvent> Read(long afterSeq, int max) => EventLog.Read(_connection, partition, afterSeq, max);

    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => log.WaitAsync(partition, timeout, cancellationToken);

    public void Wake() => log.Wake(partition);

    public IReadOnlyList<LoggedEvent> ReadUser(string userId, long uptoSeq, long receivedSince) =>
        EventLog.ReadUser(_connection, userId, uptoSeq, receivedSince);

    public void Checkpointed(long seq)
    {
        // The checkpoint was saved with the profiles.
    }

    public void Dispose() => _connection.Dispose();
}
