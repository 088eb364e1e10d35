using System.Text.Json;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// Events per second through the embedded Silo in one process: the events are appended to the log first, then
/// the clock runs from starting the Silo until every partition's checkpoint covers them (applied, evaluated
/// against the segments, and written behind). Also reports memory per active user.
/// </summary>
internal static class SiloThroughput
{
    public static async Task RunAsync(string[] args)
    {
        var segmentCount = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 1000;
        var eventCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200_000;
        var userCount = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10_000;

        // "churn": every identify event gives the user new random traits (worst case: many membership changes per
        // event); otherwise a user's traits are stable, and changes come from spending and windows.
        var churn = args.Contains("churn");
        var directory = Path.Combine(Path.GetTempPath(), "audience-silo-throughput", Guid.NewGuid().ToString("N"));
        var options = new SiloOptions
        {
            DataDirectory = directory,
            FlushInterval = TimeSpan.FromMilliseconds(args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 1000),
            FlushBatchSize = args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 50_000,
        };
        var time = TimeProvider.System;
        var database = new Database(directory);
        await using var log = new EventLog(database, options.Partitions, time, NullLogger<EventLog>.Instance);

        var catalog = new RuleCatalog();
        var index = new SegmentIndex(catalog);
        var segments = new SegmentService(new EmbeddedSegmentStore(database), index, time, options.Partitions);
        foreach (var (id, rule) in BenchmarkData.ThousandSegments().Take(950 * segmentCount / 1000).Concat(BenchmarkData.ThousandSegments().Skip(950).Take(Math.Max(1, segmentCount / 20))))
        {
            segments.Create(new SegmentDraft(id, id, null, null, rule, null));
        }

        Console.WriteLine($"segments: {index.Count}; appending {eventCount:N0} events for {userCount:N0} users...");
        var random = new Random(7);
        var now = DateTimeOffset.UtcNow;
        var batch = new List<UserEvent>(1000);
        for (var i = 0; i < eventCount; i++)
        {
            var userNumber = random.Next(userCount);
            var user = $"user-{userNumber}";
            var kind = random.Next(10);
            var properties = kind switch
            {
                < 2 => RawJson.Parse(JsonSerializer.Serialize(new { amount = random.Next(1, 500), category = "electronics" })),
                < 3 when churn => RawJson.Parse(JsonSerializer.Serialize(new { country = "C" + random.Next(40), plan = "p" + random.Next(7), age = random.Next(18, 80) })),
                < 3 => RawJson.Parse(JsonSerializer.Serialize(new { country = "C" + (userNumber % 40), plan = "p" + (userNumber % 7), age = 18 + (userNumber % 62) })),
                _ => RawJson.Parse(JsonSerializer.Serialize(new { page = "/p/" + random.Next(100) })),
            };
            var type = kind switch { < 2 => "purchase", < 3 => "identify", < 5 => "add_to_cart", _ => "page_view" };
            batch.Add(new UserEvent($"e{i}", user, type, now.AddSeconds(-random.Next(86_400)), properties, null));
            if (batch.Count == 1000)
            {
                await log.AppendAsync(batch);
                batch = new List<UserEvent>(1000);
            }
        }

        if (batch.Count > 0)
        {
            await log.AppendAsync(batch);
        }

        var lastSeq = Scalar(database, "SELECT max(seq) FROM events");
        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        var silo = new SiloHost(options, database, log, new EmbeddedProfileStoreFactory(database), segments, new ChangeFeed(), time, NullLogger<SiloHost>.Instance);
        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        await silo.StartAsync(stop.Token);
        while (Scalar(database, "SELECT count(*) FROM (SELECT e.partition, max(e.seq) m FROM events e GROUP BY e.partition) p LEFT JOIN checkpoints c ON c.partition = p.partition WHERE coalesce(c.seq, 0) < p.m") > 0)
        {
            await Task.Delay(20);
        }

        clock.Stop();
        var memoryAfter = GC.GetTotalMemory(forceFullCollection: true);
        var changes = Scalar(database, "SELECT count(*) FROM membership_history");
        Console.WriteLine($"processed {lastSeq:N0} events in {clock.Elapsed.TotalSeconds:F2} s: {lastSeq / clock.Elapsed.TotalSeconds:N0} events/s " +
            $"({Environment.ProcessorCount} cores); {changes:N0} membership changes; {silo.ActiveActors:N0} active users, " +
            $"{(memoryAfter - memoryBefore) / Math.Max(1, silo.ActiveActors):N0} bytes each");
        await stop.CancelAsync();
        await silo.StopAsync(CancellationToken.None);
        Directory.Delete(directory, recursive: true);
    }

    private static long Scalar(Database database, string sql)
    {
        using var connection = database.Open();
        return Database.Scalar(connection, sql);
    }

}
