using Audience.Silo.Contracts;
using Audience.Silo.Grains;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// The backfill of a new segment over stored profiles, in one run: <c>profiles</c> users are stored first (real
/// profiles, built by applying a realistic mix of events against <c>segments</c> segments, then written through the
/// store as the grains write them); the limit is scanning them back from the store page by page, as the backfill
/// does, without decoding; then the silo starts, a segment is created, and the clock runs until every partition
/// reports its backfill done. Embedded store unless <c>AUDIENCE_BENCH_POSTGRES</c> names an empty database.
/// </summary>
internal static class BackfillThroughput
{
    // Distinct profiles built by the Silo's own code; the stored users reuse them under their own ids.
    private const int Templates = 2_000;

    public static async Task RunAsync(string[] args)
    {
        var profileCount = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
        var segmentCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 100;
        var rule = args.Length > 2 && args[2] != "allocations" ? args[2] : "totalSpent > 400 and traits.plan in [\"p1\", \"p2\"]";
        var directory = Path.Combine(Path.GetTempPath(), "audience-backfill", Guid.NewGuid().ToString("N"));
        var settings = new Dictionary<string, string?> { ["DataDirectory"] = directory };
        if (Environment.GetEnvironmentVariable("AUDIENCE_BENCH_POSTGRES") is { } postgres)
        {
            settings["Postgres:ConnectionString"] = postgres;
            settings["ProfileStore:Kind"] = "postgres";
        }

        var (host, mode) = await SiloThroughput.BuildHostAsync(settings, BenchmarkData.Segments(segmentCount));
        using var disposeHost = host;
        var services = host.Services;
        var segments = services.GetRequiredService<SegmentService>();

        var silo = services.GetRequiredService<SiloContext>();
        var store = silo.Store;
        var partitions = silo.Options.Partitions;
        Console.WriteLine($"{mode}, {segments.Index.Count} segments; storing {profileCount:N0} profiles...");
        var templates = await BuildTemplatesAsync(silo);
        var storing = Stopwatch.StartNew();
        var now = silo.Now();
        foreach (var chunk in Enumerable.Range(0, profileCount).Chunk(5_000))
        {
            var writes = chunk.Select(i =>
            {
                var template = templates[i % templates.Count];
                var userId = $"user-{i}";
                var record = new ProfileRecord
                {
                    UserId = userId,
                    Partition = EventValues.PartitionOf(userId, partitions),
                    LastSeq = template.Record.LastSeq,
                    NextDue = template.Record.NextDue,
                    Data = template.Record.Data,
                };
                return new ProfileWrite(record, 0, template.Memberships, [], null, now);
            }).ToList();
            if ((await store.WriteAsync(writes)).Any(g => g == 0))
            {
                throw new InvalidOperationException("a profile was stored already");
            }
        }

        // The segments were there before these profiles were stored, so no backfill of theirs is owed.
        for (var p = 0; p < partitions; p++)
        {
            await store.MarkBackfilledAsync(p, [.. segments.List().Select(s => (s.Record.Id, (long?)s.Record.Version))]);
        }

        storing.Stop();
        var bytes = templates.Average(t => (double)t.Record.Data.Length);
        Console.WriteLine($"stored in {storing.Elapsed.TotalSeconds:F1} s ({profileCount / storing.Elapsed.TotalSeconds:N0}/s); {bytes:N0} bytes of profile data each on average");

        // The limit: every partition's stored records read back in the backfill's pages (no events flow, so the larger
        // ones), concurrently as the partitions' readers would, without decoding or evaluating them.
        var scanning = Stopwatch.StartNew();
        var scanned = await Task.WhenAll(Enumerable.Range(0, partitions).Select(p => Task.Run(async () =>
        {
            var count = 0L;
            var cursor = string.Empty;
            IReadOnlyList<ProfileRecord> page;
            while ((page = await store.ScanAsync(p, cursor, PartitionReader.IdleBackfillPage)).Count > 0)
            {
                count += page.Count;
                cursor = page[^1].UserId;
            }

            return count;
        })));
        scanning.Stop();
        var scanRate = scanned.Sum() / scanning.Elapsed.TotalSeconds;
        Console.WriteLine($"limit: the store's scan in pages of {PartitionReader.IdleBackfillPage}: {scanned.Sum():N0} records in {scanning.Elapsed.TotalSeconds:F2} s, {scanRate:N0} records/s");

        await host.StartAsync();
        var readers = services.GetRequiredService<LocalReaders>();
        while (readers.Checkpoints().Count < partitions)
        {
            await Task.Delay(20);
        }

        using var sampler = args.Contains("allocations") ? new AllocationSampler() : null;
        var clock = Stopwatch.StartNew();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var created = segments.Create(new SegmentDraft("backfilled", "backfilled", null, null, rule, null));
        if (created.Segment is null)
        {
            throw new InvalidOperationException("the segment was refused: " + string.Join("; ", created.RuleErrors.Select(e => e.Message)) + created.Problem);
        }

        SegmentInfo info;
        while ((info = segments.Get("backfilled")!).Status != "active")
        {
            await Task.Delay(20);
        }

        clock.Stop();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        var members = await store.CountMembersAsync("backfilled");
        var rate = info.BackfillProcessed / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"backfill of \"{rule}\": {info.BackfillProcessed:N0} profiles in {clock.Elapsed.TotalSeconds:F2} s, {rate:N0} profiles/s " +
            $"({Environment.ProcessorCount} cores, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC); {members:N0} members; " +
            $"ratio to the scan: {rate / scanRate:F3}; 1,000,000 profiles would take {1_000_000 / rate:F1} s");
        Console.WriteLine($"allocated {allocated / Math.Max(1, info.BackfillProcessed):N0} bytes per profile");
        sampler?.Print(info.BackfillProcessed);
        await host.StopAsync();
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>Users built the way the Silo builds them: each applies about a dozen events of the usual mix.</summary>
    private static async Task<List<ProfileWrite>> BuildTemplatesAsync(SiloContext silo)
    {
        var templates = new List<ProfileWrite>(Templates);
        var seq = 0L;
        var now = silo.Now();
        foreach (var user in SiloThroughput.Events(Templates * 12, Templates, churn: false).GroupBy(e => e.UserId))
        {
            var session = await ProfileSession.OpenAsync(user.Key, null, silo, CancellationToken.None);
            foreach (var e in user)
            {
                session.Apply(new LoggedEvent(++seq, now, e), "events", 0, now);
            }

            templates.Add(session.TakeWrite(0, now));
        }

        return templates;
    }
}
