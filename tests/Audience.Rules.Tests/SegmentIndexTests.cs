using Audience.Rules.Checking;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class SegmentIndexTests
{
    private readonly RuleCatalog _catalog = new();
    private readonly SegmentIndex _index;

    public SegmentIndexTests() => _index = new SegmentIndex(_catalog);

    private void Add(string id, string rule) => _index.Upsert(id, Compile(rule, _catalog));

    private static EventEffects Effects(ProfileFields fields, params string[] traits) => new(fields, traits);

    private string[] AffectedIds(string eventType, EventEffects effects) => [.. _index.Affected(eventType, effects).Select(s => s.Id).Order()];

    [Fact]
    public void Affected_IsOnlyTheSegmentsThatReadWhatChanged()
    {
        Add("spender", "totalSpent > 1000");
        Add("buyer", "count(purchase within 7d) >= 3");
        Add("browser", "count(page_view within 1d) > 10");
        Add("german", "traits.country == \"DE\"");
        Add("anyone", "count(any within 30d) == 0");
        Add("active", "lastSeen within 7d");

        var always = ProfileFields.EventCount | ProfileFields.LastSeen;
        Assert.Equal(["active", "anyone", "buyer", "spender"],
            AffectedIds("purchase", Effects(always | ProfileFields.OrderCount | ProfileFields.TotalSpent)));
        Assert.Equal(["active", "anyone", "browser"], AffectedIds("page_view", Effects(always)));
        Assert.Equal(["active", "anyone", "german"], AffectedIds("identify", Effects(always, "country")));
        Assert.Equal(["active", "anyone"], AffectedIds("identify", Effects(always, "plan")));
    }

    [Fact]
    public void An_identify_names_only_the_traits_whose_value_changes()
    {
        var profile = new UserProfile("u1", _catalog);
        var first = profile.Apply(Event("identify", Now, ("country", "DE"), ("plan", "pro")), Now);
        Assert.Equal(["country", "plan"], first.Traits);

        var same = profile.Apply(Event("identify", Now, ("country", "DE"), ("plan", "pro")), Now);
        Assert.Empty(same.Traits);

        var moved = profile.Apply(Event("identify", Now, ("country", "FR"), ("plan", "pro")), Now);
        Assert.Equal(["country"], moved.Traits);
        Assert.Equal("FR", profile.Traits["country"].AsString);
    }

    [Fact]
    public void Affected_is_the_same_whether_computed_or_cached()
    {
        Add("german", "traits.country == \"DE\"");
        Add("pro", "traits.plan == \"pro\"");
        Add("spender", "totalSpent > 1000");
        for (var round = 0; round < 2; round++)
        {
            Assert.Equal(["german"], AffectedIds("identify", Effects(ProfileFields.None, "country")));
            Assert.Equal(["german", "pro"], AffectedIds("identify", Effects(ProfileFields.None, "country", "plan")));
            Assert.Equal(["german", "pro", "spender"], AffectedIds("identify", Effects(ProfileFields.TotalSpent, "plan", "country")));
            Assert.Empty(AffectedIds("identify", Effects(ProfileFields.None)));
        }
    }

    [Fact]
    public void Upsert_Replace_Remove_UpdateTheIndex()
    {
        Add("s", "count(purchase within 7d) >= 3");
        Assert.Equal(["s"], AffectedIds("purchase", Effects(ProfileFields.None)));

        Add("s", "count(refund within 7d) >= 1");
        Assert.Empty(AffectedIds("purchase", Effects(ProfileFields.None)));
        Assert.Equal(["s"], AffectedIds("refund", Effects(ProfileFields.None)));
        Assert.Single(_catalog.Aggregates);

        Assert.True(_index.Remove("s"));
        Assert.False(_index.Remove("s"));
        Assert.Empty(AffectedIds("refund", Effects(ProfileFields.None)));
        Assert.Empty(_catalog.Aggregates);
    }

    [Fact]
    public void Evaluate_EmitsEntriesAndExits()
    {
        Add("vip", "totalSpent > 1000");
        var profile = new UserProfile("u1", _catalog);
        var changes = new List<MembershipChange>();

        Apply(profile, Event("purchase", Now, ("amount", 600)), changes);
        Assert.Empty(changes);

        Apply(profile, Event("purchase", Now, ("amount", 600)), changes);
        var entered = Assert.Single(changes);
        Assert.Equal(("vip", true, EvaluationTrigger.Event), (entered.Segment.Id, entered.Entered, entered.Trigger));
        Assert.Equal(Now, profile.MemberSince(entered.Segment.Slot));

        changes.Clear();
        Apply(profile, Event("purchase", Now, ("amount", -300)), changes);
        Assert.False(Assert.Single(changes).Entered);
    }

    [Fact]
    public void Evaluate_CascadesToSegmentsThatReferToAFlippedOne()
    {
        Add("vip", "totalSpent > 1000");
        Add("vip-de", "inSegment(\"vip\") and traits.country == \"DE\"");
        Add("not-vip", "not (inSegment(\"vip\"))");
        Add("vip-de-active", "inSegment(\"vip-de\") and lastSeen within 1d");
        var profile = new UserProfile("u1", _catalog);
        var changes = new List<MembershipChange>();
        Apply(profile, Event("identify", Now, ("country", "DE")), changes);
        Assert.Equal([("not-vip", true)], changes.Select(c => (c.Segment.Id, c.Entered)));

        changes.Clear();
        Apply(profile, Event("purchase", Now, ("amount", 2000)), changes);
        Assert.Equal(
            [("vip", true, EvaluationTrigger.Event), ("vip-de", true, EvaluationTrigger.Cascade), ("not-vip", false, EvaluationTrigger.Cascade), ("vip-de-active", true, EvaluationTrigger.Cascade)],
            changes.Select(c => (c.Segment.Id, c.Entered, c.Trigger)).OrderBy(c => c.Item1 == "vip" ? 0 : c.Item1 == "vip-de" ? 1 : c.Item1 == "not-vip" ? 2 : 3));
        Assert.Equal("vip", changes[0].Segment.Id);
        Assert.True(changes.FindIndex(c => c.Segment.Id == "vip-de") < changes.FindIndex(c => c.Segment.Id == "vip-de-active"));
    }

    [Fact]
    public void Replacing_AReferencedSegment_KeepsDependentsAfterIt()
    {
        Add("base", "totalSpent > 10");
        Add("top", "inSegment(\"base\")");
        Add("base", "inSegment(\"mid\") or totalSpent > 10");
        Add("mid", "orderCount > 0");
        Add("base", "inSegment(\"mid\")");
        var profile = new UserProfile("u1", _catalog);
        var changes = new List<MembershipChange>();
        Apply(profile, Event("purchase", Now, ("amount", 1)), changes);
        Assert.Equal(["mid", "base", "top"], changes.Select(c => c.Segment.Id));
    }

    [Fact]
    public void Timers_FireWhenTheWindowSlides()
    {
        Add("buyer", "count(purchase within 7d) >= 1");
        Add("inactive", "lastSeen before 3d ago");
        Add("plain", "totalSpent > 0");
        var profile = new UserProfile("u1", _catalog);
        var changes = new List<MembershipChange>();
        Apply(profile, Event("purchase", Now, ("amount", 5)), changes);
        Assert.Equal(["buyer", "plain"], changes.Select(c => c.Segment.Id).Order());

        // The Silo's timer loop: wake at the next due instant, re-evaluate, ask again.
        var fired = FireTimers(profile, until: Now + (30 * Day));
        Assert.Equal(2, fired.Count);
        Assert.Equal(("inactive", true), (fired[0].Segment.Id, fired[0].Entered));
        Assert.Equal(Now + (3 * Day) + 1, fired[0].AtMs);
        Assert.Equal(("buyer", false), (fired[1].Segment.Id, fired[1].Entered));
        Assert.InRange(fired[1].AtMs, Now + (6 * Day), Now + (7 * Day));
        Assert.All(fired, c => Assert.Equal(EvaluationTrigger.Time, c.Trigger));
        Assert.Null(_index.NextTimer(profile, fired[1].AtMs));
    }

    private List<MembershipChange> FireTimers(UserProfile profile, long until)
    {
        var changes = new List<MembershipChange>();
        var now = Now;
        var wakeups = 0;
        while (_index.NextTimer(profile, now) is { } due && due <= until)
        {
            Assert.True(due > now);
            Assert.True(++wakeups < 20, "timers should not fire more than twice per change");
            now = due;
            _index.EvaluateTimeDependent(profile, now, changes);
        }

        return changes;
    }

    [Fact]
    public void EvaluateSegment_AppliesANewSegmentToAnExistingProfile()
    {
        var profile = new UserProfile("u1", _catalog);
        profile.Apply(Event("purchase", Now, ("amount", 5000)), Now);
        Add("whale", "totalSpent > 1000");
        var changes = new List<MembershipChange>();
        _index.EvaluateSegment(profile, "whale", Now, changes);
        Assert.Equal([("whale", true, EvaluationTrigger.SegmentChanged)], changes.Select(c => (c.Segment.Id, c.Entered, c.Trigger)));
    }

    private void Apply(UserProfile profile, RuleEvent e, List<MembershipChange> changes)
    {
        var effects = profile.Apply(e, Now);
        _index.Evaluate(profile, e.Type, effects, Now, changes);
    }
}
