using Audience.Silo.Storage;
using Audience.Testing;

namespace Audience.Silo.Tests;

/// <summary>
/// What every profile store must do, run against each implementation: the embedded SQLite one, and the PostgreSQL and
/// Aerospike ones shared by several silos (skipped where no Aerospike server is named).
/// </summary>
public abstract class ProfileStoreContract : IDisposable
{
    protected abstract IProfileStore Store { get; }

    private static ProfileWrite Write(string user, long seq, long expected, long? due = null, int partition = 1,
        IReadOnlyList<MembershipDelta>? memberships = null, IReadOnlyList<HistoryChunk>? history = null, ArchiveChunk? archive = null) =>
        new(new ProfileRecord { UserId = user, Partition = partition, LastSeq = seq, NextDue = due, Data = [1, 2, (byte)seq], Generation = expected },
            expected, memberships ?? [], history ?? [], archive, 10);

    [SkippableFact]
    public async Task A_written_record_reads_back_with_its_bins_and_next_generation()
    {
        Assert.Null(await Store.ReadAsync("u1"));
        Assert.Equal(new[] { 1L }, await Store.WriteAsync([Write("u1", 7, 0, due: 1234)]));
        var read = (await Store.ReadAsync("u1"))!;
        Assert.Equal(("u1", 1, 7L, 1234L, 1L), (read.UserId, read.Partition, read.LastSeq, read.NextDue!.Value, read.Generation));
        Assert.Equal([1, 2, 7], read.Data);

        Assert.Equal(new[] { 2L }, await Store.WriteAsync([Write("u1", 9, 1)]));
        read = (await Store.ReadAsync("u1"))!;
        Assert.Equal((9L, (long?)null, 2L), (read.LastSeq, read.NextDue, read.Generation));
    }

    [SkippableFact]
    public async Task A_stale_generation_writes_nothing_of_that_record_and_the_rest_of_the_batch_lands()
    {
        await Store.WriteAsync([Write("a", 1, 0), Write("b", 1, 0)]);
        var results = await Store.WriteAsync([
            Write("a", 2, 5, memberships: [new MembershipDelta("s", 100)], history: [new HistoryChunk(0, [9])]),
            Write("b", 2, 1, memberships: [new MembershipDelta("s", 200)]),
            Write("a-new", 1, 0),
            Write("b", 3, 0), // "must not exist yet", but it does
        ]);
        Assert.Equal([0L, 2L, 1L, 0L], results);
        Assert.Equal(1, (await Store.ReadAsync("a"))!.LastSeq);
        Assert.Equal(2, (await Store.ReadAsync("b"))!.LastSeq);
        Assert.Equal(["b"], (await Store.MembersAsync("s", string.Empty, 10)).Select(m => m.UserId));
        Assert.Empty(await Store.HistoryAsync("a", 0, 10));
    }

    [SkippableFact]
    public async Task Several_records_read_at_once_and_absent_ones_are_left_out()
    {
        await Store.WriteAsync([Write("x", 3, 0), Write("y", 4, 0)]);
        var read = await Store.ReadManyAsync(["x", "y", "nobody"]);
        Assert.Equal(["x", "y"], read.Keys.Order());
        Assert.Equal(4, read["y"].LastSeq);
        Assert.Empty(await Store.ReadManyAsync([]));
    }

    [SkippableFact]
    public async Task The_membership_index_follows_the_last_change_of_each_user_and_pages_by_user()
    {
        await Store.WriteAsync([
            Write("m1", 1, 0, memberships: [new MembershipDelta("vip", 10)]),
            Write("m2", 1, 0, memberships: [new MembershipDelta("vip", 20), new MembershipDelta("vip", null)]),
            Write("m3", 1, 0, memberships: [new MembershipDelta("vip", 30), new MembershipDelta("other", 5)]),
        ]);
        Assert.Equal(2, await Store.CountMembersAsync("vip"));
        Assert.Equal([("m1", 10L)], (await Store.MembersAsync("vip", string.Empty, 1)).Select(m => (m.UserId, m.Since)));
        Assert.Equal([("m3", 30L)], (await Store.MembersAsync("vip", "m1", 10)).Select(m => (m.UserId, m.Since)));

        await Store.WriteAsync([Write("m3", 2, 1, memberships: [new MembershipDelta("vip", null)])]);
        Assert.Equal(1, await Store.CountMembersAsync("vip"));
        Assert.Equal(1, await Store.CountMembersAsync("other"));
    }

    [SkippableFact]
    public async Task History_chunks_read_back_in_order_from_a_chunk_on()
    {
        await Store.WriteAsync([Write("h", 1, 0, history: [new HistoryChunk(0, [0]), new HistoryChunk(1, [1])])]);
        await Store.WriteAsync([Write("h", 2, 1, history: [new HistoryChunk(2, [2])])]);
        Assert.Equal([0L, 1L, 2L], (await Store.HistoryAsync("h", 0, 10)).Select(c => c.Chunk));
        Assert.Equal([(1L, (byte)1)], (await Store.HistoryAsync("h", 1, 1)).Select(c => (c.Chunk, c.Data[0])));
        Assert.Empty(await Store.HistoryAsync("nobody", 0, 10));
    }

    [SkippableFact]
    public async Task A_claim_fences_the_previous_owner_and_keeps_the_checkpoint()
    {
        var first = await Store.ClaimPartitionAsync(3);
        Assert.Equal(0, first.Checkpoint);
        Assert.True(await Store.CheckpointAsync(3, first.Epoch, 42));
        var second = await Store.ClaimPartitionAsync(3);
        Assert.True(second.Epoch > first.Epoch);
        Assert.Equal(42, second.Checkpoint);
        Assert.False(await Store.CheckpointAsync(3, first.Epoch, 50));
        Assert.True(await Store.CheckpointAsync(3, second.Epoch, 50));
        Assert.Equal(50, (await Store.ClaimPartitionAsync(3)).Checkpoint);
        Assert.Equal(0, (await Store.ClaimPartitionAsync(4)).Checkpoint);

        // Every claimed partition's checkpoint, as the Api reads them to bound how far the silos may fall behind.
        var checkpoints = await Store.CheckpointsAsync();
        Assert.Equal(50, checkpoints[3]);
        Assert.Equal(0, checkpoints[4]);
        Assert.False(checkpoints.ContainsKey(5));
    }

    [SkippableFact]
    public async Task Due_users_come_earliest_first_per_partition_and_scans_page_by_user_id()
    {
        await Store.WriteAsync([Write("d1", 1, 0, due: 300), Write("d2", 1, 0, due: 100), Write("d3", 1, 0), Write("d4", 1, 0, due: 50, partition: 2)]);
        Assert.Equal(["d2", "d1"], await Store.DueAsync(1, 400, 10));
        Assert.Equal(["d2"], await Store.DueAsync(1, 200, 10));
        Assert.Equal(["d4"], await Store.DueAsync(2, 400, 10));
        Assert.Equal(3, await Store.CountUsersAsync(1));
        Assert.Equal(["d1", "d2"], (await Store.ScanAsync(1, string.Empty, 2)).Select(r => r.UserId));
        Assert.Equal(["d3"], (await Store.ScanAsync(1, "d2", 2)).Select(r => r.UserId));
    }

    [SkippableFact]
    public async Task Completed_backfills_are_recorded_per_partition_and_forgotten_on_deletion()
    {
        Assert.Empty(await Store.BackfilledVersionsAsync(1));
        await Store.MarkBackfilledAsync(1, [("a", 1), ("b", 3)]);
        await Store.MarkBackfilledAsync(2, [("a", 1)]);
        await Store.MarkBackfilledAsync(1, [("a", 2), ("b", null)]);
        Assert.Equal([("a", 2L)], (await Store.BackfilledVersionsAsync(1)).Select(p => (p.Key, p.Value)));
        Assert.Equal([("a", 1L)], (await Store.BackfilledVersionsAsync(2)).Select(p => (p.Key, p.Value)));
    }

    [SkippableFact]
    public async Task Erasing_a_user_deletes_every_record_of_theirs_and_nothing_of_the_others()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var user in new[] { "gone", "kept" })
        {
            await Store.WriteAsync([Write(user, 3, 0, due: 500, partition: 2, memberships: [new MembershipDelta("vip", 10), new MembershipDelta("new", 20)],
                history: [new HistoryChunk(0, [0]), new HistoryChunk(1, [1])],
                archive: EventArchive.Encode([new ArchivedEvent(1, now, [(byte)'{', (byte)'}']), new ArchivedEvent(3, now, [(byte)'{', (byte)'}'])]))]);
        }

        var erasure = new ProfileErasure("gone", [2], ["vip", "new", "never-used"], HistoryChunks: 2);
        await Store.EraseAsync(erasure);

        // Read back by the store's own queries: the record, its due time and place in the partition, its memberships,
        // history and archived events are gone; the other user's are all there.
        Assert.Null(await Store.ReadAsync("gone"));
        Assert.Equal(["kept"], (await Store.ReadManyAsync(["gone", "kept"])).Keys);
        foreach (var segment in new[] { "vip", "new" })
        {
            Assert.Equal(["kept"], (await Store.MembersAsync(segment, string.Empty, 10)).Select(m => m.UserId));
            Assert.Equal(1, await Store.CountMembersAsync(segment));
        }

        Assert.Empty(await Store.HistoryAsync("gone", 0, 10));
        Assert.Equal(2, (await Store.HistoryAsync("kept", 0, 10)).Count);
        Assert.Empty(await Store.ArchiveAsync("gone", 10, 0));
        Assert.Equal([1L, 3L], (await Store.ArchiveAsync("kept", 10, 0)).Select(e => e.Seq));
        Assert.Equal(["kept"], await Store.DueAsync(2, 1_000, 10));
        Assert.Equal(["kept"], (await Store.ScanAsync(2, string.Empty, 10)).Select(r => r.UserId));
        Assert.Equal(1, await Store.CountUsersAsync(2));
        await AssertNothingStoredOf("gone", "kept");

        // Idempotent, and a user with nothing stored is no error.
        await Store.EraseAsync(erasure);
        await Store.EraseAsync(new ProfileErasure("nobody", [2], ["vip"], 0));

        // The same user again starts from nothing: a new record, with no history.
        var again = await Store.WriteAsync([Write("gone", 9, 0, partition: 2)]);
        Assert.Equal([1L], again);
        Assert.Empty(await Store.HistoryAsync("gone", 0, 10));
    }

    /// <summary>
    /// Checks with a client of its own, not the store's queries, that nothing stored names <paramref name="erased"/>
    /// and that what the test stored for <paramref name="kept"/> is there.
    /// </summary>
    protected abstract Task AssertNothingStoredOf(string erased, string kept);

    /// <summary>
    /// For the stores that prune their archive by receive time (SQLite and PostgreSQL; Aerospike's archive expires
    /// with its own TTL instead and has a test of its own).
    /// </summary>
    protected async Task ArchivedEventsArePrunedByTime()
    {
        ArchivedEvent Event(long seq, long at) => new(seq, at, [(byte)'{', (byte)seq, (byte)'}']);
        await Store.WriteAsync([Write("ar", 2, 0, EventArchive.Encode([Event(1, 1_000), Event(2, 1_000)]))]);
        await Store.WriteAsync([Write("ar", 5, 1, EventArchive.Encode([Event(5, 5_000)]))]);
        Assert.Equal([1L, 2L, 5L], (await Store.ArchiveAsync("ar", 10, 0)).Select(e => e.Seq));
        Assert.Equal([1L, 2L], (await Store.ArchiveAsync("ar", 4, 0)).Select(e => e.Seq));
        var kept = await Store.ArchiveAsync("ar", 10, 2_000);
        Assert.Equal(new[] { (byte)'{', (byte)5, (byte)'}' }, kept[0].Json);
        Assert.Equal(1, await Store.PruneArchiveAsync(2_000));
        Assert.Equal([5L], (await Store.ArchiveAsync("ar", 10, 0)).Select(e => e.Seq));

        static ProfileWrite Write(string user, long seq, long expected, ArchiveChunk archive) =>
            new(new ProfileRecord { UserId = user, LastSeq = seq, Data = [1] }, expected, [], [], archive, 1);
    }

    /// <summary>For the stores that also hold campaigns' notifications (SQLite and PostgreSQL).</summary>
    protected async Task NotificationsOfAnErasedUserAreDeleted(Audience.Silo.Campaigns.ICampaignStore campaigns)
    {
        await campaigns.RecordAsync([.. new[] { "gone", "kept", "gone" }.Select((u, i) => StoredRows.Firing(u, i))]);

        Assert.Equal(2, await campaigns.EraseUserAsync("gone"));

        Assert.Equal(["kept"], (await campaigns.NotificationsAsync("c1", 0, 10)).Select(n => n.Request.UserId));
        Assert.Equal(0, await campaigns.EraseUserAsync("gone"));
        await AssertNothingStoredOf("gone", "kept");
    }

    public abstract void Dispose();
}

public sealed class EmbeddedProfileStoreTests : ProfileStoreContract
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-tests", Guid.NewGuid().ToString("N"));
    private readonly EmbeddedProfileStore _store;

    public EmbeddedProfileStoreTests() => _store = new EmbeddedProfileStore(new Database(_directory));

    protected override IProfileStore Store => _store;

    [Fact]
    public Task Archived_events_read_back_by_user_up_to_a_sequence_number_and_are_pruned_by_time() => ArchivedEventsArePrunedByTime();

    [Fact]
    public Task Erasing_a_user_deletes_their_notifications_only() => NotificationsOfAnErasedUserAreDeleted(new Audience.Silo.Campaigns.EmbeddedCampaignStore(new Database(_directory)));

    /// <summary>Every table with a <c>user_id</c> column, read by the sqlite3 command-line tool.</summary>
    protected override Task AssertNothingStoredOf(string erased, string kept)
    {
        var database = Path.Combine(_directory, "audience.db");
        var tables = StoredRows.Run("sqlite3", [database, "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'user_id' ORDER BY 1"], null)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("memberships", tables);
        StoredRows.AssertOnlyOf(tables, erased, kept, sql => StoredRows.Run("sqlite3", [database, sql], null));
        return Task.CompletedTask;
    }

    public override void Dispose()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

[Collection(PostgresCollection.Name)]
public sealed class PostgresProfileStoreTests : ProfileStoreContract
{
    private readonly TestDatabase _database = new();
    private readonly PostgresDatabase _postgres;

    public PostgresProfileStoreTests()
    {
        _postgres = new PostgresDatabase(_database.ConnectionString);
        _postgres.Migrate();
        _postgres.Migrate(); // idempotent
        Store = new PostgresProfileStore(_postgres.DataSource);
    }

    protected override IProfileStore Store { get; }

    [SkippableFact]
    public Task Archived_events_read_back_by_user_up_to_a_sequence_number_and_are_pruned_by_time() => ArchivedEventsArePrunedByTime();

    [SkippableFact]
    public Task Erasing_a_user_deletes_their_notifications_only() => NotificationsOfAnErasedUserAreDeleted(new Audience.Silo.Campaigns.PostgresCampaignStore(_postgres));

    /// <summary>Every table with a <c>user_id</c> column, read by psql.</summary>
    protected override Task AssertNothingStoredOf(string erased, string kept)
    {
        var connection = new Npgsql.NpgsqlConnectionStringBuilder(_database.ConnectionString);
        string Psql(string sql) => StoredRows.Run("psql",
            ["-h", connection.Host!, "-p", connection.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", connection.Username!,
                "-d", connection.Database!, "-tAc", sql], connection.Password);
        var tables = Psql("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'user_id' ORDER BY 1")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("memberships", tables);
        StoredRows.AssertOnlyOf(tables, erased, kept, Psql);
        return Task.CompletedTask;
    }

    [SkippableFact]
    public async Task Processes_that_start_at_once_migrate_the_schema_once()
    {
        using var fresh = new TestDatabase();
        var databases = Enumerable.Range(0, 4).Select(_ => new PostgresDatabase(fresh.ConnectionString)).ToList();
        await Task.WhenAll(databases.Select(d => Task.Run(d.Migrate)));
        Assert.Equal(PostgresDatabase.SchemaVersion, fresh.Scalar("SELECT count(*) FROM schema_version"));
        Assert.Equal(10, fresh.Scalar("SELECT count(*) FROM orleansquery"));
        databases.ForEach(d => d.Dispose());
    }

    public override void Dispose()
    {
        _postgres.Dispose();
        _database.Dispose();
    }
}

/// <summary>The contract on the Aerospike server named by AUDIENCE_TEST_AEROSPIKE (scripts/test.sh starts one); each test on sets of its own.</summary>
public sealed class AerospikeProfileStoreTests : ProfileStoreContract, IAsyncLifetime
{
    private static readonly string? Hosts = Environment.GetEnvironmentVariable("AUDIENCE_TEST_AEROSPIKE");
    private readonly Microsoft.Extensions.Time.Testing.FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private readonly AerospikeProfileStore? _store;
    private readonly AerospikeStoreOptions? _options;

    public AerospikeProfileStoreTests()
    {
        if (!string.IsNullOrWhiteSpace(Hosts))
        {
            _store = new AerospikeProfileStore(_options = new AerospikeStoreOptions
            {
                Hosts = Hosts,
                SetPrefix = $"t{Guid.NewGuid():N}"[..13] + "-",
                TotalTimeout = TimeSpan.FromSeconds(5),
                SocketTimeout = TimeSpan.FromSeconds(5),
                MemberBuckets = 8,
                DirectoryBuckets = 4,
            }, TimeSpan.FromDays(91), _clock);
        }
    }

    protected override IProfileStore Store => _store ?? throw new SkipException("set AUDIENCE_TEST_AEROSPIKE or run scripts/test.sh, which starts ../shared/aerospike");

    [SkippableFact]
    public async Task Archived_events_read_back_by_user_up_to_a_sequence_number_and_expire_with_the_retention()
    {
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        ArchivedEvent Event(long seq, long at) => new(seq, at, [(byte)'{', (byte)seq, (byte)'}']);
        await Store.WriteAsync([Write("ar", 2, 0, EventArchive.Encode([Event(1, now - (3 * 86_400_000)), Event(2, now - (3 * 86_400_000))]))]);
        await Store.WriteAsync([Write("ar", 5, 1, EventArchive.Encode([Event(5, now)]))]);
        Assert.Equal([1L, 2L, 5L], (await Store.ArchiveAsync("ar", 10, 0)).Select(e => e.Seq));
        Assert.Equal([1L, 2L], (await Store.ArchiveAsync("ar", 4, 0)).Select(e => e.Seq));
        var kept = await Store.ArchiveAsync("ar", 10, now - 86_400_000);
        Assert.Equal(new[] { (byte)'{', (byte)5, (byte)'}' }, Assert.Single(kept).Json);
        Assert.Empty(await Store.ArchiveAsync("nobody", 10, 0));

        static ProfileWrite Write(string user, long seq, long expected, ArchiveChunk archive) =>
            new(new ProfileRecord { UserId = user, LastSeq = seq, Data = [1] }, expected, [], [], archive, 1);
    }

    [SkippableFact]
    public async Task Bucket_counts_cannot_change_once_the_namespace_is_in_use()
    {
        await Store.CheckpointsAsync();
        await using var same = new AerospikeProfileStore(_options! with { }, TimeSpan.FromDays(91), _clock);
        await same.CheckLayoutAsync();

        await using var changed = new AerospikeProfileStore(_options! with { MemberBuckets = 16 }, TimeSpan.FromDays(91), _clock);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => changed.CheckLayoutAsync());
        Assert.Contains("Aerospike:MemberBuckets is 16", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => changed.ReadAsync("anyone"));
    }

    [SkippableFact]
    public async Task A_segment_spread_over_buckets_pages_in_user_order()
    {
        var users = Enumerable.Range(0, 300).Select(i => $"user-{i:D4}").ToList();
        await Store.WriteAsync([.. users.Select(u => new ProfileWrite(new ProfileRecord { UserId = u, Partition = 1, LastSeq = 1, Data = [1] }, 0,
            [new MembershipDelta("big", 7)], [], null, 1))]);
        Assert.Equal(300, await Store.CountMembersAsync("big"));
        var seen = new List<string>();
        var after = string.Empty;
        IReadOnlyList<MembershipRow> page;
        while ((page = await Store.MembersAsync("big", after, 70)).Count > 0)
        {
            seen.AddRange(page.Select(m => m.UserId));
            after = page[^1].UserId;
        }

        Assert.Equal(users, seen);
        Assert.Equal(users.Take(50), (await Store.ScanAsync(1, string.Empty, 50)).Select(r => r.UserId));
        Assert.Equal(300, await Store.CountUsersAsync(1));
    }

    /// <summary>
    /// Scans the test's sets with a client of its own: no bucket map names the erased user, and the records keyed by user
    /// (which keep only digests) are the kept user's alone: one profile, two history chunks, one archive day.
    /// </summary>
    protected override async Task AssertNothingStoredOf(string erased, string kept)
    {
        await using var client = await Audience.Aerospike.AerospikeClient.ConnectAsync(_options!.Client());
        async Task<List<Audience.Aerospike.Record>> Scan(string set)
        {
            var records = new List<Audience.Aerospike.Record>();
            await foreach (var scanned in client.ScanPartitionsAsync(_options.Namespace, _options.SetPrefix + set))
            {
                records.Add(scanned.Record);
            }

            return records;
        }

        foreach (var (set, bin) in new[] { ("members", "m"), ("directory", "u") })
        {
            var keys = (await Scan(set)).SelectMany(r => r[bin] is Dictionary<object, object?> map ? map.Keys.Cast<string>() : []).ToList();
            Assert.DoesNotContain(erased, keys);
            Assert.Contains(kept, keys);
        }

        Assert.Equal(1, (await Scan("profiles")).Count(r => r["data"] is byte[]));
        Assert.Equal(2, (await Scan("history")).Count);
        Assert.Single(await Scan("archive"));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    public override void Dispose()
    {
        // The client closes in DisposeAsync.
    }
}

/// <summary>Independent checks of what a SQL store keeps about a user: command-line clients over every table with a user_id column.</summary>
internal static class StoredRows
{
    /// <summary>A notification of campaign c1 for a user, as a campaign firing records it.</summary>
    public static Audience.Silo.Campaigns.CampaignFiring Firing(string userId, int n) =>
        new(new Audience.Silo.Contracts.NotificationRequest($"c1/{userId}/vip/e{n}", "c1", userId, "email", "welcome", null, new System.Text.Json.Nodes.JsonObject(), "on_enter", "vip",
            DateTimeOffset.UnixEpoch.AddSeconds(n)), Capped: false);

    /// <summary>Each table's rows of <paramref name="erased"/> are none; <paramref name="kept"/> has rows in some.</summary>
    public static void AssertOnlyOf(IEnumerable<string> tables, string erased, string kept, Func<string, string> query)
    {
        var keptRows = 0L;
        foreach (var table in tables)
        {
            var rows = query($"SELECT count(*) FILTER (WHERE user_id = '{erased}'), count(*) FILTER (WHERE user_id = '{kept}') FROM {table}").Trim().Split('|');
            Assert.True(rows[0] == "0", $"{table} still has {rows[0]} rows of {erased}");
            keptRows += long.Parse(rows[1], System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.True(keptRows > 0, $"nothing of {kept} was found: the check reads the wrong database");
    }

    public static string Run(string program, string[] arguments, string? password)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (password is not null)
        {
            start.Environment["PGPASSWORD"] = password;
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(30_000), $"{program} did not finish");
        Assert.True(process.ExitCode == 0, $"{program} failed: {error.Result}");
        return output.Result;
    }
}
