using Audience.Silo.Contracts;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Audience.Api.Tests;

public sealed class EventLogTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-log", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Append_IsIdempotentOnEventId_AndPrune_KeepsWhatAPartitionStillNeeds()
    {
        var database = new Database(_directory);
        await using var log = new EventLog(database, 2, TimeProvider.System, NullLogger<EventLog>.Instance);
        var events = Enumerable.Range(0, 6).Select(i => new UserEvent($"e{i}", $"u{i}", "page_view", DateTimeOffset.UtcNow, null, null)).ToList();
        var first = await log.AppendAsync(events);
        var again = await log.AppendAsync([events[0], new UserEvent("e9", "u9", "x", DateTimeOffset.UtcNow, null, null)]);
        Assert.All(first, r => Assert.False(r.Duplicate));
        Assert.Equal([true, false], again.Select(r => r.Duplicate));

        var future = DateTimeOffset.UtcNow.AddDays(1).ToUnixTimeMilliseconds();
        using (var connection = database.Open())
        {
            Database.Execute(connection, "INSERT INTO partitions(partition, epoch, seq) VALUES (0, 1, 1000)");
        }

        Assert.Equal(0, log.Prune(future));
        using (var connection = database.Open())
        {
            Database.Execute(connection, "INSERT INTO partitions(partition, epoch, seq) VALUES (1, 1, 3)");
        }

        Assert.Equal(3, log.Prune(future));
        using var check = database.Open();
        Assert.Equal(4, EventLog.Read(check, 0, 0, 100).Count + EventLog.Read(check, 1, 0, 100).Count);
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
