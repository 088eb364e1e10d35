using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Engines;
using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Rules.Json;
using Audience.Rules.Model;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;
using FsCheck;
using FsCheck.Fluent;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class PropertyTests
{
    private static readonly Config Runs = Config.QuickThrowOnFailure.WithMaxTest(400).WithEndSize(40);

    [Fact]
    public void ParsePrint_RoundTrips()
    {
        Check.One(Runs, Prop.ForAll(RuleGenerators.Rule.ToArbitrary(), rule =>
        {
            var text = RulePrinter.Print(rule);
            var parsed = RuleParser.Parse(text);
            return (parsed.Succeeded && parsed.Rule == rule).Label($"{text} -> {string.Join("; ", parsed.Errors)}");
        }));
    }

    [Fact]
    public void JsonWriteParse_RoundTrips()
    {
        Check.One(Runs, Prop.ForAll(RuleGenerators.Rule.ToArbitrary(), rule =>
        {
            var json = RuleJson.Write(rule);
            var parsed = RuleJson.Parse(json);
            return (parsed.Succeeded && parsed.Rule == rule).Label($"{json} -> {string.Join("; ", parsed.Errors)}");
        }));
    }

    [Fact]
    public void GeneratedRules_PassTheChecker()
    {
        Check.One(Runs, Prop.ForAll(RuleGenerators.Rule.ToArbitrary(), rule =>
        {
            var errors = RuleChecker.Check(RuleParser.Parse(RulePrinter.Print(rule)), limits: RuleLimits.Default with { MaxAggregates = 100, MaxNodes = 10_000 }).Errors;
            return (errors.Count == 0).Label(RulePrinter.Print(rule) + ": " + string.Join("; ", errors));
        }));
    }

    [Fact]
    public void CompiledRule_AgreesWithTheInterpreter()
    {
        var inputs = from rule in RuleGenerators.Rule
                     from events in RuleGenerators.Events
                     from members in Gen.SubListOf(RuleGenerators.SegmentIds)
                     from later in Gen.Choose(0, 40 * 24 * 60)
                     select (rule, events, members, later);
        Check.One(Runs, Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (rule, events, members, later) = input;
            var catalog = new RuleCatalog();
            var checkedRule = RuleChecker.Check(RuleParser.Parse(RulePrinter.Print(rule)), limits: RuleLimits.Default with { MaxAggregates = 100, MaxNodes = 10_000 });
            using var compiled = RuleCompiler.Compile(checkedRule, catalog);
            var profile = new UserProfile("u", catalog);
            var now = Now - (100L * Day);
            foreach (var (e, appliedAt) in events)
            {
                profile.Apply(e, appliedAt);
                now = appliedAt;
            }

            foreach (var id in members)
            {
                profile.Enter(catalog.SegmentSlot(id), now);
            }

            var at = now + (later * Minute);
            var expected = RuleInterpreter.Evaluate(compiled.Rule, profile, at);
            return (compiled.Evaluate(profile, at) == expected).Label($"{compiled.Text} at {TimeText.Format(at)}: interpreter says {expected}");
        }));
    }

    /// <summary>
    /// The NRules engine against the compiled one, over the same index: random segments (referring to each other
    /// without cycles), a random event stream with the timers firing between events and for 40 days after, a segment
    /// created and one edited mid-stream with their backfills, a full re-evaluation, and the NRules set rebuilt at
    /// random steps (so that some evaluations run before it holds the latest segments). Every change, in order, and
    /// the memberships at the end are the same.
    /// </summary>
    [Fact]
    public void NRulesEngine_AgreesWithTheCompiledEngine()
    {
        var inputs = from rules in Gen.ArrayOf(RuleGenerators.Rule, RuleGenerators.SegmentIds.Length)
                     from created in RuleGenerators.Rule
                     from edited in RuleGenerators.Rule
                     from events in RuleGenerators.Events
                     from createAt in Gen.Choose(0, 26)
                     from editAt in Gen.Choose(0, 26)
                     from staleAt in Gen.Choose(0, 26)
                     from rebuilds in Gen.ArrayOf(Gen.Elements(false, false, true), 27)
                     select (rules, created, edited, events, createAt, editAt, staleAt, rebuilds);
        Check.One(Runs, Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (rules, created, edited, events, createAt, editAt, staleAt, rebuilds) = input;
            var engines = new TwoEngines();
            for (var i = 0; i < rules.Length; i++)
            {
                engines.Save(RuleGenerators.SegmentIds[i], Acyclic(rules[i], i), version: 1);
            }

            if (rebuilds[^1])
            {
                engines.NRules.Rebuild();
            }

            var now = Now - (100L * Day);
            for (var step = 0; step <= events.Length; step++)
            {
                if (rebuilds[step])
                {
                    engines.NRules.Rebuild();
                }

                if (step == createAt)
                {
                    engines.Save("created", created, version: 1);
                    engines.Run((engine, profile, changes) => engine.EvaluateSegment(profile, "created", now, changes));
                }

                if (step == editAt)
                {
                    engines.Save(RuleGenerators.SegmentIds[1], Acyclic(edited, 1), version: 2);
                    engines.Run((engine, profile, changes) => engine.EvaluateSegment(profile, RuleGenerators.SegmentIds[1], now, changes));
                }

                if (step == staleAt)
                {
                    engines.Run((engine, profile, changes) => engine.EvaluateAll(profile, now, changes));
                }

                var (e, appliedAt) = step < events.Length ? events[step] : (null, now + (40 * Day));
                now = engines.PassTime(now, appliedAt);
                if (e is not null)
                {
                    engines.Run((engine, profile, changes) => engine.Evaluate(profile, e.Type, profile.Apply(e, appliedAt), appliedAt, changes));
                }
            }

            return engines.Agree();
        }));
    }

    /// <summary>The rule for the <paramref name="position"/>th segment, referring only to segments before it (others to one that does not exist).</summary>
    private static Condition Acyclic(Condition rule, int position) => rule switch
    {
        AllOf all => new AllOf([.. all.Items.AsSpan().ToArray().Select(c => Acyclic(c, position))]),
        AnyOf any => new AnyOf([.. any.Items.AsSpan().ToArray().Select(c => Acyclic(c, position))]),
        Not not => new Not(Acyclic(not.Operand, position)),
        InSegment inSegment when Array.IndexOf(RuleGenerators.SegmentIds, inSegment.SegmentId) >= position =>
            new InSegment(position == 0 ? "none" : RuleGenerators.SegmentIds[inSegment.SegmentId.Length % position]),
        _ => rule,
    };

    /// <summary>One index, the compiled engine and the NRules engine over it, and a profile for each; every step runs on both.</summary>
    private sealed class TwoEngines
    {
        private readonly RuleCatalog _catalog = new();
        private readonly SegmentIndex _index;
        private readonly UserProfile _compiledProfile;
        private readonly UserProfile _nrulesProfile;
        private readonly List<string> _compiled = [];
        private readonly List<string> _nrules = [];

        public TwoEngines()
        {
            _index = new SegmentIndex(_catalog);
            NRules = new NRulesSegmentEngine(_index);
            _compiledProfile = new UserProfile("u", _catalog);
            _nrulesProfile = new UserProfile("u", _catalog);
        }

        public NRulesSegmentEngine NRules { get; }

        public void Save(string id, Condition rule, long version)
        {
            var checkedRule = RuleChecker.Check(RuleParser.Parse(RulePrinter.Print(rule)), limits: RuleLimits.Default with { MaxAggregates = 100, MaxNodes = 10_000 });
            _index.Upsert(id, RuleCompiler.Compile(checkedRule, _catalog), version);
        }

        public void Run(Action<ISegmentEngine, UserProfile, List<MembershipChange>> step)
        {
            var changes = new List<MembershipChange>();
            step(_index, _compiledProfile, changes);
            _compiled.AddRange(changes.Select(Describe));
            changes.Clear();
            step(NRules, _nrulesProfile, changes);
            _nrules.AddRange(changes.Select(Describe));
        }

        /// <summary>The user's timer, as the Silo runs it: wakes at each due instant up to <paramref name="until"/>.</summary>
        public long PassTime(long now, long until)
        {
            for (var wakeups = 0; wakeups < 100 && _index.NextTimer(_compiledProfile, now) is { } due && due <= until; wakeups++)
            {
                _compiled.Add($"timer {due}");
                _nrules.Add($"timer {_index.NextTimer(_nrulesProfile, now)}");
                now = due;
                Run((engine, profile, changes) => engine.EvaluateTimeDependent(profile, due, changes));
            }

            return Math.Max(now, until);
        }

        public Property Agree()
        {
            var memberships = string.Join(", ", _compiledProfile.Memberships.Select(m => $"{_catalog.SegmentId(m.Key)} since {m.Value}"));
            var same = _compiled.SequenceEqual(_nrules)
                && _compiledProfile.Memberships.SequenceEqual(_nrulesProfile.Memberships);
            return same.Label($"compiled: {string.Join("; ", _compiled)}\nnrules:   {string.Join("; ", _nrules)}\nmembers (compiled): {memberships}\n"
                + string.Join("\n", _index.Segments.Select(s => $"{s.Id}@{s.Version}: {s.Rule.Text}")));
        }

        private static string Describe(MembershipChange c) => $"{c.Segment.Id}@{c.Segment.Version} {(c.Entered ? "in" : "out")} at {c.AtMs} by {c.Trigger}";
    }

    [Fact]
    public void BucketedAggregate_AgreesWithBruteForce()
    {
        var inputs = from window in Gen.Elements(1L, 7, 60, 24 * 60, 7 * 24 * 60, 90 * 24 * 60)
                     from count in Gen.Choose(0, 60)
                     from steps in Gen.ArrayOf(Gen.Choose(0, 200), count)
                     from late in Gen.ArrayOf(Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(0, 400))), count)
                     from values in Gen.ArrayOf(Gen.Choose(-1000, 1000), count)
                     from queries in Gen.ArrayOf(Gen.Choose(0, 1000), 5)
                     select (window, steps, late, values, queries);
        Check.One(Runs, Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (windowMinutes, steps, late, values, queries) = input;
            var scale = Math.Max(1, windowMinutes / 60) * Minute;
            var layout = BucketLayout.For(windowMinutes * Minute);
            var aggregate = new WindowedAggregate(layout);
            var kept = new List<(long Bucket, decimal Value)>();
            var applied = Now;
            for (var i = 0; i < steps.Length; i++)
            {
                applied += steps[i] * scale;
                var at = applied - (late[i] * scale);
                var value = values[i] / 10m;
                aggregate.Add(at, value, applied);
                var bucket = Math.Min(layout.BucketOf(at), layout.BucketOf(applied));
                if (bucket >= layout.FirstLiveBucket(applied))
                {
                    kept.Add((bucket, value));
                }
            }

            foreach (var q in queries)
            {
                var queryAt = applied + (q * scale / 10);
                var live = kept.Where(k => k.Bucket >= layout.FirstLiveBucket(queryAt)).Select(k => k.Value).ToList();
                var expected = live.Count == 0 ? WindowTotals.Empty : new WindowTotals(live.Count, live.Sum(), live.Min(), live.Max());
                var actual = aggregate.Query(queryAt);
                if (actual != expected)
                {
                    return false.Label($"at +{queryAt - Now} ms: expected {expected}, got {actual}");
                }
            }

            return (aggregate.BucketCount <= layout.Count).Label("bucket bound");
        }));
    }

    [Fact]
    public void ReplayingTheSameEvents_GivesTheSameProfile()
    {
        Check.One(Runs, Prop.ForAll(RuleGenerators.Events.ToArbitrary(), events =>
        {
            var catalog = new RuleCatalog();
            using var rule = Compile("sum(purchase.amount within 7d) > 1 or count(any within 1d) > 2 or traits.country exists", catalog);
            var a = new UserProfile("u", catalog);
            var b = new UserProfile("u", catalog);
            foreach (var (e, appliedAt) in events)
            {
                a.Apply(e, appliedAt);
                b.Apply(e, appliedAt);
            }

            var at = events.Length == 0 ? Now : events[^1].AppliedAt;
            return a.EventCount == b.EventCount && a.TotalSpent == b.TotalSpent && a.FirstSeen == b.FirstSeen
                && a.Traits.Count == b.Traits.Count
                && rule.Aggregates.All(s => (a.Aggregate(s)?.Query(at) ?? WindowTotals.Empty) == (b.Aggregate(s)?.Query(at) ?? WindowTotals.Empty));
        }));
    }
}
