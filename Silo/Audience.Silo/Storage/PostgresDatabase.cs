using Npgsql;

namespace Audience.Silo.Storage;

/// <summary>
/// The PostgreSQL database shared by every Api and Silo process: segment definitions with their outbox, and
/// (with <c>ProfileStore:Kind=postgres</c>) profiles, memberships and history. The schema is created and migrated
/// at start-up under an advisory lock, so processes that start at the same moment migrate it once, in order.
/// </summary>
public sealed class PostgresDatabase : IDisposable
{
    /// <summary>Each entry migrates the schema from its index to the next version; append, never edit.</summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE segments(
            id text PRIMARY KEY,
            name text NOT NULL,
            description text,
            type text NOT NULL,
            rule text NOT NULL,
            version bigint NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL);
        CREATE TABLE segment_versions(
            id text NOT NULL,
            version bigint NOT NULL,
            action text NOT NULL,
            name text NOT NULL,
            rule text,
            at bigint NOT NULL,
            PRIMARY KEY(id, version));
        CREATE TABLE segment_outbox(
            id bigserial PRIMARY KEY,
            segment_id text NOT NULL,
            version bigint NOT NULL,
            action text NOT NULL,
            at bigint NOT NULL);
        CREATE TABLE profiles(
            user_id text COLLATE "C" PRIMARY KEY,
            partition int NOT NULL,
            last_seq bigint NOT NULL,
            next_timer bigint,
            state bytea NOT NULL,
            version bigint NOT NULL,
            updated_at bigint NOT NULL);
        CREATE INDEX profiles_by_partition ON profiles(partition, user_id);
        CREATE INDEX profiles_by_timer ON profiles(partition, next_timer) WHERE next_timer IS NOT NULL;
        CREATE TABLE memberships(
            segment_id text NOT NULL,
            user_id text COLLATE "C" NOT NULL,
            since bigint NOT NULL,
            PRIMARY KEY(segment_id, user_id));
        CREATE INDEX memberships_by_user ON memberships(user_id);
        CREATE TABLE membership_history(
            id bigserial PRIMARY KEY,
            user_id text NOT NULL,
            segment_id text NOT NULL,
            action text NOT NULL,
            reason text NOT NULL,
            at bigint NOT NULL,
            latency_ms double precision NOT NULL,
            event_id text);
        CREATE INDEX history_by_user ON membership_history(user_id, id);
        CREATE TABLE checkpoints(partition int PRIMARY KEY, seq bigint NOT NULL);
        """,
        """
        CREATE TABLE backfills(partition int NOT NULL, segment_id text NOT NULL, version bigint NOT NULL, PRIMARY KEY(partition, segment_id));
        """,
        // One record per user instead of a profile row, a membership row and a history row per change. Profiles of
        // the earlier layout are not converted (there were no deployments of it): the derived tables start empty.
        """
        DROP TABLE profiles;
        DROP TABLE membership_history;
        DROP TABLE checkpoints;
        DELETE FROM memberships;
        DELETE FROM backfills;
        DROP INDEX memberships_by_user;
        CREATE TABLE profile_records(
            user_id text COLLATE "C" PRIMARY KEY,
            partition int NOT NULL,
            generation bigint NOT NULL,
            last_seq bigint NOT NULL,
            next_due bigint,
            data bytea NOT NULL,
            updated_at bigint NOT NULL);
        CREATE INDEX profile_records_by_partition ON profile_records(partition, user_id);
        CREATE INDEX profile_records_by_due ON profile_records(partition, next_due) WHERE next_due IS NOT NULL;
        CREATE TABLE history_chunks(
            user_id text COLLATE "C" NOT NULL,
            chunk bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY(user_id, chunk));
        CREATE TABLE event_archive(
            user_id text COLLATE "C" NOT NULL,
            first_seq bigint NOT NULL,
            last_seq bigint NOT NULL,
            received_at bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY(user_id, first_seq));
        CREATE INDEX event_archive_by_time ON event_archive(received_at);
        CREATE TABLE partitions(partition int PRIMARY KEY, epoch bigint NOT NULL, seq bigint NOT NULL);
        """,
        OrleansClustering(),
        // Seed 004's campaigns table, with what campaigns need beyond it; the notifications they asked for, once each.
        """
        CREATE TABLE campaigns(
            id varchar(64) PRIMARY KEY,
            name varchar(255) NOT NULL,
            segment_id varchar(64) NOT NULL REFERENCES segments(id),
            type varchar(50) NOT NULL,
            content jsonb NOT NULL,
            status varchar(50) NOT NULL DEFAULT 'draft',
            scheduled_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            trigger varchar(20) NOT NULL,
            condition text,
            caps jsonb NOT NULL DEFAULT '[]',
            priority int NOT NULL DEFAULT 0,
            version bigint NOT NULL);
        CREATE TABLE notifications(
            seq bigserial PRIMARY KEY,
            id text NOT NULL UNIQUE,
            campaign_id varchar(64) NOT NULL,
            user_id text NOT NULL,
            type varchar(50) NOT NULL,
            status varchar(20) NOT NULL,
            at bigint NOT NULL,
            payload jsonb NOT NULL);
        CREATE INDEX notifications_by_campaign ON notifications(campaign_id, seq);
        CREATE TABLE campaign_broadcasts(
            campaign_id varchar(64) NOT NULL,
            scheduled_at bigint NOT NULL,
            cursor text COLLATE "C" NOT NULL,
            processed bigint NOT NULL,
            completed_at bigint,
            PRIMARY KEY(campaign_id, scheduled_at));
        """,
        // An erasure deletes a user's notifications.
        """
        CREATE INDEX notifications_by_user ON notifications(user_id);
        """,
    ];

    private static string OrleansClustering()
    {
        using var stream = typeof(PostgresDatabase).Assembly.GetManifestResourceStream("Audience.Silo.Storage.Migrations.orleans-clustering.sql")
            ?? throw new InvalidOperationException("The Orleans clustering script is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private const long MigrationLock = 0x417564_69656E6365; // "Audience"

    public PostgresDatabase(string connectionString)
    {
        DataSource = NpgsqlDataSource.Create(connectionString);
    }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The schema version after <see cref="Migrate"/>.</summary>
    public static int SchemaVersion => Migrations.Length;

    /// <summary>Brings the schema to the current version; safe to run from several processes at once.</summary>
    public void Migrate()
    {
        using var connection = DataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        Migration("SELECT pg_advisory_xact_lock(@key)", ("key", MigrationLock));
        Migration("CREATE TABLE IF NOT EXISTS schema_version(version int NOT NULL)");
        using (var read = new NpgsqlCommand("SELECT max(version) FROM schema_version", connection, transaction))
        {
            var current = read.ExecuteScalar() is int v ? v : 0;
            for (var version = current; version < Migrations.Length; version++)
            {
                Migration(Migrations[version]);
                Migration("INSERT INTO schema_version(version) VALUES (@v)", ("v", version + 1));
            }
        }

        transaction.Commit();

        // Without the command timeout (30 s): an index built on a large table takes what it takes, and the other
        // processes wait on the lock meanwhile instead of failing their start-up.
        void Migration(string sql, params (string Name, object? Value)[] parameters)
        {
            using var command = Command(connection, transaction, sql, parameters);
            command.CommandTimeout = 0;
            command.ExecuteNonQuery();
        }
    }

    public static int Execute(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        return command.ExecuteNonQuery();
    }

    /// <summary>A parameterised command; parameters are named <c>@name</c> in the SQL.</summary>
    public static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    /// <summary>Runs a query and maps each row.</summary>
    public static List<T> Query<T>(NpgsqlConnection connection, string sql, Func<NpgsqlDataReader, T> map, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, null, sql, parameters);
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    /// <summary>Runs a query that returns one number (0 when it returns nothing).</summary>
    public static long Scalar(NpgsqlConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, null, sql, parameters);
        return command.ExecuteScalar() switch
        {
            long l => l,
            int i => i,
            _ => 0,
        };
    }

    public void Dispose() => DataSource.Dispose();
}
