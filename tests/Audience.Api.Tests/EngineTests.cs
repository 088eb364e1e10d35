using Audience.Rules.Engines;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Audience.Api.Tests;

/// <summary>The embedded service with <c>Rules:Engine=nrules</c> against the same service on the compiled engine.</summary>
public sealed class EngineTests
{
    private static readonly (string Id, string Rule)[] Segments =
    [
        ("spender", "totalSpent > 1000"),
        ("frequent", "count(purchase within 7d) >= 2"),
        ("german", "traits.country == \"DE\""),
        ("german-spender", "inSegment(\"spender\") and inSegment(\"german\")"),
        ("not-spender", "not (inSegment(\"spender\"))"),
    ];

    private static readonly string[] Users = ["u1", "u2", "u3", "u4", "u5", "u6"];

    [Fact]
    public async Task NRulesEngine_EndToEnd_GivesTheSameMembersAndHistoryAsTheCompiledEngine()
    {
        using var compiled = new AudienceFactory();
        using var nrules = new AudienceFactory(new Dictionary<string, string> { ["Rules:Engine"] = "nrules" });
        var engine = nrules.Services.GetRequiredService<NRulesSegmentEngine>();
        Assert.Null(compiled.Services.GetService<NRulesSegmentEngine>());
        AudienceFactory[] services = [compiled, nrules];

        // Events right after the segments are created: until the NRules set holds them, their compiled rules decide.
        foreach (var service in services)
        {
            foreach (var (id, rule) in Segments)
            {
                await service.Http.CreateSegment(new { id, name = id, rule });
            }

            await FirstEvents(service.Http);
        }

        await Http.Eventually(() => Task.FromResult(engine.IsCurrent && engine.RuleCount == Segments.Length), "the NRules set holds the segments", 60_000);
        await Processed(services, new() { ["u1"] = 2, ["u2"] = 2, ["u4"] = 1, ["u5"] = 2, ["u6"] = 1 });

        // With the set in: NRules decides every one of these.
        var fallbacks = engine.CompiledFallbacks;
        foreach (var service in services)
        {
            await MoreEvents(service.Http);
        }

        await Processed(services, new() { ["u1"] = 3, ["u2"] = 3, ["u3"] = 1, ["u4"] = 1, ["u5"] = 3, ["u6"] = 2 });
        Assert.Equal(fallbacks, engine.CompiledFallbacks);

        // A segment created after the events: its backfill places the users on both engines.
        foreach (var service in services)
        {
            await service.Http.CreateSegment(new { id = "late", name = "late", rule = "orderCount >= 2 and totalSpent > 500" });
            await Http.Eventually(async () => (await (await service.Http.GetAsync("/api/segments/late")).Json()).GetProperty("status").GetString() == "active",
                "the backfill of 'late' completes");
        }

        foreach (var user in Users)
        {
            var expected = (await compiled.Http.SegmentsOf(user)).Order().ToArray();
            Assert.Equal(expected, (await nrules.Http.SegmentsOf(user)).Order().ToArray());
            Assert.Equal(await History(compiled.Http, user), await History(nrules.Http, user));
        }

        Assert.Equal(["frequent", "german", "german-spender", "late", "spender"], (await nrules.Http.SegmentsOf("u1")).Order());
        Assert.Equal(["frequent", "german", "not-spender"], (await nrules.Http.SegmentsOf("u2")).Order());
        Assert.Contains("late", await nrules.Http.SegmentsOf("u5"));
    }

    [Theory]
    [InlineData(null, "compiled")]
    [InlineData("compiled", "compiled")]
    [InlineData("nrules", "nrules")]
    public void RulesEngine_KnownValue_IsTheEngine(string? value, string engine)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Rules:Engine"] = value }).Build();
        Assert.Equal(engine, AudienceMode.Read(configuration, siloProcess: false).Rules.Engine);
    }

    [Fact]
    public void RulesEngine_UnknownValue_StopsStartUpNamingTheKey()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Rules:Engine"] = "NRules" }).Build();
        var error = new StringWriter();
        Assert.Null(AudienceMode.ReadOrReport(configuration, siloProcess: false, error));
        Assert.Equal("Configuration key 'Rules:Engine' must be 'compiled' (the default: rules compiled to delegates) or 'nrules' (rules evaluated by NRules), not 'NRules'.",
            error.ToString().Trim());
    }

    private static async Task FirstEvents(HttpClient http)
    {
        await http.Send("u1", "purchase", new { amount = 600 });
        await http.Send("u1", "identify", new { country = "DE" });
        await http.Send("u2", "identify", new { country = "DE" });
        await http.Send("u2", "purchase", new { amount = 100 });
        await http.Send("u4", "page_view");
        await http.Send("u5", "identify", new { country = "FR" });
        await http.Send("u5", "purchase", new { amount = 700 });
        await http.Send("u6", "purchase", new { amount = 300 });
    }

    private static async Task MoreEvents(HttpClient http)
    {
        await http.Send("u1", "purchase", new { amount = 600 });
        await http.Send("u2", "purchase", new { amount = 50 });
        await http.Send("u3", "purchase", new { amount = 2000 });
        await http.Send("u5", "purchase", new { amount = 700 });
        await http.Send("u6", "purchase", new { amount = 300 });
    }

    private static async Task Processed(AudienceFactory[] services, Dictionary<string, long> eventCounts)
    {
        foreach (var service in services)
        {
            foreach (var (user, count) in eventCounts)
            {
                await Http.Eventually(async () => await service.Http.EventCountOf(user) == count, $"{user} has {count} events applied");
            }
        }
    }

    /// <summary>The user's membership changes, in order, without their times (the two services' clocks differ).</summary>
    private static async Task<string[]> History(HttpClient http, string user)
    {
        var history = await (await http.GetAsync($"/api/users/{user}/history")).Json();
        return [.. history.GetProperty("changes").EnumerateArray()
            .Select(c => $"{c.GetProperty("segmentId").GetString()} {c.GetProperty("action").GetString()} ({c.GetProperty("reason").GetString()})")];
    }
}
