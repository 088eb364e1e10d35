using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Audience.Aerospike.Tests;

/// <summary>
/// A client connected to the server named by AUDIENCE_TEST_AEROSPIKE (host:port); tests skip with a reason when it is unset.
/// </summary>
public sealed class AerospikeFixture : IAsyncLifetime
{
    public const string Namespace = "audience";

    public const string SkipReason = "set AUDIENCE_TEST_AEROSPIKE or run scripts/test.sh, which starts ../shared/aerospike";

    public AerospikeClient? Client { get; private set; }

    public string? Hosts { get; } = Environment.GetEnvironmentVariable("AUDIENCE_TEST_AEROSPIKE");

    public AerospikeClient Require()
    {
        Skip.If(Client is null, SkipReason);
        return Client!;
    }

    public async Task InitializeAsync()
    {
        if (!string.IsNullOrWhiteSpace(Hosts))
        {
            Client = await AerospikeClient.ConnectAsync(new AerospikeClientOptions { Hosts = Hosts, TotalTimeout = TimeSpan.FromSeconds(5), SocketTimeout = TimeSpan.FromSeconds(5) });
        }
    }

    public async Task DisposeAsync()
    {
        if (Client is not null)
        {
            await Client.DisposeAsync();
        }
    }

    /// <summary>A set name no other test uses.</summary>
    public static string UniqueSet(string test) => $"{test[..Math.Min(test.Length, 20)]}-{Guid.NewGuid():N}";

    /// <summary>The development server script beside the repository (../shared/aerospike), or null.</summary>
    public static string? ServerScript()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Audience.sln")))
        {
            dir = dir.Parent;
        }

        var script = dir is null ? null : Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "aerospike", "aerospike-server"));
        return script is not null && File.Exists(script) ? script : null;
    }

    /// <summary>Runs the server script (start or stop) and returns its output.</summary>
    public static async Task<string> RunServerScriptAsync(string script, params string[] arguments)
    {
        var info = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["AEROSPIKE_DATA_SIZE"] = "512M";
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, $"aerospike-server {string.Join(' ', arguments)} failed: {await output}{await error}");
        return await output;
    }

    /// <summary>A port whose next two (fabric, heartbeat) are free too.</summary>
    public static int FreePortTriple()
    {
        for (var port = 23000 + Random.Shared.Next(0, 5000); ; port += 3)
        {
            if (IsFree(port) && IsFree(port + 1) && IsFree(port + 2))
            {
                return port;
            }
        }
    }

    /// <summary>Waits for a condition, checking every 100 ms, failing after the timeout.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < timeout, $"Timed out after {timeout} waiting for {what}.");
            await Task.Delay(100);
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

[CollectionDefinition(Name)]
public sealed class AerospikeCollection : ICollectionFixture<AerospikeFixture>
{
    public const string Name = "aerospike";
}
