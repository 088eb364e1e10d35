using Audience.Silo.Contracts;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Audience.Silo.Tests;

public sealed class EventLogTests : IDisposable
{
    private static readonly TimeSpan Retention = TimeSpan.FromDays(1);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-log", Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    private EventLog Open(int partitions = 2) => new(_directory, partitions, Retention, _time, NullLogger<EventLog>.Instance);

    private UserEvent Event(string id, string user) => new(id, user, "page_view", _time.GetUtcNow(), null, null);

    private static List<(long Seq, string EventId)> ReadAll(EventLog log) =>
        [.. Enumerable.Range(0, log.Partitions).SelectMany(p =>
        {
            using var reader = log.OpenReader(p);
            return reader.Read(0, 1_000).Select(e => (e.Seq, e.Event!.EventId)).ToList();
        })];

    [Fact]
    public async Task Appends_are_durable_in_order_and_idempotent_on_event_id_across_a_reopen()
    {
        await using (var log = Open())
        {
            var first = await log.AppendAsync([.. Enumerable.Range(0, 6).Select(i => Event($"e{i}", $"u{i}"))]);
            var again = await log.AppendAsync([Event("e0", "u0"), Event("e9", "u9"), Event("e9", "u9")]);
            Assert.All(first, r => Assert.False(r.Duplicate));
            Assert.Equal([true, false, true], again.Select(r => r.Duplicate));
        }

        // A new process: what was acknowledged is there, in order per partition, and its ids are still known.
        await using var reopened = Open();
        var stored = ReadAll(reopened);
        Assert.Equal(["e0", "e1", "e2", "e3", "e4", "e5", "e9"], stored.Select(e => e.EventId).Order());
        Assert.Equal([true, false], (await reopened.AppendAsync([Event("e3", "u3"), Event("e10", "u1")])).Select(r => r.Duplicate));
    }

    [Fact]
    public async Task A_reader_resumes_after_any_sequence_number_and_sees_new_commits()
    {
        await using var log = Open(partitions: 1);
        await log.AppendAsync([Event("a", "u"), Event("b", "u"), Event("c", "u")]);
        using var reader = log.OpenReader(0);
        var all = reader.Read(0, 100);
        Assert.Equal(["a", "b", "c"], all.Select(e => e.Event!.EventId));
        Assert.True(all[0].Seq > 0 && all[0].Seq < all[1].Seq && all[1].Seq < all[2].Seq);

        Assert.Equal(["b", "c"], reader.Read(all[0].Seq, 100).Select(e => e.Event!.EventId));
        Assert.Equal(["c"], reader.Read(all[1].Seq, 1).Select(e => e.Event!.EventId));
        Assert.Empty(reader.Read(all[2].Seq, 100));
        await log.AppendAsync([Event("d", "u")]);
        Assert.Equal(["d"], reader.Read(all[2].Seq, 100).Select(e => e.Event!.EventId));
    }

    [Fact]
    public async Task Prune_cuts_what_is_past_the_retention_and_the_checkpoint_and_forgets_those_ids()
    {
        await using var log = Open(partitions: 1);
        await log.AppendAsync([Event("old1", "u"), Event("old2", "u")]);
        _time.Advance(TimeSpan.FromHours(2));
        await log.AppendAsync([Event("new1", "u")]);
        var seqs = ReadAll(log);

        var cutoff = _time.GetUtcNow().AddHours(-1).ToUnixTimeMilliseconds();
        // The reader has not passed the old events yet: nothing goes.
        Assert.Equal(0, log.Prune(cutoff, new Dictionary<int, long> { [0] = seqs[0].Seq }));
        Assert.Equal(3, ReadAll(log).Count);

        Assert.Equal(2, log.Prune(cutoff, new Dictionary<int, long> { [0] = seqs[2].Seq }));
        Assert.Equal(["new1"], ReadAll(log).Select(e => e.EventId));
        // Past the retention, an id may come again; within it, it is still a duplicate.
        Assert.Equal([false, true], (await log.AppendAsync([Event("old1", "u"), Event("new1", "u")])).Select(r => r.Duplicate));
    }

    [Fact]
    public async Task Events_of_an_earlier_layout_move_from_SQLite_into_the_log_once()
    {
        var database = new Database(_directory);
        using (var connection = database.Open())
        {
            Database.Execute(connection, """
                CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, partition INTEGER NOT NULL, user_id TEXT NOT NULL,
                    event_id TEXT NOT NULL UNIQUE, received_at INTEGER NOT NULL, payload BLOB NOT NULL);
                INSERT INTO events(partition, user_id, event_id, received_at, payload) VALUES
                    (0, 'u1', 'x1', 1000, CAST('{"eventId":"x1","userId":"u1","eventType":"page_view"}' AS BLOB)),
                    (0, 'u2', 'x2', 2000, CAST('{"eventId":"x2","userId":"u2","eventType":"purchase","properties":{"amount":5}}' AS BLOB));
                INSERT INTO partitions(partition, epoch, seq) VALUES (0, 3, 2);
                """);
        }

        await using (var log = Open(partitions: 1))
        {
            await database.ImportEventsAsync(log);
            await database.ImportEventsAsync(log);
            Assert.Equal(["x1", "x2"], ReadAll(log).Select(e => e.EventId));
        }

        using var check = database.Open();
        Assert.Equal(0, Database.Scalar(check, "SELECT count(*) FROM sqlite_master WHERE name = 'events'"));
        Assert.Equal(0, Database.Scalar(check, "SELECT count(*) FROM partitions"));
    }

    [Fact]
    public async Task A_failing_disk_faults_the_log_and_its_appends_fail_instead_of_waiting()
    {
        await using var log = new EventLog(_directory, 1, Retention, _time, NullLogger<EventLog>.Instance, new Audience.Testing.FailingDevice());
        Assert.Null(log.Fault);

        // The commit fails: the append waiting on it fails too (it does not hang), and the log says why.
        await Assert.ThrowsAsync<EventLogUnavailableException>(() => log.AppendAsync([Event("a", "u")]));
        await log.Faulted.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(log.Fault);

        // From then on appends fail at once, without waiting on a disk that cannot take them.
        var again = log.AppendAsync([Event("b", "u")]);
        Assert.True(again.IsCompleted);
        await Assert.ThrowsAsync<EventLogUnavailableException>(() => again);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS.
        }
    }
}
