using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Audience.Api.Tests;

/// <summary>
/// <c>POST /api/segments/preview</c>: its counts agree with what saving the rule then does, and it changes nothing.
/// Each test's users carry a trait of their own (<c>traits.batch</c>) so that its rules count only them.
/// </summary>
public sealed class PreviewTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    private readonly HttpClient _http = factory.Http;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private async Task<JsonElement> PreviewOk(object body)
    {
        var response = await _http.PostAsJsonAsync("/api/segments/preview", body);
        var json = await response.Json();
        Assert.True(response.StatusCode == HttpStatusCode.OK, json.ToString());
        return json;
    }

    /// <summary>Previews until <paramref name="done"/> holds: the profile store is written a moment after the grains apply the events.</summary>
    private async Task<JsonElement> PreviewUntil(object body, Func<JsonElement, bool> done, string what)
    {
        JsonElement preview = default;
        await Http.Eventually(async () => done(preview = await PreviewOk(body)), what);
        return preview;
    }

    private async Task<string[]> Members(string segmentId) =>
        [.. (await (await _http.GetAsync($"/api/segments/{segmentId}/members?limit=1000")).Json()).GetProperty("members").EnumerateArray()
            .Select(m => m.GetProperty("userId").GetString()!)];

    private async Task WaitActive(string segmentId) =>
        await Http.Eventually(async () => (await (await _http.GetAsync($"/api/segments/{segmentId}")).Json()).GetProperty("status").GetString() == "active",
            $"{segmentId} is backfilled");

    private async Task Identify(string user, string batch, int purchases, int amount = 10)
    {
        await _http.Send(user, "identify", new { batch });
        for (var i = 0; i < purchases; i++)
        {
            await _http.Send(user, "purchase", new { amount }, DateTimeOffset.UtcNow.AddHours(-i - 1));
        }
    }

    private async Task WaitApplied(IEnumerable<(string User, long Events)> users)
    {
        foreach (var (user, events) in users)
        {
            await Http.Eventually(async () => await _http.EventCountOf(user) == events, $"{user}'s events are applied");
        }
    }

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    [Fact]
    public async Task Preview_NewRuleWithAnAggregateNoProfileHolds_MatchesTheMembersTheSavedSegmentGets()
    {
        var batch = Unique("pv-new");
        var buyers = Enumerable.Range(0, 25).Select(i => $"{batch}-m{i:00}").ToList();
        var others = Enumerable.Range(0, 5).Select(i => $"{batch}-n{i}").ToList();
        foreach (var user in buyers)
        {
            await Identify(user, batch, purchases: 2);
        }

        foreach (var user in others)
        {
            await Identify(user, batch, purchases: 1);
        }

        await WaitApplied([.. buyers.Select(u => (u, 3L)), .. others.Select(u => (u, 2L))]);
        // No segment reads purchases over 5 days: no stored profile holds that window, so the preview reads the archive.
        var rule = $"traits.batch == \"{batch}\" and count(purchase within 5d) >= 2";

        var preview = await PreviewUntil(new { rule }, p => p.GetProperty("matching").GetInt64() == buyers.Count, "the preview sees every buyer");

        Assert.True(preview.GetProperty("complete").GetBoolean());
        Assert.InRange(preview.GetProperty("examined").GetInt64(), buyers.Count + others.Count, long.MaxValue);
        Assert.Equal(buyers.Order(StringComparer.Ordinal).Take(20), Strings(preview.GetProperty("sample")));
        Assert.Equal(["count(purchase within 5d)"], Strings(preview.GetProperty("filledFromArchive").GetProperty("aggregates")));
        Assert.InRange(preview.GetProperty("filledFromArchive").GetProperty("profiles").GetInt64(), buyers.Count + others.Count, long.MaxValue);
        Assert.False(preview.TryGetProperty("wouldEnter", out _));

        var segmentId = await _http.CreateSegment(new { name = "previewed", rule });
        await WaitActive(segmentId);
        await Http.Eventually(async () => (await Members(segmentId)).Length == preview.GetProperty("matching").GetInt64(), "the members are those the preview counted");
        Assert.Equal(Strings(preview.GetProperty("sample")), (await Members(segmentId)).Take(20));
    }

    [Fact]
    public async Task Preview_DraftForAnExistingSegment_WouldEnterAndLeaveAsTheUpdateThenDoes()
    {
        var batch = Unique("pv-edit");
        var users = Enumerable.Range(0, 6).Select(i => $"{batch}-u{i}").ToList();
        for (var i = 0; i < users.Count; i++)
        {
            await Identify(users[i], batch, purchases: 1, amount: 50 + (100 * i)); // 50, 150, ... 550
        }

        await WaitApplied(users.Select(u => (u, 2L)));
        var segmentId = await _http.CreateSegment(new { name = "over 200", rule = $"traits.batch == \"{batch}\" and totalSpent > 200" });
        await WaitActive(segmentId);
        await Http.Eventually(async () => (await Members(segmentId)).SequenceEqual(users[2..]), "u2 to u5 are members");
        var before = await Members(segmentId);
        var draft = $"traits.batch == \"{batch}\" and (totalSpent > 400 or totalSpent < 100)";

        var preview = await PreviewUntil(new { rule = draft, segmentId }, p => p.GetProperty("wouldEnter").GetInt64() == 1,
            "the preview reads the stored profiles");

        Assert.Equal(segmentId, preview.GetProperty("segmentId").GetString());
        Assert.Equal(3, preview.GetProperty("matching").GetInt64());
        Assert.Equal(2, preview.GetProperty("wouldLeave").GetInt64());
        Assert.Equal(HttpStatusCode.OK, (await _http.PutJson($"/api/segments/{segmentId}", JsonSerializer.Serialize(new { name = "edited", rule = draft }))).StatusCode);
        await WaitActive(segmentId);
        await Http.Eventually(async () => (await Members(segmentId)).Length == preview.GetProperty("matching").GetInt64(), "the update is applied");
        var after = await Members(segmentId);
        Assert.Equal(preview.GetProperty("wouldEnter").GetInt64(), after.Except(before).Count());
        Assert.Equal(preview.GetProperty("wouldLeave").GetInt64(), before.Except(after).Count());
        Assert.Equal(Strings(preview.GetProperty("sample")), after);
    }

    [Fact]
    public async Task Preview_ChangesNothing_NoSegmentNoChangeNoHistoryNoMembership()
    {
        var batch = Unique("pv-none");
        var user = $"{batch}-x";
        await Identify(user, batch, purchases: 1, amount: 150);
        await WaitApplied([(user, 2L)]);
        var spenders = await _http.CreateSegment(new { name = "spenders", rule = $"traits.batch == \"{batch}\" and totalSpent > 100" });
        var repeat = await _http.CreateSegment(new { name = "repeat buyers", rule = $"traits.batch == \"{batch}\" and orderCount >= 2" });
        await WaitActive(spenders);
        await WaitActive(repeat);
        await Http.Eventually(async () => (await Members(spenders)).SequenceEqual([user]), "the user is a member");
        async Task<string> Snapshot() => string.Join("\n",
            await (await _http.GetAsync("/api/segments")).Content.ReadAsStringAsync(),
            await (await _http.GetAsync($"/api/users/{user}/history")).Content.ReadAsStringAsync(),
            await (await _http.GetAsync($"/api/users/{user}/segments")).Content.ReadAsStringAsync(),
            string.Join(",", await Members(spenders)),
            string.Join(",", await Members(repeat)));
        var before = await Snapshot();
        using var stream = await _http.GetStreamAsync("/api/changes");
        using var reader = new StreamReader(stream);
        Assert.Equal(": subscribed", await reader.ReadLineAsync());

        var joining = await PreviewOk(new { rule = $"traits.batch == \"{batch}\" and count(purchase within 4d) >= 1" });
        var leaving = await PreviewOk(new { rule = $"traits.batch == \"{batch}\" and totalSpent > 1000", segmentId = spenders, timeoutMs = 5000 });

        Assert.Equal([user], Strings(joining.GetProperty("sample")));
        Assert.Equal(1, leaving.GetProperty("wouldLeave").GetInt64());
        Assert.Equal(before, await Snapshot());

        // The user's next change is the one its next order makes (entering repeat buyers): no preview left any before it.
        await _http.Send(user, "purchase", new { amount = 1 });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (true)
        {
            var line = await reader.ReadLineAsync(timeout.Token);
            if (line?.StartsWith("data: ", StringComparison.Ordinal) == true && line.Contains($"\"userId\":\"{user}\"", StringComparison.Ordinal))
            {
                var change = JsonDocument.Parse(line[6..]).RootElement;
                Assert.Equal((repeat, "added"), (change.GetProperty("segmentId").GetString(), change.GetProperty("action").GetString()));
                break;
            }
        }
    }

    [Theory]
    [InlineData("{\"rule\": \"totalSpend > 1000 and count(purchase within 100d) > 1\"}")]
    [InlineData("{\"rule\": \"(totalSpent > 1\"}")]
    [InlineData("{\"rules\": {\"conditions\": [{\"field\": \"totalSpent\", \"operator\": \"bigger\", \"value\": 1}]}}")]
    [InlineData("{\"rule\": \"inSegment(\\\"nope\\\") and traits.a contains 5\"}")]
    public async Task Preview_InvalidRule_Answers422WithTheDiagnosticsOfASave(string body)
    {
        var saved = await _http.PostJson("/api/segments", body.Insert(1, "\"name\": \"invalid\", "));
        var previewed = await _http.PostJson("/api/segments/preview", body);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, saved.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, previewed.StatusCode);
        var (save, preview) = (await saved.Json(), await previewed.Json());
        Assert.Equal(save.GetProperty("errors").ToString(), preview.GetProperty("errors").ToString());
        Assert.Equal(save.GetProperty("detail").GetString(), preview.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Preview_DraftMakingACycle_Answers422LikeTheUpdate()
    {
        var inner = await _http.CreateSegment(new { name = "inner", rule = "traits.tier == \"gold\"" });
        var outer = await _http.CreateSegment(new { name = "outer", rule = $"inSegment(\"{inner}\")" });
        var rule = $"inSegment(\"{outer}\")";

        var updated = await _http.PutJson($"/api/segments/{inner}", JsonSerializer.Serialize(new { name = "inner", rule }));
        var previewed = await _http.PostJson("/api/segments/preview", JsonSerializer.Serialize(new { rule, segmentId = inner }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, previewed.StatusCode);
        Assert.Equal((await updated.Json()).GetProperty("errors").ToString(), (await previewed.Json()).GetProperty("errors").ToString());
        Assert.Contains("cycle", (await previewed.Json()).GetProperty("errors")[0].GetProperty("code").GetString(), StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string?, HttpStatusCode, string> BadRequests => new()
    {
        { "/api/segments/preview", "{\"rule\": ", "application/json", HttpStatusCode.BadRequest, "not valid JSON" },
        { "/api/segments/preview", "[]", "application/json", HttpStatusCode.BadRequest, "A preview is a JSON object" },
        { "/api/segments/preview", "{}", "application/json", HttpStatusCode.BadRequest, "Give the rule once" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"rules\": {\"conditions\": []}}", "application/json", HttpStatusCode.BadRequest, "Give the rule once" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"id\": \"x\"}", "application/json", HttpStatusCode.BadRequest, "'segmentId'" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"segmentId\": 5}", "application/json", HttpStatusCode.BadRequest, "'segmentId' must be" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"timeoutMs\": 0}", "application/json", HttpStatusCode.BadRequest, "'timeoutMs' must be from 1 to 10000." },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"timeoutMs\": \"2s\"}", "application/json", HttpStatusCode.BadRequest, "whole number of milliseconds" },
        { "/api/segments/preview?timeoutMs=20000", "{\"rule\": \"totalSpent > 1\"}", "application/json", HttpStatusCode.BadRequest, "'timeoutMs' must be from 1 to 10000." },
        { "/api/segments/preview?timeoutMs=100", "{\"rule\": \"totalSpent > 1\", \"timeoutMs\": 100}", "application/json", HttpStatusCode.BadRequest, "Give 'timeoutMs' once" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\"}", "text/plain", HttpStatusCode.UnsupportedMediaType, "Unsupported Media Type" },
        { "/api/segments/preview", "{\"rule\": \"totalSpent > 1\", \"segmentId\": \"nope\"}", "application/json", HttpStatusCode.NotFound, "There is no segment with the id 'nope'." },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Preview_BadRequest_Gets4xxProblemDetails(string path, string body, string? contentType, HttpStatusCode status, string detail)
    {
        using var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = contentType is null ? null : new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);

        var response = await _http.PostAsync(path, content);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Preview_BodyOverTheLimit_Is413()
    {
        var response = await _http.PostJson("/api/segments/preview", $"{{\"rule\": \"totalSpent > 1\", \"description\": \"{new string('x', 1024 * 1024)}\"}}");

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }
}
