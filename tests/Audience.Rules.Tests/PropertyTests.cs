using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Evaluation;
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
