using Audience.Silo.Storage;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Audience.Benchmarks;

/// <summary>
/// The raw write rate of the profile stores, the limit under the Silo's write-behind: batches of profile rows
/// (a state of the size a real profile encodes to) and one membership change per profile, saved as a worker
/// saves them. Embedded always; PostgreSQL too when AUDIENCE_BENCH_POSTGRES names an empty database.
/// </summary>
internal static class StoreWrite
{
    public static void Run(string[] args)
    {
        var rows = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 200_000;
        var batch = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2_000;
        var directory = Path.Combine(Path.GetTempPath(), "audience-store-write", Guid.NewGuid().ToString("N"));
        Measure("embedded (SQLite)", new EmbeddedProfileStoreFactory(new Database(directory)), rows, batch);
        if (Environment.GetEnvironmentVariable("AUDIENCE_BENCH_POSTGRES") is { } postgres)
        {
            using var database = new PostgresDatabase(postgres);
            database.Migrate();
            Measure("PostgreSQL", new PostgresProfileStoreFactory(database), rows, batch);
        }

        Directory.Delete(directory, recursive: true);
    }

    private static void Measure(string name, IProfileStoreFactory stores, int rows, int batch)
    {
        using var store = stores.Open();
        var state = new byte[600];
        new Random(3).NextBytes(state);
        var clock = Stopwatch.StartNew();
        for (var written = 0; written < rows; written += batch)
        {
            var profiles = Enumerable.Range(written, batch).Select(i => (new StoredProfile($"user-{i}", i, null, state, 0), 1L)).ToList();
            var history = profiles.Select(p => new HistoryRow(p.Item1.UserId, "segment", true, "rule_evaluation", 1, 0.5, "e")).ToList();
            store.Save(written % 4, profiles, history, written + batch);
        }

        clock.Stop();
        Console.WriteLine($"{name}: {rows:N0} new profiles (600-byte state) + one membership change each, in batches of {batch:N0}: " +
            $"{rows / clock.Elapsed.TotalSeconds:N0} profiles/s");
    }
}
