using Audience.Silo.Storage;
using Npgsql;

namespace Audience.Silo.Segments;

/// <summary>
/// Segment definitions in PostgreSQL, shared by every Api and Silo process. Each change is written with its
/// version row and an outbox row in one transaction; <see cref="SegmentOutbox"/> publishes the outbox to
/// <c>segment-updates</c>, so a crash right after the commit still gets the change to every Silo.
/// </summary>
public sealed class PostgresSegmentStore(PostgresDatabase database) : ISegmentStore
{
    private const string Columns = "id, name, description, type, rule, version, created_at, updated_at";

    /// <summary>Raised after a change is committed, so the outbox publishes it without waiting for its next poll.</summary>
    public event Action? Committed;

    public List<SegmentRecord> All()
    {
        using var connection = database.DataSource.OpenConnection();
        return PostgresDatabase.Query(connection, $"SELECT {Columns} FROM segments ORDER BY created_at, id", Read);
    }

    public SegmentRecord? Find(string id)
    {
        using var connection = database.DataSource.OpenConnection();
        return PostgresDatabase.Query(connection, $"SELECT {Columns} FROM segments WHERE id = @id", Read, ("id", id)).SingleOrDefault();
    }

    private static SegmentRecord Read(NpgsqlDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7));

    public void Save(SegmentRecord record, string action)
    {
        using var connection = database.DataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        var written = PostgresDatabase.Execute(connection, transaction, """
            INSERT INTO segments(id, name, description, type, rule, version, created_at, updated_at) VALUES (@id, @n, @d, @t, @r, @v, @c, @u)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, type = excluded.type,
                rule = excluded.rule, version = excluded.version, updated_at = excluded.updated_at
            WHERE segments.version = excluded.version - 1
            """,
            ("id", record.Id), ("n", record.Name), ("d", record.Description), ("t", record.Type), ("r", record.Rule),
            ("v", record.Version), ("c", record.CreatedAt), ("u", record.UpdatedAt));
        if (written != 1)
        {
            throw new SegmentConflictException($"The segment '{record.Id}' was changed by another request; read it again and retry.");
        }

        Record(connection, transaction, record, action);
        transaction.Commit();
        Committed?.Invoke();
    }

    public void Delete(SegmentRecord record, long at)
    {
        using var connection = database.DataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        try
        {
            if (PostgresDatabase.Execute(connection, transaction, "DELETE FROM segments WHERE id = @id AND version = @v", ("id", record.Id), ("v", record.Version)) != 1)
            {
                throw new SegmentConflictException($"The segment '{record.Id}' was changed by another request; read it again and retry.");
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            throw new SegmentConflictException($"The segment '{record.Id}' is used by a campaign created meanwhile; delete it or point it at another segment first.");
        }

        Record(connection, transaction, record with { Version = record.Version + 1, UpdatedAt = at }, "deleted");
        transaction.Commit();
        Committed?.Invoke();
    }

    private static void Record(NpgsqlConnection connection, NpgsqlTransaction transaction, SegmentRecord record, string action)
    {
        PostgresDatabase.Execute(connection, transaction,
            "INSERT INTO segment_versions(id, version, action, name, rule, at) VALUES (@id, @v, @a, @n, @r, @at) ON CONFLICT DO NOTHING",
            ("id", record.Id), ("v", record.Version), ("a", action), ("n", record.Name), ("r", action == "deleted" ? null : record.Rule), ("at", record.UpdatedAt));
        PostgresDatabase.Execute(connection, transaction,
            "INSERT INTO segment_outbox(segment_id, version, action, at) VALUES (@id, @v, @a, @at)",
            ("id", record.Id), ("v", record.Version), ("a", action), ("at", record.UpdatedAt));
    }
}
