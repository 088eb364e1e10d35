using System.Net;
using System.Text.Json;
using Audience.Testing;

namespace Audience.Api.Tests.Kafka;

/// <summary>
/// Two Silo processes in one Orleans cluster share <c>user-events</c>, behind an Api process (production mode as
/// deployed: three processes); one Silo leaves mid-stream, gracefully or by SIGKILL, and the survivor takes over its
/// partitions and its users. Afterwards every profile is exact and every membership change is on <c>user-segments</c>,
/// repeated only under the same change id.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ScaleOutTests : IDisposable
{
    private const int Users = 60;
    private const int Events = 1_200;
    private const decimal Threshold = 600;

    private readonly MockKafka _kafka = new();
    private readonly TestDatabase _database = new();
    private readonly string _apiDirectory = Directory.CreateTempSubdirectory("audience-api-").FullName;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_Silo_leaving_mid_stream_loses_and_doubles_nothing(bool kill)
    {
        using var first = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "first");
        using var second = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "second");
        using var api = await ServiceProcess.StartAsync(_apiDirectory, new Dictionary<string, string>
        {
            ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
            ["Postgres:ConnectionString"] = _database.ConnectionString,
            ["Orleans:AdvertisedIPAddress"] = "127.0.0.1",
        });
        var segmentId = await api.Http.CreateSegment(new { name = "big spenders", rule = $"totalSpent > {Threshold}" });
        await Http.Eventually(() => Task.FromResult(first.Log.Contains("starts reading", StringComparison.Ordinal)
            && second.Log.Contains("starts reading", StringComparison.Ordinal)), "both Silos read partitions", 60_000);

        var random = new Random(kill ? 11 : 12);
        var expected = new Dictionary<string, (long Count, decimal Spent)>();
        for (var sent = 0; sent < Events; sent += 100)
        {
            if (sent == Events / 2)
            {
                if (kill)
                {
                    first.Kill();
                }
                else
                {
                    first.Stop();
                }
            }

            var batch = Enumerable.Range(0, 100).Select(_ =>
            {
                var user = $"user-{random.Next(Users)}";
                var amount = random.Next(1, 40);
                var (count, spent) = expected.GetValueOrDefault(user);
                expected[user] = (count + 1, spent + amount);
                return new { userId = user, eventType = "purchase", properties = new { amount } };
            }).ToList();
            var response = await api.Http.PostJson("/api/events/batch", JsonSerializer.Serialize(batch));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            await Task.Delay(100);
        }

        await api.Http.WaitUntilExactAsync(expected, 90_000, () => second.Log);

        var members = expected.Where(e => e.Value.Spent > Threshold).Select(e => e.Key).Order().ToList();
        Assert.NotEmpty(members);
        await Http.Eventually(() => Task.FromResult(ChangeIds().Count == members.Count), "every change is on user-segments", 30_000);
        var changes = ChangeIds();
        Assert.Equal(members, changes.Keys.Select(k => k.Split('/')[0]).Order());
        Assert.All(changes.Values, c => Assert.Equal("added", c));
        Assert.Equal(members.Count, _database.Scalar($"SELECT count(*) FROM memberships WHERE segment_id = '{segmentId}'"));
        foreach (var member in members)
        {
            var history = await (await api.Http.GetAsync($"/api/users/{member}/history")).Json();
            Assert.Single(history.GetProperty("changes").EnumerateArray(), c => c.GetProperty("segmentId").GetString() == segmentId);
        }
    }

    [Fact]
    public async Task A_third_Silo_joining_takes_partitions_and_the_stream_stays_exact()
    {
        using var first = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "first");
        using var second = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "second");
        using var api = new AudienceFactory(new Dictionary<string, string>
        {
            ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
            ["Postgres:ConnectionString"] = _database.ConnectionString,
        });
        await Http.Eventually(() => Task.FromResult(first.Log.Contains("starts reading", StringComparison.Ordinal)
            && second.Log.Contains("starts reading", StringComparison.Ordinal)), "both Silos read partitions", 60_000);

        var random = new Random(13);
        var expected = new Dictionary<string, (long Count, decimal Spent)>();
        async Task SendBatches(int batches)
        {
            for (var b = 0; b < batches; b++)
            {
                var batch = Enumerable.Range(0, 100).Select(_ =>
                {
                    var user = $"user-{random.Next(Users)}";
                    var amount = random.Next(1, 40);
                    var (count, spent) = expected.GetValueOrDefault(user);
                    expected[user] = (count + 1, spent + amount);
                    return new { userId = user, eventType = "purchase", properties = new { amount } };
                }).ToList();
                Assert.Equal(HttpStatusCode.Accepted, (await api.Http.PostJson("/api/events/batch", JsonSerializer.Serialize(batch))).StatusCode);
                await Task.Delay(100);
            }
        }

        await SendBatches(5);
        using var third = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "third");
        var sending = SendBatches(5);
        await Http.Eventually(() => Task.FromResult(third.Log.Contains("starts reading", StringComparison.Ordinal)),
            "the third Silo takes partitions", 60_000);
        await sending;
        Assert.Contains("moves from", first.Log + second.Log, StringComparison.Ordinal);
        // Each move is a new claim of the partition: its epoch counts the owners it has had.
        Assert.True(_database.Scalar("SELECT max(epoch) FROM partitions") >= 2);
        await SendBatches(5);
        await api.Http.WaitUntilExactAsync(expected, 90_000);
    }

    /// <summary>The distinct changes on user-segments by change id; a repeat must be identical.</summary>
    private Dictionary<string, string> ChangeIds()
    {
        var byId = new Dictionary<string, string>();
        foreach (var (key, value) in _kafka.Read("user-segments"))
        {
            var change = JsonDocument.Parse(value).RootElement;
            var id = change.GetProperty("metadata").GetProperty("changeId").GetString()!;
            Assert.StartsWith(key + "/", id, StringComparison.Ordinal);
            var action = change.GetProperty("action").GetString()!;
            Assert.True(byId.TryAdd(id, action) || byId[id] == action, "two different changes share the id " + id);
        }

        return byId;
    }

    public void Dispose()
    {
        _kafka.Dispose();
        _database.Dispose();
        Directory.Delete(_apiDirectory, recursive: true);
    }
}
