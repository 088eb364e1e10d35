using System.Text.Json;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Kafka;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Audience.Testing;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// Kafka mode against the mock cluster on this machine, in one run: raw librdkafka produce and consume rates of
/// the same messages (the limit), then one Silo (in this process, with the embedded or PostgreSQL profile store)
/// consuming them with the segments active; its clock runs from the partitions' assignment until the group's
/// committed offsets reach the end (so every profile is written and every output delivered).
/// </summary>
internal static class KafkaThroughput
{
    private const int Partitions = 4;

    public static async Task RunAsync(string[] args)
    {
        var segmentCount = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100;
        var eventCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 80_000;
        var userCount = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10_000;
        var postgres = Environment.GetEnvironmentVariable("AUDIENCE_BENCH_POSTGRES");
        using var cluster = new MockCluster();
        cluster.CreateTopic("user-events", Partitions);
        cluster.CreateTopic("raw", Partitions);
        var kafka = new KafkaOptions { BootstrapServers = cluster.Bootstrap, SessionTimeoutMs = 6000 };

        var random = new Random(7);
        var now = DateTimeOffset.UtcNow;
        var messages = Enumerable.Range(0, eventCount).Select(i =>
        {
            var user = $"user-{random.Next(userCount)}";
            var purchase = random.Next(5) == 0;
            var e = new UserEvent($"e{i}", user, purchase ? "purchase" : "page_view", now.AddSeconds(-random.Next(86_400)),
                purchase ? RawJson.Parse(JsonSerializer.Serialize(new { amount = random.Next(1, 500), category = "electronics" }))
                    : RawJson.Parse(JsonSerializer.Serialize(new { page = "/p/" + random.Next(100) })), null);
            return new Message<string, byte[]> { Key = user, Value = JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent) };
        }).ToList();
        Console.WriteLine($"{eventCount:N0} events of {messages.Average(m => m.Value.Length):F0} bytes for {userCount:N0} users, {Partitions} partitions, {segmentCount} segments");

        cluster.CreateTopic("warm-up", Partitions);
        Produce(kafka, "warm-up", messages); // JIT and connections, outside the measurement
        var produce = Produce(kafka, "raw", messages);
        Console.WriteLine($"raw produce (idempotent, acks=all): {eventCount / produce.TotalSeconds:N0} msg/s");
        var consume = RawConsume(kafka, "raw", eventCount);
        Console.WriteLine($"raw consume (one group member):    {eventCount / consume.TotalSeconds:N0} msg/s");

        Produce(kafka, "user-events", messages);
        var directory = Path.Combine(Path.GetTempPath(), "audience-kafka-throughput", Guid.NewGuid().ToString("N"));
        var database = new Database(directory);
        using var pg = postgres is null ? null : new PostgresDatabase(postgres);
        pg?.Migrate();
        IProfileStoreFactory stores = pg is null ? new EmbeddedProfileStoreFactory(database) : new PostgresProfileStoreFactory(pg);
        var options = new SiloOptions { DataDirectory = directory, FlushInterval = TimeSpan.FromMilliseconds(500), FlushBatchSize = 20_000 };
        var index = new SegmentIndex(new RuleCatalog());
        var segments = new SegmentService(new EmbeddedSegmentStore(database), index, TimeProvider.System, Partitions);
        foreach (var (id, rule) in BenchmarkData.ThousandSegments().Take(segmentCount))
        {
            segments.Create(new SegmentDraft(id, id, null, null, rule, null));
        }

        var silo = new KafkaSiloHost(kafka, options, stores, segments, TimeProvider.System, NullLogger<KafkaSiloHost>.Instance);
        await silo.StartAsync(CancellationToken.None);
        while (silo.Partitions.Count < Partitions)
        {
            await Task.Delay(10); // the group forms (about 3 s on the mock) before the clock starts
        }

        var clock = Stopwatch.StartNew();
        using (var watcher = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = kafka.BootstrapServers, GroupId = kafka.GroupId }).Build())
        {
            var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition("user-events", p)).ToList();
            var end = partitions.Sum(p => watcher.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
            while (watcher.Committed(partitions, TimeSpan.FromSeconds(10)).Sum(c => Math.Max(0, c.Offset.Value)) < end)
            {
                await Task.Delay(50);
            }
        }

        clock.Stop();
        Console.WriteLine($"Silo ({(pg is null ? "embedded" : "postgres")} profile store), from assignment to all offsets committed: " +
            $"{eventCount / clock.Elapsed.TotalSeconds:N0} events/s");
        await silo.StopAsync(CancellationToken.None);
        Directory.Delete(directory, recursive: true);
    }

    private static TimeSpan Produce(KafkaOptions kafka, string topic, List<Message<string, byte[]>> messages)
    {
        var config = kafka.Producer("bench");
        config.LingerMs = 5;
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        var failed = 0;
        var clock = Stopwatch.StartNew();
        foreach (var message in messages)
        {
            producer.Produce(topic, message, r => failed += r.Error.IsError ? 1 : 0);
        }

        producer.Flush(TimeSpan.FromMinutes(1));
        clock.Stop();
        return failed == 0 ? clock.Elapsed : throw new InvalidOperationException($"{failed} messages failed");
    }

    private static TimeSpan RawConsume(KafkaOptions kafka, string topic, int count)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = kafka.BootstrapServers,
            GroupId = "bench-raw",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = 6000,
        }).Build();
        consumer.Subscribe(topic);
        var first = consumer.Consume(TimeSpan.FromSeconds(30)); // the group forms before the clock starts
        var read = first is null ? 0 : 1;
        var clock = Stopwatch.StartNew();
        while (read < count && consumer.Consume(TimeSpan.FromSeconds(10)) is not null)
        {
            read++;
        }

        clock.Stop();
        consumer.Close();
        return read == count ? clock.Elapsed : throw new InvalidOperationException($"read {read} of {count}");
    }
}
