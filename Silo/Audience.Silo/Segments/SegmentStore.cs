using Microsoft.Data.Sqlite;

namespace Audience.Silo.Segments;

/// <summary>A segment definition as stored: the rule is kept as canonical text.</summary>
public sealed record SegmentRecord(string Id, string Name, string? Description, string Type, string Rule, long Version, long CreatedAt, long UpdatedAt);

/// <summary>Segment definitions and their version history in the embedded database.</summary>
public sealed class SegmentStore(Storage.Database database)
{
    public List<SegmentRecord> All()
    {
        using var connection = database.Open();
        return Storage.Database.Query(connection, "SELECT id, name, description, type, rule, version, created_at, updated_at FROM segments ORDER BY created_at, id",
            r => new SegmentRecord(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetString(4),
                r.GetInt64(5), r.GetInt64(6), r.GetInt64(7)));
    }

    /// <summary>Inserts or replaces a definition and records the version, in one transaction.</summary>
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
                """;
            upsert.Parameters.AddWithValue("$id", record.Id);
            upsert.Parameters.AddWithValue("$n", record.Name);
            upsert.Parameters.AddWithValue("$d", (object?)record.Description ?? DBNull.Value);
            upsert.Parameters.AddWithValue("$t", record.Type);
            upsert.Parameters.AddWithValue("$r", record.Rule);
            upsert.Parameters.AddWithValue("$v", record.Version);
            upsert.Parameters.AddWithValue("$c", record.CreatedAt);
            upsert.Parameters.AddWithValue("$u", record.UpdatedAt);
            upsert.ExecuteNonQuery();
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
            delete.CommandText = "DELETE FROM segments WHERE id = $id";
            delete.Parameters.AddWithValue("$id", record.Id);
            delete.ExecuteNonQuery();
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
