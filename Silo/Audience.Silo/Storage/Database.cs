using Microsoft.Data.Sqlite;

namespace Audience.Silo.Storage;

/// <summary>
/// The embedded SQLite database (one file in the data directory) holding profile records, the membership index,
/// history chunks, archived events, partition checkpoints and segments, in WAL mode (the event log is a FASTER log
/// of its own, <see cref="EventLog"/>). Connections that acknowledge data (segments) commit with synchronous=FULL,
/// so a commit survives a crash of the process or the machine; the profile store uses NORMAL, which survives a
/// process crash, and anything it loses on power failure is replayed from the log: a partition's checkpoint is
/// written after the records it covers, and WAL keeps transactions in order, so no checkpoint outlives the records
/// before it. All writers take <see cref="WriteGate"/>, so they hand over in-process instead of sleeping in SQLite's
/// busy handler.
/// </summary>
public sealed class Database
{
    /// <summary>The layout this version writes (PRAGMA user_version).</summary>
    private const int LayoutVersion = 3;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS partitions(partition INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS profile_records(
            user_id TEXT PRIMARY KEY,
            partition INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            next_due INTEGER,
            data BLOB NOT NULL,
            updated_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS profile_records_by_partition ON profile_records(partition, user_id);
        CREATE INDEX IF NOT EXISTS profile_records_by_due ON profile_records(partition, next_due) WHERE next_due IS NOT NULL;
        CREATE TABLE IF NOT EXISTS memberships(
            segment_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            since INTEGER NOT NULL,
            PRIMARY KEY(segment_id, user_id)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS history_chunks(
            user_id TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY(user_id, chunk)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS event_archive(
            user_id TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY(user_id, first_seq)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS event_archive_by_time ON event_archive(received_at);
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
        CREATE TABLE IF NOT EXISTS campaigns(
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            segment_id TEXT NOT NULL,
            type TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL,
            scheduled_at INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            condition TEXT,
            caps TEXT NOT NULL,
            priority INTEGER NOT NULL,
            version INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS notifications(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            campaign_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            at INTEGER NOT NULL,
            payload TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS notifications_by_campaign ON notifications(campaign_id, seq);
        CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications(user_id);
        CREATE TABLE IF NOT EXISTS campaign_broadcasts(
            campaign_id TEXT NOT NULL,
            scheduled_at INTEGER NOT NULL,
            cursor TEXT NOT NULL,
            processed INTEGER NOT NULL,
            completed_at INTEGER,
            PRIMARY KEY(campaign_id, scheduled_at));
        CREATE TABLE IF NOT EXISTS segment_versions(
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            name TEXT NOT NULL,
            rule TEXT,
            at INTEGER NOT NULL,
            PRIMARY KEY(id, version));
        """;

    /// <summary>
    /// Layouts 1 and 2 kept the event log in an <c>events</c> table; <see cref="ImportEventsAsync"/> moves it into the
    /// FASTER log. Layout 1 kept a profile row, a membership row and a history row per change. Its derived tables are dropped,
    /// not converted: the partitions start again from the beginning of the log, which rebuilds every profile,
    /// membership and history entry from the events it still holds (replaying the log gives the same profiles).
    /// </summary>
    private const string FromLayout1 = """
        DROP TABLE IF EXISTS profiles;
        DROP TABLE IF EXISTS memberships;
        DROP TABLE IF EXISTS membership_history;
        DROP TABLE IF EXISTS checkpoints;
        DROP TABLE IF EXISTS backfills;
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
        var layout = Scalar(connection, "PRAGMA user_version");
        var layout1 = layout < LayoutVersion && Scalar(connection, "SELECT count(*) FROM sqlite_master WHERE name = 'profiles'") > 0;
        using (var transaction = connection.BeginTransaction())
        {
            if (layout1)
            {
                Execute(connection, FromLayout1, transaction);
            }

            Execute(connection, Schema, transaction);
            Execute(connection, $"PRAGMA user_version = {LayoutVersion}", transaction);
            transaction.Commit();
        }
    }

    public string Path { get; }

    /// <summary>
    /// Moves the events of an earlier layout's <c>events</c> table into <paramref name="log"/>, then drops the table
    /// and everything derived from it: the partitions start again from the beginning of the new log, which rebuilds
    /// every profile, membership, history entry and archived event (replaying the log gives the same profiles). The
    /// log takes the events in one go or not at all, so a crash in between repeats nothing.
    /// </summary>
    public async Task ImportEventsAsync(EventLog log, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        if (Scalar(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'") == 0)
        {
            return;
        }

        await log.ImportAsync(Rows(connection), cancellationToken).ConfigureAwait(false);
        using var transaction = connection.BeginTransaction();
        Execute(connection, """
            DROP TABLE events;
            DELETE FROM partitions;
            DELETE FROM profile_records;
            DELETE FROM memberships;
            DELETE FROM history_chunks;
            DELETE FROM event_archive;
            DELETE FROM backfills;
            """, transaction);
        transaction.Commit();

        static IEnumerable<(long ReceivedAt, byte[] Json)> Rows(SqliteConnection connection)
        {
            using var command = Command(connection, "SELECT received_at, payload FROM events ORDER BY seq");
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                yield return (reader.GetInt64(0), (byte[])reader.GetValue(1));
            }
        }
    }

    /// <summary>Held for every write transaction; SQLite has one writer at a time anyway.</summary>
    public Lock WriteGate { get; } = new();

    /// <summary>Opens a connection; <paramref name="durable"/> false is for write-behind state that the log can rebuild.</summary>
    public SqliteConnection Open(bool durable = true)
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        // Reads through a memory map: without it, time to qualify at 5,000 events/s went from 36 ms to seconds
        // (docs/performance.md, issue 10), reads and the write rounds contending in each connection's page cache.
        Execute(connection, (durable ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;") + " PRAGMA busy_timeout=30000; PRAGMA mmap_size=1073741824;");
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
