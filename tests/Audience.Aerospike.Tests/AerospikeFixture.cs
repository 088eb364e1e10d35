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
}

[CollectionDefinition(Name)]
public sealed class AerospikeCollection : ICollectionFixture<AerospikeFixture>
{
    public const string Name = "aerospike";
}
