using System.Text.Json;
using System.Threading.Channels;
using Audience.Silo.Contracts;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Storage;

/// <summary>Whether an appended event was new, or a repeat of an event id already in the log.</summary>
public readonly record struct AppendResult(string EventId, bool Duplicate);

/// <summary>
/// An event at its place in a partition. <see cref="Event"/> is null for a message that could not be read; it has
/// gone to the dead-letter topic already, and the worker only moves past it.
/// </summary>
public sealed record LoggedEvent(long Seq, long ReceivedAt, UserEvent? Event);

/// <summary>
/// The in-process, partitioned event log that stands in for Kafka in embedded mode, kept in SQLite. Appends
/// from concurrent requests are grouped into one transaction (one fsync) by a single writer; an append returns
/// only once its transaction is durable, so an acknowledged event survives a crash. Event ids are unique: a
/// repeated id is reported as a duplicate and not stored again.
/// </summary>
public sealed partial class EventLog : IEventSink, IAsyncDisposable
{
    private const int MaxEventsPerTransaction = 5_000;

    private readonly Database _database;
    private readonly int _partitions;
    private readonly TimeProvider _time;
    private readonly ILogger<EventLog> _logger;
    private readonly Channel<AppendRequest> _requests = Channel.CreateUnbounded<AppendRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Processing.WakeSignal[] _signals;
    private readonly Task _writer;

    public EventLog(Database database, int partitions, TimeProvider time, ILogger<EventLog> logger)
    {
        _database = database;
        _partitions = partitions;
        _time = time;
        _logger = logger;
        _signals = [.. Enumerable.Range(0, partitions).Select(_ => new Processing.WakeSignal())];
        _writer = Task.Run(WriteLoop);
    }

    public int Partitions => _partitions;

    /// <summary>Appends events and returns once they are durable.</summary>
    public Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default)
    {
        var request = new AppendRequest(events);
        if (!_requests.Writer.TryWrite(request))
        {
            throw new InvalidOperationException("The event log is shut down.");
        }

        return request.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Waits until new events may be in the partition (or <see cref="Wake"/> was called), or the timeout passes.</summary>
    public Task WaitAsync(int partition, TimeSpan timeout, CancellationToken cancellationToken) =>
        _signals[partition].WaitAsync(timeout, cancellationToken);

    /// <summary>The events of a partition after <paramref name="afterSeq"/>, in order.</summary>
    public static List<LoggedEvent> Read(SqliteConnection connection, int partition, long afterSeq, int max) =>
        Database.Query(connection, "SELECT seq, received_at, payload FROM events WHERE partition = $p AND seq > $after ORDER BY seq LIMIT $max",
            ToLogged, ("$p", partition), ("$after", afterSeq), ("$max", max));

    /// <summary>A user's events up to a sequence number and received since a time: the history that fills a new aggregate.</summary>
    public static List<LoggedEvent> ReadUser(SqliteConnection connection, string userId, long uptoSeq, long receivedSince) =>
        Database.Query(connection, "SELECT seq, received_at, payload FROM events WHERE user_id = $u AND seq <= $upto AND received_at >= $since ORDER BY seq",
            ToLogged, ("$u", userId), ("$upto", uptoSeq), ("$since", receivedSince));

    private static LoggedEvent ToLogged(SqliteDataReader reader) =>
        new(reader.GetInt64(0), reader.GetInt64(1), JsonSerializer.Deserialize((byte[])reader.GetValue(2), SiloJsonContext.Default.UserEvent)!);

    private async Task WriteLoop()
    {
        using var connection = _database.Open();
        using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT OR IGNORE INTO events(partition, user_id, event_id, received_at, payload) VALUES ($p, $u, $id, $at, $payload)";
        var partition = insert.Parameters.Add("$p", SqliteType.Integer);
        var user = insert.Parameters.Add("$u", SqliteType.Text);
        var id = insert.Parameters.Add("$id", SqliteType.Text);
        var at = insert.Parameters.Add("$at", SqliteType.Integer);
        var payload = insert.Parameters.Add("$payload", SqliteType.Blob);
        var batch = new List<AppendRequest>();
        var touched = new bool[_partitions];

        while (await _requests.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            var count = 0;
            while (count < MaxEventsPerTransaction && _requests.Reader.TryRead(out var request))
            {
                batch.Add(request);
                count += request.Events.Count;
            }

            Array.Clear(touched);
            try
            {
                using var gate = _database.WriteGate.EnterScope();
                using var transaction = connection.BeginTransaction();
                insert.Transaction = transaction;
                var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
                foreach (var request in batch)
                {
                    for (var i = 0; i < request.Events.Count; i++)
                    {
                        var e = request.Events[i];
                        var p = EventValues.PartitionOf(e.UserId, _partitions);
                        partition.Value = p;
                        user.Value = e.UserId;
                        id.Value = e.EventId;
                        at.Value = now;
                        payload.Value = JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent);
                        var inserted = insert.ExecuteNonQuery() == 1;
                        request.Results[i] = new AppendResult(e.EventId, !inserted);
                        touched[p] |= inserted;
                    }
                }

                transaction.Commit();
            }
            catch (Exception e) when (e is SqliteException or IOException)
            {
                LogAppendFailed(e, count);
                foreach (var request in batch)
                {
                    request.Completion.TrySetException(new EventLogUnavailableException("The event log could not store the events.", e));
                }

                continue;
            }

            foreach (var request in batch)
            {
                request.Completion.TrySetResult(request.Results);
            }

            for (var p = 0; p < touched.Length; p++)
            {
                if (touched[p])
                {
                    Wake(p);
                }
            }
        }
    }

    /// <summary>
    /// Deletes events received before <paramref name="cutoffMs"/> that every partition has checkpointed past.
    /// Event ids are deduplicated only while their events are kept, so the retention is also the dedupe window.
    /// </summary>
    public int Prune(long cutoffMs)
    {
        using var connection = _database.Open(durable: false);
        using var gate = _database.WriteGate.EnterScope();
        using var command = Database.Command(connection,
            "DELETE FROM events WHERE received_at < $cutoff AND seq <= (SELECT CASE WHEN count(*) < $partitions THEN 0 ELSE min(seq) END FROM checkpoints)",
            ("$cutoff", cutoffMs), ("$partitions", _partitions));
        return command.ExecuteNonQuery();
    }

    /// <summary>Wakes the partition's waiter: new events, or other work for its worker.</summary>
    public void Wake(int partition) => _signals[partition].Wake();

    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Appending {Count} events to the log failed")]
    private partial void LogAppendFailed(Exception exception, int count);

    private sealed class AppendRequest(IReadOnlyList<UserEvent> events)
    {
        public IReadOnlyList<UserEvent> Events { get; } = events;

        public AppendResult[] Results { get; } = new AppendResult[events.Count];

        public TaskCompletionSource<AppendResult[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The log cannot take events right now; the caller should answer 503 and let the client retry.</summary>
public sealed class EventLogUnavailableException(string message, Exception inner) : Exception(message, inner);
