using Audience.Rules.Model;
using Audience.Rules.Profiles;
using FsCheck;
using FsCheck.Fluent;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

/// <summary>FsCheck generators of well-typed rules, of profiles built from events, and of event streams.</summary>
internal static class RuleGenerators
{
    public static readonly string[] SegmentIds = ["vip", "loyal", "churned"];

    private static readonly string[] EventTypes = ["purchase", "page_view", "add_to_cart", "identify", "page view", "in"];
    private static readonly string[] Categories = ["books", "electronics", "toys"];
    private static readonly string[] TraitNames = ["country", "age", "vip", "email", "signup", "tags"];
    private static readonly string[] Countries = ["DE", "AT", "CH", "FR", "de", ""];

    private static Gen<decimal> Number =>
        Gen.OneOf(
            Gen.Choose(-50, 3000).Select(i => (decimal)i),
            Gen.Choose(-100_000, 300_000).Select(i => i / 100m),
            Gen.Elements(0m, 1000m, 1000.00m, 0.0001m, -1m, 79_228_162_514_264_337_593_543_950_335m));

    private static Gen<string> Text =>
        Gen.OneOf(
            Gen.Elements(Countries),
            Gen.Elements("a\"b", "back\\slash", "new\nline", "tab\t", "ünïcödé", "@example.com", "anna@example.com", "2024-01-15T10:00:00Z"),
            Gen.Choose(0, 5).SelectMany(n => Gen.ArrayOf(Gen.Elements('a', 'b', '\'', ' ', 'é', '\u0001'), n)).Select(chars => new string(chars)));

    private static Gen<long> Timestamp => Gen.Choose(-2000, 2000).Select(minutes => Now + (minutes * 997L * Minute) + (minutes % 7));

    private static Gen<Duration> Window =>
        Gen.OneOf(
            Gen.Choose(1, 120).Select(m => new Duration(m, DurationUnit.Minutes)),
            Gen.Choose(1, 72).Select(h => new Duration(h, DurationUnit.Hours)),
            Gen.Choose(1, 90).Select(d => new Duration(d, DurationUnit.Days)),
            Gen.Choose(1, 12).Select(w => new Duration(w, DurationUnit.Weeks)));

    private static Gen<Duration> Ago => Gen.OneOf(Window, Gen.Choose(0, 500).Select(d => new Duration(d, DurationUnit.Days)));

    private static Gen<ComparisonOperator> Ordering =>
        Gen.Elements(ComparisonOperator.Equal, ComparisonOperator.NotEqual, ComparisonOperator.LessThan,
            ComparisonOperator.LessThanOrEqual, ComparisonOperator.GreaterThan, ComparisonOperator.GreaterThanOrEqual);

    private static Gen<Literal> ScalarLiteral(bool withBool = true) =>
        withBool
            ? Gen.OneOf(Number.Select(n => (Literal)new NumberLiteral(n)), Text.Select(s => (Literal)new StringLiteral(s)),
                Gen.Elements(true, false).Select(b => (Literal)new BoolLiteral(b)))
            : Gen.OneOf(Number.Select(n => (Literal)new NumberLiteral(n)), Text.Select(s => (Literal)new StringLiteral(s)));

    private static Gen<Literal> List(Gen<Literal> item) =>
        Gen.Choose(1, 4).SelectMany(n => Gen.ArrayOf(item, n)).Select(items => (Literal)new ListLiteral(items));

    private static Gen<Condition> NumberComparison(Gen<Operand> operand) =>
        from left in operand
        from condition in Gen.OneOf(
            from op in Ordering
            from n in Number
            select (Condition)new Comparison(left, op, new NumberLiteral(n)),
            from negated in Gen.Elements(false, true)
            from list in List(Number.Select(n => (Literal)new NumberLiteral(n)))
            select (Condition)new Comparison(left, negated ? ComparisonOperator.NotIn : ComparisonOperator.In, list),
            Gen.Constant((Condition)new Exists(left)))
        select condition;

    private static Gen<Condition> DynamicComparison(Gen<FieldRef> field, bool allowTime) =>
        from left in field
        from condition in Gen.OneOf(
            from op in Ordering
            from right in ScalarLiteral(withBool: op is ComparisonOperator.Equal or ComparisonOperator.NotEqual)
            select (Condition)new Comparison(left, op, right),
            from op in Gen.Elements(ComparisonOperator.Contains, ComparisonOperator.StartsWith, ComparisonOperator.EndsWith)
            from s in Text
            select (Condition)new Comparison(left, op, new StringLiteral(s)),
            from negated in Gen.Elements(false, true)
            from list in List(ScalarLiteral())
            select (Condition)new Comparison(left, negated ? ComparisonOperator.NotIn : ComparisonOperator.In, list),
            Gen.Constant((Condition)new Exists(left)),
            from op in Ordering
            from time in allowTime ? TimeLiteral : Timestamp.Select(t => (Literal)new TimestampLiteral(t))
            select (Condition)new Comparison(left, op, time))
        select condition;

    private static Gen<Literal> TimeLiteral =>
        Gen.OneOf(Timestamp.Select(t => (Literal)new TimestampLiteral(t)), Ago.Select(d => (Literal)new AgoLiteral(d)));

    private static Gen<Condition> TimeComparison =>
        from name in Gen.Elements("firstSeen", "lastSeen")
        from condition in Gen.OneOf(
            from op in Ordering
            from right in TimeLiteral
            select (Condition)new Comparison(new FieldRef(FieldScope.Profile, name), op, right),
            Gen.Constant((Condition)new Exists(new FieldRef(FieldScope.Profile, name))))
        select condition;

    private static Gen<FieldRef> Trait =>
        Gen.OneOf(Gen.Elements(TraitNames).Select(n => new FieldRef(FieldScope.Trait, n)),
            Gen.Constant(new FieldRef(FieldScope.Trait, "address.city")));

    private static Gen<FieldRef> Property => Gen.Elements("category", "amount", "meta.source").Select(n => new FieldRef(FieldScope.EventProperty, n));

    private static Gen<Condition> Filter(int size) =>
        Composite(size, Gen.OneOf(DynamicComparison(Property, allowTime: false)));

    private static Gen<Operand> Aggregate(int size) =>
        from function in Gen.Elements(Enum.GetValues<AggregateFunction>())
        from type in Gen.OneOf(Gen.Constant<string?>(null), Gen.Elements(EventTypes).Select(t => (string?)t))
        from property in function == AggregateFunction.Count
            ? Gen.Elements<string?>(null, null, "amount")
            : Gen.Elements<string?>("amount", "qty")
        from hasFilter in Gen.Elements(false, true)
        from filter in hasFilter ? Filter(size / 2).Select(f => (Condition?)f) : Gen.Constant<Condition?>(null)
        from window in Window
        select (Operand)new AggregateRef(function, type, property, filter, window);

    private static Gen<Condition> Leaf(int size) =>
        Gen.Frequency(
            (3, NumberComparison(Gen.Elements("eventCount", "totalSpent", "orderCount").Select(n => (Operand)new FieldRef(FieldScope.Profile, n)))),
            (2, TimeComparison),
            (3, DynamicComparison(Trait, allowTime: true)),
            (3, NumberComparison(Aggregate(size))),
            (1, Gen.Elements(SegmentIds).Select(id => (Condition)new InSegment(id))));

    private static Gen<Condition> Composite(int size, Gen<Condition> leaf)
    {
        if (size <= 1)
        {
            return leaf;
        }

        var child = Composite(size / 3, leaf);
        return Gen.Frequency(
            (3, leaf),
            (1, Gen.Choose(2, 3).SelectMany(n => Gen.ArrayOf(child, n)).Select(items => (Condition)new AllOf(items))),
            (1, Gen.Choose(2, 3).SelectMany(n => Gen.ArrayOf(child, n)).Select(items => (Condition)new AnyOf(items))),
            (1, child.Select(c => (Condition)new Not(c))));
    }

    /// <summary>Rules that pass the checker.</summary>
    public static Gen<Condition> Rule => Gen.Sized(size => Composite(Math.Min(size, 30), Leaf(Math.Min(size, 30))));

    private static Gen<RuleEvent> EventAt(long at) =>
        from type in Gen.Elements("purchase", "purchase", "page_view", "add_to_cart", "identify", "page view")
        from amount in Number
        from category in Gen.Elements(Categories)
        from source in Gen.Elements("ads", "mail")
        from traits in Gen.SubListOf(TraitNames)
        from traitValues in Gen.ArrayOf(Gen.OneOf(
            Gen.Elements(Countries).Select(Value.FromString),
            Number.Select(Value.FromNumber),
            Gen.Elements(Value.True, Value.False, Value.Null),
            Timestamp.Select(t => Value.FromString(TimeText.Format(t))),
            Gen.Constant(Value.FromList([Value.FromString("beta"), Value.FromNumber(3)])),
            Gen.Constant(Value.FromObject(new Dictionary<string, Value> { ["city"] = Value.FromString("Berlin") }))), traits.Count)
        select type == "identify"
            ? new RuleEvent(type, at, traits.Select((t, i) => (t, traitValues[i])).ToDictionary(p => p.t, p => p.Item2))
            : new RuleEvent(type, at, new Dictionary<string, Value>
            {
                ["amount"] = Value.FromNumber(amount),
                ["qty"] = Value.FromNumber(Math.Abs(amount) % 5),
                ["category"] = Value.FromString(category),
                ["meta"] = Value.FromObject(new Dictionary<string, Value> { ["source"] = Value.FromString(source) }),
            });

    /// <summary>A stream of events with processing times that never go back; event times may arrive late.</summary>
    public static Gen<(RuleEvent Event, long AppliedAt)[]> Events =>
        from count in Gen.Choose(0, 25)
        from gaps in Gen.ArrayOf(Gen.Choose(0, 3 * 24 * 60), count)
        from lateness in Gen.ArrayOf(Gen.Frequency((4, Gen.Constant(0)), (1, Gen.Choose(0, 3 * 24 * 60))), count)
        from events in Gen.CollectToArray(Enumerable.Range(0, count).Select(i =>
        {
            var applied = Now - (100L * Day) + (gaps.Take(i + 1).Sum(g => (long)g) * Minute);
            return EventAt(applied - (lateness[i] * Minute)).Select(e => (e, applied));
        }))
        select events;
}
