using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Kafka;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Audience.Testing;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// Kafka mode against the mock cluster on this machine, in one run: raw librdkafka produce and consume rates of
/// the same messages (the limit), then one silo (in this process, a database of its own on <c>AUDIENCE_BENCH_POSTGRES</c>
/// for segments and the cluster tables; profiles there too, or in Aerospike on sets of their own when
/// <c>AUDIENCE_BENCH_AEROSPIKE</c> names a server, host:port) reading them with the segments active; its clock runs from the silo being up until
/// every partition's checkpoint reaches the end (so every profile is written and every output delivered).
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
        var kafka = new KafkaOptions { BootstrapServers = cluster.Bootstrap };

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
        var postgresServer = postgres ?? throw new InvalidOperationException(
            "Kafka mode keeps segments (and profiles, unless AUDIENCE_BENCH_AEROSPIKE is set) in PostgreSQL: set AUDIENCE_BENCH_POSTGRES to a server the harness may create a database on.");
        var databaseName = "audience_bench_" + Guid.NewGuid().ToString("N")[..8];
        Admin(postgresServer, $"CREATE DATABASE {databaseName}");
        var connectionString = new Npgsql.NpgsqlConnectionStringBuilder(postgresServer) { Database = databaseName }.ToString();
        var directory = Path.Combine(Path.GetTempPath(), "audience-kafka-throughput", Guid.NewGuid().ToString("N"));
        var settings = new Dictionary<string, string?>
        {
            ["DataDirectory"] = directory,
            ["Kafka:BootstrapServers"] = cluster.Bootstrap,
            ["Postgres:ConnectionString"] = connectionString,
            ["Orleans:AdvertisedIPAddress"] = "127.0.0.1",
        };
        var aerospike = Environment.GetEnvironmentVariable("AUDIENCE_BENCH_AEROSPIKE");
        var setPrefix = "kt" + Guid.NewGuid().ToString("N")[..6] + "-";
        if (aerospike is not null)
        {
            settings["Aerospike:Hosts"] = aerospike;
            settings["Aerospike:SetPrefix"] = setPrefix;
        }

        var (host, mode) = await SiloThroughput.BuildHostAsync(settings, BenchmarkData.ThousandSegments().Take(segmentCount));
        using var disposeHost = host;
        Console.WriteLine(aerospike is null
            ? $"profile store: PostgreSQL (database {databaseName})"
            : $"profile store: Aerospike at {aerospike}, sets {setPrefix}* (PostgreSQL database {databaseName} for segments and the cluster tables)");
        var store = host.Services.GetRequiredService<IProfileStore>();
        // Starting the Orleans silo is not processing: the clock starts once it is up, and what the readers had
        // already checkpointed by then is taken off the count.
        var starting = Stopwatch.StartNew();
        await host.StartAsync();
        starting.Stop();
        var clock = Stopwatch.StartNew();
        var grains = host.Services.GetRequiredService<IGrainFactory>();
        long early = 0;
        for (var p = 0; p < Partitions; p++)
        {
            early += await grains.GetGrain<Audience.Silo.Grains.IPartitionGrain>(p).Checkpoint();
        }

        using (var watcher = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = kafka.BootstrapServers, GroupId = "bench-watch" }).Build())
        {
            var ends = Enumerable.Range(0, Partitions).ToDictionary(p => p, p => watcher.QueryWatermarkOffsets(new TopicPartition("user-events", p), TimeSpan.FromSeconds(10)).High.Value);
            // Checkpoints are sequence numbers, one past the offset: a partition is done when its checkpoint reaches the end offset.
            while (true)
            {
                var done = true;
                foreach (var (partition, end) in ends)
                {
                    done &= await grains.GetGrain<Audience.Silo.Grains.IPartitionGrain>(partition).Checkpoint() >= end;
                }

                if (done)
                {
                    break;
                }

                await Task.Delay(50);
            }
        }

        clock.Stop();
        var metrics = host.Services.GetRequiredService<Audience.Silo.Processing.SiloMetrics>();
        var rate = (eventCount - early) / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"silo started in {starting.Elapsed.TotalSeconds:F2} s ({early:N0} events already checkpointed then)");
        Console.WriteLine($"Silo ({mode}, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC), from the silo up to every checkpoint at the end: " +
            $"{rate:N0} events/s; ratio to raw consume: {rate / (eventCount / consume.TotalSeconds):F3}; " +
            $"grain calls per event: {(double)metrics.GrainCalls / Math.Max(1, metrics.Events):F2}; stored profiles: {await store.CountUsersAsync(0) * Partitions:N0} (approx.)");
        await host.StopAsync();
        if (aerospike is not null)
        {
            await using var client = await Audience.Aerospike.AerospikeClient.ConnectAsync(new Audience.Aerospike.AerospikeClientOptions { Hosts = aerospike });
            await AerospikeClientThroughput.PrintStoreSizeAsync(client, setPrefix, $"{segmentCount} segments, after the run");
            await AerospikeClientThroughput.TruncateSetsAsync(client, setPrefix);
        }

        Npgsql.NpgsqlConnection.ClearAllPools();
        Admin(postgresServer, $"DROP DATABASE IF EXISTS {databaseName} WITH (FORCE)");
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void Admin(string server, string sql)
    {
        using var connection = new Npgsql.NpgsqlConnection(server);
        connection.Open();
        using var command = new Npgsql.NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
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
