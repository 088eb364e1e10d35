using System.Net;
using System.Text.Json;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Audience.Api.Tests;

/// <summary>
/// The service on embedded defaults whose partition readers can be held (<see cref="ReadGate"/>): events and erasures
/// are then durable in the log and not applied, so a test decides what is applied after what.
/// </summary>
public sealed class GatedAudience : IDisposable
{
    public GatedAudience() => Factory = new AudienceFactory(new Dictionary<string, string>(), services =>
        services.AddSingleton<IPartitionSources>(sp => new GatedSources(new LogPartitionSources(sp.GetRequiredService<EventLog>()), Gate)));

    public ReadGate Gate { get; } = new();

    public AudienceFactory Factory { get; }

    public void Dispose()
    {
        Gate.Open();
        Factory.Dispose();
    }
}

/// <summary>Holds what the readers read while closed; they get it once it opens.</summary>
public sealed class ReadGate
{
    private volatile TaskCompletionSource _open = Opened();

    public void Close() => _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _open.TrySetResult();

    public Task WaitAsync(CancellationToken cancellationToken) => _open.Task.WaitAsync(cancellationToken);

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }
}

/// <summary>The embedded log's partitions, whose reads complete only while the gate is open (a read under way when it closes waits too).</summary>
internal sealed class GatedSources(IPartitionSources inner, ReadGate gate) : IPartitionSources
{
    public Task<int> CountAsync(CancellationToken cancellationToken) => inner.CountAsync(cancellationToken);

    public async Task<IPartitionSource> OpenAsync(int partition, long afterSeq, CancellationToken cancellationToken) =>
        new Source(await inner.OpenAsync(partition, afterSeq, cancellationToken), gate);

    private sealed class Source(IPartitionSource inner, ReadGate gate) : IPartitionSource
    {
        public string Topic => inner.Topic;

        public int Partition => inner.Partition;

        public async Task<IReadOnlyList<PartitionEntry>> ReadAsync(long afterSeq, int max, TimeSpan wait, CancellationToken cancellationToken)
        {
            var entries = await inner.ReadAsync(afterSeq, max, wait, cancellationToken);
            await gate.WaitAsync(cancellationToken);
            return entries;
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>
/// <c>DELETE /api/users/{userId}</c> in embedded mode: what is erased and announced, the order against the user's
/// events, validation, and a replay after a crash (Kafka mode: <c>Kafka/KafkaModeTests</c>).
/// </summary>
public sealed class ErasureTests(GatedAudience audience) : IClassFixture<GatedAudience>
{
    private readonly HttpClient _http = audience.Factory.Http;

    [Fact]
    public async Task Delete_UserInSegmentsWithANotification_ErasesEverything_AndAnnouncesEachMembershipRemovedAsErased()
    {
        var vip = await _http.CreateSegment(new { name = "erasure vip", rule = "totalSpent > 100" });
        var buyers = await _http.CreateSegment(new { name = "erasure buyers", rule = "orderCount >= 1" });
        var campaign = await CreateCampaign(vip);
        using var changes = await Changes.OpenAsync(_http);
        foreach (var user in new[] { "erase-me", "stay" })
        {
            await _http.Send(user, "purchase", new { amount = 500 });
            await _http.Send(user, "identify", new { email = $"{user}@example.com" });
        }

        foreach (var user in new[] { "erase-me", "stay" })
        {
            await Http.Eventually(async () => (await _http.SegmentsOf(user)).Intersect([vip, buyers]).Count() == 2, $"{user} is in both segments");
            await Http.Eventually(async () => (await Members(vip)).Contains(user), $"{user} is in vip's member index");
            await Http.Eventually(async () => (await Notified(campaign)).Contains(user), $"{user} is notified");
        }

        var memberships = await _http.SegmentsOf("erase-me");

        using var response = await _http.DeleteAsync("/api/users/erase-me");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Json();
        Assert.Equal("erase-me", accepted.GetProperty("userId").GetString());
        Assert.StartsWith("era_", accepted.GetProperty("erasureId").GetString(), StringComparison.Ordinal);
        await Http.Eventually(async () => (await _http.GetAsync("/api/users/erase-me/profile")).StatusCode == HttpStatusCode.NotFound, "the profile is gone");

        // Each membership left as a change, reason erased, on the live stream like any other change.
        var removed = await changes.WaitForAsync("erase-me", c => c.GetProperty("reason").GetString() == "erased", memberships.Length);
        Assert.Equal(memberships.Order(), removed.Select(c => c.GetProperty("segmentId").GetString()!).Order());
        Assert.All(removed, c =>
        {
            Assert.Equal("removed", c.GetProperty("action").GetString());
            Assert.Equal("erasure", c.GetProperty("metadata").GetProperty("trigger").GetString());
            Assert.Matches("^erase-me/[^/]+/x[0-9]+$", c.GetProperty("metadata").GetProperty("changeId").GetString());
        });

        // Nothing is left to read: profile, segments, history, explanations, members, notifications, stored rows.
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/users/erase-me/segments")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/segments/{vip}/explain/erase-me")).StatusCode);
        Assert.Empty((await (await _http.GetAsync("/api/users/erase-me/history")).Json()).GetProperty("changes").EnumerateArray());
        await Http.Eventually(async () => !(await Members(vip)).Contains("erase-me") && !(await Members(buyers)).Contains("erase-me"), "the member index has no erase-me");
        Assert.Contains("stay", await Members(vip));
        Assert.Equal(["stay"], await Notified(campaign));
        var store = audience.Factory.Services.GetRequiredService<IProfileStore>();
        Assert.Null(await store.ReadAsync("erase-me"));
        Assert.Empty(await store.HistoryAsync("erase-me", 0, 100));
        Assert.Empty(await store.ArchiveAsync("erase-me", long.MaxValue, 0));
        Assert.NotNull(await store.ReadAsync("stay"));
        Assert.True((await (await _http.GetAsync("/api/users/stay/history")).Json()).GetProperty("changes").GetArrayLength() >= 2);

        var metrics = await _http.GetStringAsync("/metrics");
        Assert.True(Series(metrics, "audience_users_erased_total") >= 1, metrics);
        Assert.True(Series(metrics, "audience_membership_changes_total", "action=\"removed\"", "reason=\"erased\"") >= memberships.Length, metrics);

        // The same id again is a new user: its events build a profile from nothing, with nothing of the one erased.
        await _http.Send("erase-me", "purchase", new { amount = 5 });
        await Http.Eventually(async () => await _http.EventCountOf("erase-me") == 1, "the new events build a new profile");
        var profile = await (await _http.GetAsync("/api/users/erase-me/profile")).Json();
        Assert.Equal(5, profile.GetProperty("totalSpent").GetDecimal());
        Assert.Empty(profile.GetProperty("traits").EnumerateObject());
        Assert.Equal([buyers], await _http.SegmentsOf("erase-me"));
        Assert.Single((await (await _http.GetAsync("/api/users/erase-me/history")).Json()).GetProperty("changes").EnumerateArray());
    }

    [Fact]
    public async Task Delete_WithTheUsersEventsBeforeAndAfterItNotYetApplied_AppliesThemInOrder_SoNothingBeforeItSurvives()
    {
        var spenders = await _http.CreateSegment(new { name = "erasure spenders", rule = "totalSpent > 100" });
        using var changes = await Changes.OpenAsync(_http);
        await _http.Send("ordered", "purchase", new { amount = 200 });
        await Http.Eventually(async () => (await _http.SegmentsOf("ordered")).Contains(spenders), "ordered is a spender");

        // Held: an event sent before the erasure, the erasure, and an event after it are durable and not applied yet.
        audience.Gate.Close();
        try
        {
            await _http.Send("ordered", "purchase", new { amount = 300 });
            using var deleted = await _http.DeleteAsync("/api/users/ordered");
            Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
            await _http.Send("ordered", "purchase", new { amount = 7 });
            var held = await (await _http.GetAsync("/api/users/ordered/profile")).Json();
            Assert.Equal((1L, 200m), (held.GetProperty("eventCount").GetInt64(), held.GetProperty("totalSpent").GetDecimal()));
        }
        finally
        {
            audience.Gate.Open();
        }

        // The 300 was applied and then erased with the rest; only what came after the erasure makes the new profile.
        await Http.Eventually(async () => await Spent("ordered") == (1, 7), "the profile holds only the event after the erasure");
        Assert.DoesNotContain(spenders, await _http.SegmentsOf("ordered"));
        Assert.DoesNotContain((await (await _http.GetAsync("/api/users/ordered/history")).Json()).GetProperty("changes").EnumerateArray(),
            c => c.GetProperty("segmentId").GetString() == spenders);
        await changes.WaitForAsync("ordered", c => c.GetProperty("segmentId").GetString() == spenders && c.GetProperty("reason").GetString() == "erased", 1);
        Assert.Equal(
            ["added/rule_evaluation", "removed/erased"],
            changes.Seen("ordered").Where(c => c.GetProperty("segmentId").GetString() == spenders)
                .Select(c => $"{c.GetProperty("action").GetString()}/{c.GetProperty("reason").GetString()}"));
        await Http.Eventually(async () => !(await Members(spenders)).Contains("ordered"), "ordered is not a member");
    }

    [Fact]
    public async Task Delete_UnknownUser_Is202_AndRepeating_Is202()
    {
        using var first = await _http.DeleteAsync("/api/users/never-seen");
        using var second = await _http.DeleteAsync("/api/users/never-seen");

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.NotEqual((await first.Json()).GetProperty("erasureId").GetString(), (await second.Json()).GetProperty("erasureId").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/users/never-seen/profile")).StatusCode);
    }

    [Theory]
    [InlineData("%20%20")]
    [InlineData("a%09b")]
    public async Task Delete_UserIdNoEventCouldCarry_Is400ProblemDetails(string userId)
    {
        using var response = await _http.DeleteAsync($"/api/users/{userId}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("userId", (await response.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Delete_UserIdLongerThanAnEventsUserId_Is400()
    {
        using var response = await _http.DeleteAsync($"/api/users/{new string('x', 257)}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("1 to 256", (await response.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private async Task<string> CreateCampaign(string segmentId)
    {
        var created = await _http.PostJson("/api/campaigns", $$"""
            {"name": "erasure welcome", "segmentId": "{{segmentId}}", "type": "email", "trigger": "on_enter",
             "content": {"template": "welcome"}, "status": "active"}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = (await created.Json()).GetProperty("id").GetString()!;
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/campaigns/{id}")).Json()).GetProperty("live").GetBoolean(), "the campaign is live");
        return id;
    }

    /// <summary>The sum of a Prometheus series' samples whose labels include every one of <paramref name="labels"/>.</summary>
    private static double Series(string metrics, string name, params string[] labels)
    {
        var sum = 0.0;
        foreach (var line in metrics.Split('\n'))
        {
            // "name{labels} value [timestamp]" or "name value [timestamp]"
            var end = line.StartsWith(name + "{", StringComparison.Ordinal) ? line.IndexOf('}', StringComparison.Ordinal) + 1
                : line.StartsWith(name + " ", StringComparison.Ordinal) ? name.Length : -1;
            if (end > 0 && labels.All(label => line[..end].Contains(label, StringComparison.Ordinal)))
            {
                sum += double.Parse(line[end..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    private async Task<List<string>> Members(string segmentId) =>
        [.. (await (await _http.GetAsync($"/api/segments/{segmentId}/members?limit=1000")).Json()).GetProperty("members").EnumerateArray()
            .Select(m => m.GetProperty("userId").GetString()!)];

    private async Task<List<string>> Notified(string campaignId) =>
        [.. (await (await _http.GetAsync($"/api/campaigns/{campaignId}/notifications")).Json()).GetProperty("notifications").EnumerateArray()
            .Select(n => n.GetProperty("notification").GetProperty("userId").GetString()!).Order()];

    private async Task<(long, decimal)?> Spent(string user)
    {
        var response = await _http.GetAsync($"/api/users/{user}/profile");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return null;
        }

        var profile = await response.Json();
        return (profile.GetProperty("eventCount").GetInt64(), profile.GetProperty("totalSpent").GetDecimal());
    }
}

/// <summary>A live <c>/api/changes</c> subscription, read in the background.</summary>
internal sealed class Changes : IDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<JsonElement> _seen = [];
    private readonly Task _reading;

    private Changes(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reading = Task.Run(async () =>
        {
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    lock (_seen)
                    {
                        _seen.Add(JsonDocument.Parse(line[6..]).RootElement.Clone());
                    }
                }
            }
        });
    }

    public static async Task<Changes> OpenAsync(HttpClient http)
    {
        var response = await http.GetAsync("/api/changes", HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(": subscribed", await reader.ReadLineAsync());
        return new Changes(response, reader);
    }

    /// <summary>The user's changes seen so far, in the order the stream sent them.</summary>
    public List<JsonElement> Seen(string userId)
    {
        lock (_seen)
        {
            return [.. _seen.Where(c => c.GetProperty("userId").GetString() == userId)];
        }
    }

    public async Task<List<JsonElement>> WaitForAsync(string userId, Func<JsonElement, bool> match, int count)
    {
        List<JsonElement> found = [];
        await Http.Eventually(() =>
        {
            found = [.. Seen(userId).Where(match)];
            return Task.FromResult(found.Count >= count);
        }, $"{count} such changes of {userId} are streamed");
        return found;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _response.Dispose();
        try
        {
            _reading.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The stream was cut under the reader.
        }

        _stop.Dispose();
    }
}

/// <summary>An erasure and a crash: the service killed right after the 202, then started again on the same data directory.</summary>
public sealed class ErasureReplayTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), "audience-erasure", Guid.NewGuid().ToString("N"));

    public ErasureReplayTests() => Directory.CreateDirectory(_data);

    [Fact]
    public async Task Delete_ThenKilledAndRestartedOnTheSameData_TheReplayDoesNotBringTheUserBack()
    {
        var service = await ServiceProcess.StartAsync(_data);
        var segmentId = await service.Http.CreateSegment(new { name = "replay buyers", rule = "orderCount >= 1" });
        // Another user of the same partition, whose events before and after the erasure show how far the partition was read.
        var neighbour = Enumerable.Range(0, 1_000).Select(i => $"neighbour-{i}")
            .First(u => Audience.Silo.Contracts.EventValues.PartitionOf(u, 4) == Audience.Silo.Contracts.EventValues.PartitionOf("replayed", 4));
        for (var i = 1; i <= 20; i++)
        {
            await service.Http.Send("replayed", "purchase", new { amount = i });
            await service.Http.Send(neighbour, "purchase", new { amount = 1 });
        }

        await Http.Eventually(async () => await service.Http.EventCountOf("replayed") == 20, "the user's events are applied");
        using (var deleted = await service.Http.DeleteAsync("/api/users/replayed"))
        {
            Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        }

        // Killed at once: the erasure may or may not be applied yet; it is in the log either way.
        service.Kill();
        service.Dispose();

        using var restarted = await ServiceProcess.StartAsync(_data);
        await restarted.Http.Send(neighbour, "purchase", new { amount = 1 });
        await Http.Eventually(async () => await restarted.Http.EventCountOf(neighbour) == 21, "the partition is read past the erasure", 60_000);
        Assert.Equal(HttpStatusCode.NotFound, (await restarted.Http.GetAsync("/api/users/replayed/profile")).StatusCode);
        Assert.Empty((await (await restarted.Http.GetAsync("/api/users/replayed/history")).Json()).GetProperty("changes").EnumerateArray());
        await Http.Eventually(async () =>
        {
            var members = (await (await restarted.Http.GetAsync($"/api/segments/{segmentId}/members")).Json()).GetProperty("members").EnumerateArray()
                .Select(m => m.GetProperty("userId").GetString()).ToList();
            Assert.DoesNotContain("replayed", members);
            return members.Contains(neighbour);
        }, "the member index has the neighbour and not the erased user");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by the OS; the temp folder is cleaned elsewhere.
        }
    }
}
