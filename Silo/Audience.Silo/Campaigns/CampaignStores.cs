using System.Data.Common;
using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Storage;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Audience.Silo.Campaigns;

/// <summary>A notification as recorded: sent (and published), or stopped by a cap.</summary>
public sealed record NotificationRecord(long Seq, NotificationRequest Request, string Status);

/// <summary>One notification a campaign firing produced, to record (and to publish when sent).</summary>
public sealed record CampaignFiring(NotificationRequest Request, bool Capped)
{
    public string Status => Capped ? NotificationStatus.Capped : NotificationStatus.Sent;
}

public static class NotificationStatus
{
    public const string Sent = "sent";
    public const string Capped = "capped";
}

/// <summary>
/// How far a scheduled campaign's broadcast has come: the members are taken in user id order, and <see cref="Cursor"/>
/// is the last one done (empty before the first).
/// </summary>
public sealed record BroadcastProgress(string CampaignId, long ScheduledAt, string Cursor, long Processed, long? CompletedAt);

/// <summary>A campaign's sends and caps, by type, and when it last sent.</summary>
public sealed record CampaignStats(IReadOnlyDictionary<string, long> SentByType, long Capped, DateTimeOffset? LastSent);

/// <summary>
/// Where campaigns and the notifications they asked for live: the embedded database, or PostgreSQL shared by every
/// process in Kafka mode. A campaign is versioned like a segment (each change checks the version it replaces); a
/// notification is recorded once per dedupe id, so a replayed event records nothing twice.
/// </summary>
public interface ICampaignStore
{
    Task<List<CampaignRecord>> AllAsync(CancellationToken cancellationToken = default);

    Task<CampaignRecord?> FindAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Changes whenever a campaign is created, changed or deleted: cheap, for processes that poll.</summary>
    Task<string> StampAsync(CancellationToken cancellationToken = default);

    /// <summary>Inserts (version 1) or replaces the version before; <see cref="CampaignConflictException"/> otherwise.</summary>
    Task SaveAsync(CampaignRecord record, CancellationToken cancellationToken = default);

    /// <summary>Deletes the campaign at <paramref name="version"/>; <see cref="CampaignConflictException"/> when it changed.</summary>
    Task DeleteAsync(string id, long version, CancellationToken cancellationToken = default);

    /// <summary>Ids of the campaigns that point at <paramref name="segmentId"/>.</summary>
    Task<List<string>> UsingSegmentAsync(string segmentId, CancellationToken cancellationToken = default);

    /// <summary>Records each firing unless its dedupe id is recorded already; returns those that were new.</summary>
    Task<List<CampaignFiring>> RecordAsync(IReadOnlyList<CampaignFiring> firings, CancellationToken cancellationToken = default);

    Task<List<NotificationRecord>> NotificationsAsync(string campaignId, long after, int limit, CancellationToken cancellationToken = default);

    Task<CampaignStats> StatsAsync(string campaignId, CancellationToken cancellationToken = default);

    /// <summary>Deletes every notification recorded for the user (an erasure); returns how many went.</summary>
    Task<long> EraseUserAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>The broadcast of the campaign for <paramref name="scheduledAt"/>, if it started.</summary>
    Task<BroadcastProgress?> BroadcastAsync(string campaignId, long scheduledAt, CancellationToken cancellationToken = default);

    Task SaveBroadcastAsync(BroadcastProgress progress, CancellationToken cancellationToken = default);
}

/// <summary>Another request changed the campaign since it was read.</summary>
public sealed class CampaignConflictException(string message) : Exception(message);

/// <summary>The columns both stores share, and their reading.</summary>
internal static class CampaignRows
{
    public const string Columns = "id, name, segment_id, type, content, status, scheduled_at, created_at, updated_at, trigger, condition, caps, priority, version";

    public static CampaignRecord Read(DbDataReader r, Func<DbDataReader, int, long> time) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), Campaign.ReadContent(r.GetString(4)), r.GetString(5),
        r.GetString(9), r.IsDBNull(10) ? null : r.GetString(10), Campaign.ReadCaps(r.GetString(11)), r.GetInt32(12),
        r.IsDBNull(6) ? null : time(r, 6), r.GetInt64(13), time(r, 7), time(r, 8));

    public static NotificationRecord ReadNotification(DbDataReader r) =>
        new(r.GetInt64(0), JsonSerializer.Deserialize(r.GetString(1), SiloJsonContext.Default.NotificationRequest)!, r.GetString(2));

    public static string Payload(NotificationRequest request) => JsonSerializer.Serialize(request, SiloJsonContext.Default.NotificationRequest);

    public static CampaignStats Stats(List<(string Type, string Status, long Count, long Last)> rows)
    {
        var sent = rows.Where(r => r.Status == NotificationStatus.Sent).ToList();
        return new CampaignStats(
            sent.ToDictionary(r => r.Type, r => r.Count, StringComparer.Ordinal),
            rows.Where(r => r.Status == NotificationStatus.Capped).Sum(r => r.Count),
            sent.Count > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(sent.Max(r => r.Last)) : null);
    }

    public const string BroadcastColumns = "campaign_id, scheduled_at, cursor, processed, completed_at";

    public static BroadcastProgress ReadBroadcast(DbDataReader r) =>
        new(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4));

    public static CampaignConflictException Conflict(string id) => new($"The campaign '{id}' was changed by another request; read it again and retry.");
}

/// <summary>Campaigns and notifications in the embedded database.</summary>
public sealed class EmbeddedCampaignStore(Database database) : ICampaignStore
{
    public Task<List<CampaignRecord>> AllAsync(CancellationToken cancellationToken = default) => Task.FromResult(Select("ORDER BY created_at, id"));

    public Task<CampaignRecord?> FindAsync(string id, CancellationToken cancellationToken = default) =>
        Task.FromResult(Select("WHERE id = $id", ("$id", id)).SingleOrDefault());

    private List<CampaignRecord> Select(string rest, params (string Name, object? Value)[] parameters)
    {
        using var connection = database.Open();
        return Database.Query(connection, $"SELECT {CampaignRows.Columns} FROM campaigns {rest}", r => CampaignRows.Read(r, (x, i) => x.GetInt64(i)), parameters);
    }

    public Task<string> StampAsync(CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        return Task.FromResult(Database.Query(connection, "SELECT count(*), coalesce(sum(version), 0), coalesce(max(updated_at), 0) FROM campaigns",
            r => $"{r.GetInt64(0)}/{r.GetInt64(1)}/{r.GetInt64(2)}").Single());
    }

    public Task SaveAsync(CampaignRecord record, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        using var gate = database.WriteGate.EnterScope();
        using var command = Database.Command(connection, """
            INSERT INTO campaigns(id, name, segment_id, type, content, status, scheduled_at, created_at, updated_at, trigger, condition, caps, priority, version)
            VALUES ($id, $name, $segment, $type, $content, $status, $scheduled, $created, $updated, $trigger, $condition, $caps, $priority, $version)
            ON CONFLICT(id) DO UPDATE SET name = excluded.name, segment_id = excluded.segment_id, type = excluded.type,
                content = excluded.content, status = excluded.status, scheduled_at = excluded.scheduled_at, updated_at = excluded.updated_at,
                trigger = excluded.trigger, condition = excluded.condition, caps = excluded.caps, priority = excluded.priority, version = excluded.version
            WHERE campaigns.version = excluded.version - 1
            """,
            ("$id", record.Id), ("$name", record.Name), ("$segment", record.SegmentId), ("$type", record.Type),
            ("$content", Campaign.ContentJson(record.Content)), ("$status", record.Status), ("$scheduled", record.ScheduledAt),
            ("$created", record.CreatedAt), ("$updated", record.UpdatedAt), ("$trigger", record.Trigger), ("$condition", record.Condition),
            ("$caps", Campaign.CapsJson(record.Caps)), ("$priority", record.Priority), ("$version", record.Version));
        if (command.ExecuteNonQuery() != 1)
        {
            throw CampaignRows.Conflict(record.Id);
        }

        return Task.CompletedTask;
    }

    public Task DeleteAsync(string id, long version, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        using var gate = database.WriteGate.EnterScope();
        using var command = Database.Command(connection, "DELETE FROM campaigns WHERE id = $id AND version = $version", ("$id", id), ("$version", version));
        if (command.ExecuteNonQuery() != 1)
        {
            throw CampaignRows.Conflict(id);
        }

        return Task.CompletedTask;
    }

    public Task<List<string>> UsingSegmentAsync(string segmentId, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        return Task.FromResult(Database.Query(connection, "SELECT id FROM campaigns WHERE segment_id = $s ORDER BY id", r => r.GetString(0), ("$s", segmentId)));
    }

    public Task<List<CampaignFiring>> RecordAsync(IReadOnlyList<CampaignFiring> firings, CancellationToken cancellationToken = default)
    {
        var added = new List<CampaignFiring>(firings.Count);
        using var connection = database.Open(durable: false);
        using var gate = database.WriteGate.EnterScope();
        using var transaction = connection.BeginTransaction();
        using var insert = Database.Command(connection, """
            INSERT INTO notifications(id, campaign_id, user_id, type, status, at, payload) VALUES ($id, $campaign, $user, $type, $status, $at, $payload)
            ON CONFLICT(id) DO NOTHING
            """, ("$id", ""), ("$campaign", ""), ("$user", ""), ("$type", ""), ("$status", ""), ("$at", 0L), ("$payload", ""));
        insert.Transaction = transaction;
        foreach (var firing in firings)
        {
            var request = firing.Request;
            insert.Parameters[0].Value = request.NotificationId;
            insert.Parameters[1].Value = request.CampaignId;
            insert.Parameters[2].Value = request.UserId;
            insert.Parameters[3].Value = request.Type;
            insert.Parameters[4].Value = firing.Status;
            insert.Parameters[5].Value = request.Timestamp.ToUnixTimeMilliseconds();
            insert.Parameters[6].Value = CampaignRows.Payload(request);
            if (insert.ExecuteNonQuery() == 1)
            {
                added.Add(firing);
            }
        }

        transaction.Commit();
        return Task.FromResult(added);
    }

    public Task<List<NotificationRecord>> NotificationsAsync(string campaignId, long after, int limit, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        return Task.FromResult(Database.Query(connection,
            "SELECT seq, payload, status FROM notifications WHERE campaign_id = $c AND seq > $after ORDER BY seq LIMIT $limit",
            CampaignRows.ReadNotification, ("$c", campaignId), ("$after", after), ("$limit", limit)));
    }

    public Task<CampaignStats> StatsAsync(string campaignId, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        return Task.FromResult(CampaignRows.Stats(Database.Query(connection,
            "SELECT type, status, count(*), max(at) FROM notifications WHERE campaign_id = $c GROUP BY type, status",
            r => (r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), ("$c", campaignId))));
    }

    public Task<long> EraseUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open(durable: false);
        using var gate = database.WriteGate.EnterScope();
        using var command = Database.Command(connection, "DELETE FROM notifications WHERE user_id = $u", ("$u", userId));
        return Task.FromResult((long)command.ExecuteNonQuery());
    }

    public Task<BroadcastProgress?> BroadcastAsync(string campaignId, long scheduledAt, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        return Task.FromResult(Database.Query(connection, $"SELECT {CampaignRows.BroadcastColumns} FROM campaign_broadcasts WHERE campaign_id = $c AND scheduled_at = $at",
            CampaignRows.ReadBroadcast, ("$c", campaignId), ("$at", scheduledAt)).SingleOrDefault());
    }

    public Task SaveBroadcastAsync(BroadcastProgress progress, CancellationToken cancellationToken = default)
    {
        using var connection = database.Open();
        using var gate = database.WriteGate.EnterScope();
        using var command = Database.Command(connection, """
            INSERT INTO campaign_broadcasts(campaign_id, scheduled_at, cursor, processed, completed_at) VALUES ($c, $at, $cursor, $processed, $completed)
            ON CONFLICT(campaign_id, scheduled_at) DO UPDATE SET cursor = excluded.cursor, processed = excluded.processed, completed_at = excluded.completed_at
            """,
            ("$c", progress.CampaignId), ("$at", progress.ScheduledAt), ("$cursor", progress.Cursor), ("$processed", progress.Processed),
            ("$completed", progress.CompletedAt));
        command.ExecuteNonQuery();
        return Task.CompletedTask;
    }
}

/// <summary>Campaigns (seed 004's table) and notifications in PostgreSQL, shared by the Api and every Silo.</summary>
public sealed class PostgresCampaignStore(PostgresDatabase database) : ICampaignStore
{
    private static long Ms(DbDataReader r, int i) => new DateTimeOffset(r.GetFieldValue<DateTime>(i), TimeSpan.Zero).ToUnixTimeMilliseconds();

    private static DateTime? Time(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v).UtcDateTime : null;

    public Task<List<CampaignRecord>> AllAsync(CancellationToken cancellationToken = default) => SelectAsync("ORDER BY created_at, id", null, cancellationToken);

    public async Task<CampaignRecord?> FindAsync(string id, CancellationToken cancellationToken = default) =>
        (await SelectAsync("WHERE id = @id", id, cancellationToken).ConfigureAwait(false)).SingleOrDefault();

    /// <summary>Campaigns, <paramref name="rest"/> the query's end (its <c>@id</c>, if any, is <paramref name="id"/>).</summary>
    private async Task<List<CampaignRecord>> SelectAsync(string rest, string? id, CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {CampaignRows.Columns.Replace("content", "content::text").Replace("caps", "caps::text")} FROM campaigns {rest}", connection);
        if (id is not null)
        {
            command.Parameters.AddWithValue("id", id);
        }

        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var found = new List<CampaignRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            found.Add(CampaignRows.Read(reader, Ms));
        }

        return found;
    }

    public async Task<string> StampAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*) || '/' || coalesce(sum(version), 0) || '/' || coalesce(max(updated_at)::text, '') FROM campaigns", connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    public async Task SaveAsync(CampaignRecord record, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            INSERT INTO campaigns(id, name, segment_id, type, content, status, scheduled_at, created_at, updated_at, trigger, condition, caps, priority, version)
            VALUES (@id, @name, @segment, @type, @content::jsonb, @status, @scheduled, @created, @updated, @trigger, @condition, @caps::jsonb, @priority, @version)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, segment_id = excluded.segment_id, type = excluded.type,
                content = excluded.content, status = excluded.status, scheduled_at = excluded.scheduled_at, updated_at = excluded.updated_at,
                trigger = excluded.trigger, condition = excluded.condition, caps = excluded.caps, priority = excluded.priority, version = excluded.version
            WHERE campaigns.version = excluded.version - 1
            """, connection);
        command.Parameters.AddWithValue("id", record.Id);
        command.Parameters.AddWithValue("name", record.Name);
        command.Parameters.AddWithValue("segment", record.SegmentId);
        command.Parameters.AddWithValue("type", record.Type);
        command.Parameters.AddWithValue("content", Campaign.ContentJson(record.Content));
        command.Parameters.AddWithValue("status", record.Status);
        command.Parameters.AddWithValue("scheduled", (object?)Time(record.ScheduledAt) ?? DBNull.Value);
        command.Parameters.AddWithValue("created", Time(record.CreatedAt)!.Value);
        command.Parameters.AddWithValue("updated", Time(record.UpdatedAt)!.Value);
        command.Parameters.AddWithValue("trigger", record.Trigger);
        command.Parameters.AddWithValue("condition", (object?)record.Condition ?? DBNull.Value);
        command.Parameters.AddWithValue("caps", Campaign.CapsJson(record.Caps));
        command.Parameters.AddWithValue("priority", record.Priority);
        command.Parameters.AddWithValue("version", record.Version);
        try
        {
            if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
            {
                throw CampaignRows.Conflict(record.Id);
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            // The segment was deleted by another request after this one checked it.
            throw new CampaignConflictException($"The segment '{record.SegmentId}' was deleted meanwhile.");
        }
    }

    public async Task DeleteAsync(string id, long version, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("DELETE FROM campaigns WHERE id = @id AND version = @version", connection);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("version", version);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
        {
            throw CampaignRows.Conflict(id);
        }
    }

    public async Task<List<string>> UsingSegmentAsync(string segmentId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return PostgresDatabase.Query(connection, "SELECT id FROM campaigns WHERE segment_id = @s ORDER BY id", r => r.GetString(0), ("s", segmentId));
    }

    public async Task<List<CampaignFiring>> RecordAsync(IReadOnlyList<CampaignFiring> firings, CancellationToken cancellationToken = default)
    {
        var added = new List<CampaignFiring>(firings.Count);
        if (firings.Count == 0)
        {
            return added;
        }

        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        foreach (var firing in firings)
        {
            var request = firing.Request;
            var command = new NpgsqlBatchCommand("""
                INSERT INTO notifications(id, campaign_id, user_id, type, status, at, payload) VALUES (@id, @campaign, @user, @type, @status, @at, @payload::jsonb)
                ON CONFLICT (id) DO NOTHING
                """);
            command.Parameters.AddWithValue("id", request.NotificationId);
            command.Parameters.AddWithValue("campaign", request.CampaignId);
            command.Parameters.AddWithValue("user", request.UserId);
            command.Parameters.AddWithValue("type", request.Type);
            command.Parameters.AddWithValue("status", firing.Status);
            command.Parameters.AddWithValue("at", request.Timestamp.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("payload", CampaignRows.Payload(request));
            batch.BatchCommands.Add(command);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < firings.Count; i++)
        {
            if (batch.BatchCommands[i].RecordsAffected == 1)
            {
                added.Add(firings[i]);
            }
        }

        return added;
    }

    public async Task<List<NotificationRecord>> NotificationsAsync(string campaignId, long after, int limit, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return PostgresDatabase.Query(connection,
            "SELECT seq, payload::text, status FROM notifications WHERE campaign_id = @c AND seq > @after ORDER BY seq LIMIT @limit",
            CampaignRows.ReadNotification, ("c", campaignId), ("after", after), ("limit", limit));
    }

    public async Task<CampaignStats> StatsAsync(string campaignId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return CampaignRows.Stats(PostgresDatabase.Query(connection,
            "SELECT type, status, count(*), max(at) FROM notifications WHERE campaign_id = @c GROUP BY type, status",
            r => (r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), ("c", campaignId)));
    }

    public async Task<long> EraseUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("DELETE FROM notifications WHERE user_id = @u", connection);
        command.Parameters.AddWithValue("u", userId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<BroadcastProgress?> BroadcastAsync(string campaignId, long scheduledAt, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return PostgresDatabase.Query(connection, $"SELECT {CampaignRows.BroadcastColumns} FROM campaign_broadcasts WHERE campaign_id = @c AND scheduled_at = @at",
            CampaignRows.ReadBroadcast, ("c", campaignId), ("at", scheduledAt)).SingleOrDefault();
    }

    public async Task SaveBroadcastAsync(BroadcastProgress progress, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        PostgresDatabase.Execute(connection, null, """
            INSERT INTO campaign_broadcasts(campaign_id, scheduled_at, cursor, processed, completed_at) VALUES (@c, @at, @cursor, @processed, @completed)
            ON CONFLICT (campaign_id, scheduled_at) DO UPDATE SET cursor = excluded.cursor, processed = excluded.processed, completed_at = excluded.completed_at
            """,
            ("c", progress.CampaignId), ("at", progress.ScheduledAt), ("cursor", progress.Cursor), ("processed", progress.Processed),
            ("completed", progress.CompletedAt));
    }
}
