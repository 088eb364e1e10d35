using Audience.Silo.Storage;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// The write limit of the profile stores on this machine: batches of records of a typical profile's size, each with a
/// membership change, written through <see cref="IProfileStore.WriteAsync"/> as the grain storage does, then
/// rewritten with their generation checked. Embedded always; PostgreSQL when <c>AUDIENCE_BENCH_POSTGRES</c> names a
/// database the harness may write to; Aerospike when <c>AUDIENCE_BENCH_AEROSPIKE</c> names a server (host:port), on sets
/// of its own that are truncated afterwards, with its rates over PostgreSQL's and the bytes each profile takes there.
/// </summary>
internal static class StoreWrite
{
    private const int DataBytes = 200;

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
        (double Insert, double Update)? postgresRates = null;
        if (Environment.GetEnvironmentVariable("AUDIENCE_BENCH_POSTGRES") is { } postgres)
        {
            using var database = new PostgresDatabase(postgres);
            database.Migrate();
            postgresRates = await Measure("PostgreSQL", new PostgresProfileStore(database.DataSource), count, batch);
        }

        if (Environment.GetEnvironmentVariable("AUDIENCE_BENCH_AEROSPIKE") is { } aerospike)
        {
            var prefix = "sw" + Guid.NewGuid().ToString("N")[..6] + "-";
            var options = new AerospikeStoreOptions { Hosts = aerospike, SetPrefix = prefix };
            (double Insert, double Update) rates;
            await using (var store = new AerospikeProfileStore(options, TimeSpan.FromDays(91), TimeProvider.System))
            {
                rates = await Measure("Aerospike", store, count, batch, async () =>
                {
                    await using var client = await Audience.Aerospike.AerospikeClient.ConnectAsync(options.Client());
                    await AerospikeClientThroughput.PrintStoreSizeAsync(client, prefix, $"after the inserts (one membership each), {DataBytes} bytes of profile data each");
                });
            }

            if (postgresRates is { } p)
            {
                Console.WriteLine($"Aerospike ÷ PostgreSQL: insert {rates.Insert / p.Insert:F2}, update {rates.Update / p.Update:F2}");
            }

            await using var client = await Audience.Aerospike.AerospikeClient.ConnectAsync(options.Client());
            await AerospikeClientThroughput.PrintStoreSizeAsync(client, prefix, $"after the updates (memberships left again), {DataBytes} bytes of profile data each");
            await AerospikeClientThroughput.TruncateSetsAsync(client, prefix);
        }
    }

    private static async Task<(double Insert, double Update)> Measure(string name, IProfileStore store, int count, int batch, Func<Task>? afterInsert = null)
    {
        var rates = new double[2];
        var run = Guid.NewGuid().ToString("N")[..6];
        var data = new byte[DataBytes];
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
            rates[expected] = count / clock.Elapsed.TotalSeconds;
            Console.WriteLine($"{name}, {phase}: {rates[expected]:N0} records/s in batches of {batch}");
            if (expected == 0 && afterInsert is not null)
            {
                await afterInsert();
            }
        }

        return (rates[0], rates[1]);
    }
}
