using System.Diagnostics;
using Npgsql;
using Xunit;

namespace Audience.Testing;

/// <summary>
/// Tests that use the PostgreSQL server run one at a time, because one of them restarts it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PostgresCollection
{
    public const string Name = "PostgreSQL server";
}

/// <summary>
/// The PostgreSQL server of the tests (started by scripts/test.sh; <c>AUDIENCE_TEST_POSTGRES</c> overrides it).
/// Each test gets a database of its own, dropped afterwards.
/// </summary>
internal sealed class TestDatabase : IDisposable
{
    public static readonly string Server = Environment.GetEnvironmentVariable("AUDIENCE_TEST_POSTGRES")
        ?? "Host=127.0.0.1;Port=5432;Username=postgres;Password=audience-tests";

    private readonly string _name = "audience_test_" + Guid.NewGuid().ToString("N")[..12];

    public TestDatabase()
    {
        Admin($"CREATE DATABASE {_name}");
        ConnectionString = new NpgsqlConnectionStringBuilder(Server) { Database = _name }.ToString();
    }

    public string ConnectionString { get; }

    /// <summary>
    /// Restarts the server with the command in <c>AUDIENCE_TEST_POSTGRES_RESTART</c> (scripts/test.sh sets it);
    /// false when there is none, for a server the tests may not restart.
    /// </summary>
    public static bool Restart()
    {
        var command = Environment.GetEnvironmentVariable("AUDIENCE_TEST_POSTGRES_RESTART");
        if (string.IsNullOrWhiteSpace(command))
        {
            return false;
        }

        using var process = Process.Start("bash", ["-c", command])!;
        Assert.True(process.WaitForExit(60_000), "restarting PostgreSQL took over a minute");
        Assert.Equal(0, process.ExitCode);
        return true;
    }

    /// <summary>
    /// Makes this test's database refuse connections (ending the open ones), or take them again: an outage of this
    /// database alone, while the server goes on serving the other tests.
    /// </summary>
    public void SetAvailable(bool available)
    {
        Admin($"ALTER DATABASE {_name} ALLOW_CONNECTIONS {(available ? "true" : "false")}");
        if (!available)
        {
            Admin($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{_name}' AND pid <> pg_backend_pid()");
        }
    }

    public long Scalar(string sql)
    {
        using var connection = new NpgsqlConnection(ConnectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(command.ExecuteScalar() ?? 0L, System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        Admin($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)");
    }

    private static void Admin(string sql)
    {
        using var connection = new NpgsqlConnection(Server);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }
}

