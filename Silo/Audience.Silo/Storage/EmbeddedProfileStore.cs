using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace Audience.Silo.Storage;

/// <summary>
/// The embedded profile store, in the service's SQLite database. A batch of writes is one transaction on one writer
/// connection: every record with its generation check, its membership index changes and its sealed history chunks.
/// Reads use a small pool of connections, which WAL lets run beside the writer. SQLite does not do I/O
/// asynchronously; its calls are short and run on the caller's thread.
/// </summary>
public sealed class EmbeddedProfileStore : IProfileStore, IDisposable
{
    private static readonly int MaxIdleReaders = Environment.ProcessorCount * 2;

    /// <summary>The tables keyed by user first, whose rows an erasure deletes by the user id (memberships are keyed by segment).</summary>
    private static readonly string[] UserTables = ["profile_records", "history_chunks", "event_archive"];

    private readonly Database _database;
    private readonly ConcurrentBag<SqliteConnection> _readers = [];
    private readonly SqliteConnection _writer;
    private readonly Lock _writeLock = new();

    /// <summary>The write round's statements, prepared on the writer connection at its first write.</summary>
    private WriteStatements? _statements;

    public EmbeddedProfileStore(Database database)
    {
        _database = database;
        _writer = database.Open(durable: false);
        // The write rounds update pages all over the records, the membership index and the history: 64 MB of page
        // cache (SQLite's default is 2 MB) keeps them from being read back from the WAL for every round; the Silo
        // ran 17% faster at 1,000 segments (docs/performance.md, issue 12). Allocated as used; readers keep the default.
        Database.Execute(_writer, "PRAGMA cache_size=-65536;");
    }

    public string Kind => "embedded";

    public Task<ProfileRecord?> ReadAsync(string userId, CancellationToken cancellationToken = default) =>
        Task.FromResult(Read(r => Database.Query(r, $"SELECT {Columns} FROM profile_records WHERE user_id = $u", ToRecord, ("$u", userId)).SingleOrDefault()));

    /// <summary>One indexed lookup each: SQLite is in process, so a round trip costs microseconds.</summary>
    public Task<IReadOnlyDictionary<string, ProfileRecord>> ReadManyAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyDictionary<string, ProfileRecord>>(Read(r =>
        {
            using var command = Database.Command(r, $"SELECT {Columns} FROM profile_records WHERE user_id = $u", ("$u", string.Empty));
            var found = new Dictionary<string, ProfileRecord>(StringComparer.Ordinal);
            foreach (var userId in userIds)
            {
                command.Parameters[0].Value = userId;
                using var reader = command.ExecuteReader();
                if (reader.Read())
                {
                    found[userId] = ToRecord(reader);
                }
            }

            return found;
        }));

    private const string Columns = "user_id, partition, generation, last_seq, next_due, data";

    private static ProfileRecord ToRecord(SqliteDataReader r) => new()
    {
        UserId = r.GetString(0),
        Partition = r.GetInt32(1),
        Generation = r.GetInt64(2),
        LastSeq = r.GetInt64(3),
        NextDue = r.IsDBNull(4) ? null : r.GetInt64(4),
        Data = (byte[])r.GetValue(5),
    };

    public Task<long[]> WriteAsync(IReadOnlyList<ProfileWrite> writes, CancellationToken cancellationToken = default)
    {
        var results = new long[writes.Count];
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            using var transaction = _writer.BeginTransaction();
            var w = _statements ??= new WriteStatements(_writer);
            for (var i = 0; i < writes.Count; i++)
            {
                var write = writes[i];
                var record = write.Record;
                // Both statements take the record as ?1 to ?6; an update checks the generation it expects as ?7.
                var statement = (write.ExpectedGeneration == 0 ? w.Insert : w.Update.Bind(7, write.ExpectedGeneration))
                    .Bind(1, record.UserId).Bind(2, record.Partition).Bind(3, record.LastSeq).Bind(4, record.NextDue)
                    .Bind(5, record.Data).Bind(6, write.UpdatedAt);
                var stored = statement.Execute();
                if (stored != 1)
                {
                    continue; // another writer got there first: nothing of this write is stored
                }

                foreach (var delta in write.Memberships)
                {
                    _ = delta.Since is { } since
                        ? w.Enter.Bind(1, delta.SegmentId).Bind(2, record.UserId).Bind(3, since).Execute()
                        : w.Leave.Bind(1, delta.SegmentId).Bind(2, record.UserId).Execute();
                }

                foreach (var sealedChunk in write.History)
                {
                    w.Chunk.Bind(1, record.UserId).Bind(2, sealedChunk.Chunk).Bind(3, sealedChunk.Data).Execute();
                }

                if (write.Archive is { } events)
                {
                    w.Archive.Bind(1, record.UserId).Bind(2, events.FirstSeq).Bind(3, events.LastSeq).Bind(4, events.ReceivedAt).Bind(5, events.Data).Execute();
                }

                results[i] = write.ExpectedGeneration + 1;
            }

            transaction.Commit();
        }

        return Task.FromResult(results);
    }

    public Task<PartitionLease> ClaimPartitionAsync(int partition, CancellationToken cancellationToken = default)
    {
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            var lease = Database.Query(_writer, """
                INSERT INTO partitions(partition, epoch, seq) VALUES ($p, 1, 0)
                ON CONFLICT(partition) DO UPDATE SET epoch = epoch + 1 RETURNING epoch, seq
                """, r => new PartitionLease(partition, r.GetInt64(0), r.GetInt64(1)), ("$p", partition)).Single();
            return Task.FromResult(lease);
        }
    }

    public Task<bool> CheckpointAsync(int partition, long epoch, long seq, CancellationToken cancellationToken = default)
    {
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            using var command = Database.Command(_writer, "UPDATE partitions SET seq = $s WHERE partition = $p AND epoch = $e",
                ("$s", seq), ("$p", partition), ("$e", epoch));
            return Task.FromResult(command.ExecuteNonQuery() == 1);
        }
    }

    public Task<IReadOnlyDictionary<int, long>> CheckpointsAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyDictionary<int, long>>(Read(r => Database.Query(r, "SELECT partition, seq FROM partitions", x => (x.GetInt32(0), x.GetInt64(1))))
            .ToDictionary(c => c.Item1, c => c.Item2));

    public Task<IReadOnlyList<string>> DueAsync(int partition, long upTo, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<string>>(Read(r => Database.Query(r,
            "SELECT user_id FROM profile_records WHERE partition = $p AND next_due IS NOT NULL AND next_due <= $t ORDER BY next_due LIMIT $n",
            x => x.GetString(0), ("$p", partition), ("$t", upTo), ("$n", limit))));

    public Task<IReadOnlyList<ProfileRecord>> ScanAsync(int partition, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ProfileRecord>>(Read(r => Database.Query(r,
            $"SELECT {Columns} FROM profile_records WHERE partition = $p AND user_id > $after ORDER BY user_id LIMIT $n",
            ToRecord, ("$p", partition), ("$after", afterUserId), ("$n", limit))));

    public Task<long> CountUsersAsync(int partition, CancellationToken cancellationToken = default) =>
        Task.FromResult(Read(r => Database.Scalar(r, "SELECT count(*) FROM profile_records WHERE partition = $p", ("$p", partition))));

    public Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<MembershipRow>>(Read(r => Database.Query(r,
            "SELECT user_id, since FROM memberships WHERE segment_id = $s AND user_id > $after ORDER BY user_id LIMIT $n",
            x => new MembershipRow(segmentId, x.GetString(0), x.GetInt64(1)), ("$s", segmentId), ("$after", afterUserId), ("$n", limit))));

    public Task<long> CountMembersAsync(string segmentId, CancellationToken cancellationToken = default) =>
        Task.FromResult(Read(r => Database.Scalar(r, "SELECT count(*) FROM memberships WHERE segment_id = $s", ("$s", segmentId))));

    public Task<IReadOnlyList<HistoryChunk>> HistoryAsync(string userId, long fromChunk, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<HistoryChunk>>(Read(r => Database.Query(r,
            "SELECT chunk, data FROM history_chunks WHERE user_id = $u AND chunk >= $c ORDER BY chunk LIMIT $n",
            x => new HistoryChunk(x.GetInt64(0), (byte[])x.GetValue(1)), ("$u", userId), ("$c", fromChunk), ("$n", limit))));

    public Task<IReadOnlyList<ArchivedEvent>> ArchiveAsync(string userId, long uptoSeq, long receivedSince, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ArchivedEvent>>(Read(r => Database.Query(r,
            "SELECT data FROM event_archive WHERE user_id = $u AND first_seq <= $upto AND received_at >= $since ORDER BY first_seq",
            x => (byte[])x.GetValue(0), ("$u", userId), ("$upto", uptoSeq), ("$since", receivedSince))
            .SelectMany(EventArchive.Decode).Where(e => e.Seq <= uptoSeq).ToList()));

    public Task<long> PruneArchiveAsync(long receivedBefore, CancellationToken cancellationToken = default)
    {
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            using var command = Database.Command(_writer, "DELETE FROM event_archive WHERE received_at < $t", ("$t", receivedBefore));
            return Task.FromResult((long)command.ExecuteNonQuery());
        }
    }

    public Task EraseAsync(ProfileErasure erasure, CancellationToken cancellationToken = default)
    {
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            using var transaction = _writer.BeginTransaction();
            foreach (var table in UserTables)
            {
                using var delete = Database.Command(_writer, $"DELETE FROM {table} WHERE user_id = $u", ("$u", erasure.UserId));
                delete.Transaction = transaction;
                delete.ExecuteNonQuery();
            }

            // By the index's key, segment by segment: the index has no lookup by user.
            using var leave = Database.Command(_writer, "DELETE FROM memberships WHERE segment_id = $s AND user_id = $u", ("$s", string.Empty), ("$u", erasure.UserId));
            leave.Transaction = transaction;
            foreach (var segmentId in erasure.SegmentIds)
            {
                leave.Parameters[0].Value = segmentId;
                leave.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyDictionary<string, long>> BackfilledVersionsAsync(int partition, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyDictionary<string, long>>(Read(r => Database.Query(r, "SELECT segment_id, version FROM backfills WHERE partition = $p",
            x => (x.GetString(0), x.GetInt64(1)), ("$p", partition)).ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal)));

    public Task<(int Partitions, IReadOnlyList<(string SegmentId, long Version)> Completed)> BackfillSummaryAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(Read(r => ((int)Database.Scalar(r, "SELECT count(*) FROM partitions"),
            (IReadOnlyList<(string, long)>)Database.Query(r, "SELECT segment_id, version FROM backfills", x => (x.GetString(0), x.GetInt64(1))))));

    public Task MarkBackfilledAsync(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills, CancellationToken cancellationToken = default)
    {
        lock (_writeLock)
        {
            using var gate = _database.WriteGate.EnterScope();
            using var transaction = _writer.BeginTransaction();
            foreach (var (segmentId, version) in backfills)
            {
                using var command = version is { } v
                    ? Database.Command(_writer, "INSERT INTO backfills(partition, segment_id, version) VALUES ($p, $s, $v) ON CONFLICT(partition, segment_id) DO UPDATE SET version = excluded.version",
                        ("$p", partition), ("$s", segmentId), ("$v", v))
                    : Database.Command(_writer, "DELETE FROM backfills WHERE partition = $p AND segment_id = $s", ("$p", partition), ("$s", segmentId));
                command.Transaction = transaction;
                command.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        return Task.CompletedTask;
    }

    private T Read<T>(Func<SqliteConnection, T> read)
    {
        var connection = _readers.TryTake(out var pooled) ? pooled : _database.Open(durable: false);
        try
        {
            var result = read(connection);
            if (_readers.Count < MaxIdleReaders)
            {
                _readers.Add(connection);
            }
            else
            {
                // A burst of concurrent reads opened more than are usually needed: their page caches go with them.
                connection.Dispose();
            }

            return result;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        lock (_writeLock)
        {
            _statements?.Dispose();
            _writer.Dispose();
        }

        while (_readers.TryTake(out var connection))
        {
            connection.Dispose();
        }
    }

    /// <summary>What a write round runs per record, prepared once.</summary>
    private sealed class WriteStatements(SqliteConnection writer) : IDisposable
    {
        public PreparedStatement Insert { get; } = new(writer, """
            INSERT INTO profile_records(user_id, partition, generation, last_seq, next_due, data, updated_at)
            VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6) ON CONFLICT(user_id) DO NOTHING
            """);

        public PreparedStatement Update { get; } = new(writer, """
            UPDATE profile_records SET partition = ?2, generation = generation + 1, last_seq = ?3, next_due = ?4, data = ?5, updated_at = ?6
            WHERE user_id = ?1 AND generation = ?7
            """);

        public PreparedStatement Enter { get; } = new(writer,
            "INSERT INTO memberships(segment_id, user_id, since) VALUES (?1, ?2, ?3) ON CONFLICT(segment_id, user_id) DO UPDATE SET since = excluded.since");

        public PreparedStatement Leave { get; } = new(writer, "DELETE FROM memberships WHERE segment_id = ?1 AND user_id = ?2");

        public PreparedStatement Chunk { get; } = new(writer,
            "INSERT INTO history_chunks(user_id, chunk, data) VALUES (?1, ?2, ?3) ON CONFLICT(user_id, chunk) DO UPDATE SET data = excluded.data");

        public PreparedStatement Archive { get; } = new(writer,
            "INSERT INTO event_archive(user_id, first_seq, last_seq, received_at, data) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(user_id, first_seq) DO NOTHING");

        public void Dispose()
        {
            foreach (var statement in new[] { Insert, Update, Enter, Leave, Chunk, Archive })
            {
                statement.Dispose();
            }
        }
    }
}
