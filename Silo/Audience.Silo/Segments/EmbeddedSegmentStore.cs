using Microsoft.Data.Sqlite;

namespace Audience.Silo.Segments;

/// <summary>A segment definition as stored: the rule is kept as canonical text.</summary>
public sealed record SegmentRecord(string Id, string Name, string? Description, string Type, string Rule, long Version, long CreatedAt, long UpdatedAt);

/// <summary>
/// Where segment definitions and their version history live: the embedded database, or PostgreSQL shared by
/// every process (<see cref="PostgresSegmentStore"/>), which also queues each change for <c>segment-updates</c>.
/// </summary>
public interface ISegmentStore
{
    List<SegmentRecord> All();

    SegmentRecord? Find(string id);

    /// <summary>
    /// Inserts (<paramref name="record"/>.Version 1) or replaces the definition and records the version, in one
    /// transaction; <see cref="SegmentConflictException"/> when the stored version is not the one before it.
    /// </summary>
    void Save(SegmentRecord record, string action);

    /// <summary>Deletes the definition at <paramref name="record"/>'s version and records the deletion.</summary>
    void Delete(SegmentRecord record, long at);
}

/// <summary>Another writer changed the segment since it was read.</summary>
public sealed class SegmentConflictException(string message) : Exception(message);

/// <summary>Segment definitions and their version history in the embedded database.</summary>
public sealed class EmbeddedSegmentStore(Storage.Database database) : ISegmentStore
{
    private const string Columns = "id, name, description, type, rule, version, created_at, updated_at";

    public List<SegmentRecord> All()
    {
        using var connection = database.Open();
        return Storage.Database.Query(connection, $"SELECT {Columns} FROM segments ORDER BY created_at, id", Read);
    }

    public SegmentRecord? Find(string id)
    {
        using var connection = database.Open();
        return Storage.Database.Query(connection, $"SELECT {Columns} FROM segments WHERE id = $id", Read, ("$id", id)).SingleOrDefault();
    }

    private static SegmentRecord Read(SqliteDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7));

    public void Save(SegmentRecord record, string action)
    {
        using var connection = database.Open();
        using var gate = database.WriteGate.EnterScope();
        using var transaction = connection.BeginTransaction();
        using (var upsert = connection.CreateCommand())
        {
            upsert.Transaction = transaction;
            upsert.CommandText = """
                INSERT INTO segments(id, name, description, type, rule, version, created_at, updated_at) VALUES ($id, $n, $d, $t, $r, $v, $c, $u)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description, type = excluded.type,
                    rule = excluded.rule, version = excluded.version, updated_at = excluded.updated_at
                WHERE segments.version = excluded.version - 1
                """;
            upsert.Parameters.AddWithValue("$id", record.Id);
            upsert.Parameters.AddWithValue("$n", record.Name);
            upsert.Parameters.AddWithValue("$d", (object?)record.Description ?? DBNull.Value);
            upsert.Parameters.AddWithValue("$t", record.Type);
            upsert.Parameters.AddWithValue("$r", record.Rule);
            upsert.Parameters.AddWithValue("$v", record.Version);
            upsert.Parameters.AddWithValue("$c", record.CreatedAt);
            upsert.Parameters.AddWithValue("$u", record.UpdatedAt);
            if (upsert.ExecuteNonQuery() != 1)
            {
                throw new SegmentConflictException($"The segment '{record.Id}' was changed by another request; read it again and retry.");
            }
        }

        AddVersion(connection, transaction, record, action);
        transaction.Commit();
    }

    public void Delete(SegmentRecord record, long at)
    {
        using var connection = database.Open();
        using var gate = database.WriteGate.EnterScope();
        using var transaction = connection.BeginTransaction();
        using (var delete = connection.CreateCommand())
        {
            delete.Transaction = transaction;
            delete.CommandText = "DELETE FROM segments WHERE id = $id AND version = $v";
            delete.Parameters.AddWithValue("$id", record.Id);
            delete.Parameters.AddWithValue("$v", record.Version);
            if (delete.ExecuteNonQuery() != 1)
            {
                throw new SegmentConflictException($"The segment '{record.Id}' was changed by another request; read it again and retry.");
            }
        }

        AddVersion(connection, transaction, record with { Version = record.Version + 1, UpdatedAt = at }, "deleted");
        transaction.Commit();
    }

    private static void AddVersion(SqliteConnection connection, SqliteTransaction transaction, SegmentRecord record, string action)
    {
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT OR REPLACE INTO segment_versions(id, version, action, name, rule, at) VALUES ($id, $v, $a, $n, $r, $at)";
        insert.Parameters.AddWithValue("$id", record.Id);
        insert.Parameters.AddWithValue("$v", record.Version);
        insert.Parameters.AddWithValue("$a", action);
        insert.Parameters.AddWithValue("$n", record.Name);
        insert.Parameters.AddWithValue("$r", action == "deleted" ? DBNull.Value : record.Rule);
        insert.Parameters.AddWithValue("$at", record.UpdatedAt);
        insert.ExecuteNonQuery();
    }
}
