using System.Net;
using System.Text.Json;

namespace Audience.Api.Tests.Kafka;

/// <summary>
/// An erasure in Kafka mode, the same for every profile store: the user's events, the erasure and an event after it
/// are all on <c>user-events</c> before a Silo reads them, so the Silo applies the event sent before the 202 after it.
/// </summary>
internal static class KafkaErasure
{
    public const string Erased = "kafka-erased";
    public const string Kept = "kafka-kept";

    /// <summary>
    /// Runs the flow with the Silo <paramref name="startSilo"/> starts, checks what the Api answers and what kcat reads on
    /// the topics, and returns the erasure's sequence number (its offset + 1) in its partition, for the store's own checks.
    /// </summary>
    public static async Task<long> RunAsync(MockKafka kafka, AudienceFactory api, Func<SiloProcess> startSilo)
    {
        var segmentId = await api.Http.CreateSegment(new { name = "erasure spenders", rule = "totalSpent > 20" });
        var campaign = await api.Http.PostJson("/api/campaigns", $$"""
            {"name": "erasure welcome", "segmentId": "{{segmentId}}", "type": "email", "trigger": "on_enter",
             "content": {"template": "welcome"}, "status": "active"}
            """);
        Assert.Equal(HttpStatusCode.Created, campaign.StatusCode);
        var campaignId = (await campaign.Json()).GetProperty("id").GetString()!;
        foreach (var user in new[] { Erased, Kept })
        {
            await api.Http.Send(user, "purchase", new { amount = 50 });
            await api.Http.Send(user, "identify", new { email = $"{user}@example.com" });
        }

        // No Silo reads yet: the 202 says the erasure is on user-events, after the user's events.
        using var deleted = await api.Http.DeleteAsync($"/api/users/{Erased}");
        Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        var erasureId = (await deleted.Json()).GetProperty("erasureId").GetString();
        await api.Http.Send(Erased, "purchase", new { amount = 7 });

        using var silo = startSilo();
        await Http.Eventually(async () => await Spent(api, Erased) == (1, 7), $"{Erased} has only the event after the erasure\n{silo.Log}", 90_000);
        await Http.Eventually(async () => await Spent(api, Kept) == (2, 50), $"{Kept} is applied\n{silo.Log}", 60_000);

        var erasure = Assert.Single(kafka.ReadWithHeaders("user-events"), m => m.Headers.GetValueOrDefault("message-type") == "erasure");
        Assert.Equal(Erased, erasure.Key);
        Assert.Equal(erasureId, JsonDocument.Parse(erasure.Value).RootElement.GetProperty("erasureId").GetString());

        // On user-segments (read by kcat): the user entered by the event before the erasure, then left, reason erased.
        List<JsonElement> changes = [];
        await Http.Eventually(() =>
        {
            changes = [.. kafka.Read("user-segments").Where(c => c.Key == Erased).Select(c => JsonDocument.Parse(c.Value).RootElement.Clone())];
            return Task.FromResult(changes.Count >= 2);
        }, "the erasure's removal is on user-segments", 30_000);
        Assert.Equal(["added/rule_evaluation", "removed/erased"], changes.Select(c => $"{c.GetProperty("action").GetString()}/{c.GetProperty("reason").GetString()}"));
        Assert.Equal($"{Erased}/{segmentId}/x{erasure.Offset + 1}", changes[1].GetProperty("metadata").GetProperty("changeId").GetString());

        var profile = await (await api.Http.GetAsync($"/api/users/{Erased}/profile")).Json();
        Assert.Empty(profile.GetProperty("traits").EnumerateObject());
        Assert.Empty(await api.Http.SegmentsOf(Erased));
        Assert.Empty((await (await api.Http.GetAsync($"/api/users/{Erased}/history")).Json()).GetProperty("changes").EnumerateArray());
        await Http.Eventually(async () =>
        {
            var members = (await (await api.Http.GetAsync($"/api/segments/{segmentId}/members")).Json()).GetProperty("members").EnumerateArray()
                .Select(m => m.GetProperty("userId").GetString()).ToList();
            return members.SequenceEqual([Kept]);
        }, "the member index has the kept user alone", 15_000);
        var notified = (await (await api.Http.GetAsync($"/api/campaigns/{campaignId}/notifications")).Json()).GetProperty("notifications").EnumerateArray()
            .Select(n => n.GetProperty("notification").GetProperty("userId").GetString());
        Assert.Equal([Kept], notified);
        return erasure.Offset + 1;
    }

    private static async Task<(long Count, decimal Spent)?> Spent(AudienceFactory api, string user)
    {
        var response = await api.Http.GetAsync($"/api/users/{user}/profile");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return null;
        }

        var json = await response.Json();
        return (json.GetProperty("eventCount").GetInt64(), json.GetProperty("totalSpent").GetDecimal());
    }
}
