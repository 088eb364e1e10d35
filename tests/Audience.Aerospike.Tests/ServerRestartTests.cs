using Audience.Testing;

namespace Audience.Aerospike.Tests;

/// <summary>Runs its own server on a free port, stops it mid-run and starts it again.</summary>
public class ServerRestartTests
{
    [SkippableFact]
    public async Task Commands_ServerStoppedAndRestarted_FailClearlyThenRecover()
    {
        // Only where a server runs here at all (scripts/test.sh names it once it started one).
        Skip.If(string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("AUDIENCE_TEST_AEROSPIKE")), AerospikeFixture.SkipReason);
        var script = AerospikeServer.Script();
        Skip.If(script is null, "../shared/aerospike not found; the restart test needs its own server");
        var dir = Directory.CreateTempSubdirectory("as-restart-").FullName;
        var port = AerospikeServer.FreePortTriple();
        await AerospikeServer.RunAsync(script!, fileStorage: false, "start", dir, port.ToString());
        try
        {
            await using var client = await AerospikeClient.ConnectAsync(new AerospikeClientOptions
            {
                Hosts = $"127.0.0.1:{port}",
                TendInterval = TimeSpan.FromMilliseconds(200),
                MaxTendFailures = 3,
            });
            var key = new Key(AerospikeFixture.Namespace, "restart", "k");
            await client.PutAsync(key, new Dictionary<string, object?> { ["v"] = 1L });

            await AerospikeServer.RunAsync(script!, fileStorage: false, "stop", dir);
            var error = await Assert.ThrowsAsync<AerospikeException>(() => client.PutAsync(key, new Dictionary<string, object?> { ["v"] = 2L }));

            await AerospikeServer.RunAsync(script!, fileStorage: false, "start", dir, port.ToString());
            await AerospikeFixture.WaitUntilAsync(async () =>
            {
                try
                {
                    await client.PutAsync(key, new Dictionary<string, object?> { ["v"] = 3L });
                    return true;
                }
                catch (AerospikeException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), "the client to reach the restarted server");

            Assert.Contains(error.ResultCode, new[] { ResultCode.NetworkError, ResultCode.InvalidNode, ResultCode.Timeout });
            Assert.Contains("put", error.Message, StringComparison.Ordinal);
            Assert.Equal(3L, (await client.GetAsync(key))!["v"]);
        }
        finally
        {
            await AerospikeServer.RunAsync(script!, fileStorage: false, "stop", dir);
            Directory.Delete(dir, recursive: true);
        }
    }
}
