using System.Net;
using System.Text.Json;

namespace Audience.Api.Tests;

public sealed class CampaignsApiTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    private readonly HttpClient _http = factory.Http;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private async Task<JsonElement> CreateCampaign(string json)
    {
        var response = await _http.PostJson("/api/campaigns", json);
        var body = await response.Json();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        var id = body.GetProperty("id").GetString()!;
        // The rules that fire campaigns are rebuilt in the background; the campaign says when it is live.
        if (body.GetProperty("status").GetString() == "active")
        {
            await Http.Eventually(async () => (await (await _http.GetAsync($"/api/campaigns/{id}")).Json()).GetProperty("live").GetBoolean(), $"{id} is live");
        }

        return body;
    }

    private async Task<JsonElement[]> Notifications(string campaignId)
    {
        var body = await (await _http.GetAsync($"/api/campaigns/{campaignId}/notifications?limit=1000")).Json();
        return [.. body.GetProperty("notifications").EnumerateArray()];
    }

    private static string UserOf(JsonElement entry) => entry.GetProperty("notification").GetProperty("userId").GetString()!;

    [Fact]
    public async Task A_user_who_qualifies_is_notified_once_with_the_profile_in_the_personalization()
    {
        var segmentId = await _http.CreateSegment(new { name = "VIP", rule = "totalSpent > 1000" });
        var campaign = await CreateCampaign($$"""
            {"name": "VIP welcome", "segmentId": "{{segmentId}}", "type": "email", "trigger": "on_enter",
             "content": {"template": "welcome_high_value", "subject": "Welcome", "personalization": ["orderCount", "plan"]}, "status": "active"}
            """);
        var id = campaign.GetProperty("id").GetString()!;
        Assert.Equal(1, campaign.GetProperty("version").GetInt64());

        var vip = Unique("vip");
        var other = Unique("small");
        await _http.Send(vip, "identify", new { firstName = "Ada", plan = "gold" });
        await _http.Send(vip, "purchase", new { amount = 1500 }, eventId: vip + "-order");
        await _http.Send(other, "purchase", new { amount = 20 });
        await Http.Eventually(async () => (await Notifications(id)).Length == 1, "the VIP is notified");

        // The same event sent again, and more purchases: the user stays a member and is not notified again.
        await _http.Send(vip, "purchase", new { amount = 1500 }, eventId: vip + "-order");
        await _http.Send(vip, "purchase", new { amount = 10 });
        await Http.Eventually(async () => await _http.EventCountOf(vip) == 3, "every event is applied");
        await Http.Eventually(async () => await _http.EventCountOf(other) == 1, "the other user's event is applied");

        var entry = Assert.Single(await Notifications(id));
        Assert.Equal("sent", entry.GetProperty("status").GetString());
        var notification = entry.GetProperty("notification");
        Assert.Equal(vip, notification.GetProperty("userId").GetString());
        Assert.Equal(id, notification.GetProperty("campaignId").GetString());
        Assert.Equal("email", notification.GetProperty("type").GetString());
        Assert.Equal("welcome_high_value", notification.GetProperty("template").GetString());
        Assert.Equal("Welcome", notification.GetProperty("subject").GetString());
        Assert.Equal("on_enter", notification.GetProperty("trigger").GetString());
        Assert.Equal(segmentId, notification.GetProperty("segmentId").GetString());
        Assert.StartsWith(id + "/", notification.GetProperty("notificationId").GetString(), StringComparison.Ordinal);
        var personalization = notification.GetProperty("personalization");
        Assert.Equal(1500m, personalization.GetProperty("totalSpent").GetDecimal());
        Assert.Equal("Ada", personalization.GetProperty("firstName").GetString());
        Assert.Equal(1, personalization.GetProperty("orderCount").GetInt64());
        Assert.Equal("gold", personalization.GetProperty("plan").GetString());
        Assert.True(notification.TryGetProperty("timestamp", out _));

        var stats = await (await _http.GetAsync($"/api/campaigns/{id}/stats")).Json();
        Assert.Equal(1, stats.GetProperty("sent").GetInt64());
        Assert.Equal(1, stats.GetProperty("sentByType").GetProperty("email").GetInt64());
        Assert.Equal(0, stats.GetProperty("capped").GetInt64());
        Assert.Equal(JsonValueKind.String, stats.GetProperty("lastSent").ValueKind);
    }

    [Fact]
    public async Task On_exit_fires_when_a_user_leaves_and_a_condition_narrows_who_is_notified()
    {
        var gold = Unique("gold");
        var segmentId = await _http.CreateSegment(new { name = "gold plan", rule = $"traits.plan == \"{gold}\"" });
        var exit = await CreateCampaign($$"""
            {"name": "win back", "segmentId": "{{segmentId}}", "type": "push", "trigger": "on_exit", "content": {"template": "come_back"}, "status": "active",
             "condition": "totalSpent > 100"}
            """);
        var id = exit.GetProperty("id").GetString()!;
        var spender = Unique("spender");
        var saver = Unique("saver");
        foreach (var user in new[] { spender, saver })
        {
            await _http.Send(user, "identify", new { plan = gold });
        }

        await _http.Send(spender, "purchase", new { amount = 500 });
        await Http.Eventually(async () => await _http.EventCountOf(spender) == 2, "the purchase is applied");
        Assert.Empty(await Notifications(id));

        foreach (var user in new[] { spender, saver })
        {
            await _http.Send(user, "identify", new { plan = "silver" });
        }

        await Http.Eventually(async () => (await Notifications(id)).Length == 1, "the spender who left is notified");
        await Http.Eventually(async () => !(await _http.SegmentsOf(saver)).Contains(segmentId), "the saver left too");
        Assert.Equal(spender, UserOf(Assert.Single(await Notifications(id))));
    }

    [Fact]
    public async Task Campaigns_fire_in_priority_order_and_caps_stop_what_exceeds_them()
    {
        // A plan of this test's own: users of the other tests do not enter the segment.
        var gold = Unique("gold");
        var segmentId = await _http.CreateSegment(new { name = "gold again", rule = $"traits.plan == \"{gold}\"" });
        var first = (await CreateCampaign($$"""
            {"name": "first", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "t1"}, "status": "active", "priority": 10,
             "caps": [{"count": 1, "period": "7d", "scope": "campaign"}]}
            """)).GetProperty("id").GetString()!;
        // Lower priority, and at most one notification of any campaign a day: the first campaign's send uses it up.
        var second = (await CreateCampaign($$"""
            {"name": "second", "segmentId": "{{segmentId}}", "type": "sms", "content": {"template": "t2"}, "status": "active", "priority": 1,
             "caps": [{"count": 1, "period": "24h", "scope": "global"}]}
            """)).GetProperty("id").GetString()!;

        var user = Unique("capped");
        await _http.Send(user, "identify", new { plan = gold });
        await Http.Eventually(async () => (await Notifications(first)).Length == 1 && (await Notifications(second)).Length == 1, "both campaigns fired");
        Assert.Equal("sent", Assert.Single(await Notifications(first)).GetProperty("status").GetString());
        Assert.Equal("capped", Assert.Single(await Notifications(second)).GetProperty("status").GetString());

        // Leaving and entering again is a new trigger, which the first campaign's own cap stops this week.
        await _http.Send(user, "identify", new { plan = "silver" });
        await _http.Send(user, "identify", new { plan = gold });
        await Http.Eventually(async () => (await Notifications(first)).Length == 2, "the first campaign fired again");
        Assert.Equal(["sent", "capped"], (await Notifications(first)).Select(n => n.GetProperty("status").GetString()));

        var stats = await (await _http.GetAsync($"/api/campaigns/{second}/stats")).Json();
        Assert.Equal(0, stats.GetProperty("sent").GetInt64());
        Assert.Equal(2, stats.GetProperty("capped").GetInt64());
        Assert.Equal(JsonValueKind.Null, stats.GetProperty("lastSent").ValueKind);
    }

    [Fact]
    public async Task Priority_decides_across_segments_entered_by_one_event()
    {
        var tag = Unique("tag");
        var first = await _http.CreateSegment(new { name = "a", rule = $"traits.tag == \"{tag}\"" });
        var second = await _http.CreateSegment(new { name = "b", rule = $"traits.tag == \"{tag}\" and traits.tier == \"x\"" });
        // The low-priority campaign is on the segment created first; a global cap of one a day lets only one through.
        var low = (await CreateCampaign($$"""
            {"name": "low", "segmentId": "{{first}}", "type": "sms", "content": {"template": "low"}, "status": "active", "priority": 1,
             "caps": [{"count": 1, "period": "24h", "scope": "global"}]}
            """)).GetProperty("id").GetString()!;
        var high = (await CreateCampaign($$"""
            {"name": "high", "segmentId": "{{second}}", "type": "email", "content": {"template": "high"}, "status": "active", "priority": 9,
             "caps": [{"count": 1, "period": "24h", "scope": "global"}]}
            """)).GetProperty("id").GetString()!;

        var user = Unique("both");
        await _http.Send(user, "identify", new { tag, tier = "x" });
        await Http.Eventually(async () => (await Notifications(low)).Length == 1 && (await Notifications(high)).Length == 1, "both campaigns matched");
        Assert.Equal("sent", Assert.Single(await Notifications(high)).GetProperty("status").GetString());
        Assert.Equal("capped", Assert.Single(await Notifications(low)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Draft_and_paused_campaigns_do_not_fire_and_an_update_makes_one_active()
    {
        // A plan of this test's own: users of the other tests, entering by the segment's backfill, would be notified too.
        var plan = Unique("plan");
        var segmentId = await _http.CreateSegment(new { name = "drafted", rule = $"traits.plan == \"{plan}\"" });
        var campaign = await CreateCampaign($$"""{"name": "later", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "t"} }""");
        var id = campaign.GetProperty("id").GetString()!;
        Assert.Equal("draft", campaign.GetProperty("status").GetString());
        Assert.False(campaign.GetProperty("live").GetBoolean());

        var early = Unique("early");
        await _http.Send(early, "identify", new { plan });
        await Http.Eventually(async () => (await _http.SegmentsOf(early)).Contains(segmentId), "the early user enters");

        var updated = await _http.PutJson($"/api/campaigns/{id}", $$"""{"name": "now", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "t"}, "status": "active"}""");
        Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        Assert.Equal(2, (await updated.Json()).GetProperty("version").GetInt64());
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/campaigns/{id}")).Json()).GetProperty("live").GetBoolean(), "live");

        var late = Unique("late");
        await _http.Send(late, "identify", new { plan });
        await Http.Eventually(async () => (await Notifications(id)).Length == 1, "the late user is notified");
        Assert.Equal(late, UserOf(Assert.Single(await Notifications(id))));

        var listed = await (await _http.GetAsync("/api/campaigns")).Json();
        Assert.Contains(listed.EnumerateArray(), c => c.GetProperty("id").GetString() == id && c.GetProperty("name").GetString() == "now");
    }

    [Fact]
    public async Task A_segment_a_campaign_uses_cannot_be_deleted_until_the_campaign_is()
    {
        var segmentId = await _http.CreateSegment(new { name = "in use", rule = "totalSpent > 10" });
        var id = (await CreateCampaign($$"""{"name": "uses it", "segmentId": "{{segmentId}}", "type": "sms", "content": {"template": "t"}, "status": "active"}"""))
            .GetProperty("id").GetString()!;

        var refused = await _http.DeleteAsync($"/api/segments/{segmentId}");
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains(id, (await refused.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync($"/api/segments/{segmentId}")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/api/campaigns/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/campaigns/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/api/segments/{segmentId}")).StatusCode);
    }

    [Fact]
    public async Task Bad_campaigns_get_a_clear_problem_and_nothing_is_stored()
    {
        var segmentId = await _http.CreateSegment(new { name = "target", rule = "totalSpent > 10" });
        var before = (await (await _http.GetAsync("/api/campaigns")).Json()).GetArrayLength();
        string Valid(string extra = "") => $$"""{"name": "n", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "t"}{{extra}}}""";

        var cases = new (string Body, HttpStatusCode Status, string Mentions)[]
        {
            ("[]", HttpStatusCode.BadRequest, "object"),
            ("""{"segmentId": "x", "type": "email", "content": {"template": "t"}}""", HttpStatusCode.BadRequest, "'name'"),
            (Valid(", \"colour\": \"red\""), HttpStatusCode.BadRequest, "'colour'"),
            ("""{"name": "n", "name": "m", "segmentId": "x", "type": "email", "content": {"template": "t"}}""", HttpStatusCode.BadRequest, "twice"),
            ($$"""{"name": "n", "segmentId": "{{segmentId}}", "type": "email"}""", HttpStatusCode.BadRequest, "'content'"),
            (Valid(", \"priority\": 1.5"), HttpStatusCode.BadRequest, "'priority'"),
            (Valid(", \"caps\": {}"), HttpStatusCode.BadRequest, "'caps'"),
            (Valid(", \"scheduledAt\": \"tomorrow\""), HttpStatusCode.BadRequest, "'scheduledAt'"),
            (Valid(", \"scheduledAt\": \"2026-12-01T09:00:00\""), HttpStatusCode.BadRequest, "offset"),
            ($$"""{"name": "n", "segmentId": "{{segmentId}}", "type": "fax", "content": {"template": "t"} }""", HttpStatusCode.UnprocessableEntity, "'type'"),
            ("""{"name": "n", "segmentId": "no-such-segment", "type": "email", "content": {"template": "t"}}""", HttpStatusCode.UnprocessableEntity, "no-such-segment"),
            (Valid(", \"status\": \"running\""), HttpStatusCode.UnprocessableEntity, "'status'"),
            (Valid(", \"trigger\": \"on_birthday\""), HttpStatusCode.UnprocessableEntity, "'trigger'"),
            (Valid(", \"trigger\": \"scheduled\""), HttpStatusCode.UnprocessableEntity, "scheduledAt"),
            (Valid(", \"caps\": [{\"count\": 0, \"period\": \"7d\"}]"), HttpStatusCode.UnprocessableEntity, "'count'"),
            (Valid(", \"caps\": [{\"count\": 1, \"period\": \"7 days\"}]"), HttpStatusCode.UnprocessableEntity, "'period'"),
            (Valid(", \"caps\": [{\"count\": 1, \"period\": \"7d\", \"scope\": \"everyone\"}]"), HttpStatusCode.UnprocessableEntity, "'scope'"),
            (Valid(", \"condition\": \"totalSpent >\""), HttpStatusCode.UnprocessableEntity, "line"),
            (Valid(", \"condition\": \"inSegment(\\\"nowhere\\\")\""), HttpStatusCode.UnprocessableEntity, "nowhere"),
            (Valid(", \"id\": \"has space\""), HttpStatusCode.UnprocessableEntity, "'id'"),
        };
        foreach (var (body, status, mentions) in cases)
        {
            var response = await _http.PostJson("/api/campaigns", body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{body}: {(int)response.StatusCode} {text}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains(mentions, text, StringComparison.Ordinal);
        }

        var condition = await (await _http.PostJson("/api/campaigns", Valid(", \"condition\": \"totalSpent >\""))).Json();
        var error = condition.GetProperty("errors")[0];
        Assert.Equal(1, error.GetProperty("line").GetInt32());
        Assert.True(error.GetProperty("column").GetInt32() > 1);

        var plain = await _http.PostAsync("/api/campaigns", new StringContent(Valid(), System.Text.Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, plain.StatusCode);
        Assert.Equal(before, (await (await _http.GetAsync("/api/campaigns")).Json()).GetArrayLength());

        var id = (await CreateCampaign(Valid(", \"id\": \"" + Unique("dup") + "\""))).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.Conflict, (await _http.PostJson("/api/campaigns", Valid($", \"id\": \"{id}\""))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.PutJson($"/api/campaigns/{id}", Valid($", \"id\": \"{id}\""))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.GetAsync($"/api/campaigns/{id}/notifications?limit=0")).StatusCode);
        Assert.Equal(1, (await (await _http.GetAsync($"/api/campaigns/{id}")).Json()).GetProperty("version").GetInt64());

        foreach (var path in new[] { "/api/campaigns/nope", "/api/campaigns/nope/notifications", "/api/campaigns/nope/stats", "/api/notifications?campaignId=nope" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync(path)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await _http.PutJson("/api/campaigns/nope", Valid())).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.DeleteAsync("/api/campaigns/nope")).StatusCode);
    }

    [Fact]
    public async Task A_scheduled_campaign_reaches_every_member_where_its_condition_holds_and_completes()
    {
        var plan = Unique("plan");
        var segmentId = await _http.CreateSegment(new { name = "scheduled", rule = $"traits.plan == \"{plan}\"" });
        var members = Enumerable.Range(0, 30).Select(i => Unique($"member{i}")).ToList();
        foreach (var (user, i) in members.Select((u, i) => (u, i)))
        {
            await _http.Send(user, "identify", new { plan, country = i % 3 == 0 ? "DE" : "FR" });
        }

        var outsider = Unique("outsider");
        await _http.Send(outsider, "identify", new { plan = "other", country = "DE" });
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/segments/{segmentId}/size")).Json()).GetProperty("size").GetInt64() == members.Count,
            "the members are in the membership index");

        var id = (await CreateCampaign($$"""
            {"name": "newsletter", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "news"}, "status": "active",
             "trigger": "scheduled", "scheduledAt": "{{DateTimeOffset.UtcNow.AddSeconds(-1):O}}", "condition": "traits.country == \"DE\""}
            """)).GetProperty("id").GetString()!;
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/campaigns/{id}")).Json()).GetProperty("status").GetString() == "completed",
            "the broadcast completes");

        var campaign = await (await _http.GetAsync($"/api/campaigns/{id}")).Json();
        Assert.Equal(members.Count, campaign.GetProperty("broadcast").GetProperty("processed").GetInt64());
        Assert.Equal(2, campaign.GetProperty("version").GetInt64());
        var notified = (await Notifications(id)).Select(UserOf).Order().ToList();
        Assert.Equal(members.Where((_, i) => i % 3 == 0).Order(), notified);
        var notification = (await Notifications(id))[0].GetProperty("notification");
        Assert.Equal("scheduled", notification.GetProperty("trigger").GetString());
        Assert.EndsWith("/scheduled/" + DateTimeOffset.Parse(campaign.GetProperty("scheduledAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds(),
            notification.GetProperty("notificationId").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_notifications_stream_delivers_each_notification_sent()
    {
        var segmentId = await _http.CreateSegment(new { name = "streamed", rule = "totalSpent > 10" });
        var id = (await CreateCampaign($$"""{"name": "live", "segmentId": "{{segmentId}}", "type": "push", "content": {"template": "t"}, "status": "active"}"""))
            .GetProperty("id").GetString()!;
        using var stream = await _http.GetStreamAsync($"/api/notifications?campaignId={id}");
        using var reader = new StreamReader(stream);
        var first = await reader.ReadLineAsync();
        Assert.True(first == ": subscribed", $"the stream starts with '{first}'");

        var user = Unique("streamed");
        await _http.Send(user, "purchase", new { amount = 50 });
        // Users of the other tests who buy enter the new segment too, by its backfill: this user's notification is the one.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        string? line;
        while ((line = await reader.ReadLineAsync(timeout.Token)) is not null
            && !(line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains($"\"userId\":\"{user}\"", StringComparison.Ordinal)))
        {
        }

        var notification = JsonDocument.Parse(line![6..]).RootElement;
        Assert.Equal(user, notification.GetProperty("userId").GetString());
        Assert.Equal(id, notification.GetProperty("campaignId").GetString());
    }
}
