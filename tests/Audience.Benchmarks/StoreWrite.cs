using Audience.Silo.Storage;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// The write limit of the profile stores on this machine: batches of records of a typical profile's size, each with a
/// membership change, written through <see cref="IProfileStore.WriteAsync"/> as the grain storage does, then
/// rewritten with their generation checked. Embedded always; PostgreSQL when <c>AUDIENCE_BENCH_POSTGRES</c> names a
/// database the harness may write to.
/// </summary>
internal static class StoreWrite
{
    public static async Task RunAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        var batch = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2_000;
        var directory = Path.Combine(Path.GetTempPath(), "audience-store-write", Guid.NewGuid().ToString("N"));
        using (var embedded = new EmbeddedProfileStore(new Database(directory)))
        {
            await Measure("embedded (SQLite)", embedded, count, batch);
        }

        Directory.Delete(directory, recursive: true);
        if (Environment.GetEnvironmentVariable("AUDIENCE_BENCH_POSTGRES") is { } postgres)
        {
            using var database = new PostgresDatabase(postgres);
            database.Migrate();
            await Measure("PostgreSQL", new PostgresProfileStore(database.DataSource), count, batch);
        }
    }

    private static async Task Measure(string name, IProfileStore store, int count, int batch)
    {
        var run = Guid.NewGuid().ToString("N")[..6];
        var data = new byte[200];
        Random.Shared.NextBytes(data);
        foreach (var (phase, expected) in new[] { ("insert", 0L), ("update", 1L) })
        {
            var clock = Stopwatch.StartNew();
            for (var start = 0; start < count; start += batch)
            {
                var writes = Enumerable.Range(start, Math.Min(batch, count - start)).Select(i => new ProfileWrite(
                    new ProfileRecord { UserId = $"{run}-{i * 7919 % count}", Partition = i % 4, LastSeq = i, NextDue = null, Data = data },
                    expected, [new MembershipDelta("seg-" + (i % 50), expected == 0 ? i : null)], [], null, i)).ToList();
                var results = await store.WriteAsync(writes);
                if (results.Any(r => r == 0))
                {
                    throw new InvalidOperationException("a write conflicted");
                }
            }

            clock.Stop();
            Console.WriteLine($"{name}, {phase}: {count / clock.Elapsed.TotalSeconds:N0} records/s in batches of {batch}");
        }
    }
}
