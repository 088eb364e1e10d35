using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Grains;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Audience.Testing;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace Audience.Silo.Tests;

/// <summary>
/// Orleans' in-process test cluster with three silos in Kafka mode: the PostgreSQL profile store, the Kafka mock
/// cluster over TCP, each silo with its own services as if it were a process of its own. The profiles' clock is a
/// fake one the test moves; Orleans keeps the system clock for its own timing.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Partitions = 8;

    private readonly MockCluster _kafka = new();
    private readonly TestDatabase _database = new();
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private InProcessTestCluster _cluster = null!;

    private Dictionary<string, string?> Settings => new()
    {
        ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
        ["Postgres:ConnectionString"] = _database.ConnectionString,
    };

    public async Task InitializeAsync()
    {
        foreach (var (topic, partitions) in new[] { ("user-events", Partitions), ("user-segments", 4), ("orders-analytics", 4), ("user-events-dlq", 1), ("segment-updates", 1), ("notification-requests", 2) })
        {
            _kafka.CreateTopic(topic, partitions);
        }

        using var postgres = new PostgresDatabase(_database.ConnectionString);
        postgres.Migrate();
        var segments = new PostgresSegmentStore(postgres);
        segments.Save(new SegmentRecord("spender", "Spender", null, "DYNAMIC", "totalSpent > 100", 1, 0, 0), "created");
        segments.Save(new SegmentRecord("recent", "Recent", null, "DYNAMIC", "count(any within 5m) >= 1", 1, 0, 0), "created");

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(Settings).Build();
        var mode = AudienceMode.Read(configuration, siloProcess: true);
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSiloHost((_, host) =>
        {
            host.Configuration.AddInMemoryCollection(Settings);
            host.Services.AddKeyedSingleton<TimeProvider>(AudienceServices.Clock, _clock);
            host.Services.AddAudienceCore(host.Configuration, mode);
            host.Logging.SetMinimumLevel(LogLevel.Warning);
        });
        builder.ConfigureSilo((_, silo) => silo.AddAudienceGrains(mode));
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    [Fact]
    public async Task Ten_thousand_users_across_three_silos_one_killed_mid_stream_end_exact()
    {
        var random = new Random(42);
        var expected = new Dictionary<string, (long Count, decimal Spent)>();
        var events = new List<UserEvent>();
        for (var i = 0; i < 16_000; i++)
        {
            var user = $"user-{(i < 10_000 ? i : random.Next(10_000))}";
            var amount = random.Next(1, 80);
            var (count, spent) = expected.GetValueOrDefault(user);
            expected[user] = (count + 1, spent + amount);
            events.Add(new UserEvent($"e{i}", user, "purchase", _clock.GetUtcNow(), RawJson.Parse($$"""{"amount": {{amount}}}"""), null));
        }

        using var producer = Producer();
        await Produce(producer, events.Take(8_000));
        await WaitUntil(async () => await Applied() > 2_000, "the first events are being applied");
        var victim = _cluster.Silos[1];
        output.WriteLine($"killing {victim.SiloAddress} with {await Applied()} of 8,000 applied");
        await _cluster.KillSiloAsync(victim);
        await Produce(producer, events.Skip(8_000));
        await WaitUntil(async () => await Applied() == events.Count, "every event is applied once the survivors took the partitions over", 180_000);

        var grains = _cluster.Client;
        var wrong = new List<string>();
        foreach (var chunk in expected.Chunk(500))
        {
            var views = await Task.WhenAll(chunk.Select(e => grains.GetGrain<IUserGrain>(e.Key).GetProfile()));
            for (var i = 0; i < chunk.Length; i++)
            {
                var (user, (count, spent)) = chunk[i];
                var view = views[i];
                if (view is null || view.EventCount != count || view.TotalSpent != spent)
                {
                    wrong.Add($"{user}: {view?.EventCount}/{view?.TotalSpent} instead of {count}/{spent}");
                }
            }
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} profiles differ, such as {string.Join("; ", wrong.Take(5))}");

        var spenders = expected.Where(e => e.Value.Spent > 100).Select(e => e.Key).ToHashSet();
        var changes = await WaitForChanges(c => c.SegmentId == "spender", spenders.Count);
        Assert.Equal(spenders.Order(), changes.Select(c => c.UserId).Order());
        Assert.All(changes, c => Assert.Equal("added", c.Action));

        // Time alone: five minutes on, every user has left "recent" (grain active or not), told by the due-time sweep.
        Assert.Equal(expected.Count, (await WaitForChanges(c => c.SegmentId == "recent" && c.Action == "added", expected.Count)).Count);
        _clock.Advance(TimeSpan.FromMinutes(6));
        var expired = await WaitForChanges(c => c.SegmentId == "recent" && c.Action == "removed", expected.Count, 120_000);
        Assert.All(expired, c => Assert.Equal("expired", c.Reason));
    }

    [Fact]
    public async Task A_user_grain_writes_behind_and_says_when_it_lost_what_it_applied()
    {
        // A reader's calls keep a grain where it is only if it is on the reader's silo (otherwise it counts a remote
        // call and moves, writing what it holds): the test plays the reader of the silo the user's grain was placed on.
        long RemoteCalls() => _cluster.Silos.Sum(s => s.ServiceProvider.GetRequiredService<SiloMetrics>().RemoteCalls);
        string user = "";
        IUserGrain grain = null!;
        var reader = _cluster.Silos[0].SiloAddress;
        LoggedEvent Purchase(long seq, int amount) =>
            new(seq, _clock.GetUtcNow().ToUnixTimeMilliseconds(), new UserEvent($"wb-{seq}", user, "purchase", _clock.GetUtcNow(), RawJson.Parse($$"""{"amount": {{amount}}}"""), null));
        long Stored() => _database.Scalar($"SELECT coalesce(max(last_seq), 0) FROM profile_records WHERE user_id = '{user}'");

        // Applied at once, written when the reader asks (or a query brings the profile up to date).
        for (var attempt = 0; ; attempt++)
        {
            user = $"write-behind-{attempt}";
            grain = _cluster.Client.GetGrain<IUserGrain>(user);
            // Chosen at random: the client takes its gateways (where the grain is placed) in turn, and a reader taken in
            // turn as well could miss it every time.
            reader = _cluster.Silos[Random.Shared.Next(_cluster.Silos.Count)].SiloAddress;
            var remoteBefore = RemoteCalls();
            Assert.True(await grain.Apply(new EventBatch(0, "user-events", reader, [Purchase(10, 60), Purchase(11, 70)])));
            if (RemoteCalls() == remoteBefore)
            {
                break;
            }

            Assert.True(attempt < 40, "no attempt placed the grain on the silo of the reader it was called by");
        }

        Assert.Equal(0, Stored());
        Assert.True(await grain.Write(0, 11));
        Assert.Equal(11, Stored());
        Assert.Equal((2, 130m), ((await grain.GetProfile())!.EventCount, (await grain.GetProfile())!.TotalSpent));

        // A grain that does not hold what the reader had applied says so, to both calls, and applies nothing.
        Assert.False(await grain.Apply(new EventBatch(0, "user-events", reader, [Purchase(13, 5)], AppliedThrough: 12)));
        Assert.False(await grain.Write(0, 12));
        Assert.Equal(2, (await grain.GetProfile())!.EventCount);

        // A query sees what was applied before any write of it.
        var fresh = _cluster.Client.GetGrain<IUserGrain>("write-behind-fresh");
        Assert.True(await fresh.Apply(new EventBatch(0, "user-events", reader, [Purchase(20, 3) with { Event = Purchase(20, 3).Event with { UserId = "write-behind-fresh" } }])));
        Assert.Equal(1, (await fresh.GetProfile())?.EventCount);

        // Events it holds already are skipped when they come again (a partition read again from its checkpoint).
        Assert.True(await grain.Apply(new EventBatch(0, "user-events", reader, [Purchase(11, 70), Purchase(12, 1)], AppliedThrough: 11)));
        Assert.Equal((3, 131m), ((await grain.GetProfile())!.EventCount, (await grain.GetProfile())!.TotalSpent));
    }

    /// <summary>Events applied so far over all partitions: the sum of the checkpoints (one per event, from 0).</summary>
    private async Task<long> Applied()
    {
        var checkpoints = await Task.WhenAll(Enumerable.Range(0, Partitions).Select(p => _cluster.Client.GetGrain<IPartitionGrain>(p).Checkpoint()));
        return checkpoints.Sum();
    }

    private IProducer<string, byte[]> Producer()
    {
        var config = new Kafka.KafkaOptions { BootstrapServers = _kafka.Bootstrap }.Producer("test");
        return new ProducerBuilder<string, byte[]>(config).Build();
    }

    private static async Task Produce(IProducer<string, byte[]> producer, IEnumerable<UserEvent> events)
    {
        foreach (var e in events)
        {
            producer.Produce("user-events", new Message<string, byte[]> { Key = e.UserId, Value = JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent) });
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        await Task.CompletedTask;
    }

    /// <summary>The distinct changes on user-segments matching <paramref name="filter"/>, once there are <paramref name="count"/>.</summary>
    private async Task<List<MembershipChangeMessage>> WaitForChanges(Func<MembershipChangeMessage, bool> filter, int count, int timeoutMs = 60_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            var all = ReadChanges();
            var changes = all.Where(filter).ToList();
            if (changes.Count >= count)
            {
                return changes;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {count} changes on user-segments: {changes.Count} of {all.Count} match; all by kind: "
                + string.Join(", ", all.GroupBy(c => (c.SegmentId, c.Action, c.Reason, c.Metadata.Trigger)).Select(g => $"{g.Key}: {g.Count()}"))
                + $"; stored with a due time: {_database.Scalar("SELECT count(*) FROM profile_records WHERE next_due IS NOT NULL")}, "
                + $"by partition: {string.Join(" ", Enumerable.Range(0, Partitions).Select(p => _database.Scalar($"SELECT count(*) FROM profile_records WHERE next_due IS NOT NULL AND partition = {p}")))}");
            await Task.Delay(500);
        }
    }

    /// <summary>
    /// Every change on user-segments, once per change id: a change sent again after a crash carries the same id and
    /// must say the same thing.
    /// </summary>
    private List<MembershipChangeMessage> ReadChanges()
    {
        Kafka.KafkaNative.Use();
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig { BootstrapServers = _kafka.Bootstrap, GroupId = "test-reader" }).Build();
        var partitions = Enumerable.Range(0, 4).Select(p => new TopicPartition("user-segments", p)).ToList();
        var ends = partitions.ToDictionary(p => p.Partition.Value, p => consumer.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));
        var byId = new Dictionary<string, MembershipChangeMessage>();
        var left = ends.Values.Sum();
        while (left > 0 && consumer.Consume(TimeSpan.FromSeconds(10)) is { } result)
        {
            left--;
            var change = JsonSerializer.Deserialize(result.Message.Value, SiloJsonContext.Default.MembershipChangeMessage)!;
            if (byId.TryGetValue(change.Metadata.ChangeId!, out var earlier))
            {
                Assert.Equal((earlier.Action, earlier.Reason), (change.Action, change.Reason));
            }

            byId[change.Metadata.ChangeId!] = change;
        }

        return [.. byId.Values];
    }

    private static async Task WaitUntil(Func<Task<bool>> condition, string what, int timeoutMs = 60_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting until " + what);
            await Task.Delay(200);
        }
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
        _kafka.Dispose();
        _database.Dispose();
    }
}
