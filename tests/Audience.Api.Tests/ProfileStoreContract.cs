using Audience.Api.Tests.Kafka;
using Audience.Silo.Storage;

namespace Audience.Api.Tests;

/// <summary>
/// What every profile store must do, run against each implementation: the embedded SQLite one and the
/// PostgreSQL one shared by several Silo processes.
/// </summary>
public abstract class ProfileStoreContract : IDisposable
{
    protected abstract IProfileStoreFactory Stores { get; }

    private static StoredProfile Profile(string user, long seq, long version, long? timer = null) =>
        new(user, seq, timer, [1, 2, (byte)seq], version);

    private static HistoryRow Change(string user, string segment, bool entered, long at) =>
        new(user, segment, entered, "rule_evaluation", at, 1.5, "e" + at);

    [Fact]
    public void A_saved_profile_loads_with_its_state_sequence_timer_and_next_version()
    {
        using var store = Stores.Open();
        Assert.Null(store.Load("u1"));
        store.Save(1, [(Profile("u1", 7, 0, timer: 1234), 10)], [], 7);
        var loaded = store.Load("u1")!;
        Assert.Equal((7L, 1234L, 1L), (loaded.LastSeq, loaded.NextTimer!.Value, loaded.Version));
        Assert.Equal([1, 2, 7], loaded.State);
        Assert.Equal(7, store.LoadCheckpoint(1));
        Assert.Equal(0, store.LoadCheckpoint(2));

        store.Save(1, [(Profile("u1", 9, 1), 11)], [], 9);
        Assert.Equal((9L, null, 2L), (store.Load("u1")!.LastSeq, store.Load("u1")!.NextTimer, store.Load("u1")!.Version));
    }

    [Fact]
    public void Several_profiles_load_at_once_and_absent_ones_are_left_out()
    {
        using var store = Stores.Open();
        store.Save(0, [(Profile("x", 3, 0), 1), (Profile("y", 4, 0), 1)], [], 4);
        var loaded = store.LoadMany(["x", "y", "nobody"]);
        Assert.Equal(["x", "y"], loaded.Keys.Order());
        Assert.Equal((4L, 1L), (loaded["y"].LastSeq, loaded["y"].Version));
        Assert.Empty(store.LoadMany([]));
    }

    [Fact]
    public void Completed_backfills_are_recorded_per_partition_and_forgotten_on_deletion()
    {
        using var store = Stores.Open();
        Assert.Empty(store.BackfilledVersions(1));
        store.MarkBackfilled(1, [("a", 1), ("b", 3)]);
        store.MarkBackfilled(2, [("a", 1)]);
        store.MarkBackfilled(1, [("a", 2), ("b", null)]);
        Assert.Equal([("a", 2L)], store.BackfilledVersions(1).Select(p => (p.Key, p.Value)));
        Assert.Equal([("a", 1L)], store.BackfilledVersions(2).Select(p => (p.Key, p.Value)));
    }

    [Fact]
    public void A_stale_writer_gets_a_conflict_and_writes_nothing_of_its_batch()
    {
        using var store = Stores.Open();
        store.Save(0, [(Profile("a", 1, 0), 1), (Profile("b", 1, 0), 1)], [], 1);
        store.Save(0, [(Profile("a", 2, 1), 2)], [], 2); // the new owner moved "a" to version 2

        // The old owner still holds version 1 of "a", and a change for "b".
        var stale = () => store.Save(0, [(Profile("b", 5, 1), 3), (Profile("a", 5, 1), 3)], [Change("b", "s", true, 3)], 5);
        Assert.Throws<ProfileConflictException>(stale);
        Assert.Equal((1L, 1L), (store.Load("b")!.LastSeq, store.Load("b")!.Version));
        Assert.Equal(2, store.Load("a")!.LastSeq);
        Assert.Empty(store.History("b", 0, 10));
        Assert.Equal(0, store.CountMembers("s"));
        Assert.Equal(2, store.LoadCheckpoint(0));

        // Creating a profile someone else created in the meantime is a conflict too.
        Assert.Throws<ProfileConflictException>(() => store.Save(0, [(Profile("a", 6, 0), 4)], [], 6));
    }

    [Fact]
    public void History_keeps_every_change_and_memberships_the_last_one()
    {
        using var store = Stores.Open();
        store.Save(0, [(Profile("u", 1, 0), 1)], [Change("u", "s1", true, 1), Change("u", "s2", true, 1), Change("u", "s2", false, 2), Change("v", "s1", true, 3)], 1);
        var history = store.History("u", 0, 10);
        Assert.Equal(["s1:added", "s2:added", "s2:removed"], history.Select(h => $"{h.SegmentId}:{h.Action}"));
        Assert.Equal("e1", history[0].EventId);
        Assert.Equal(1.5, history[0].LatencyMs);
        Assert.Equal([history[2]], store.History("u", history[1].Id, 10));
        Assert.Equal(2, store.CountMembers("s1"));
        Assert.Equal(0, store.CountMembers("s2"));

        store.Save(0, [], [Change("u", "s1", false, 4)], 2);
        Assert.Equal(["v"], store.Members("s1", "", 10).Select(m => m.UserId));
    }

    [Fact]
    public void Users_members_and_due_timers_page_in_byte_order_within_a_partition()
    {
        using var store = Stores.Open();
        var users = new[] { "b", "B", "a", "é", "a-1", "z" };
        store.Save(3, [.. users.Select((u, i) => (Profile(u, 1, 0, timer: 100 + i), 1L))], [.. users.Select(u => Change(u, "s", true, 1))], 1);
        store.Save(4, [(Profile("other", 1, 0, timer: 50), 1)], [], 1);
        string[] ordered = ["B", "a", "a-1", "b", "z", "é"];
        Assert.Equal(ordered[..3], store.Users(3, "", 3));
        Assert.Equal(ordered[3..], store.Users(3, "a-1", 3));
        Assert.Equal(6, store.CountUsers(3));
        Assert.Equal(ordered[2..4], store.Members("s", "a", 2).Select(m => m.UserId));
        Assert.Equal(["b", "B", "a"], store.DueTimers(3, 102, 10));
        Assert.Equal(["other"], store.DueTimers(4, 1000, 10));
    }

    public abstract void Dispose();
}

public sealed class EmbeddedProfileStoreTests : ProfileStoreContract
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-tests", Guid.NewGuid().ToString("N"));

    public EmbeddedProfileStoreTests() => Stores = new EmbeddedProfileStoreFactory(new Database(_directory));

    protected override IProfileStoreFactory Stores { get; }

    public override void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
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
        Stores = new PostgresProfileStoreFactory(_postgres);
    }

    protected override IProfileStoreFactory Stores { get; }

    [Fact]
    public async Task Processes_that_start_at_once_migrate_the_schema_once()
    {
        using var fresh = new TestDatabase();
        var databases = Enumerable.Range(0, 4).Select(_ => new PostgresDatabase(fresh.ConnectionString)).ToList();
        await Task.WhenAll(databases.Select(d => Task.Run(d.Migrate)));
        Assert.Equal(PostgresDatabase.SchemaVersion, fresh.Scalar("SELECT count(*) FROM schema_version"));
        databases.ForEach(d => d.Dispose());
    }

    public override void Dispose()
    {
        _postgres.Dispose();
        _database.Dispose();
    }
}
