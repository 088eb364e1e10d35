using Audience.Rules.Checking;
using Audience.Rules.Model;
using Audience.Rules.Profiles;

namespace Audience.Rules.Compilation;

/// <summary>
/// Compiles a checked rule into a tree of delegates, once. Each comparison is specialised at compile time for
/// the static type of what it reads (a number, a time, or a dynamically typed trait) and its operator.
/// </summary>
public static class RuleCompiler
{
    public static CompiledRule Compile(CheckedRule rule, RuleCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(catalog);
        if (!rule.IsValid)
        {
            throw new ArgumentException("Only a rule without errors can be compiled: " + rule.Errors[0], nameof(rule));
        }

        var builder = new Builder(catalog);
        try
        {
            var predicate = builder.Condition(rule.Rule);
            return new CompiledRule(rule.Rule, rule.Dependencies, predicate, [.. builder.Probes], [.. builder.TimeSources], builder.Aggregates, catalog, builder.Release);
        }
        catch
        {
            builder.Release();
            throw;
        }
    }

    /// <summary>Compiles an aggregate's where filter, which reads only the event's properties.</summary>
    internal static Func<RuleEvent, bool> CompileFilter(Condition filter)
    {
        var predicate = new Builder(null).Condition(filter);
        return e => predicate(new EvaluationContext(null!, e.TimestampMs, e));
    }

    private delegate bool NumberReader(in EvaluationContext c, out decimal value);

    private delegate bool TimeReader(in EvaluationContext c, out long value);

    private delegate Value ValueReader(in EvaluationContext c);

    private sealed class Builder(RuleCatalog? catalog)
    {
        private readonly List<string> _traits = [];
        private readonly List<AggregateSpec> _aggregates = [];

        public List<TimeProbe> Probes { get; } = [];

        public List<TimeSource> TimeSources { get; } = [];

        public IReadOnlyList<AggregateSpec> Aggregates => _aggregates;

        public void Release()
        {
            foreach (var trait in _traits)
            {
                catalog!.ReleaseTrait(trait);
            }

            foreach (var spec in _aggregates)
            {
                catalog!.ReleaseAggregate(spec);
            }

            _traits.Clear();
            _aggregates.Clear();
        }

        public Predicate Condition(Condition condition) => condition switch
        {
            AllOf all => All([.. all.Items.AsSpan().ToArray().Select(Condition)]),
            AnyOf any => Any([.. any.Items.AsSpan().ToArray().Select(Condition)]),
            Not not => Negate(Condition(not.Operand)),
            InSegment inSegment => Member(catalog!.SegmentSlot(inSegment.SegmentId)),
            Exists exists => Exists(exists.Operand),
            Comparison comparison => Compare(comparison),
            _ => throw new ArgumentException($"cannot compile {condition.GetType().Name}"),
        };

        private static Predicate All(Predicate[] items) => items.Length switch
        {
            1 => items[0],
            2 => And2(items[0], items[1]),
            3 => And3(items[0], items[1], items[2]),
            _ => AndN(items),
        };

        private static Predicate And2(Predicate a, Predicate b) => (in EvaluationContext c) => a(in c) && b(in c);

        private static Predicate And3(Predicate a, Predicate b, Predicate d) => (in EvaluationContext c) => a(in c) && b(in c) && d(in c);

        private static Predicate AndN(Predicate[] items) => (in EvaluationContext c) =>
        {
            foreach (var item in items)
            {
                if (!item(in c))
                {
                    return false;
                }
            }

            return true;
        };

        private static Predicate Any(Predicate[] items) => items.Length switch
        {
            1 => items[0],
            2 => Or2(items[0], items[1]),
            _ => OrN(items),
        };

        private static Predicate Or2(Predicate a, Predicate b) => (in EvaluationContext c) => a(in c) || b(in c);

        private static Predicate OrN(Predicate[] items) => (in EvaluationContext c) =>
        {
            foreach (var item in items)
            {
                if (item(in c))
                {
                    return true;
                }
            }

            return false;
        };

        private static Predicate Negate(Predicate inner) => (in EvaluationContext c) => !inner(in c);

        private static Predicate Member(int slot) => (in EvaluationContext c) => c.Profile.IsMember(slot);

        private Predicate Exists(Operand operand)
        {
            switch (RuleChecker.TypeOf(operand))
            {
                case RuleChecker.StaticType.Number:
                    if (operand is AggregateRef aggregate)
                    {
                        var count = Number(aggregate with { Function = AggregateFunction.Count });
                        return (in EvaluationContext c) => count(in c, out var n) && n > 0;
                    }

                    return static (in EvaluationContext _) => true;
                case RuleChecker.StaticType.Time:
                    var time = Time((FieldRef)operand);
                    return (in EvaluationContext c) => time(in c, out _);
                default:
                    var read = Dynamic((FieldRef)operand);
                    return (in EvaluationContext c) => read(in c).Kind is not (ValueKind.Missing or ValueKind.Null);
            }
        }

        private Predicate Compare(Comparison comparison)
        {
            var op = comparison.Operator;
            var negated = op is ComparisonOperator.NotEqual or ComparisonOperator.NotIn;
            var baseOp = op switch
            {
                ComparisonOperator.NotEqual => ComparisonOperator.Equal,
                ComparisonOperator.NotIn => ComparisonOperator.In,
                _ => op,
            };
            var test = RuleChecker.TypeOf(comparison.Left) switch
            {
                RuleChecker.StaticType.Number => CompareNumber(Number(comparison.Left), baseOp, comparison.Right),
                RuleChecker.StaticType.Time => CompareTime(comparison.Left, baseOp, comparison.Right),
                _ => CompareDynamic(comparison.Left, baseOp, comparison.Right),
            };
            return negated ? Negate(test) : test;
        }

        private static Predicate CompareNumber(NumberReader read, ComparisonOperator op, Literal right)
        {
            if (op == ComparisonOperator.In)
            {
                var set = ((ListLiteral)right).Items.OfType<NumberLiteral>().Select(n => n.Value).ToHashSet();
                return (in EvaluationContext c) => read(in c, out var v) && set.Contains(v);
            }

            var n = ((NumberLiteral)right).Value;
            return op switch
            {
                ComparisonOperator.Equal => (in EvaluationContext c) => read(in c, out var v) && v == n,
                ComparisonOperator.LessThan => (in EvaluationContext c) => read(in c, out var v) && v < n,
                ComparisonOperator.LessThanOrEqual => (in EvaluationContext c) => read(in c, out var v) && v <= n,
                ComparisonOperator.GreaterThan => (in EvaluationContext c) => read(in c, out var v) && v > n,
                ComparisonOperator.GreaterThanOrEqual => (in EvaluationContext c) => read(in c, out var v) && v >= n,
                _ => throw new ArgumentException($"{op} does not apply to numbers"),
            };
        }

        private Predicate CompareTime(Operand left, ComparisonOperator op, Literal right)
        {
            var read = Time((FieldRef)left);
            var relative = right is AgoLiteral;
            var offset = right is AgoLiteral ago ? ago.Duration.Milliseconds : ((TimestampLiteral)right).UnixMilliseconds;
            if (relative)
            {
                TimeSources.Add(new TimeSource(((FieldRef)left), offset));
                Probes.Add((profile, now) => read(new EvaluationContext(profile, now), out var t) ? t + offset : null);
                Probes.Add((profile, now) => read(new EvaluationContext(profile, now), out var t) ? t + offset + 1 : null);
            }

            return op switch
            {
                ComparisonOperator.Equal => (in EvaluationContext c) => read(in c, out var t) && t == (relative ? c.Now - offset : offset),
                ComparisonOperator.LessThan => (in EvaluationContext c) => read(in c, out var t) && t < (relative ? c.Now - offset : offset),
                ComparisonOperator.LessThanOrEqual => (in EvaluationContext c) => read(in c, out var t) && t <= (relative ? c.Now - offset : offset),
                ComparisonOperator.GreaterThan => (in EvaluationContext c) => read(in c, out var t) && t > (relative ? c.Now - offset : offset),
                ComparisonOperator.GreaterThanOrEqual => (in EvaluationContext c) => read(in c, out var t) && t >= (relative ? c.Now - offset : offset),
                _ => throw new ArgumentException($"{op} does not apply to times"),
            };
        }

        private Predicate CompareDynamic(Operand left, ComparisonOperator op, Literal right)
        {
            var read = Dynamic((FieldRef)left);
            if (right is AgoLiteral ago)
            {
                var offset = ago.Duration.Milliseconds;
                TimeSources.Add(new TimeSource((FieldRef)left, offset));
                Probes.Add((profile, now) => read(new EvaluationContext(profile, now)).TryGetTime(out var t) ? t + offset : null);
                Probes.Add((profile, now) => read(new EvaluationContext(profile, now)).TryGetTime(out var t) ? t + offset + 1 : null);
            }

            var test = DynamicTest(op, right);
            return (in EvaluationContext c) => test(read(in c), c.Now);
        }

        /// <summary>The test of a dynamically typed value against a literal; a value of another kind never matches.</summary>
        private static Func<Value, long, bool> DynamicTest(ComparisonOperator op, Literal right)
        {
            switch (op)
            {
                case ComparisonOperator.In:
                    var items = ((ListLiteral)right).Items;
                    var numbers = items.OfType<NumberLiteral>().Select(n => n.Value).ToHashSet();
                    var strings = items.OfType<StringLiteral>().Select(s => s.Value).ToHashSet(StringComparer.Ordinal);
                    var bools = items.OfType<BoolLiteral>().Select(b => b.Value).ToHashSet();
                    return (v, _) => v.Kind switch
                    {
                        ValueKind.Number => numbers.Contains(v.AsNumber),
                        ValueKind.String => strings.Contains(v.AsString),
                        ValueKind.Bool => bools.Contains(v.AsBool),
                        _ => false,
                    };
                case ComparisonOperator.Contains:
                    var needle = ((StringLiteral)right).Value;
                    return (v, _) => v.Kind switch
                    {
                        ValueKind.String => v.AsString.Contains(needle, StringComparison.Ordinal),
                        ValueKind.List => ListHolds(v.AsList, needle),
                        _ => false,
                    };
                case ComparisonOperator.StartsWith:
                    var prefix = ((StringLiteral)right).Value;
                    return (v, _) => v.Kind == ValueKind.String && v.AsString.StartsWith(prefix, StringComparison.Ordinal);
                case ComparisonOperator.EndsWith:
                    var suffix = ((StringLiteral)right).Value;
                    return (v, _) => v.Kind == ValueKind.String && v.AsString.EndsWith(suffix, StringComparison.Ordinal);
            }

            Func<int, bool> accept = op switch
            {
                ComparisonOperator.Equal => static r => r == 0,
                ComparisonOperator.LessThan => static r => r < 0,
                ComparisonOperator.LessThanOrEqual => static r => r <= 0,
                ComparisonOperator.GreaterThan => static r => r > 0,
                _ => static r => r >= 0,
            };
            switch (right)
            {
                case NumberLiteral number:
                    var n = number.Value;
                    return (v, _) => v.Kind == ValueKind.Number && accept(v.AsNumber.CompareTo(n));
                case StringLiteral text:
                    var s = text.Value;
                    return (v, _) => v.Kind == ValueKind.String && accept(string.CompareOrdinal(v.AsString, s));
                case BoolLiteral boolean:
                    var b = boolean.Value;
                    return (v, _) => v.Kind == ValueKind.Bool && v.AsBool == b;
                case TimestampLiteral timestamp:
                    var at = timestamp.UnixMilliseconds;
                    return (v, _) => v.TryGetTime(out var t) && accept(t.CompareTo(at));
                case AgoLiteral ago:
                    var offset = ago.Duration.Milliseconds;
                    return (v, now) => v.TryGetTime(out var t) && accept(t.CompareTo(now - offset));
                default:
                    throw new ArgumentException($"cannot compare with {right.GetType().Name}");
            }
        }

        private static bool ListHolds(IReadOnlyList<Value> list, string needle)
        {
            foreach (var item in list)
            {
                if (item.Kind == ValueKind.String && item.AsString == needle)
                {
                    return true;
                }
            }

            return false;
        }

        private NumberReader Number(Operand operand)
        {
            switch (operand)
            {
                case FieldRef { Name: "eventCount" }:
                    return static (in EvaluationContext c, out decimal v) => { v = c.Profile.EventCount; return true; };
                case FieldRef { Name: "totalSpent" }:
                    return static (in EvaluationContext c, out decimal v) => { v = c.Profile.TotalSpent; return true; };
                case FieldRef { Name: "orderCount" }:
                    return static (in EvaluationContext c, out decimal v) => { v = c.Profile.OrderCount; return true; };
                case AggregateRef aggregate:
                    var spec = AcquireAggregate(aggregate);
                    Probes.Add((profile, now) => profile.Aggregate(spec)?.NextExpiry(now));
                    return aggregate.Function switch
                    {
                        AggregateFunction.Count => CountOf(spec),
                        AggregateFunction.Sum => SumOf(spec),
                        var function => (in EvaluationContext c, out decimal v) => Statistic(in c, spec, function, out v),
                    };
                default:
                    throw new ArgumentException($"{operand} is not a number");
            }
        }

        private static NumberReader CountOf(AggregateSpec spec) => (in EvaluationContext c, out decimal v) =>
        {
            v = c.Profile.Aggregate(spec)?.Query(c.Now).Count ?? 0;
            return true;
        };

        private static NumberReader SumOf(AggregateSpec spec) => (in EvaluationContext c, out decimal v) =>
        {
            v = c.Profile.Aggregate(spec)?.Query(c.Now).Sum ?? 0;
            return true;
        };

        /// <summary>min, max or avg of the window; there is none when the window holds no events.</summary>
        private static bool Statistic(in EvaluationContext c, AggregateSpec spec, AggregateFunction function, out decimal value)
        {
            var totals = c.Profile.Aggregate(spec)?.Query(c.Now) ?? WindowTotals.Empty;
            if (totals.Count == 0)
            {
                value = 0;
                return false;
            }

            value = function switch
            {
                AggregateFunction.Min => totals.Min,
                AggregateFunction.Max => totals.Max,
                _ => totals.Sum / totals.Count,
            };
            return true;
        }

        private static TimeReader Time(FieldRef field) => field.Name == "firstSeen" ? FirstSeen : LastSeen;

        private static bool FirstSeen(in EvaluationContext c, out long t)
        {
            var seen = c.Profile.FirstSeen;
            t = seen.GetValueOrDefault();
            return seen.HasValue;
        }

        private static bool LastSeen(in EvaluationContext c, out long t)
        {
            var seen = c.Profile.LastSeen;
            t = seen.GetValueOrDefault();
            return seen.HasValue;
        }

        private ValueReader Dynamic(FieldRef field)
        {
            var path = field.Name.Split('.');
            if (field.Scope == FieldScope.EventProperty)
            {
                return (in EvaluationContext c) => c.Event!.Get(path);
            }

            var slot = AcquireTrait(path[0]);
            if (path.Length == 1)
            {
                return (in EvaluationContext c) => c.Profile.TraitAt(slot);
            }

            var rest = path[1..];
            return (in EvaluationContext c) => c.Profile.TraitAt(slot).Get(rest);
        }

        private int AcquireTrait(string name)
        {
            var slot = catalog!.AcquireTrait(name);
            _traits.Add(name);
            return slot;
        }

        private AggregateSpec AcquireAggregate(AggregateRef aggregate)
        {
            var spec = catalog!.AcquireAggregate(aggregate);
            _aggregates.Add(spec);
            return spec;
        }
    }
}
