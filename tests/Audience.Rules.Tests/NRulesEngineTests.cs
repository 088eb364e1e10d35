using Audience.Rules.Engines;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

/// <summary>The NRules engine against the compiled one: the same index, a profile for each, the same calls.</summary>
public class NRulesEngineTests
{
    private readonly RuleCatalog _catalog = new();
    private readonly SegmentIndex _index;
    private readonly NRulesSegmentEngine _nrules;
    private readonly UserProfile _compiledProfile;
    private readonly UserProfile _nrulesProfile;

    public NRulesEngineTests()
    {
        _index = new SegmentIndex(_catalog);
        _nrules = new NRulesSegmentEngine(_index);
        _compiledProfile = new UserProfile("u1", _catalog);
        _nrulesProfile = new UserProfile("u1", _catalog);
    }

    private void Add(string id, string rule, long version = 1) => _index.Upsert(id, Compile(rule, _catalog), version);

    /// <summary>Runs the same step on both engines and returns their changes, as (segment, entered, at, trigger).</summary>
    private (List<string> Compiled, List<string> NRules) Both(Action<ISegmentEngine, UserProfile, List<MembershipChange>> step)
    {
        var compiled = new List<MembershipChange>();
        var nrules = new List<MembershipChange>();
        step(_index, _compiledProfile, compiled);
        step(_nrules, _nrulesProfile, nrules);
        return (compiled.ConvertAll(Describe), nrules.ConvertAll(Describe));
    }

    private static string Describe(MembershipChange c) => $"{c.Segment.Id}@{c.Segment.Version} {(c.Entered ? "entered" : "left")} at {c.AtMs} by {c.Trigger}";

    private (List<string> Compiled, List<string> NRules) Send(RuleEvent e, long at) =>
        Both((engine, profile, changes) => engine.Evaluate(profile, e.Type, profile.Apply(e, at), at, changes));

    private void AssertSameMemberships() =>
        Assert.Equal(_compiledProfile.Memberships.ToArray(), _nrulesProfile.Memberships.ToArray());

    [Fact]
    public void Evaluate_AfterRebuild_DecidesWithNRulesAndAgreesWithTheCompiledEngine()
    {
        Add("vip", "totalSpent > 1000");
        Add("vip-de", "inSegment(\"vip\") and traits.country == \"DE\"");
        Add("not-vip", "not (inSegment(\"vip\"))");
        Add("buyer", "count(purchase within 7d) >= 2 and avg(purchase.amount within 7d) > 100");
        Assert.True(_nrules.Rebuild());
        Assert.Equal(4, _nrules.RuleCount);

        var (compiled, nrules) = Send(Event("identify", Now, ("country", "DE")), Now);
        Assert.Equal(compiled, nrules);
        Assert.Equal(["not-vip@1 entered at " + Now + " by Event"], nrules);

        (compiled, nrules) = Send(Event("purchase", Now, ("amount", 600)), Now);
        Assert.Equal(compiled, nrules);
        (compiled, nrules) = Send(Event("purchase", Now + Minute, ("amount", 600)), Now + Minute);
        Assert.Equal(compiled, nrules);
        Assert.Equal(4, nrules.Count);
        AssertSameMemberships();
        Assert.Equal(0, _nrules.CompiledFallbacks);
    }

    [Fact]
    public void A_segment_created_before_the_rule_set_is_rebuilt_is_in_force_at_once()
    {
        Add("spender", "totalSpent > 100");
        _nrules.Rebuild();
        Add("whale", "totalSpent > 1000");
        Assert.False(_nrules.IsCurrent);

        // The backfill of the new segment and the next event: the set in use does not hold it, its compiled delegate decides.
        Send(Event("purchase", Now, ("amount", 5000)), Now);
        var (compiled, nrules) = Both((engine, profile, changes) => engine.EvaluateSegment(profile, "whale", Now, changes));
        Assert.Equal(compiled, nrules);
        Assert.True(_nrulesProfile.IsMember(_catalog.SegmentSlot("whale")));
        Assert.True(_nrules.CompiledFallbacks > 0);

        var fallbacks = _nrules.CompiledFallbacks;
        Assert.True(_nrules.Rebuild());
        Assert.True(_nrules.IsCurrent);
        (compiled, nrules) = Send(Event("purchase", Now, ("amount", -4500)), Now);
        Assert.Equal(compiled, nrules);
        Assert.Equal(["whale@1 left at " + Now + " by Event"], nrules);
        Assert.Equal(fallbacks, _nrules.CompiledFallbacks);
    }

    [Fact]
    public void An_edited_segment_is_evaluated_in_its_new_version_before_the_rebuild()
    {
        Add("spender", "totalSpent > 100");
        _nrules.Rebuild();
        Send(Event("purchase", Now, ("amount", 500)), Now);
        Add("spender", "totalSpent > 1000", version: 2);

        var (compiled, nrules) = Both((engine, profile, changes) => engine.EvaluateSegment(profile, "spender", Now, changes));
        Assert.Equal(compiled, nrules);
        Assert.Equal(["spender@2 left at " + Now + " by SegmentChanged"], nrules);
    }

    [Fact]
    public void Time_based_exits_are_the_same_on_both_engines()
    {
        Add("buyer", "count(purchase within 7d) >= 1");
        Add("inactive", "lastSeen before 3d ago");
        Add("recent-buyer", "inSegment(\"buyer\") and lastSeen within 2d");
        _nrules.Rebuild();
        Send(Event("purchase", Now, ("amount", 5)), Now);

        var now = Now;
        while (_index.NextTimer(_compiledProfile, now) is { } due && due < Now + (30 * Day))
        {
            Assert.Equal(due, _index.NextTimer(_nrulesProfile, now));
            now = due;
            var (compiled, nrules) = Both((engine, profile, changes) => engine.EvaluateTimeDependent(profile, due, changes));
            Assert.Equal(compiled, nrules);
        }

        AssertSameMemberships();
        Assert.Equal([_catalog.SegmentSlot("inactive")], _nrulesProfile.Memberships.Keys);
    }

    [Fact]
    public void Rebuild_IsANoOpWhenTheSetIsCurrent()
    {
        Assert.False(_nrules.Rebuild());
        Add("a", "eventCount > 1");
        Assert.True(_nrules.Rebuild());
        Assert.False(_nrules.Rebuild());
        Assert.True(_index.Remove("a"));
        Assert.True(_nrules.Rebuild());
        Assert.Equal(0, _nrules.RuleCount);
    }
}
