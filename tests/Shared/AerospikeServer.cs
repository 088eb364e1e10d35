using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit;

namespace Audience.Testing;

/// <summary>
/// The development Aerospike server beside the repository (<c>../shared/aerospike</c>), for tests that need a
/// server of their own to stop and start; the shared one is named by <c>AUDIENCE_TEST_AEROSPIKE</c>.
/// </summary>
internal static class AerospikeServer
{
    /// <summary>The server's start/stop script, or null where it is not beside the repository.</summary>
    public static string? Script()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Audience.sln")))
        {
            directory = directory.Parent;
        }

        var script = directory is null ? null : Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared", "aerospike", "aerospike-server"));
        return script is not null && File.Exists(script) ? script : null;
    }

    /// <summary>Runs the script (<c>start DIR PORT</c> or <c>stop DIR</c>) with 512 MB of data, and returns its output.</summary>
    public static async Task<string> RunAsync(string script, bool fileStorage, params string[] arguments)
    {
        var info = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["AEROSPIKE_DATA_SIZE"] = "512M";
        if (fileStorage)
        {
            info.Environment["AEROSPIKE_STORAGE"] = "file";
        }

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
        for (var port = 23000 + Random.Shared.Next(0, 8000); ; port += 3)
        {
            if (IsFree(port) && IsFree(port + 1) && IsFree(port + 2))
            {
                return port;
            }
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
