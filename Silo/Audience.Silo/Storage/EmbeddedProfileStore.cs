using Microsoft.Data.Sqlite;

namespace Audience.Silo.Storage;

/// <summary>
/// The embedded profile store. A partition worker writes behind: all its changed profiles, their membership
/// changes and the partition's checkpoint go in one transaction, so after a crash the store is exactly the
/// state after some prefix of the partition's events, and replay from the checkpoint completes it.
/// </summary>
public sealed class EmbeddedProfileStore(SqliteConnection connection, Lock writeGate) : IProfileStore
{
    public StoredProfile? Load(string userId) =>
        Database.Query(connection, "SELECT last_seq, next_timer, state, version FROM profiles WHERE user_id = $u",
            r => new StoredProfile(userId, r.GetInt64(0), r.IsDBNull(1) ? null : r.GetInt64(1), (byte[])r.GetValue(2), r.GetInt64(3)),
            ("$u", userId)).SingleOrDefault();

    /// <summary>One indexed lookup each: SQLite is in process, so a round trip costs microseconds.</summary>
    public Dictionary<string, StoredProfile> LoadMany(IReadOnlyCollection<string> userIds) =>
        userIds.Select(Load).OfType<StoredProfile>().ToDictionary(p => p.UserId, StringComparer.Ordinal);

    public long LoadCheckpoint(int partition) =>
        Database.Scalar(connection, "SELECT seq FROM checkpoints WHERE partition = $p", ("$p", partition));

    public void Save(int partition, IReadOnlyList<(StoredProfile Profile, long UpdatedAt)> profiles, IReadOnlyList<HistoryRow> history, long checkpoint)
    {
        using var gate = writeGate.EnterScope();
        using var transaction = connection.BeginTransaction();
        using (var upsert = connection.CreateCommand())
        {
            upsert.Transaction = transaction;
            upsert.CommandText = """
                INSERT INTO profiles(user_id, partition, last_seq, next_timer, state, updated_at, version) VALUES ($u, $p, $seq, $timer, $state, $at, $v + 1)
                ON CONFLICT(user_id) DO UPDATE SET partition = excluded.partition, last_seq = excluded.last_seq, next_timer = excluded.next_timer,
                    state = excluded.state, updated_at = excluded.updated_at, version = excluded.version
                WHERE profiles.version = $v
                """;
            var u = upsert.Parameters.Add("$u", SqliteType.Text);
            upsert.Parameters.AddWithValue("$p", partition);
            var seq = upsert.Parameters.Add("$seq", SqliteType.Integer);
            var timer = upsert.Parameters.Add("$timer", SqliteType.Integer);
            var state = upsert.Parameters.Add("$state", SqliteType.Blob);
            var at = upsert.Parameters.Add("$at", SqliteType.Integer);
            var version = upsert.Parameters.Add("$v", SqliteType.Integer);
            foreach (var (profile, updatedAt) in profiles)
            {
                u.Value = profile.UserId;
                seq.Value = profile.LastSeq;
                timer.Value = profile.NextTimer is { } t ? t : DBNull.Value;
                state.Value = profile.State;
                at.Value = updatedAt;
                version.Value = profile.Version;
                if (upsert.ExecuteNonQuery() != 1)
                {
                    // Disposing the transaction rolls back what this batch wrote so far.
                    throw new ProfileConflictException($"The profile of '{profile.UserId}' changed in the store since version {profile.Version}.");
                }
            }
        }

        if (history.Count > 0)
        {
            WriteHistory(history, transaction);
        }

        using (var checkpointCommand = connection.CreateCommand())
        {
            checkpointCommand.Transaction = transaction;
            checkpointCommand.CommandText = "INSERT INTO checkpoints(partition, seq) VALUES ($p, $seq) ON CONFLICT(partition) DO UPDATE SET seq = excluded.seq";
            checkpointCommand.Parameters.AddWithValue("$p", partition);
            checkpointCommand.Parameters.AddWithValue("$seq", checkpoint);
            checkpointCommand.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    private void WriteHistory(IReadOnlyList<HistoryRow> history, SqliteTransaction transaction)
    {
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO membership_history(user_id, segment_id, action, reason, at, latency_ms, event_id) VALUES ($u, $s, $a, $r, $at, $l, $e)";
        var u = insert.Parameters.Add("$u", SqliteType.Text);
        var s = insert.Parameters.Add("$s", SqliteType.Text);
        var a = insert.Parameters.Add("$a", SqliteType.Text);
        var r = insert.Parameters.Add("$r", SqliteType.Text);
        var at = insert.Parameters.Add("$at", SqliteType.Integer);
        var l = insert.Parameters.Add("$l", SqliteType.Real);
        var e = insert.Parameters.Add("$e", SqliteType.Text);
        using var enter = connection.CreateCommand();
        enter.Transaction = transaction;
        enter.CommandText = "INSERT INTO memberships(segment_id, user_id, since) VALUES ($s, $u, $at) ON CONFLICT(segment_id, user_id) DO UPDATE SET since = excluded.since";
        var es = enter.Parameters.Add("$s", SqliteType.Text);
        var eu = enter.Parameters.Add("$u", SqliteType.Text);
        var eat = enter.Parameters.Add("$at", SqliteType.Integer);
        using var leave = connection.CreateCommand();
        leave.Transaction = transaction;
        leave.CommandText = "DELETE FROM memberships WHERE segment_id = $s AND user_id = $u";
        var ls = leave.Parameters.Add("$s", SqliteType.Text);
        var lu = leave.Parameters.Add("$u", SqliteType.Text);
        foreach (var row in history)
        {
            u.Value = row.UserId;
            s.Value = row.SegmentId;
            a.Value = row.Entered ? "added" : "removed";
            r.Value = row.Reason;
            at.Value = row.At;
            l.Value = row.LatencyMs;
            e.Value = row.EventId is { } id ? id : DBNull.Value;
            insert.ExecuteNonQuery();
            if (row.Entered)
            {
                (es.Value, eu.Value, eat.Value) = (row.SegmentId, row.UserId, row.At);
                enter.ExecuteNonQuery();
            }
            else
            {
                (ls.Value, lu.Value) = (row.SegmentId, row.UserId);
                leave.ExecuteNonQuery();
            }
        }
    }

    public List<string> Users(int partition, string afterUserId, int limit) =>
        Database.Query(connection, "SELECT user_id FROM profiles WHERE partition = $p AND user_id > $after ORDER BY user_id LIMIT $n",
            r => r.GetString(0), ("$p", partition), ("$after", afterUserId), ("$n", limit));

    public long CountUsers(int partition) =>
        Database.Scalar(connection, "SELECT count(*) FROM profiles WHERE partition = $p", ("$p", partition));

    public List<string> DueTimers(int partition, long upTo, int limit) =>
        Database.Query(connection, "SELECT user_id FROM profiles WHERE partition = $p AND next_timer IS NOT NULL AND next_timer <= $t ORDER BY next_timer LIMIT $n",
            r => r.GetString(0), ("$p", partition), ("$t", upTo), ("$n", limit));

    public List<MembershipRow> Members(string segmentId, string afterUserId, int limit) =>
        Database.Query(connection, "SELECT user_id, since FROM memberships WHERE segment_id = $s AND user_id > $after ORDER BY user_id LIMIT $n",
            r => new MembershipRow(segmentId, r.GetString(0), r.GetInt64(1)), ("$s", segmentId), ("$after", afterUserId), ("$n", limit));

    public long CountMembers(string segmentId) =>
        Database.Scalar(connection, "SELECT count(*) FROM memberships WHERE segment_id = $s", ("$s", segmentId));

    public List<HistoryEntry> History(string userId, long afterId, int limit) =>
        Database.Query(connection,
            "SELECT id, segment_id, action, reason, at, latency_ms, event_id FROM membership_history WHERE user_id = $u AND id > $after ORDER BY id LIMIT $n",
            r => new HistoryEntry(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), r.GetDouble(5), r.IsDBNull(6) ? null : r.GetString(6)),
            ("$u", userId), ("$after", afterId), ("$n", limit));

    public Dictionary<string, long> BackfilledVersions(int partition) =>
        Database.Query(connection, "SELECT segment_id, version FROM backfills WHERE partition = $p", r => (r.GetString(0), r.GetInt64(1)), ("$p", partition))
            .ToDictionary(r => r.Item1, r => r.Item2, StringComparer.Ordinal);

    public void MarkBackfilled(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills)
    {
        using var gate = writeGate.EnterScope();
        using var transaction = connection.BeginTransaction();
        foreach (var (segmentId, version) in backfills)
        {
            using var command = version is { } v
                ? Database.Command(connection, "INSERT INTO backfills(partition, segment_id, version) VALUES ($p, $s, $v) ON CONFLICT(partition, segment_id) DO UPDATE SET version = excluded.version",
                    ("$p", partition), ("$s", segmentId), ("$v", v))
                : Database.Command(connection, "DELETE FROM backfills WHERE partition = $p AND segment_id = $s", ("$p", partition), ("$s", segmentId));
            command.Transaction = transaction;
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    public void Dispose() => connection.Dispose();
}

/// <summary>Opens embedded stores on the service's SQLite database, with write-behind durability.</summary>
public sealed class EmbeddedProfileStoreFactory(Database database) : IProfileStoreFactory
{
    public string Kind => "embedded";

    public IProfileStore Open() => new EmbeddedProfileStore(database.Open(durable: false), database.WriteGate);
}
