using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Audience.Silo.Storage;

/// <summary>
/// A statement prepared once on a connection and run many times through SQLite's own API, for the profile store's
/// write rounds: Microsoft.Data.Sqlite allocates a data reader, statement enumerators and a binder per parameter on
/// every execution (about 1.4 KB per event in the Silo's write rounds at 1,000 segments). Parameters are numbered
/// (<c>?1</c>, <c>?2</c>, ...); it runs inside whatever transaction its connection has open. Not thread-safe.
/// </summary>
internal sealed class PreparedStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public PreparedStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, sql, out _statement), _db);
    }

    public PreparedStatement Bind(int index, long value)
    {
        SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_int64(_statement, index, value), _db);
        return this;
    }

    public PreparedStatement Bind(int index, long? value) =>
        value is { } v ? Bind(index, v) : BindNull(index);

    public PreparedStatement Bind(int index, string value)
    {
        SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_text(_statement, index, value), _db);
        return this;
    }

    public PreparedStatement Bind(int index, byte[] value)
    {
        // An empty span would bind NULL; an empty blob is a zero-length blob.
        SqliteException.ThrowExceptionForRC(value.Length == 0
            ? raw.sqlite3_bind_zeroblob(_statement, index, 0)
            : raw.sqlite3_bind_blob(_statement, index, value), _db);
        return this;
    }

    private PreparedStatement BindNull(int index)
    {
        SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_null(_statement, index), _db);
        return this;
    }

    /// <summary>Runs the statement (one that returns no rows) and returns how many rows it changed.</summary>
    public int Execute()
    {
        var rc = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }

        return raw.sqlite3_changes(_db);
    }

    public void Dispose() => _statement.Dispose();
}
