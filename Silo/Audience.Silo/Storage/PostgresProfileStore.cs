using Npgsql;
using NpgsqlTypes;

namespace Audience.Silo.Storage;

/// <summary>
/// The profile store shared by several Silo processes. A save is one transaction of a few statements whatever
/// the batch size: profiles are upserted from arrays (unnest) with a version check, so a stale owner of a
/// partition (one that lost it in a rebalance and has not noticed yet) cannot overwrite what the new owner wrote.
/// Connections come from the pool per call, so a restarted server costs one failed save, which the worker retries.
/// </summary>
public sealed class PostgresProfileStore(NpgsqlDataSource dataSource) : IProfileStore
{
    public StoredProfile? Load(string userId) => LoadMany([userId]).GetValueOrDefault(userId);

    public Dictionary<string, StoredProfile> LoadMany(IReadOnlyCollection<string> userIds)
    {
        using var connection = dataSource.OpenConnection();
        using var command = new NpgsqlCommand("SELECT user_id, last_seq, next_timer, state, version FROM profiles WHERE user_id = ANY(@u)", connection);
        command.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. userIds]));
        using var reader = command.ExecuteReader();
        var found = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
        while (reader.Read())
        {
            var profile = new StoredProfile(reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetInt64(2), (byte[])reader.GetValue(3), reader.GetInt64(4));
            found[profile.UserId] = profile;
        }

        return found;
    }

    public long LoadCheckpoint(int partition)
    {
        using var connection = dataSource.OpenConnection();
        return PostgresDatabase.Scalar(connection, "SELECT seq FROM checkpoints WHERE partition = @p", ("p", partition));
    }

    public void Save(int partition, IReadOnlyList<(StoredProfile Profile, long UpdatedAt)> profiles, IReadOnlyList<HistoryRow> history, long checkpoint)
    {
        using var connection = dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        if (profiles.Count > 0)
        {
            using var upsert = new NpgsqlCommand("""
                INSERT INTO profiles(user_id, partition, last_seq, next_timer, state, version, updated_at)
                SELECT u, @p, s, t, st, v + 1, a FROM unnest(@u, @s, @t, @st, @v, @a) AS input(u, s, t, st, v, a)
                ON CONFLICT (user_id) DO UPDATE SET partition = excluded.partition, last_seq = excluded.last_seq,
                    next_timer = excluded.next_timer, state = excluded.state, version = excluded.version, updated_at = excluded.updated_at
                WHERE profiles.version = excluded.version - 1
                """, connection, transaction);
            upsert.Parameters.AddWithValue("p", partition);
            upsert.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. profiles.Select(p => p.Profile.UserId)]));
            upsert.Parameters.Add(new NpgsqlParameter<long[]>("s", [.. profiles.Select(p => p.Profile.LastSeq)]));
            upsert.Parameters.Add(new NpgsqlParameter<long?[]>("t", [.. profiles.Select(p => p.Profile.NextTimer)]));
            upsert.Parameters.Add(new NpgsqlParameter<byte[][]>("st", [.. profiles.Select(p => p.Profile.State)]) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
            upsert.Parameters.Add(new NpgsqlParameter<long[]>("v", [.. profiles.Select(p => p.Profile.Version)]));
            upsert.Parameters.Add(new NpgsqlParameter<long[]>("a", [.. profiles.Select(p => p.UpdatedAt)]));
            var written = upsert.ExecuteNonQuery();
            if (written != profiles.Count)
            {
                transaction.Rollback();
                throw new ProfileConflictException(
                    $"{profiles.Count - written} of {profiles.Count} profiles of partition {partition} changed in the store since they were loaded.");
            }
        }

        if (history.Count > 0)
        {
            WriteHistory(connection, transaction, history);
        }

        PostgresDatabase.Execute(connection, transaction,
            "INSERT INTO checkpoints(partition, seq) VALUES (@p, @s) ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq",
            ("p", partition), ("s", checkpoint));
        transaction.Commit();
    }

    private static void WriteHistory(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<HistoryRow> history)
    {
        using (var insert = new NpgsqlCommand("""
            INSERT INTO membership_history(user_id, segment_id, action, reason, at, latency_ms, event_id)
            SELECT * FROM unnest(@u, @s, @act, @r, @at, @l, @e)
            """, connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. history.Select(h => h.UserId)]));
            insert.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. history.Select(h => h.SegmentId)]));
            insert.Parameters.Add(new NpgsqlParameter<string[]>("act", [.. history.Select(h => h.Entered ? "added" : "removed")]));
            insert.Parameters.Add(new NpgsqlParameter<string[]>("r", [.. history.Select(h => h.Reason)]));
            insert.Parameters.Add(new NpgsqlParameter<long[]>("at", [.. history.Select(h => h.At)]));
            insert.Parameters.Add(new NpgsqlParameter<double[]>("l", [.. history.Select(h => h.LatencyMs)]));
            insert.Parameters.Add(new NpgsqlParameter<string?[]>("e", [.. history.Select(h => h.EventId)]) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            insert.ExecuteNonQuery();
        }

        // Only the last change of each (segment, user) in the batch decides the current membership.
        var last = new Dictionary<(string, string), HistoryRow>();
        foreach (var row in history)
        {
            last[(row.SegmentId, row.UserId)] = row;
        }

        var entered = last.Values.Where(r => r.Entered).ToList();
        var left = last.Values.Where(r => !r.Entered).ToList();
        if (entered.Count > 0)
        {
            using var enter = new NpgsqlCommand("""
                INSERT INTO memberships(segment_id, user_id, since) SELECT * FROM unnest(@s, @u, @at)
                ON CONFLICT (segment_id, user_id) DO UPDATE SET since = excluded.since
                """, connection, transaction);
            enter.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. entered.Select(r => r.SegmentId)]));
            enter.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. entered.Select(r => r.UserId)]));
            enter.Parameters.Add(new NpgsqlParameter<long[]>("at", [.. entered.Select(r => r.At)]));
            enter.ExecuteNonQuery();
        }

        if (left.Count > 0)
        {
            using var leave = new NpgsqlCommand(
                "DELETE FROM memberships m USING unnest(@s, @u) AS gone(s, u) WHERE m.segment_id = gone.s AND m.user_id = gone.u",
                connection, transaction);
            leave.Parameters.Add(new NpgsqlParameter<string[]>("s", [.. left.Select(r => r.SegmentId)]));
            leave.Parameters.Add(new NpgsqlParameter<string[]>("u", [.. left.Select(r => r.UserId)]));
            leave.ExecuteNonQuery();
        }
    }

    public List<string> Users(int partition, string afterUserId, int limit) =>
        Query("SELECT user_id FROM profiles WHERE partition = @p AND user_id > @after ORDER BY user_id LIMIT @n",
            r => r.GetString(0), ("p", partition), ("after", afterUserId), ("n", limit));

    public long CountUsers(int partition)
    {
        using var connection = dataSource.OpenConnection();
        return PostgresDatabase.Scalar(connection, "SELECT count(*) FROM profiles WHERE partition = @p", ("p", partition));
    }

    public List<string> DueTimers(int partition, long upTo, int limit) =>
        Query("SELECT user_id FROM profiles WHERE partition = @p AND next_timer IS NOT NULL AND next_timer <= @t ORDER BY next_timer LIMIT @n",
            r => r.GetString(0), ("p", partition), ("t", upTo), ("n", limit));

    public List<MembershipRow> Members(string segmentId, string afterUserId, int limit) =>
        Query("SELECT user_id, since FROM memberships WHERE segment_id = @s AND user_id > @after ORDER BY user_id LIMIT @n",
            r => new MembershipRow(segmentId, r.GetString(0), r.GetInt64(1)), ("s", segmentId), ("after", afterUserId), ("n", limit));

    public long CountMembers(string segmentId)
    {
        using var connection = dataSource.OpenConnection();
        return PostgresDatabase.Scalar(connection, "SELECT count(*) FROM memberships WHERE segment_id = @s", ("s", segmentId));
    }

    public List<HistoryEntry> History(string userId, long afterId, int limit) =>
        Query("SELECT id, segment_id, action, reason, at, latency_ms, event_id FROM membership_history WHERE user_id = @u AND id > @after ORDER BY id LIMIT @n",
            r => new HistoryEntry(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), r.GetDouble(5), r.IsDBNull(6) ? null : r.GetString(6)),
            ("u", userId), ("after", afterId), ("n", limit));

    public Dictionary<string, long> BackfilledVersions(int partition) =>
        Query("SELECT segment_id, version FROM backfills WHERE partition = @p", r => (r.GetString(0), r.GetInt64(1)), ("p", partition))
            .ToDictionary(r => r.Item1, r => r.Item2, StringComparer.Ordinal);

    public void MarkBackfilled(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills)
    {
        using var connection = dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        foreach (var (segmentId, version) in backfills)
        {
            if (version is { } v)
            {
                PostgresDatabase.Execute(connection, transaction,
                    "INSERT INTO backfills(partition, segment_id, version) VALUES (@p, @s, @v) ON CONFLICT (partition, segment_id) DO UPDATE SET version = excluded.version",
                    ("p", partition), ("s", segmentId), ("v", v));
            }
            else
            {
                PostgresDatabase.Execute(connection, transaction, "DELETE FROM backfills WHERE partition = @p AND segment_id = @s", ("p", partition), ("s", segmentId));
            }
        }

        transaction.Commit();
    }

    private List<T> Query<T>(string sql, Func<NpgsqlDataReader, T> map, params (string Name, object? Value)[] parameters)
    {
        using var connection = dataSource.OpenConnection();
        return PostgresDatabase.Query(connection, sql, map, parameters);
    }

    public void Dispose()
    {
        // Connections are pooled by the data source, which the PostgresDatabase owns.
    }
}

/// <summary>Opens stores on the shared PostgreSQL database.</summary>
public sealed class PostgresProfileStoreFactory(PostgresDatabase database) : IProfileStoreFactory
{
    public string Kind => "postgres";

    public IProfileStore Open() => new PostgresProfileStore(database.DataSource);
}
