using System.Diagnostics;
using Audience.Testing;
using Npgsql;

namespace Audience.Api.Tests.Kafka;

/// <summary>The Kafka mock cluster with the service's topics, and kcat to check what is on them.</summary>
internal sealed class MockKafka : IDisposable
{
    private readonly Audience.Testing.MockCluster _cluster = new();

    public MockKafka(int partitions = 4) => _cluster.CreateServiceTopics(partitions);

    public string Bootstrap => _cluster.Bootstrap;

    public void SetBrokersUp(bool up) => _cluster.SetBrokersUp(up);

    /// <summary>Every message of a topic, read by kcat (an independent client): key, value and headers.</summary>
    public List<(string Key, string Value)> Read(string topic)
    {
        var lines = Kcat($"-b {Bootstrap} -C -t {topic} -o beginning -e -q -f %k\\t%s\\n", null);
        return [.. lines.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t', 2)).Select(p => (p[0], p.Length > 1 ? p[1] : ""))];
    }

    /// <summary>Every message of a topic with its offset and headers (kcat's <c>name=value,...</c>), read by kcat.</summary>
    public List<(string Key, long Offset, Dictionary<string, string> Headers, string Value)> ReadWithHeaders(string topic)
    {
        var lines = Kcat($"-b {Bootstrap} -C -t {topic} -o beginning -e -q -f %k\\t%o\\t%h\\t%s\\n", null);
        return [.. lines.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t', 4)).Select(p => (p[0],
            long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture),
            p[2].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(h => h.Split('=', 2)).ToDictionary(h => h[0], h => h.Length > 1 ? h[1] : ""),
            p.Length > 3 ? p[3] : ""))];
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

    public SiloProcess(string bootstrap, string postgres, string name, IReadOnlyDictionary<string, string>? settings = null)
    {
        // Its health and metrics endpoints, on a port of its own: tests run several silos on one machine.
        var address = new Uri($"http://127.0.0.1:{Silo.Hosting.OrleansOptions.FreePort()}");
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Audience.Silo.dll"), "--urls", address.ToString()])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["Kafka__BootstrapServers"] = bootstrap;
        start.Environment["Postgres__ConnectionString"] = postgres;
        start.Environment["Orleans__AdvertisedIPAddress"] = "127.0.0.1";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

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

    /// <summary>The silo's own HTTP endpoints: <c>/health/*</c> and <c>/metrics</c>.</summary>
    public HttpClient Http { get; }

    /// <summary>
    /// Waits for the process to exit and for its redirected output to be read to the end (a process can exit before
    /// the last lines of its log reach <see cref="Log"/>).
    /// </summary>
    public bool WaitForExit(int timeoutMs)
    {
        if (!_process.WaitForExit(timeoutMs))
        {
            return false;
        }

        _process.WaitForExit();
        return true;
    }

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

        // For a failure whose message does not carry the Silo's log: AUDIENCE_TEST_LOGS names a folder to keep them in.
        if (Environment.GetEnvironmentVariable("AUDIENCE_TEST_LOGS") is { Length: > 0 } folder)
        {
            Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, $"silo-{_process.Id}.log"), Log);
        }

        _process.Dispose();
        Http.Dispose();
    }
}

/// <summary>What the tests sent per user, checked against the users' profiles.</summary>
internal static class ExpectedProfiles
{
    /// <summary>
    /// Waits until every user's profile counts exactly the events and spend sent; a profile that counts more fails
    /// at once (an event applied twice). <paramref name="log"/> adds a process's log to a timeout's message.
    /// </summary>
    public static async Task WaitUntilExactAsync(this HttpClient http, Dictionary<string, (long Count, decimal Spent)> expected, int timeoutMs, Func<string>? log = null)
    {
        foreach (var (user, (count, spent)) in expected)
        {
            await Http.Eventually(async () =>
            {
                var response = await http.GetAsync($"/api/users/{user}/profile");
                if (response.StatusCode != System.Net.HttpStatusCode.OK)
                {
                    return false;
                }

                var json = await response.Json();
                var seen = (json.GetProperty("eventCount").GetInt64(), json.GetProperty("totalSpent").GetDecimal());
                Assert.True(seen.Item1 <= count, $"{user} counted {seen.Item1} events of {count}: applied twice");
                return seen == (count, spent);
            }, $"{user} has {count} events and {spent} spent" + (log is null ? "" : "\n" + log()), timeoutMs);
        }
    }
}
