using Audience.Rules.Evaluation;
using Audience.Rules.Profiles;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class EvaluationTests
{
    private readonly RuleCatalog _catalog = new();

    private UserProfile Profile(params RuleEvent[] events)
    {
        var profile = new UserProfile("u1", _catalog);
        foreach (var e in events)
        {
            profile.Apply(e, Math.Max(e.TimestampMs, Now - Day));
        }

        return profile;
    }

    /// <summary>Compiles first (so aggregates are tracked), then applies the events, then evaluates both ways.</summary>
    private bool Holds(string rule, params RuleEvent[] events) => Holds(rule, Now, events);

    private bool Holds(string rule, long at, params RuleEvent[] events)
    {
        using var compiled = Compile(rule, _catalog);
        var profile = Profile(events);
        var result = compiled.Evaluate(profile, at);
        Assert.Equal(RuleInterpreter.Evaluate(compiled.Rule, profile, at), result);
        return result;
    }

    private static RuleEvent Purchase(decimal amount, long at, string category = "books") =>
        Event("purchase", at, ("amount", amount), ("category", category));

    private static RuleEvent Identify(long at, params (string, object)[] traits) => Event("identify", at, traits);

    [Fact]
    public void BuiltinStats_FollowTheEvents()
    {
        var events = new[] { Purchase(600, Now - (3 * Day)), Purchase(500.5m, Now - Day), Event("page_view", Now - Hour) };
        var profile = Profile(events);
        Assert.Equal(3, profile.EventCount);
        Assert.Equal(1100.5m, profile.TotalSpent);
        Assert.Equal(2, profile.OrderCount);
        Assert.Equal(Now - (3 * Day), profile.FirstSeen);
        Assert.Equal(Now - Hour, profile.LastSeen);

        Assert.True(Holds("totalSpent > 1000", events));
        Assert.True(Holds("totalSpent >= 1000 and orderCount >= 2", events));
        Assert.False(Holds("totalSpent > 1100.5", events));
        Assert.True(Holds("eventCount == 3 and orderCount != 3", events));
    }

    [Fact]
    public void NumberComparisons_EveryOperator()
    {
        var e = Purchase(100, Now);
        Assert.True(Holds("totalSpent == 100", e));
        Assert.False(Holds("totalSpent != 100", e));
        Assert.True(Holds("totalSpent < 100.01", e));
        Assert.True(Holds("totalSpent <= 100", e));
        Assert.False(Holds("totalSpent > 100", e));
        Assert.True(Holds("totalSpent >= 100", e));
        Assert.True(Holds("totalSpent in [1, 100.00]", e));
        Assert.True(Holds("totalSpent not in [1, 2]", e));
    }

    [Fact]
    public void TraitComparisons_AreDynamicallyTyped()
    {
        var id = Identify(Now, ("country", "DE"), ("age", 41), ("vip", true), ("email", "anna@example.com"),
            ("tags", new[] { "beta", "newsletter" }), ("signup", "2024-01-15T10:00:00Z"));

        Assert.True(Holds("traits.country in [\"DE\", \"AT\", \"CH\"]", id));
        Assert.False(Holds("traits.country not in [\"DE\"]", id));
        Assert.True(Holds("traits.country == \"DE\" and traits.country != \"de\"", id));
        Assert.True(Holds("traits.age > 40 and traits.age <= 41", id));
        Assert.False(Holds("traits.age == \"41\"", id));
        Assert.True(Holds("traits.vip == true", id));
        Assert.True(Holds("traits.email endsWith \"@example.com\" and traits.email startsWith \"anna\"", id));
        Assert.True(Holds("traits.email contains \"@\"", id));
        Assert.True(Holds("traits.tags contains \"beta\"", id));
        Assert.False(Holds("traits.tags contains \"bet\"", id));
        Assert.True(Holds("traits.country > \"AA\"", id));
        Assert.True(Holds("traits.signup before 2024-02-01 and traits.signup == \"2024-01-15T10:00:00Z\"", id));
        Assert.True(Holds("traits.signup before 30d ago", id));
    }

    [Fact]
    public void MissingValues_FailComparisons_ButNotTheirNegations()
    {
        Assert.False(Holds("traits.country == \"DE\"", Event("page_view", Now)));
        Assert.True(Holds("traits.country != \"DE\"", Event("page_view", Now)));
        Assert.True(Holds("traits.country not in [\"DE\"]", Event("page_view", Now)));
        Assert.False(Holds("traits.country < \"ZZ\"", Event("page_view", Now)));
        Assert.False(Holds("traits.country exists", Event("page_view", Now)));
        Assert.True(Holds("not traits.country exists", Event("page_view", Now)));
        Assert.False(Holds("lastSeen within 7d"));
        Assert.False(Holds("min(purchase.amount within 7d) < 1000", Event("page_view", Now)));
    }

    [Fact]
    public void IdentifyWithNull_RemovesTheTrait()
    {
        Assert.False(Holds("traits.plan exists", Identify(Now - 2, ("plan", "pro")), Identify(Now - 1, ("plan", Value.Null))));
    }

    [Fact]
    public void TimeComparisons_LastSeenAndFirstSeen()
    {
        var events = new[] { Event("login", Now - (40 * Day)), Event("login", Now - (10 * Day)) };
        Assert.True(Holds("firstSeen before 30d ago", events));
        Assert.False(Holds("lastSeen within 7d", events));
        Assert.True(Holds("lastSeen within 14d", events));
        Assert.True(Holds("lastSeen before 7d ago", events));
        Assert.True(Holds("lastSeen after 2024-05-01 and firstSeen < 2024-05-01T00:00:00Z", events));
    }

    [Fact]
    public void Inactivity_CanBeWrittenTwoWays()
    {
        var old = Event("login", Now - (31 * Day));
        Assert.True(Holds("lastSeen before 30d ago", old));
        Assert.True(Holds("count(any within 30d) == 0", old));
        var recent = Event("login", Now - (29 * Day));
        Assert.False(Holds("lastSeen before 30d ago", recent));
        Assert.False(Holds("count(any within 30d) == 0", recent));
    }

    [Fact]
    public void WindowedAggregates_CountSumMinMaxAvg_WithFilters()
    {
        var events = new[]
        {
            Purchase(100, Now - (40 * Day), "electronics"),
            Purchase(300, Now - (20 * Day), "electronics"),
            Purchase(250, Now - (5 * Day), "electronics"),
            Purchase(50, Now - (2 * Day), "books"),
            Purchase(80, Now - (30 * Minute), "books"),
        };

        Assert.True(Holds("count(purchase within 7d) >= 3", events));
        Assert.False(Holds("count(purchase within 7d) >= 4", events));
        Assert.True(Holds("sum(purchase.amount where category == \"electronics\" within 30d) > 500", events));
        Assert.False(Holds("sum(purchase.amount where category == \"electronics\" within 30d) > 550", events));
        Assert.True(Holds("min(purchase.amount within 7d) == 50 and max(purchase.amount within 7d) == 250", events));
        Assert.True(Holds("avg(purchase.amount within 30d) == 170", events));
        Assert.True(Holds("count(purchase where category in [\"books\"] within 90d) == 2", events));
        Assert.True(Holds("count(any within 1h) == 1", events));
    }

    [Fact]
    public void Window_SlidesWithTime_WithoutNewEvents()
    {
        var events = new[] { Purchase(10, Now - (6 * Day)), Purchase(10, Now - (5 * Day)), Purchase(10, Now - Day) };
        Assert.True(Holds("count(purchase within 7d) >= 3", Now, events));
        Assert.False(Holds("count(purchase within 7d) >= 3", Now + (2 * Day), events));
    }

    [Fact]
    public void InSegment_ReadsTheMembership()
    {
        using var vip = Compile("inSegment(\"vip\") or totalSpent > 5000", _catalog);
        var profile = Profile(Purchase(10, Now));
        Assert.False(vip.Evaluate(profile, Now));
        profile.Enter(_catalog.SegmentSlot("vip"), Now);
        Assert.True(vip.Evaluate(profile, Now));
        Assert.True(RuleInterpreter.Evaluate(vip.Rule, profile, Now));
    }

    [Fact]
    public void NextChange_PointsAtTheNextWindowOrAgoBoundary()
    {
        using var rule = Compile("count(purchase within 7d) >= 1", _catalog);
        var profile = Profile(Purchase(10, Now - Day));
        var next = rule.NextChange(profile, Now);
        Assert.NotNull(next);
        Assert.True(rule.Evaluate(profile, next.Value - 1));
        Assert.False(rule.Evaluate(profile, next.Value));

        using var inactive = Compile("lastSeen before 30d ago", _catalog);
        var seen = Profile(Event("login", Now - Day));
        var flip = inactive.NextChange(seen, Now);
        Assert.Equal(Now - Day + (30 * Day), flip);
        Assert.False(inactive.Evaluate(seen, flip!.Value));
        Assert.True(inactive.Evaluate(seen, inactive.NextChange(seen, flip.Value)!.Value));

        using var timeless = Compile("totalSpent > 5", _catalog);
        Assert.False(timeless.IsTimeDependent);
        Assert.Null(timeless.NextChange(profile, Now));
    }

    [Fact]
    public void Explain_ShowsEachNodeWithTheValueItRead()
    {
        using var rule = Compile("totalSpent > 1000 and count(purchase within 7d) >= 3", _catalog);
        var profile = Profile(Purchase(600, Now - Day), Purchase(500, Now - Hour));
        var explanation = RuleInterpreter.Explain(rule.Rule, profile, Now);

        Assert.False(explanation.Result);
        Assert.Equal("totalSpent > 1000 and count(purchase within 7d) >= 3", explanation.Rule);
        Assert.Equal(2, explanation.Children.Count);
        Assert.Equal(("totalSpent > 1000", true, "1100"), (explanation.Children[0].Rule, explanation.Children[0].Result, explanation.Children[0].Actual));
        Assert.Equal(("count(purchase within 7d) >= 3", false, "2"), (explanation.Children[1].Rule, explanation.Children[1].Result, explanation.Children[1].Actual));
        Assert.Contains("2 event(s) in the window", explanation.Children[1].Note, StringComparison.Ordinal);
    }

    [Fact]
    public void SharedAggregate_IsStoredOnce()
    {
        using var a = Compile("count(purchase within 7d) >= 3", _catalog);
        using var b = Compile("count(purchase within 7d) >= 1 and totalSpent > 5", _catalog);
        using var c = Compile("sum(purchase.amount within 7d) > 5", _catalog);
        using var d = Compile("avg(purchase.amount within 7d) > 5", _catalog);
        Assert.Equal(2, _catalog.Aggregates.Count);
        Assert.Same(a.Aggregates[0], b.Aggregates[0]);
        Assert.Same(c.Aggregates[0], d.Aggregates[0]);
    }

    [Fact]
    public void DisposedRules_ReleaseTheirAggregates()
    {
        var a = Compile("count(purchase within 7d) >= 3", _catalog);
        var b = Compile("count(purchase within 7d) >= 1", _catalog);
        a.Dispose();
        Assert.Single(_catalog.Aggregates);
        b.Dispose();
        b.Dispose();
        Assert.Empty(_catalog.Aggregates);
    }

    [Fact]
    public void ReusedAggregateSlot_DoesNotInheritAnotherSpecsState()
    {
        var first = Compile("count(purchase within 7d) >= 1", _catalog);
        var profile = Profile(Purchase(10, Now));
        Assert.True(first.Evaluate(profile, Now));
        first.Dispose();

        using var second = Compile("count(refund within 7d) >= 1", _catalog);
        Assert.Equal(0, second.Aggregates[0].Slot);
        Assert.False(second.Evaluate(profile, Now));
    }

    [Fact]
    public void NewTrait_ReadByALaterRule_IsSeenByExistingProfiles()
    {
        var profile = Profile(Identify(Now, ("plan", "pro")));
        using var rule = Compile("traits.plan == \"pro\"", _catalog);
        Assert.True(rule.Evaluate(profile, Now));
    }
}

public class AggregateKeyTests
{
    [Fact]
    public void Key_StaysEqualAfterItsTextIsTaken()
    {
        var catalog = new RuleCatalog();
        using var first = Compile("count(purchase within 7d) >= 3", catalog);
        Assert.Equal("\"purchase\" within 604800000ms", first.Aggregates[0].Id);
        using var second = Compile("count(purchase within 7d) >= 1", catalog);
        Assert.Same(first.Aggregates[0], second.Aggregates[0]);
        Assert.Single(catalog.Aggregates);
    }
}
