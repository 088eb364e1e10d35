using System.Diagnostics;
using Npgsql;

namespace Audience.Api.Tests.Kafka;

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

/// <summary>The Kafka mock cluster with the service's topics, and kcat to check what is on them.</summary>
internal sealed class MockKafka : IDisposable
{
    private readonly Audience.Testing.MockCluster _cluster = new();

    public MockKafka(int partitions = 4)
    {
        foreach (var topic in new[] { "user-events", "segment-updates", "user-segments", "orders-analytics", "user-events-dlq" })
        {
            _cluster.CreateTopic(topic, topic == "user-events" ? partitions : 2);
        }
    }

    public string Bootstrap => _cluster.Bootstrap;

    public void SetBrokersUp(bool up) => _cluster.SetBrokersUp(up);

    /// <summary>Every message of a topic, read by kcat (an independent client): key, value and headers.</summary>
    public List<(string Key, string Value)> Read(string topic)
    {
        var lines = Kcat($"-b {Bootstrap} -C -t {topic} -o beginning -e -q -f %k\\t%s\\n", null);
        return [.. lines.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t', 2)).Select(p => (p[0], p.Length > 1 ? p[1] : ""))];
    }

    /// <summary>Produces one message with kcat.</summary>
    public void Produce(string topic, string key, string value) =>
        Kcat($"-b {Bootstrap} -P -t {topic} -K \\t -X acks=all", key + "\t" + value + "\n");

    private static string Kcat(string arguments, string? input)
    {
        var start = new ProcessStartInfo("kcat", arguments.Split(' '))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
        };
        using var process = Process.Start(start)!;
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }

        var output = process.StandardOutput.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "kcat did not finish");
        Assert.True(process.ExitCode == 0, "kcat failed: " + process.StandardError.ReadToEnd());
        return output.Result;
    }

    public void Dispose() => _cluster.Dispose();
}

/// <summary>A Silo process in Kafka mode, stopped gracefully (SIGTERM) or killed (SIGKILL) by the test.</summary>
internal sealed class SiloProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _log = new();

    public SiloProcess(string bootstrap, string postgres, string name)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Audience.Silo.dll")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["Kafka__BootstrapServers"] = bootstrap;
        start.Environment["Kafka__SessionTimeoutMs"] = "6000";
        start.Environment["Postgres__ConnectionString"] = postgres;
        start.Environment["Silo__FlushInterval"] = "00:00:00.050";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => Append(name, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(name, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    private void Append(string name, string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.Append(name).Append(": ").AppendLine(line);
            }
        }
    }

    /// <summary>SIGTERM, then waits for the process to leave the group and exit.</summary>
    public void Stop()
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }

        Assert.True(_process.WaitForExit(90_000), "the Silo did not stop within 90 s:\n" + Log);
    }

    /// <summary>SIGKILL: nothing is flushed, nothing is committed.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }
}
