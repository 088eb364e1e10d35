using System.Net;
using System.Text.Json;
using Audience.Testing;

namespace Audience.Api.Tests.Kafka;

/// <summary>
/// Production mode with the profiles in Aerospike: Silo processes, the Api in process, the Kafka mock cluster,
/// PostgreSQL for segments and the cluster tables, and the Aerospike server named by AUDIENCE_TEST_AEROSPIKE
/// (scripts/test.sh starts one from ../shared/aerospike); each test on sets of its own. Skipped without a server.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class AerospikeModeTests : IDisposable
{
    private const string SkipReason = "set AUDIENCE_TEST_AEROSPIKE or run scripts/test.sh, which starts ../shared/aerospike";

    private readonly MockKafka _kafka = new();
    private readonly TestDatabase _database = new();
    private readonly string _sets = $"a{Guid.NewGuid():N}"[..12] + "-";

    private Dictionary<string, string> Settings(string hosts) => new()
    {
        ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
        ["Postgres:ConnectionString"] = _database.ConnectionString,
        ["Aerospike:Hosts"] = hosts,
        ["Aerospike:SetPrefix"] = _sets,
    };

    private static string Server()
    {
        var hosts = Environment.GetEnvironmentVariable("AUDIENCE_TEST_AEROSPIKE");
        Skip.If(string.IsNullOrWhiteSpace(hosts), SkipReason);
        return hosts!;
    }

    [SkippableFact]
    public async Task Seed_004_demo_flow_keeps_profiles_and_members_in_Aerospike()
    {
        var settings = Settings(Server());
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo", settings);
        using var api = new AudienceFactory(settings);
        var segmentId = await api.Http.CreateSegment(new { name = "Demo VIP Users", rule = "totalSpent > 1000" });
        var amounts = new Dictionary<string, int>();
        var random = new Random(4);
        for (var i = 1; i <= 10; i++)
        {
            var amount = random.Next(500, 2500);
            amounts[$"demo-user-{i}"] = amount;
            await api.Http.Send($"demo-user-{i}", "purchase", new { amount, category = "electronics" });
        }

        foreach (var (user, amount) in amounts)
        {
            await Http.Eventually(async () => (await api.Http.SegmentsOf(user)).Contains(segmentId) == amount > 1000, $"{user} ({amount}) is placed\n{silo.Log}", 60_000);
        }

        var vips = amounts.Where(a => a.Value > 1000).Select(a => a.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(vips, _kafka.Read("user-segments").Select(c => c.Key).Order(StringComparer.Ordinal));
        Assert.Equal(10, _kafka.Read("orders-analytics").Count);

        // Members and size come from the membership index in Aerospike, written behind within a second.
        await Http.Eventually(async () => (await (await api.Http.GetAsync($"/api/segments/{segmentId}/size")).Json()).GetProperty("size").GetInt64() == vips.Count,
            "the size counts every VIP", 15_000);
        var members = await (await api.Http.GetAsync($"/api/segments/{segmentId}/members?limit=3")).Json();
        Assert.Equal(vips.Take(3), members.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("userId").GetString()));
        var profile = await (await api.Http.GetAsync($"/api/users/{vips[0]}/profile")).Json();
        Assert.Equal(amounts[vips[0]], profile.GetProperty("totalSpent").GetDecimal());
    }

    [SkippableFact]
    public async Task An_erasure_is_applied_after_the_users_events_before_it_and_nothing_of_them_is_left_in_Aerospike()
    {
        var hosts = Server();
        var settings = Settings(hosts);
        using var api = new AudienceFactory(settings);

        var erasureSeq = await KafkaErasure.RunAsync(_kafka, api, () => new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo", settings));

        // The store's own reads: the user's record, history and archive are those of the new profile alone.
        await using var store = new Audience.Silo.Storage.AerospikeProfileStore(new Audience.Silo.Storage.AerospikeStoreOptions { Hosts = hosts, SetPrefix = _sets },
            TimeSpan.FromDays(91), TimeProvider.System);
        Assert.True((await store.ReadAsync(KafkaErasure.Erased))!.LastSeq > erasureSeq);
        Assert.Empty(await store.HistoryAsync(KafkaErasure.Erased, 0, 10));
        Assert.Empty(await store.ArchiveAsync(KafkaErasure.Erased, erasureSeq, 0));
        Assert.Single(await store.ArchiveAsync(KafkaErasure.Erased, long.MaxValue, 0));
        Assert.Equal(0, _database.Scalar($"SELECT count(*) FROM notifications WHERE user_id = '{KafkaErasure.Erased}'"));
    }

    [SkippableFact]
    public async Task A_Silo_killed_mid_stream_loses_nothing_acknowledged()
    {
        var settings = Settings(Server());
        using var first = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "first", settings);
        using var second = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "second", settings);
        using var api = new AudienceFactory(settings);
        await Http.Eventually(() => Task.FromResult(first.Log.Contains("starts reading", StringComparison.Ordinal)
            && second.Log.Contains("starts reading", StringComparison.Ordinal)), "both Silos read partitions", 60_000);

        var expected = await SendPurchases(api, batches: 12, seed: 21, before: batch =>
        {
            if (batch == 6)
            {
                first.Kill();
            }

            return Task.CompletedTask;
        });
        await api.Http.WaitUntilExactAsync(expected, 120_000, () => second.Log);
    }

    [SkippableFact]
    public async Task Aerospike_restarted_mid_stream_loses_nothing_acknowledged()
    {
        Server();
        var script = AerospikeServer.Script();
        Skip.If(script is null, "../shared/aerospike is not beside the repository: no server of its own to restart");
        var directory = Path.Combine(Path.GetTempPath(), "audience-as-" + Guid.NewGuid().ToString("N")[..8]);
        var port = AerospikeServer.FreePortTriple();
        await AerospikeServer.RunAsync(script!, fileStorage: true, "start", directory, port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            var settings = Settings($"127.0.0.1:{port}");
            using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo", settings);
            using var api = new AudienceFactory(settings);
            await Http.Eventually(() => Task.FromResult(silo.Log.Contains("starts reading", StringComparison.Ordinal)), "the Silo reads", 60_000);

            // SIGTERM, then the same data file again: acknowledged writes survive, and the Silo waits meanwhile.
            var expected = await SendPurchases(api, batches: 10, seed: 33, before: batch => batch switch
            {
                4 => AerospikeServer.RunAsync(script!, fileStorage: true, "stop", directory),
                6 => AerospikeServer.RunAsync(script!, fileStorage: true, "start", directory, port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                _ => Task.CompletedTask,
            });
            await api.Http.WaitUntilExactAsync(expected, 120_000, () => silo.Log);
            Assert.False(silo.HasExited);
        }
        finally
        {
            await AerospikeServer.RunAsync(script!, fileStorage: true, "stop", directory);
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Batches of 50 purchases of 40 users, each acknowledged; <paramref name="before"/> acts before each batch.</summary>
    private static async Task<Dictionary<string, (long Count, decimal Spent)>> SendPurchases(AudienceFactory api, int batches, int seed, Func<int, Task> before)
    {
        var random = new Random(seed);
        var expected = new Dictionary<string, (long Count, decimal Spent)>();
        for (var b = 0; b < batches; b++)
        {
            await before(b);
            var batch = Enumerable.Range(0, 50).Select(_ =>
            {
                var user = $"user-{random.Next(40)}";
                var amount = random.Next(1, 40);
                var (count, spent) = expected.GetValueOrDefault(user);
                expected[user] = (count + 1, spent + amount);
                return new { userId = user, eventType = "purchase", properties = new { amount } };
            }).ToList();
            var response = await api.Http.PostJson("/api/events/batch", JsonSerializer.Serialize(batch));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            await Task.Delay(100);
        }

        return expected;
    }

    public void Dispose()
    {
        _kafka.Dispose();
        _database.Dispose();
    }
}
