using System.Data.Common;
using Npgsql;
using NpgsqlTypes;

namespace Audience.Silo.Storage;

/// <summary>
/// The profile store shared by several Silo processes. A batch of writes is one transaction of a few statements,
/// whatever its size: records are inserted and updated from arrays (unnest) with their generation check, and the
/// membership index, history chunks and archived events of the records that were written follow in the same
/// transaction. A silo that lost its users to another (a rebalance it has not noticed yet) finds its generations
/// stale and writes nothing. Connections come from the pool per call, so a restarted server costs one failed call.
/// </summary>
public sealed class PostgresProfileStore(NpgsqlDataSource dataSource) : IProfileStore
{
    private const string Columns = "user_id, partition, generation, last_seq, next_due, data";

    /// <summary>The tables keyed by user first, whose rows an erasure deletes by the user id (memberships are keyed by segment).</summary>
    private static readonly string[] UserTables = ["profile_records", "history_chunks", "event_archive"];

    public string Kind => "postgres";

    public async Task<ProfileRecord?> ReadAsync(string userId, CancellationToken cancellationToken = default) =>
        (await ReadManyAsync([userId], cancellationToken).ConfigureAwait(false)).GetValueOrDefault(userId);

    public Task<IReadOnlyDictionary<string, ProfileRecord>> ReadManyAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyDictionary<string, ProfileRecord>>(async connection =>
        {
            await using var command = new NpgsqlCommand($"SELECT {Columns} FROM profile_records WHERE user_id = ANY(@u)", connection);
            command.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. userIds]));
            var found = new Dictionary<string, ProfileRecord>(StringComparer.Ordinal);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var record = ToRecord(reader);
                found[record.UserId] = record;
            }

            return found;
        }, cancellationToken);

    private static ProfileRecord ToRecord(DbDataReader r) => new()
    {
        UserId = r.GetString(0),
        Partition = r.GetInt32(1),
        Generation = r.GetInt64(2),
        LastSeq = r.GetInt64(3),
        NextDue = r.IsDBNull(4) ? null : r.GetInt64(4),
        Data = (byte[])r.GetValue(5),
    };

    public Task<long[]> WriteAsync(IReadOnlyList<ProfileWrite> writes, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var results = new long[writes.Count];
            var inserts = Enumerable.Range(0, writes.Count).Where(i => writes[i].ExpectedGeneration == 0).ToList();
            var updates = Enumerable.Range(0, writes.Count).Where(i => writes[i].ExpectedGeneration != 0).ToList();
            if (inserts.Count > 0)
            {
                await using var insert = new NpgsqlCommand("""
                    INSERT INTO profile_records(user_id, partition, generation, last_seq, next_due, data, updated_at)
                    SELECT u, p, 1, s, d, data, at FROM unnest(@u, @p, @s, @d, @data, @at) AS w(u, p, s, d, data, at)
                    ON CONFLICT (user_id) DO NOTHING
                    RETURNING user_id, generation
                    """, connection, transaction);
                AddRecordArrays(insert, [.. inserts.Select(i => writes[i])]);
                await Collect(insert, writes, inserts, results, cancellationToken).ConfigureAwait(false);
            }

            if (updates.Count > 0)
            {
                await using var update = new NpgsqlCommand("""
                    UPDATE profile_records r SET partition = w.p, generation = r.generation + 1, last_seq = w.s, next_due = w.d, data = w.data, updated_at = w.at
                    FROM unnest(@u, @p, @s, @d, @data, @at, @g) AS w(u, p, s, d, data, at, g)
                    WHERE r.user_id = w.u AND r.generation = w.g
                    RETURNING r.user_id, r.generation
                    """, connection, transaction);
                AddRecordArrays(update, [.. updates.Select(i => writes[i])]);
                update.Parameters.Add(new NpgsqlParameter<long[]>("g", [.. updates.Select(i => writes[i].ExpectedGeneration)]));
                await Collect(update, writes, updates, results, cancellationToken).ConfigureAwait(false);
            }

            var kept = writes.Where((_, i) => results[i] != 0).ToList();
            await WriteMemberships(connection, transaction, kept, cancellationToken).ConfigureAwait(false);
            await WriteHistory(connection, transaction, kept, cancellationToken).ConfigureAwait(false);
            await WriteArchive(connection, transaction, kept, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return results;
        }, cancellationToken);

    private static void AddRecordArrays(NpgsqlCommand command, List<ProfileWrite> writes)
    {
        command.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. writes.Select(w => w.Record.UserId)]));
        command.Parameters.Add(new NpgsqlParameter<int[]>("p", [.. writes.Select(w => w.Record.Partition)]));
        command.Parameters.Add(new NpgsqlParameter<long[]>("s", [.. writes.Select(w => w.Record.LastSeq)]));
        command.Parameters.Add(new NpgsqlParameter<long?[]>("d", [.. writes.Select(w => w.Record.NextDue)]));
        command.Parameters.Add(new NpgsqlParameter<byte[][]>("data", [.. writes.Select(w => w.Record.Data)]) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        command.Parameters.Add(new NpgsqlParameter<long[]>("at", [.. writes.Select(w => w.UpdatedAt)]));
    }

    /// <summary>Reads which of the statement's writes (<paramref name="indexes"/> into <paramref name="writes"/>) landed, at what generation.</summary>
    private static async Task Collect(NpgsqlCommand command, IReadOnlyList<ProfileWrite> writes, List<int> indexes, long[] results, CancellationToken cancellationToken)
    {
        var landed = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                landed[reader.GetString(0)] = reader.GetInt64(1);
            }
        }

        foreach (var i in indexes)
        {
            // Once per user: a second write of the same user in one statement cannot have landed as well.
            if (landed.Remove(writes[i].Record.UserId, out var generation))
            {
                results[i] = generation;
            }
        }
    }

    private static async Task WriteMemberships(NpgsqlConnection connection, NpgsqlTransaction transaction, List<ProfileWrite> writes, CancellationToken cancellationToken)
    {
        // Only the last change of each (segment, user) decides the index.
        var last = new Dictionary<(string, string), long?>();
        foreach (var write in writes)
        {
            foreach (var delta in write.Memberships)
            {
                last[(delta.SegmentId, write.Record.UserId)] = delta.Since;
            }
        }

        var entered = last.Where(l => l.Value is not null).ToList();
        var left = last.Where(l => l.Value is null).ToList();
        if (entered.Count > 0)
        {
            await using var enter = new NpgsqlCommand("""
                INSERT INTO memberships(segment_id, user_id, since) SELECT * FROM unnest(@s, @u, @at)
                ON CONFLICT (segment_id, user_id) DO UPDATE SET since = excluded.since
                """, connection, transaction);
            enter.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. entered.Select(e => e.Key.Item1)]));
            enter.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. entered.Select(e => e.Key.Item2)]));
            enter.Parameters.Add(new NpgsqlParameter<long[]>("at", [.. entered.Select(e => e.Value!.Value)]));
            await enter.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (left.Count > 0)
        {
            await using var leave = new NpgsqlCommand(
                "DELETE FROM memberships m USING unnest(@s, @u) AS gone(s, u) WHERE m.segment_id = gone.s AND m.user_id = gone.u",
                connection, transaction);
            leave.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. left.Select(e => e.Key.Item1)]));
            leave.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. left.Select(e => e.Key.Item2)]));
            await leave.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task WriteHistory(NpgsqlConnection connection, NpgsqlTransaction transaction, List<ProfileWrite> writes, CancellationToken cancellationToken)
    {
        var chunks = writes.SelectMany(w => w.History.Select(c => (w.Record.UserId, c))).ToList();
        if (chunks.Count == 0)
        {
            return;
        }

        await using var insert = new NpgsqlCommand("""
            INSERT INTO history_chunks(user_id, chunk, data) SELECT * FROM unnest(@u, @c, @data)
            ON CONFLICT (user_id, chunk) DO UPDATE SET data = excluded.data
            """, connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. chunks.Select(c => c.UserId)]));
        insert.Parameters.Add(new NpgsqlParameter<long[]>("c", [.. chunks.Select(c => c.c.Chunk)]));
        insert.Parameters.Add(new NpgsqlParameter<byte[][]>("data", [.. chunks.Select(c => c.c.Data)]) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteArchive(NpgsqlConnection connection, NpgsqlTransaction transaction, List<ProfileWrite> writes, CancellationToken cancellationToken)
    {
        var chunks = writes.Where(w => w.Archive is not null).Select(w => (w.Record.UserId, Chunk: w.Archive!)).ToList();
        if (chunks.Count == 0)
        {
            return;
        }

        await using var insert = new NpgsqlCommand("""
            INSERT INTO event_archive(user_id, first_seq, last_seq, received_at, data) SELECT * FROM unnest(@u, @f, @l, @at, @data)
            ON CONFLICT (user_id, first_seq) DO NOTHING
            """, connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. chunks.Select(c => c.UserId)]));
        insert.Parameters.Add(new NpgsqlParameter<long[]>("f", [.. chunks.Select(c => c.Chunk.FirstSeq)]));
        insert.Parameters.Add(new NpgsqlParameter<long[]>("l", [.. chunks.Select(c => c.Chunk.LastSeq)]));
        insert.Parameters.Add(new NpgsqlParameter<long[]>("at", [.. chunks.Select(c => c.Chunk.ReceivedAt)]));
        insert.Parameters.Add(new NpgsqlParameter<byte[][]>("data", [.. chunks.Select(c => c.Chunk.Data)]) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public Task<PartitionLease> ClaimPartitionAsync(int partition, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var command = PostgresDatabase.Command(connection, null, """
                INSERT INTO partitions(partition, epoch, seq) VALUES (@p, 1, 0)
                ON CONFLICT (partition) DO UPDATE SET epoch = partitions.epoch + 1 RETURNING epoch, seq
                """, ("p", partition));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return new PartitionLease(partition, reader.GetInt64(0), reader.GetInt64(1));
        }, cancellationToken);

    public Task<bool> CheckpointAsync(int partition, long epoch, long seq, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var command = PostgresDatabase.Command(connection, null, "UPDATE partitions SET seq = @s WHERE partition = @p AND epoch = @e",
                ("s", seq), ("p", partition), ("e", epoch));
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }, cancellationToken);

    public async Task<IReadOnlyDictionary<int, long>> CheckpointsAsync(CancellationToken cancellationToken = default) =>
        (await Query("SELECT partition, seq FROM partitions", r => (r.GetInt32(0), r.GetInt64(1)), cancellationToken).ConfigureAwait(false))
            .ToDictionary(c => c.Item1, c => c.Item2);

    public Task<IReadOnlyList<string>> DueAsync(int partition, long upTo, int limit, CancellationToken cancellationToken = default) =>
        Query("SELECT user_id FROM profile_records WHERE partition = @p AND next_due IS NOT NULL AND next_due <= @t ORDER BY next_due LIMIT @n",
            r => r.GetString(0), cancellationToken, ("p", partition), ("t", upTo), ("n", limit));

    public Task<IReadOnlyList<ProfileRecord>> ScanAsync(int partition, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Query($"SELECT {Columns} FROM profile_records WHERE partition = @p AND user_id > @after ORDER BY user_id LIMIT @n",
            ToRecord, cancellationToken, ("p", partition), ("after", afterUserId), ("n", limit));

    public Task<long> CountUsersAsync(int partition, CancellationToken cancellationToken = default) =>
        Scalar("SELECT count(*) FROM profile_records WHERE partition = @p", cancellationToken, ("p", partition));

    public Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Query("SELECT user_id, since FROM memberships WHERE segment_id = @s AND user_id > @after ORDER BY user_id LIMIT @n",
            r => new MembershipRow(segmentId, r.GetString(0), r.GetInt64(1)), cancellationToken, ("s", segmentId), ("after", afterUserId), ("n", limit));

    public Task<long> CountMembersAsync(string segmentId, CancellationToken cancellationToken = default) =>
        Scalar("SELECT count(*) FROM memberships WHERE segment_id = @s", cancellationToken, ("s", segmentId));

    public Task<IReadOnlyList<HistoryChunk>> HistoryAsync(string userId, long fromChunk, int limit, CancellationToken cancellationToken = default) =>
        Query("SELECT chunk, data FROM history_chunks WHERE user_id = @u AND chunk >= @c ORDER BY chunk LIMIT @n",
            r => new HistoryChunk(r.GetInt64(0), (byte[])r.GetValue(1)), cancellationToken, ("u", userId), ("c", fromChunk), ("n", limit));

    public async Task<IReadOnlyList<ArchivedEvent>> ArchiveAsync(string userId, long uptoSeq, long receivedSince, CancellationToken cancellationToken = default)
    {
        var chunks = await Query("SELECT data FROM event_archive WHERE user_id = @u AND first_seq <= @upto AND received_at >= @since ORDER BY first_seq",
            r => (byte[])r.GetValue(0), cancellationToken, ("u", userId), ("upto", uptoSeq), ("since", receivedSince)).ConfigureAwait(false);
        return [.. chunks.SelectMany(EventArchive.Decode).Where(e => e.Seq <= uptoSeq)];
    }

    public Task<long> PruneArchiveAsync(long receivedBefore, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var command = PostgresDatabase.Command(connection, null, "DELETE FROM event_archive WHERE received_at < @t", ("t", receivedBefore));
            return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken);

    public Task EraseAsync(ProfileErasure erasure, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var batch = new NpgsqlBatch(connection, transaction);
            foreach (var table in UserTables)
            {
                var delete = new NpgsqlBatchCommand($"DELETE FROM {table} WHERE user_id = @u");
                delete.Parameters.Add(new NpgsqlParameter<string>("u", erasure.UserId));
                batch.BatchCommands.Add(delete);
            }

            // By the index's key (segment, user): the index has no lookup by user.
            var leave = new NpgsqlBatchCommand("DELETE FROM memberships WHERE segment_id = ANY(@s) AND user_id = @u");
            leave.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. erasure.SegmentIds]));
            leave.Parameters.Add(new NpgsqlParameter<string>("u", erasure.UserId));
            batch.BatchCommands.Add(leave);
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public async Task<IReadOnlyDictionary<string, long>> BackfilledVersionsAsync(int partition, CancellationToken cancellationToken = default) =>
        (await Query("SELECT segment_id, version FROM backfills WHERE partition = @p", r => (r.GetString(0), r.GetInt64(1)), cancellationToken, ("p", partition))
            .ConfigureAwait(false)).ToDictionary(r => r.Item1, r => r.Item2, StringComparer.Ordinal);

    public async Task<(int Partitions, IReadOnlyList<(string SegmentId, long Version)> Completed)> BackfillSummaryAsync(CancellationToken cancellationToken = default)
    {
        var partitions = await Scalar("SELECT count(*) FROM partitions", cancellationToken).ConfigureAwait(false);
        var completed = await Query("SELECT segment_id, version FROM backfills", r => (r.GetString(0), r.GetInt64(1)), cancellationToken).ConfigureAwait(false);
        return ((int)partitions, completed);
    }

    public Task MarkBackfilledAsync(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills, CancellationToken cancellationToken = default) =>
        Run(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            foreach (var (segmentId, version) in backfills)
            {
                await using var command = version is { } v
                    ? PostgresDatabase.Command(connection, transaction,
                        "INSERT INTO backfills(partition, segment_id, version) VALUES (@p, @s, @v) ON CONFLICT (partition, segment_id) DO UPDATE SET version = excluded.version",
                        ("p", partition), ("s", segmentId), ("v", v))
                    : PostgresDatabase.Command(connection, transaction, "DELETE FROM backfills WHERE partition = @p AND segment_id = @s", ("p", partition), ("s", segmentId));
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    private Task<IReadOnlyList<T>> Query<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        Run<IReadOnlyList<T>>(async connection =>
        {
            await using var command = PostgresDatabase.Command(connection, null, sql, parameters);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var rows = new List<T>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add(map(reader));
            }

            return rows;
        }, cancellationToken);

    private Task<long> Scalar(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        Run(async connection =>
        {
            await using var command = PostgresDatabase.Command(connection, null, sql, parameters);
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) switch
            {
                long l => l,
                int i => i,
                _ => 0L,
            };
        }, cancellationToken);

    /// <summary>Runs on a pooled connection; a failure to reach the server is <see cref="StoreUnavailableException"/>.</summary>
    private async Task<T> Run<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return await work(connection).ConfigureAwait(false);
        }
        catch (NpgsqlException e) when (e.IsTransient || e.InnerException is System.Net.Sockets.SocketException or IOException || e is not PostgresException)
        {
            throw new StoreUnavailableException("PostgreSQL is unavailable: " + e.Message, e);
        }
    }
}
