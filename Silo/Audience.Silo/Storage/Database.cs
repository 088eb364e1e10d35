using Microsoft.Data.Sqlite;

namespace Audience.Silo.Storage;

/// <summary>
/// The embedded SQLite database (one file in the data directory) holding the event log, profiles, memberships,
/// history and segments, in WAL mode. Connections that acknowledge data (the event log, segments) commit with
/// synchronous=FULL, so a commit survives a crash of the process or the machine; the profile store's write-behind
/// uses NORMAL, which survives a process crash, and anything it loses on power failure is replayed from the log,
/// because the checkpoint moves in the same transaction as the profiles. All writers take <see cref="WriteGate"/>,
/// so they hand over in-process instead of sleeping in SQLite's busy handler.
/// </summary>
public sealed class Database
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS events(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            partition INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            received_at INTEGER NOT NULL,
            payload BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS events_by_partition ON events(partition, seq);
        CREATE INDEX IF NOT EXISTS events_by_user ON events(user_id, seq);
        CREATE TABLE IF NOT EXISTS checkpoints(partition INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS profiles(
            user_id TEXT PRIMARY KEY,
            partition INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            next_timer INTEGER,
            state BLOB NOT NULL,
            updated_at INTEGER NOT NULL,
            version INTEGER NOT NULL DEFAULT 1);
        CREATE INDEX IF NOT EXISTS profiles_by_partition ON profiles(partition, user_id);
        CREATE INDEX IF NOT EXISTS profiles_by_timer ON profiles(partition, next_timer) WHERE next_timer IS NOT NULL;
        CREATE TABLE IF NOT EXISTS memberships(
            segment_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            since INTEGER NOT NULL,
            PRIMARY KEY(segment_id, user_id));
        CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships(user_id);
        CREATE TABLE IF NOT EXISTS membership_history(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT NOT NULL,
            segment_id TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            event_id TEXT);
        CREATE INDEX IF NOT EXISTS history_by_user ON membership_history(user_id, id);
        CREATE TABLE IF NOT EXISTS backfills(
            partition INTEGER NOT NULL,
            segment_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY(partition, segment_id));
        CREATE TABLE IF NOT EXISTS segments(
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            type TEXT NOT NULL,
            rule TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS segment_versions(
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            name TEXT NOT NULL,
            rule TEXT,
            at INTEGER NOT NULL,
            PRIMARY KEY(id, version));
        """;

    private readonly string _connectionString;

    public Database(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        Path = System.IO.Path.GetFullPath(System.IO.Path.Combine(dataDirectory, "audience.db"));
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString();
        using var connection = Open();
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, Schema);
        if (Scalar(connection, "SELECT count(*) FROM pragma_table_info('profiles') WHERE name = 'version'") == 0)
        {
            // Data directories from before optimistic concurrency: every stored profile starts at version 1.
            Execute(connection, "ALTER TABLE profiles ADD COLUMN version INTEGER NOT NULL DEFAULT 1");
        }
    }

    public string Path { get; }

    /// <summary>Held for every write transaction; SQLite has one writer at a time anyway.</summary>
    public Lock WriteGate { get; } = new();

    /// <summary>Opens a connection; <paramref name="durable"/> false is for write-behind state that the log can rebuild.</summary>
    public SqliteConnection Open(bool durable = true)
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Execute(connection, (durable ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;") + " PRAGMA busy_timeout=30000;");
        return connection;
    }

    /// <summary>A parameterised command; parameters are named <c>$name</c> in the SQL.</summary>
    public static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    /// <summary>Runs a query and maps each row.</summary>
    public static List<T> Query<T>(SqliteConnection connection, string sql, Func<SqliteDataReader, T> map, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, sql, parameters);
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    /// <summary>Runs a query that returns one number (0 when it returns nothing).</summary>
    public static long Scalar(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, sql, parameters);
        return command.ExecuteScalar() is long value ? value : 0;
    }

    public static void Execute(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
