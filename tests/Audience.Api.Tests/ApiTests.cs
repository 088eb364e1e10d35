using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Audience.Api.Tests;

public sealed class ApiTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    private readonly HttpClient _http = factory.Http;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task DemoFlow_Seed004_VipUsersEnterTheSegment()
    {
        // Step 3 of seed 004, as written there, with the host and port changed.
        var created = await _http.PostJson("/api/segments", """
            {"name": "Demo VIP Users", "type": "DYNAMIC", "rules": {"conditions": [{"field": "totalSpent", "operator": "gt", "value": 1000}]}}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var segment = await created.Json();
        var segmentId = segment.GetProperty("id").GetString()!;
        Assert.Equal("totalSpent > 1000", segment.GetProperty("rule").GetString());
        Assert.Equal(1, segment.GetProperty("version").GetInt64());

        var prefix = Unique("demo-user");
        var amounts = new Dictionary<string, int>();
        var random = new Random(4);
        for (var i = 1; i <= 10; i++)
        {
            var amount = random.Next(500, 2500);
            amounts[$"{prefix}-{i}"] = amount;
            var response = await _http.PostJson("/api/events",
                $$$"""{"userId": "{{{prefix}}}-{{{i}}}", "eventType": "purchase", "properties": {"amount": {{{amount}}}, "category": "electronics"}}""");
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            Assert.StartsWith("evt_", (await response.Json()).GetProperty("eventId").GetString(), StringComparison.Ordinal);
        }

        Assert.Contains(amounts.Values, a => a > 1000);
        Assert.Contains(amounts.Values, a => a <= 1000);
        foreach (var (user, amount) in amounts)
        {
            await Http.Eventually(async () => (await _http.SegmentsOf(user)).Contains(segmentId) == amount > 1000, $"{user} ({amount}) is placed");
        }

        var vip = amounts.First(a => a.Value > 1000).Key;
        var segments = await (await _http.GetAsync($"/api/users/{vip}/segments")).Json();
        var entry = segments.GetProperty("segments").EnumerateArray().Single(s => s.GetProperty("segmentId").GetString() == segmentId);
        Assert.Equal("Demo VIP Users", entry.GetProperty("name").GetString());
        Assert.True(entry.TryGetProperty("since", out _));
    }

    [Theory]
    [InlineData("totalSpent > 1000")]
    [InlineData("totalSpent >= 1000 and orderCount >= 2")]
    [InlineData("count(purchase within 7d) >= 3")]
    [InlineData("sum(purchase.amount where category == \"electronics\" within 30d) > 500")]
    [InlineData("traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)")]
    [InlineData("count(any within 30d) == 0")]
    [InlineData("inSegment(\"vip\") or totalSpent > 5000")]
    public async Task RuleExamples_EndToEnd_PlaceUsersAsTheRuleSays(string rule)
    {
        if (rule.Contains("inSegment", StringComparison.Ordinal) && (await _http.GetAsync("/api/segments/vip")).StatusCode == HttpStatusCode.NotFound)
        {
            await _http.CreateSegment(new { id = "vip", name = "VIP", rule = "traits.tier == \"gold\"" });
        }

        var segmentId = await _http.CreateSegment(new { name = rule, rule });
        var yes = Unique("yes");
        var no = Unique("no");
        var now = DateTimeOffset.UtcNow;
        switch (rule)
        {
            case "totalSpent > 1000":
                await _http.Send(yes, "purchase", new { amount = 1200 });
                await _http.Send(no, "purchase", new { amount = 1000 });
                break;
            case "totalSpent >= 1000 and orderCount >= 2":
                await _http.Send(yes, "purchase", new { amount = 500 });
                await _http.Send(yes, "purchase", new { amount = 500 });
                await _http.Send(no, "purchase", new { amount = 5000 });
                break;
            case "count(purchase within 7d) >= 3":
                for (var i = 0; i < 3; i++)
                {
                    await _http.Send(yes, "purchase", new { amount = 1 }, now.AddDays(-i));
                    await _http.Send(no, "purchase", new { amount = 1 }, now.AddDays(-4 * i));
                }

                break;
            case "sum(purchase.amount where category == \"electronics\" within 30d) > 500":
                await _http.Send(yes, "purchase", new { amount = 300, category = "electronics" });
                await _http.Send(yes, "purchase", new { amount = 300, category = "electronics" });
                await _http.Send(no, "purchase", new { amount = 300, category = "electronics" });
                await _http.Send(no, "purchase", new { amount = 300, category = "books" });
                break;
            case "traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)":
                await _http.Send(yes, "identify", new { country = "AT" });
                await _http.Send(no, "identify", new { country = "FR" });
                break;
            case "count(any within 30d) == 0":
                await _http.Send(yes, "login", null, now.AddDays(-40));
                await _http.Send(no, "login", null, now.AddDays(-2));
                break;
            default:
                await _http.Send(yes, "identify", new { tier = "gold" });
                await _http.Send(no, "purchase", new { amount = 4000 });
                break;
        }

        await Http.Eventually(async () => (await _http.SegmentsOf(yes)).Contains(segmentId), $"{yes} enters '{rule}'");
        await Http.Eventually(async () => (await _http.GetAsync($"/api/users/{no}/profile")).IsSuccessStatusCode, $"{no} is processed");
        Assert.DoesNotContain(segmentId, await _http.SegmentsOf(no));
    }

    [Fact]
    public async Task SegmentCreatedAfterTheEvents_GetsItsMembers_IncludingWindowsFromHistory()
    {
        var buyer = Unique("late-buyer");
        var browser = Unique("late-browser");
        await _http.Send(buyer, "purchase", new { amount = 40, category = "toys" }, DateTimeOffset.UtcNow.AddDays(-2));
        await _http.Send(buyer, "purchase", new { amount = 60, category = "toys" }, DateTimeOffset.UtcNow.AddHours(-1));
        await _http.Send(browser, "page_view");
        await Http.Eventually(async () => (await _http.GetAsync($"/api/users/{browser}/profile")).IsSuccessStatusCode, "events processed");
        await Http.Eventually(async () => await _http.EventCountOf(buyer) == 2, "buyer processed");

        var segmentId = await _http.CreateSegment(new { name = "toy buyers", rule = "sum(purchase.amount where category == \"toys\" within 7d) >= 100 and count(purchase within 7d) == 2" });

        await Http.Eventually(async () => (await _http.SegmentsOf(buyer)).Contains(segmentId), "the buyer enters without a new event");
        Assert.DoesNotContain(segmentId, await _http.SegmentsOf(browser));
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/segments/{segmentId}")).Json()).GetProperty("status").GetString() == "active", "backfill completes");
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/segments/{segmentId}/size")).Json()).GetProperty("size").GetInt64() == 1, "size is 1");
        var members = await (await _http.GetAsync($"/api/segments/{segmentId}/members")).Json();
        Assert.Equal(buyer, members.GetProperty("members")[0].GetProperty("userId").GetString());
    }

    [Fact]
    public async Task TimePassing_MovesAUser_WithoutANewEvent()
    {
        var user = Unique("idle");
        var segmentId = await _http.CreateSegment(new { name = "inactive for a minute", rule = "lastSeen before 1m ago" });
        using var stream = await _http.GetStreamAsync($"/api/changes?segmentId={segmentId}");
        using var reader = new StreamReader(stream);
        Assert.Equal(": subscribed", await reader.ReadLineAsync());

        // Last seen 58 s ago: not inactive yet, and inactive about two seconds later, by the user's timer alone.
        await _http.Send(user, "login", null, DateTimeOffset.UtcNow.AddSeconds(-58));
        await Http.Eventually(async () => (await _http.GetAsync($"/api/users/{user}/profile")).IsSuccessStatusCode, "the login is applied");
        Assert.DoesNotContain(segmentId, await _http.SegmentsOf(user));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        string? data = null;
        while (data is null)
        {
            var line = await reader.ReadLineAsync(timeout.Token);
            if (line?.StartsWith("data: ", StringComparison.Ordinal) == true && line.Contains(user, StringComparison.Ordinal))
            {
                data = line[6..];
            }
        }

        var change = JsonDocument.Parse(data).RootElement;
        Assert.Equal("added", change.GetProperty("action").GetString());
        Assert.Equal("time", change.GetProperty("metadata").GetProperty("trigger").GetString());
        Assert.Contains(segmentId, await _http.SegmentsOf(user));
    }

    [Fact]
    public async Task RepeatedEventId_IsAcceptedOnce_AndHasEffectOnce()
    {
        var user = Unique("dup");
        var eventId = Unique("evt");
        var body = $$$"""{"eventId": "{{{eventId}}}", "userId": "{{{user}}}", "eventType": "purchase", "properties": {"amount": 10}}""";
        var first = await (await _http.PostJson("/api/events", body)).Json();
        var second = await (await _http.PostJson("/api/events", body)).Json();
        Assert.Equal("accepted", first.GetProperty("status").GetString());
        Assert.Equal("duplicate", second.GetProperty("status").GetString());
        await _http.Send(user, "page_view");
        await Http.Eventually(async () => await _http.EventCountOf(user) == 2, "both events");
        var profile = await (await _http.GetAsync($"/api/users/{user}/profile")).Json();
        Assert.Equal(10m, profile.GetProperty("totalSpent").GetDecimal());
    }

    [Fact]
    public async Task Batch_ReportsEachItem()
    {
        var user = Unique("batch");
        var response = await _http.PostJson("/api/events/batch", $$$"""
            [{"userId": "{{{user}}}", "eventType": "purchase", "properties": {"amount": 5}},
             {"eventType": "purchase"},
             {"userId": "{{{user}}}", "eventType": "identify", "properties": {"plan": "pro"}}]
            """);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await response.Json();
        Assert.Equal((2, 1), (body.GetProperty("accepted").GetInt32(), body.GetProperty("rejected").GetInt32()));
        Assert.Equal("'userId' is required.", body.GetProperty("results")[1].GetProperty("error").GetString());
        await Http.Eventually(async () => (await _http.GetAsync($"/api/users/{user}/profile")).IsSuccessStatusCode
            && (await (await _http.GetAsync($"/api/users/{user}/profile")).Json()).GetProperty("traits").TryGetProperty("plan", out _), "batch applied");
    }

    [Fact]
    public async Task Explain_ShowsTheTreeWithValues()
    {
        var user = Unique("explain");
        var segmentId = await _http.CreateSegment(new { name = "explained", rule = "totalSpent > 1000 and count(purchase within 7d) >= 3" });
        await _http.Send(user, "purchase", new { amount = 700 });
        await _http.Send(user, "purchase", new { amount = 700 });
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/users/{user}/profile")).Json()) is { ValueKind: JsonValueKind.Object } p
            && p.TryGetProperty("eventCount", out var c) && c.GetInt64() == 2, "events applied");

        var explained = await (await _http.GetAsync($"/api/segments/{segmentId}/explain/{user}")).Json();
        Assert.False(explained.GetProperty("member").GetBoolean());
        var tree = explained.GetProperty("explanation");
        Assert.False(tree.GetProperty("result").GetBoolean());
        Assert.Equal("1400", tree.GetProperty("children")[0].GetProperty("value").GetString());
        Assert.True(tree.GetProperty("children")[0].GetProperty("result").GetBoolean());
        Assert.Equal("2", tree.GetProperty("children")[1].GetProperty("value").GetString());
    }

    [Fact]
    public async Task Update_AndDelete_MoveMembersAndKeepHistory()
    {
        var user = Unique("moves");
        var segmentId = await _http.CreateSegment(new { name = "spenders", rule = "totalSpent > 100" });
        await _http.Send(user, "purchase", new { amount = 150 });
        await Http.Eventually(async () => (await _http.SegmentsOf(user)).Contains(segmentId), "enters");

        var updated = await _http.PutJson($"/api/segments/{segmentId}", """{"name": "big spenders", "rule": "totalSpent > 200"}""");
        Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        Assert.Equal(2, (await updated.Json()).GetProperty("version").GetInt64());
        await Http.Eventually(async () => !(await _http.SegmentsOf(user)).Contains(segmentId), "leaves after the edit");

        await _http.PutJson($"/api/segments/{segmentId}", """{"name": "big spenders", "rule": "totalSpent > 50"}""");
        await Http.Eventually(async () => (await _http.SegmentsOf(user)).Contains(segmentId), "enters again");
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/api/segments/{segmentId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/segments/{segmentId}")).StatusCode);

        await Http.Eventually(async () =>
        {
            var history = await (await _http.GetAsync($"/api/users/{user}/history")).Json();
            return history.GetProperty("changes").EnumerateArray().Where(c => c.GetProperty("segmentId").GetString() == segmentId)
                .Select(c => c.GetProperty("action").GetString()).SequenceEqual(["added", "removed", "added", "removed"]);
        }, "history has every change");
    }

    [Fact]
    public async Task ChangesStream_DeliversMembershipChangesInSeedFormat()
    {
        var user = Unique("sse");
        var segmentId = await _http.CreateSegment(new { name = "streamed", rule = "orderCount >= 1" });
        using var stream = await _http.GetStreamAsync($"/api/changes?segmentId={segmentId}");
        using var reader = new StreamReader(stream);
        Assert.Equal(": subscribed", await reader.ReadLineAsync());
        await _http.Send(user, "purchase", new { amount = 1 });

        // Users of the other tests with orders enter the new segment too, by its backfill: this user's change is the one.
        string? data = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (data is null)
        {
            var line = await reader.ReadLineAsync(timeout.Token);
            if (line?.StartsWith("data: ", StringComparison.Ordinal) == true && line.Contains($"\"userId\":\"{user}\"", StringComparison.Ordinal))
            {
                data = line[6..];
            }
        }

        var change = JsonDocument.Parse(data).RootElement;
        Assert.Equal(user, change.GetProperty("userId").GetString());
        Assert.Equal(segmentId, change.GetProperty("segmentId").GetString());
        Assert.Equal("added", change.GetProperty("action").GetString());
        Assert.Equal("rule_evaluation", change.GetProperty("reason").GetString());
        Assert.True(change.GetProperty("metadata").GetProperty("evaluationLatency").GetDouble() >= 0);
    }

    [Fact]
    public async Task Health_And_OpenApi_AreServed()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/health/ready")).StatusCode);
        var openApi = await (await _http.GetAsync("/openapi/v1.json")).Json();
        Assert.True(openApi.GetProperty("paths").TryGetProperty("/api/events", out _));
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/swagger/index.html")).StatusCode);
    }

    [Fact]
    public async Task A_user_id_with_a_slash_is_queried_explained_and_erased_by_its_escaped_form()
    {
        Assert.Equal(HttpStatusCode.Created, (await _http.PostJson("/api/segments", """{"id": "slash-buyers", "name": "Slash", "rule": "traits.plan == \"slash\""}""")).StatusCode);
        await _http.Send("tenant/u1", "identify", new { plan = "slash" });
        await _http.Send("tenant%2Fu1", "identify", new { plan = "other" }); // a different user: its id holds "%2F" as text

        await Http.Eventually(async () => (await _http.SegmentsOf("tenant%2Fu1")).Contains("slash-buyers"), "tenant/u1 enters (asked as tenant%2Fu1)");
        var profile = await (await _http.GetAsync("/api/users/tenant%2Fu1/profile")).Json();
        Assert.Equal("tenant/u1", profile.GetProperty("userId").GetString());
        var literal = await (await _http.GetAsync("/api/users/tenant%252Fu1/profile")).Json();
        Assert.Equal("tenant%2Fu1", literal.GetProperty("userId").GetString());
        var explained = await (await _http.GetAsync("/api/segments/slash-buyers/explain/tenant%2Fu1")).Json();
        Assert.True(explained.GetProperty("member").GetBoolean());

        var erased = await _http.DeleteAsync("/api/users/tenant%2Fu1");
        Assert.Equal(HttpStatusCode.Accepted, erased.StatusCode);
        Assert.Equal("tenant/u1", (await erased.Json()).GetProperty("userId").GetString());
        await Http.Eventually(async () => (await _http.GetAsync("/api/users/tenant%2Fu1/profile")).StatusCode == HttpStatusCode.NotFound, "tenant/u1 is erased");
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/api/users/tenant%252Fu1/profile")).StatusCode); // the other one stays
    }
}
