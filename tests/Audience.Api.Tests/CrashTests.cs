using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Audience.Api.Tests;

public sealed class CrashTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), "audience-crash", Guid.NewGuid().ToString("N"));

    public CrashTests() => Directory.CreateDirectory(_data);

    [Fact]
    public async Task SigKillMidStream_LosesNothingAcknowledged_AndAppliesEachEventOnce()
    {
        const int Users = 40;
        const int Events = 3_000;
        const decimal Threshold = 2_000;
        var amounts = Enumerable.Range(0, Events).Select(i => (decimal)((i * 7919 % 97) + 1) + ((i % 4) * 0.25m)).ToArray();
        string UserOf(int i) => $"crash-user-{i % Users}";

        var service = await ServiceProcess.StartAsync(_data);
        var segmentId = await service.Http.CreateSegment(new { id = "big", name = "big spenders", rule = $"totalSpent > {Threshold}" });
        // A campaign on the segment: the replay after the crash must not notify anyone twice.
        var campaign = await service.Http.PostJson("/api/campaigns", """
            {"id": "welcome", "name": "welcome", "segmentId": "big", "type": "email", "content": {"template": "welcome"}, "status": "active"}
            """);
        Assert.Equal(HttpStatusCode.Created, campaign.StatusCode);
        await Http.Eventually(async () => (await (await service.Http.GetAsync("/api/campaigns/welcome")).Json()).GetProperty("live").GetBoolean(), "the campaign is live");

        // Eight clients send concurrently; the service is killed while they are still sending.
        var acknowledged = new ConcurrentDictionary<int, bool>();
        var next = -1;
        var killed = 0;
        async Task Client(ServiceProcess target)
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= Events || Volatile.Read(ref killed) == 1)
                {
                    return;
                }

                try
                {
                    var response = await target.Http.PostAsJsonAsync("/api/events", new { eventId = $"crash-{i}", userId = UserOf(i), eventType = "purchase", properties = new { amount = amounts[i] } });
                    if (response.StatusCode == HttpStatusCode.Accepted)
                    {
                        acknowledged[i] = true;
                    }
                }
                catch (HttpRequestException)
                {
                    return;
                }
                catch (TaskCanceledException)
                {
                    return;
                }
            }
        }

        var clients = Enumerable.Range(0, 8).Select(_ => Task.Run(() => Client(service))).ToArray();
        await Http.Eventually(() => Task.FromResult(acknowledged.Count >= 1_500), "1,500 events are acknowledged", 60_000);
        service.Kill();
        Volatile.Write(ref killed, 1);
        await Task.WhenAll(clients);
        service.Dispose();
        Assert.InRange(acknowledged.Count, 1_500, Events - 1);

        // Restart on the same data. Clients retry what was never acknowledged, with the same event ids.
        using var restarted = await ServiceProcess.StartAsync(_data);
        var retried = 0;
        for (var i = 0; i < Events; i++)
        {
            if (!acknowledged.ContainsKey(i))
            {
                var response = await restarted.Http.PostAsJsonAsync("/api/events", new { eventId = $"crash-{i}", userId = UserOf(i), eventType = "purchase", properties = new { amount = amounts[i] } });
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
                retried++;
            }
        }

        Assert.True(retried > 0);
        for (var u = 0; u < Users; u++)
        {
            var user = $"crash-user-{u}";
            var mine = Enumerable.Range(0, Events).Where(i => UserOf(i) == user).ToList();
            var expectedTotal = mine.Sum(i => amounts[i]);
            await Http.Eventually(async () =>
            {
                var response = await restarted.Http.GetAsync($"/api/users/{user}/profile");
                return response.IsSuccessStatusCode && (await response.Json()).GetProperty("eventCount").GetInt64() >= mine.Count;
            }, $"{user} has all {mine.Count} events", 60_000);

            var profile = await (await restarted.Http.GetAsync($"/api/users/{user}/profile")).Json();
            Assert.Equal(mine.Count, profile.GetProperty("eventCount").GetInt64());
            Assert.Equal(expectedTotal, profile.GetProperty("totalSpent").GetDecimal());

            // Every membership change is in the history, and the history ends where the membership is.
            var member = (await restarted.Http.SegmentsOf(user)).Contains(segmentId);
            Assert.Equal(expectedTotal > Threshold, member);
            var history = await (await restarted.Http.GetAsync($"/api/users/{user}/history")).Json();
            var actions = history.GetProperty("changes").EnumerateArray().Where(c => c.GetProperty("segmentId").GetString() == segmentId)
                .Select(c => c.GetProperty("action").GetString()).ToList();
            Assert.Equal(member ? ["added"] : [], actions);
        }

        // One notification per member: the events replayed from the checkpoint fired the campaign again, and recorded nothing twice.
        var members = new List<string>();
        for (var u = 0; u < Users; u++)
        {
            if ((await restarted.Http.SegmentsOf($"crash-user-{u}")).Contains(segmentId))
            {
                members.Add($"crash-user-{u}");
            }
        }

        var notified = (await (await restarted.Http.GetAsync("/api/campaigns/welcome/notifications?limit=1000")).Json()).GetProperty("notifications")
            .EnumerateArray().Select(n => n.GetProperty("notification").GetProperty("userId").GetString()!).ToList();
        Assert.NotEmpty(members);
        Assert.Equal(members.Order(), notified.Order());
    }

    [Fact]
    public async Task A_segment_saved_just_before_a_crash_gets_its_members_after_the_restart()
    {
        var service = await ServiceProcess.StartAsync(_data);
        await service.Http.Send("rich", "purchase", new { amount = 500 });
        await service.Http.Send("poor", "purchase", new { amount = 50 });
        await Http.Eventually(async () => (await service.Http.GetAsync("/api/users/poor/profile")).StatusCode == HttpStatusCode.OK, "the events are applied");
        await Task.Delay(300); // past the write-behind interval: both profiles are in the store
        service.Kill();
        service.Dispose();

        // What a crash right after saving a segment, before any worker started its backfill, leaves behind.
        using (var connection = new Audience.Silo.Storage.Database(_data).Open())
        {
            Audience.Silo.Storage.Database.Execute(connection,
                "INSERT INTO segments(id, name, description, type, rule, version, created_at, updated_at) VALUES ('late', 'Late', NULL, 'DYNAMIC', 'totalSpent > 100', 1, 0, 0)");
        }

        using var restarted = await ServiceProcess.StartAsync(_data);
        await Http.Eventually(async () => (await restarted.Http.SegmentsOf("rich")).Contains("late"), "the restarted Silo finishes the backfill");
        Assert.DoesNotContain("late", await restarted.Http.SegmentsOf("poor"));
        var history = await (await restarted.Http.GetAsync("/api/users/rich/history")).Json();
        Assert.Single(history.GetProperty("changes").EnumerateArray(), c => c.GetProperty("segmentId").GetString() == "late");
    }

    [Fact]
    public async Task A_scheduled_broadcast_to_10000_members_completes_exactly_once_across_a_SIGKILL()
    {
        const int Members = 10_000;
        var settings = new Dictionary<string, string> { ["Silo:CampaignRefreshInterval"] = "00:00:00.200" };
        var service = await ServiceProcess.StartAsync(_data, settings);
        var segmentId = await service.Http.CreateSegment(new { id = "everyone", name = "everyone", rule = "eventCount >= 1" });
        for (var batch = 0; batch < Members / 100; batch++)
        {
            var events = Enumerable.Range(batch * 100, 100).Select(i => new { userId = $"member-{i:D5}", eventType = "identify", properties = new { firstName = $"M{i}" } });
            var response = await service.Http.PostAsJsonAsync("/api/events/batch", events);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        await Http.Eventually(async () => (await (await service.Http.GetAsync($"/api/segments/{segmentId}/size")).Json()).GetProperty("size").GetInt64() == Members,
            "every member is in the membership index", 120_000);
        var created = await service.Http.PostJson("/api/campaigns", $$"""
            {"id": "broadcast", "name": "to everyone", "segmentId": "{{segmentId}}", "type": "push", "content": {"template": "hello"},
             "status": "active", "trigger": "scheduled", "scheduledAt": "{{DateTimeOffset.UtcNow.AddSeconds(-1):O}}"}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        // Killed once part of the members are notified.
        long sentAtKill = 0;
        await Http.Eventually(async () =>
        {
            sentAtKill = (await (await service.Http.GetAsync("/api/campaigns/broadcast/stats")).Json()).GetProperty("sent").GetInt64();
            return sentAtKill > 0;
        }, "the broadcast starts", 60_000);
        service.Kill();
        service.Dispose();
        Assert.InRange(sentAtKill, 1, Members - 1);

        using var restarted = await ServiceProcess.StartAsync(_data, settings);
        await Http.Eventually(async () => (await (await restarted.Http.GetAsync("/api/campaigns/broadcast")).Json()).GetProperty("status").GetString() == "completed",
            "the broadcast completes after the restart", 120_000);
        var campaign = await (await restarted.Http.GetAsync("/api/campaigns/broadcast")).Json();
        Assert.Equal(JsonValueKind.String, campaign.GetProperty("broadcast").GetProperty("completedAt").ValueKind);
        var stats = await (await restarted.Http.GetAsync("/api/campaigns/broadcast/stats")).Json();
        Assert.Equal(Members, stats.GetProperty("sent").GetInt64());
        Assert.Equal(0, stats.GetProperty("capped").GetInt64());

        // Each member once, with their own personalization.
        var users = new HashSet<string>();
        var after = 0L;
        while (true)
        {
            var page = await (await restarted.Http.GetAsync($"/api/campaigns/broadcast/notifications?after={after}&limit=1000")).Json();
            foreach (var entry in page.GetProperty("notifications").EnumerateArray())
            {
                var notification = entry.GetProperty("notification");
                var user = notification.GetProperty("userId").GetString()!;
                Assert.True(users.Add(user), $"{user} is notified twice");
                Assert.Equal("M" + int.Parse(user["member-".Length..], System.Globalization.CultureInfo.InvariantCulture), notification.GetProperty("personalization").GetProperty("firstName").GetString());
            }

            if (page.GetProperty("next").ValueKind == JsonValueKind.Null)
            {
                break;
            }

            after = page.GetProperty("next").GetInt64();
        }

        Assert.Equal(Members, users.Count);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean.
        }
    }
}
