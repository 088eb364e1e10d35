using Audience.Aerospike;
using Audience.Aerospike.Operations;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// Our Aerospike client's rates against the server named by <c>AUDIENCE_BENCH_AEROSPIKE</c> (host:port), on a set of its
/// own (truncated at the end): get, put, operate (Add + Put + Get on a profile-sized record) and batch-get (100 keys
/// per batch), each with 1 and 64 commands in flight, for a fixed time after a warm-up. The keys are built once, so
/// their digests are not timed; the client process's CPU and allocations per operation are reported beside the rate.
/// </summary>
internal static class AerospikeClientThroughput
{
    private const string Namespace = "audience";
    private const int BatchKeys = 100;

    public static async Task RunAsync(string[] args)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5;
        var recordCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        var hosts = Environment.GetEnvironmentVariable("AUDIENCE_BENCH_AEROSPIKE")
            ?? throw new InvalidOperationException("Set AUDIENCE_BENCH_AEROSPIKE=host:port to an Aerospike server the harness may write to (namespace 'audience').");
        var set = "bench-client-" + Guid.NewGuid().ToString("N")[..8];
        await using var client = await AerospikeClient.ConnectAsync(new AerospikeClientOptions
        {
            Hosts = hosts,
            TotalTimeout = TimeSpan.FromSeconds(5),
            SocketTimeout = TimeSpan.FromSeconds(5),
        });
        var keys = Enumerable.Range(0, recordCount).Select(i => new Key(Namespace, set, $"user-{i}")).ToArray();
        // A profile's bins as the store writes them, with 800 bytes of profile data (a profile at 100 segments is 810).
        var data = new byte[800];
        new Random(7).NextBytes(data);
        IReadOnlyDictionary<string, object?> Bins(int i) => new Dictionary<string, object?>
        {
            ["p"] = (long)(i % 4),
            ["s"] = (long)i,
            ["d"] = 0L,
            ["at"] = 1_700_000_000_000L + i,
            ["data"] = data,
        };

        Console.WriteLine($"Aerospike client against {hosts}, set {Namespace}/{set}: {recordCount:N0} records of {data.Length} bytes of data and 4 integer bins; " +
            $"{seconds:F0} s per row after a 1 s warm-up; {Environment.ProcessorCount} cores, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC");
        var loading = Stopwatch.StartNew();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < keys.Length)
            {
                await client.PutAsync(keys[i], Bins(i));
            }
        }));
        Console.WriteLine($"loaded in {loading.Elapsed.TotalSeconds:F1} s");

        var putBins = Bins(0);
        Operation[] operate = [Operation.Add("s", 1), Operation.Put("data", data), Operation.Get("s")];
        var commands = new (string Name, int Keys, Func<Random, Task> Run)[]
        {
            ("get", 1, random => client.GetAsync(keys[random.Next(keys.Length)])),
            ("put", 1, random => client.PutAsync(keys[random.Next(keys.Length)], putBins)),
            ("operate (Add + Put + Get)", 1, random => client.OperateAsync(keys[random.Next(keys.Length)], operate)),
            ($"batch-get ({BatchKeys} keys)", BatchKeys, random =>
            {
                var batch = new Key[BatchKeys];
                for (var k = 0; k < batch.Length; k++)
                {
                    batch[k] = keys[random.Next(keys.Length)];
                }

                return client.GetManyAsync(batch);
            }),
        };

        Console.WriteLine();
        Console.WriteLine("| command | in flight | ops/s | keys/s | mean latency | p50 | p99 | client CPU (cores) | client CPU per op | allocated per op |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (name, keysPerOp, run) in commands)
        {
            foreach (var inFlight in new[] { 1, 64 })
            {
                await Drive(run, inFlight, TimeSpan.FromSeconds(1));
                var result = await Drive(run, inFlight, TimeSpan.FromSeconds(seconds));
                var rate = result.Operations / result.Elapsed.TotalSeconds;
                Console.WriteLine($"| {name} | {inFlight} | {rate:N0} | {(keysPerOp > 1 ? (rate * keysPerOp).ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : "")} | " +
                    $"{result.Elapsed.TotalMilliseconds * inFlight / result.Operations:F3} ms | {result.Percentile(0.50):F3} ms | {result.Percentile(0.99):F3} ms | " +
                    $"{result.Cpu.TotalSeconds / result.Elapsed.TotalSeconds:F2} | {result.Cpu.TotalMicroseconds / result.Operations:F1} µs | {result.Allocated / result.Operations:N0} B |");
            }
        }

        // Writes of the last milliseconds can outlive a truncate (docs/aerospike.md): let them settle first.
        await Task.Delay(200);
        await client.TruncateAsync(Namespace, set);
        Console.WriteLine();
        Console.WriteLine($"set {set} truncated");
    }

    /// <summary>The sets of namespace <c>audience</c> whose names start with <paramref name="prefix"/>, with their objects and data bytes (summed over the nodes).</summary>
    internal static async Task<IReadOnlyDictionary<string, (long Objects, long DataBytes)>> SetStatsAsync(AerospikeClient client, string prefix)
    {
        var stats = new Dictionary<string, (long Objects, long DataBytes)>(StringComparer.Ordinal);
        foreach (var node in client.Nodes)
        {
            var answer = await client.InfoAsync(["sets/" + Namespace], node);
            foreach (var set in answer.Values.SelectMany(v => v.Split(';', StringSplitOptions.RemoveEmptyEntries)))
            {
                var fields = set.Split(':').Select(f => f.Split('=', 2)).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1], StringComparer.Ordinal);
                if (fields.GetValueOrDefault("set") is { } name && name.StartsWith(prefix, StringComparison.Ordinal))
                {
                    var (objects, bytes) = stats.GetValueOrDefault(name);
                    stats[name] = (objects + long.Parse(fields.GetValueOrDefault("objects", "0"), System.Globalization.CultureInfo.InvariantCulture),
                        bytes + long.Parse(fields.GetValueOrDefault("data_used_bytes", "0"), System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }

        return stats;
    }

    /// <summary>What a profile store on sets <paramref name="prefix"/>* takes on the server: data bytes per set, and per stored profile.</summary>
    internal static async Task PrintStoreSizeAsync(AerospikeClient client, string prefix, string when)
    {
        var sets = await SetStatsAsync(client, prefix);
        var profiles = sets.GetValueOrDefault(prefix + "profiles");
        Console.WriteLine($"Aerospike store size, {when}:");
        foreach (var (set, (objects, bytes)) in sets.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            Console.WriteLine($"  set {set}: {objects:N0} records, {bytes:N0} data bytes ({bytes / Math.Max(1, objects):N0} each)");
        }

        var records = sets.Values.Sum(s => s.Objects);
        Console.WriteLine($"  per stored profile: {profiles.DataBytes / Math.Max(1, profiles.Objects):N0} data bytes in its record, " +
            $"{sets.Values.Sum(s => s.DataBytes) / Math.Max(1, profiles.Objects):N0} with every set of the store; " +
            $"{records:N0} records, {(double)records / Math.Max(1, profiles.Objects):F2} per profile (64 bytes of primary index each, in memory)");
    }

    /// <summary>Truncates every set of namespace <c>audience</c> whose name starts with <paramref name="prefix"/> (a store's sets).</summary>
    internal static async Task TruncateSetsAsync(AerospikeClient client, string prefix)
    {
        await Task.Delay(200);
        foreach (var set in (await SetStatsAsync(client, prefix)).Keys)
        {
            await client.TruncateAsync(Namespace, set);
        }
    }

    /// <summary>Runs <paramref name="inFlight"/> loops of the command for <paramref name="duration"/>.</summary>
    private static async Task<Measurement> Drive(Func<Random, Task> run, int inFlight, TimeSpan duration)
    {
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        var histograms = new long[inFlight][];
        var clock = Stopwatch.StartNew();
        var end = duration.Ticks;
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            var histogram = histograms[w] = new long[Measurement.Buckets];
            while (clock.Elapsed.Ticks < end)
            {
                var start = Stopwatch.GetTimestamp();
                await run(random);
                histogram[Measurement.Bucket(Stopwatch.GetElapsedTime(start))]++;
            }
        })));
        clock.Stop();
        process.Refresh();
        return new Measurement(clock.Elapsed, process.TotalProcessorTime - cpuBefore, GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore, histograms);
    }

    /// <summary>Latencies in buckets of 10 µs up to 100 ms (the last bucket takes the rest).</summary>
    private sealed class Measurement(TimeSpan elapsed, TimeSpan cpu, long allocated, long[][] histograms)
    {
        public const int Buckets = 10_000;

        public TimeSpan Elapsed { get; } = elapsed;

        public TimeSpan Cpu { get; } = cpu;

        public long Allocated { get; } = allocated;

        public long Operations { get; } = histograms.Sum(h => h.Sum());

        public static int Bucket(TimeSpan latency) => (int)Math.Min(Buckets - 1, latency.Ticks / 100);

        /// <summary>The latency (ms, bucket's upper edge) under which the fraction <paramref name="p"/> of operations completed.</summary>
        public double Percentile(double p)
        {
            var wanted = (long)Math.Ceiling(Operations * p);
            long seen = 0;
            for (var b = 0; b < Buckets; b++)
            {
                for (var h = 0; h < histograms.Length; h++)
                {
                    seen += histograms[h][b];
                }

                if (seen >= wanted)
                {
                    return (b + 1) * 0.01;
                }
            }

            return Buckets * 0.01;
        }
    }
}
