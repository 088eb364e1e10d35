using System.Text.Json;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// Events per second through the embedded Silo (an Orleans silo in this process, reading the in-process log), in
/// one run: the events are appended to the log first; the limit is reading them back from the log's table; then the
/// clock runs from the started silo until every partition's checkpoint covers them (delivered to the user grains,
/// evaluated against the segments, written); the silo's start is timed apart. Also reports grain calls per event,
/// memory per active user and bytes per stored profile.
/// </summary>
internal static class SiloThroughput
{
    public static async Task RunAsync(string[] args)
    {
        var segmentCount = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 1000;
        var eventCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200_000;
        var userCount = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10_000;

        // "allocations": also sample what the processing allocates, by type.
        // "churn": every identify event gives the user new random traits (worst case: many membership changes per
        // event); otherwise a user's traits are stable, and changes come from spending and windows.
        var churn = args.Contains("churn");
        var directory = Path.Combine(Path.GetTempPath(), "audience-silo-throughput", Guid.NewGuid().ToString("N"));
        var (host, mode) = await BuildHostAsync(new Dictionary<string, string?> { ["DataDirectory"] = directory }, BenchmarkData.Segments(segmentCount));
        using var disposeHost = host;
        var services = host.Services;
        var segments = services.GetRequiredService<SegmentService>();

        var log = services.GetRequiredService<EventLog>();
        var database = services.GetRequiredService<Database>();
        Console.WriteLine($"segments: {segments.Index.Count}; appending {eventCount:N0} events for {userCount:N0} users...");
        foreach (var batch in Events(eventCount, userCount, churn).Chunk(1000))
        {
            await log.AppendAsync(batch);
        }

        // Every partition's entries read back: the limit, and the sequence numbers the checkpoints must reach.
        var read = Stopwatch.StartNew();
        var seqs = new List<long>[log.Partitions];
        for (var p = 0; p < log.Partitions; p++)
        {
            seqs[p] = [];
            using var reader = log.OpenReader(p);
            var after = 0L;
            List<PartitionEntry> page;
            while ((page = reader.Read(after, 1000)).Count > 0)
            {
                seqs[p].AddRange(page.Select(e => e.Seq));
                after = page[^1].Seq;
            }
        }

        read.Stop();
        long lastSeq = seqs.Sum(p => p.Count);
        Console.WriteLine($"limit: reading the log back: {lastSeq / read.Elapsed.TotalSeconds:N0} events/s");

        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        // Starting the Orleans silo is not processing: the clock starts once it is up. The readers may have begun
        // by then; what they had already written is taken off the count.
        var starting = Stopwatch.StartNew();
        await host.StartAsync();
        starting.Stop();
        using var sampler = args.Contains("allocations") ? new AllocationSampler() : null;
        var clock = Stopwatch.StartNew();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var collectionsBefore = GC.CollectionCount(0);
        var readers = services.GetRequiredService<LocalReaders>();
        var checkpoints = readers.Checkpoints();
        long early = Enumerable.Range(0, log.Partitions).Sum(p => seqs[p].Count(s => s <= checkpoints.GetValueOrDefault(p)));
        while (Enumerable.Range(0, log.Partitions).Any(p => seqs[p].Count > 0 && readers.Checkpoints().GetValueOrDefault(p) < seqs[p][^1]))
        {
            await Task.Delay(20);
        }

        clock.Stop();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        var collections = GC.CollectionCount(0) - collectionsBefore;
        var metrics = services.GetRequiredService<SiloMetrics>();
        var active = services.GetRequiredService<ActiveUsers>().Count;
        var memoryAfter = GC.GetTotalMemory(forceFullCollection: true);
        var stored = Scalar(database, "SELECT count(*) FROM profile_records");
        var bytes = Scalar(database, "SELECT sum(length(data)) FROM profile_records");
        var changes = Scalar(database, "SELECT count(*) FROM memberships");
        var rate = (lastSeq - early) / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"silo started in {starting.Elapsed.TotalSeconds:F2} s ({early:N0} events already written then)");
        Console.WriteLine($"processed {lastSeq - early:N0} events in {clock.Elapsed.TotalSeconds:F2} s: {rate:N0} events/s " +
            $"({Environment.ProcessorCount} cores, {mode}, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC); " +
            $"ratio to the log read: {rate / (lastSeq / read.Elapsed.TotalSeconds):F3}");
        Console.WriteLine($"allocated {allocated / Math.Max(1, lastSeq - early):N0} bytes per event; {collections:N0} collections");
        sampler?.Print(lastSeq - early);
        Console.WriteLine($"grain calls per event: {(double)metrics.GrainCalls / metrics.Events:F2}; remote calls: {metrics.RemoteCalls:N0}; " +
            $"{active:N0} active users, {(memoryAfter - memoryBefore) / Math.Max(1, active):N0} bytes each (managed heap, grains included); " +
            $"{stored:N0} stored profiles, {bytes / Math.Max(1, stored):N0} bytes of profile data each; {changes:N0} memberships");
        await host.StopAsync();
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>The Silo as the Api hosts it embedded, with its logging quiet, not started yet, with <paramref name="segments"/> created.</summary>
    internal static async Task<(IHost Host, string Mode)> BuildHostAsync(Dictionary<string, string?> settings, IEnumerable<(string Id, string Rule)> segments)
    {
        var builder = Host.CreateApplicationBuilder(AudienceServices.HostArguments([]));
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var audience = AudienceMode.Read(builder.Configuration, siloProcess: settings.ContainsKey("Kafka:BootstrapServers"));
        builder.Services.AddAudienceCore(builder.Configuration, audience);
        builder.UseOrleans(silo => silo.AddAudienceSilo(audience));
        var host = builder.Build();
        await host.Services.PrepareStorageAsync();
        var service = host.Services.GetRequiredService<SegmentService>();
        foreach (var (id, rule) in segments)
        {
            service.Create(new SegmentDraft(id, id, null, null, rule, null));
        }

        return (host, audience.IsKafka ? $"Kafka mode, {audience.ProfileStoreKind} store" : "embedded");
    }

    /// <summary>A realistic mix: purchases, identifies, carts and page views from users drawn uniformly.</summary>
    internal static IEnumerable<UserEvent> Events(int count, int users, bool churn)
    {
        var random = new Random(7);
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < count; i++)
        {
            var userNumber = random.Next(users);
            var kind = random.Next(10);
            var properties = kind switch
            {
                < 2 => JsonSerializer.Serialize(new { amount = random.Next(1, 500), category = "electronics" }),
                < 3 when churn => JsonSerializer.Serialize(new { country = "C" + random.Next(40), plan = "p" + random.Next(7), age = random.Next(18, 80) }),
                < 3 => JsonSerializer.Serialize(new { country = "C" + (userNumber % 40), plan = "p" + (userNumber % 7), age = 18 + (userNumber % 62) }),
                _ => JsonSerializer.Serialize(new { page = "/p/" + random.Next(100) }),
            };
            var type = kind switch { < 2 => "purchase", < 3 => "identify", < 5 => "add_to_cart", _ => "page_view" };
            yield return new UserEvent($"e{i}", $"user-{userNumber}", type, now.AddSeconds(-random.Next(86_400)), RawJson.Parse(properties), null);
        }
    }

    private static long Scalar(Database database, string sql)
    {
        using var connection = database.Open();
        return Database.Scalar(connection, sql);
    }
}
