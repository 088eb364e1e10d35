using System.Text.Json;
using System.Threading.Channels;
using Audience.Silo.Contracts;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Storage;

/// <summary>Whether an appended event was new, or a repeat of an event id already in the log.</summary>
public readonly record struct AppendResult(string EventId, bool Duplicate);

/// <summary>
/// The in-process, partitioned event log that stands in for Kafka in embedded mode, kept in SQLite. Appends
/// from concurrent requests are grouped into one transaction (one fsync) by a single writer; an append returns
/// only once its transaction is durable, so an acknowledged event survives a crash. Event ids are unique: a
/// repeated id is reported as a duplicate and not stored again.
/// </summary>
public sealed partial class EventLog : IEventSink, IAsyncDisposable
{
    private const int MaxEventsPerTransaction = 5_000;

    /// <summary>Append requests waiting for the writer; beyond it callers get a 503 instead of waiting without bound.</summary>
    public const int MaxQueuedRequests = 10_000;

    private static readonly TimeSpan RetryAfterFault = TimeSpan.FromSeconds(1);

    private readonly Database _database;
    private readonly int _partitions;
    private readonly TimeProvider _time;
    private readonly ILogger<EventLog> _logger;
    private readonly Channel<AppendRequest> _requests = Channel.CreateBounded<AppendRequest>(new BoundedChannelOptions(MaxQueuedRequests)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly Processing.WakeSignal[] _signals;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private volatile string? _fault;

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

    /// <summary>Why the log cannot take events now (the writer lost its database and is reopening it), or null.</summary>
    public string? Fault => _fault;

    /// <summary>
    /// Appends events and returns once they are durable. Fails with <see cref="EventLogUnavailableException"/>, and
    /// none of the events is stored, when the writer is down or too far behind.
    /// </summary>
    public Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default)
    {
        if (_fault is { } fault)
        {
            throw new EventLogUnavailableException($"The event log cannot store events right now ({fault}).", null);
        }

        // Encoded here, on the caller's thread: whatever is wrong with one request fails that request, never the writer.
        var rows = new EncodedEvent[events.Count];
        for (var i = 0; i < rows.Length; i++)
        {
            var e = events[i];
            rows[i] = new EncodedEvent(e.EventId, e.UserId, EventValues.PartitionOf(e.UserId, _partitions),
                JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent));
        }

        var request = new AppendRequest(rows);
        if (!_requests.Writer.TryWrite(request))
        {
            throw new EventLogUnavailableException(_stopping.IsCancellationRequested
                ? "The event log is shut down."
                : $"The event log has {MaxQueuedRequests} requests waiting to be written.", null);
        }

        return request.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Waits until new events may be in the partition (or <see cref="Wake"/> was called), or the timeout passes.</summary>
    public Task WaitAsync(int partition, TimeSpan timeout, CancellationToken cancellationToken) =>
        _signals[partition].WaitAsync(timeout, cancellationToken);

    /// <summary>The entries of a partition after <paramref name="afterSeq"/>, in order.</summary>
    public static List<Processing.PartitionEntry> Read(SqliteConnection connection, int partition, long afterSeq, int max) =>
        Database.Query(connection, "SELECT seq, received_at, payload FROM events WHERE partition = $p AND seq > $after ORDER BY seq LIMIT $max",
            r => ToEntry(r, partition), ("$p", partition), ("$after", afterSeq), ("$max", max));

    private static Processing.PartitionEntry ToEntry(SqliteDataReader reader, int partition)
    {
        var seq = reader.GetInt64(0);
        var receivedAt = reader.GetInt64(1);
        var payload = (byte[])reader.GetValue(2);
        var at = DateTimeOffset.FromUnixTimeMilliseconds(receivedAt);
        // Events were checked on the way in; one that no longer reads (a format change) is passed over, not applied.
        return EventParser.TryRead(payload, at, out var e, out var error)
            ? new Processing.PartitionEntry(seq, receivedAt, e)
            : new Processing.PartitionEntry(seq, receivedAt, null,
                new DeadLetterMessage(error!, "embedded-log", partition, seq, null, System.Text.Encoding.UTF8.GetString(payload), at));
    }

    /// <summary>
    /// The single writer. A failure of one group of appends fails those requests only; a failure of the writer
    /// itself (its connection is gone) fails what is queued, marks the log unavailable (readiness reports why), and
    /// reopens the database after a pause, so the log recovers without a restart.
    /// </summary>
    private async Task WriteLoop()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await WriteGroups().ConfigureAwait(false);
                return;
            }
            catch (Exception e)
            {
                _fault = e.Message;
                LogWriterFailed(e);
                while (_requests.Reader.TryRead(out var request))
                {
                    request.Completion.TrySetException(new EventLogUnavailableException("The event log could not store the events.", e));
                }
            }

            try
            {
                await Task.Delay(RetryAfterFault, _time, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task WriteGroups()
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
        _fault = null;

        while (await _requests.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            var count = 0;
            while (count < MaxEventsPerTransaction && _requests.Reader.TryRead(out var request))
            {
                batch.Add(request);
                count += request.Events.Length;
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
                    for (var i = 0; i < request.Events.Length; i++)
                    {
                        var e = request.Events[i];
                        partition.Value = e.Partition;
                        user.Value = e.UserId;
                        id.Value = e.EventId;
                        at.Value = now;
                        payload.Value = e.Payload;
                        var inserted = insert.ExecuteNonQuery() == 1;
                        request.Results[i] = new AppendResult(e.EventId, !inserted);
                        touched[e.Partition] |= inserted;
                    }
                }

                transaction.Commit();
            }
            catch (SqliteException e) when (connection.State == System.Data.ConnectionState.Open)
            {
                // This group could not be stored (a full disk, a locked file): fail its requests, keep writing.
                LogAppendFailed(e, count);
                foreach (var request in batch)
                {
                    request.Completion.TrySetException(new EventLogUnavailableException("The event log could not store the events.", e));
                }

                continue;
            }
            catch (Exception)
            {
                foreach (var request in batch)
                {
                    request.Completion.TrySetException(new EventLogUnavailableException("The event log could not store the events.", null));
                }

                throw;
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
            "DELETE FROM events WHERE received_at < $cutoff AND seq <= (SELECT CASE WHEN count(*) < $partitions THEN 0 ELSE min(seq) END FROM partitions)",
            ("$cutoff", cutoffMs), ("$partitions", _partitions));
        return command.ExecuteNonQuery();
    }

    /// <summary>Wakes the partition's waiter: new events, or other work for its worker.</summary>
    public void Wake(int partition) => _signals[partition].Wake();

    public async ValueTask DisposeAsync()
    {
        // Registered as itself and as the event sink, so the container disposes it twice.
        if (!_requests.Writer.TryComplete())
        {
            return;
        }

        await _writer.ConfigureAwait(false);
        _stopping.Cancel();
        _stopping.Dispose();
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Appending {Count} events to the log failed")]
    private partial void LogAppendFailed(Exception exception, int count);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Error, Message = "The event log writer failed; it reopens the database and goes on")]
    private partial void LogWriterFailed(Exception exception);

    private readonly record struct EncodedEvent(string EventId, string UserId, int Partition, byte[] Payload);

    private sealed class AppendRequest(EncodedEvent[] events)
    {
        public EncodedEvent[] Events { get; } = events;

        public AppendResult[] Results { get; } = new AppendResult[events.Length];

        public TaskCompletionSource<AppendResult[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The log cannot take events right now; the caller should answer 503 and let the client retry.</summary>
public sealed class EventLogUnavailableException(string message, Exception? inner) : Exception(message, inner);
