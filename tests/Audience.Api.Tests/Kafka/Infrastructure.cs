using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;
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

/// <summary>
/// librdkafka's mock cluster (three brokers on loopback TCP ports), hosted by an admin client in the test process.
/// Other processes, kcat included, reach it at <see cref="Bootstrap"/> like any cluster. Topics are created here
/// with their partition count before anyone uses them (the mock's admin API cannot create them).
/// </summary>
internal sealed class MockKafka : IDisposable
{
    private const string Lib = "librdkafka.so.1";
    private readonly IAdminClient _owner;

    public MockKafka(int partitions = 4)
    {
        var config = new AdminClientConfig { BootstrapServers = "unused:9092" };
        config.Set("test.mock.num.brokers", "3");
        _owner = new AdminClientBuilder(config).SetLogHandler((_, _) => { }).Build();
        Bootstrap = Marshal.PtrToStringUTF8(rd_kafka_mock_cluster_bootstraps(Cluster()))!;
        foreach (var topic in new[] { "user-events", "segment-updates", "user-segments", "orders-analytics", "user-events-dlq" })
        {
            CreateTopic(topic, topic == "user-events" ? partitions : 2);
        }
    }

    public string Bootstrap { get; }

    public void CreateTopic(string topic, int partitions)
    {
        var error = rd_kafka_mock_topic_create(Cluster(), topic, partitions, 1);
        Assert.True(error == 0, $"creating {topic}: {(ErrorCode)error}");
    }

    private IntPtr Cluster()
    {
        var property = typeof(Handle).GetProperty("LibrdkafkaHandle", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)!;
        return rd_kafka_handle_mock_cluster(((SafeHandle)property.GetValue(_owner.Handle)!).DangerousGetHandle());
    }

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

    /// <summary>Takes every broker down (connections closed, new ones refused) or brings them back.</summary>
    public void SetBrokersUp(bool up)
    {
        for (var broker = 1; broker <= 3; broker++)
        {
            var error = up ? rd_kafka_mock_broker_set_up(Cluster(), broker) : rd_kafka_mock_broker_set_down(Cluster(), broker);
            Assert.True(error == 0, $"broker {broker}: {(ErrorCode)error}");
        }
    }

    public void Dispose() => _owner.Dispose();

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_broker_set_down(IntPtr cluster, int brokerId);

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_broker_set_up(IntPtr cluster, int brokerId);

    [DllImport(Lib)]
    private static extern IntPtr rd_kafka_handle_mock_cluster(IntPtr rk);

    [DllImport(Lib)]
    private static extern IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_topic_create(IntPtr cluster, [MarshalAs(UnmanagedType.LPUTF8Str)] string topic, int partitions, int replicationFactor);
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
