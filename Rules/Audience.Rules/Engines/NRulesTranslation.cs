using System.Linq.Expressions;
using System.Reflection;
using Audience.Rules.Checking;
using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Rules.Model;
using Audience.Rules.Profiles;
using NRules.RuleModel;
using NRules.RuleModel.Builders;

namespace Audience.Rules.Engines;

/// <summary>
/// The one fact of the NRules engine: a user's profile at the instant of an evaluation. The rules' actions record on
/// it which segments matched, by slot; the engine reads them back. Reused from one evaluation to the next by the
/// session it lives in (so it is inserted once and then updated).
/// </summary>
internal sealed class ProfileFact
{
    private bool[] _matched = [];

    public UserProfile Profile { get; private set; } = null!;

    public long Now { get; private set; }

    /// <summary>What every rule's action does: its segment matched.</summary>
    public void Match(int slot) => _matched[slot] = true;

    public bool Matched(int slot) => (uint)slot < (uint)_matched.Length && _matched[slot];

    /// <summary>Points the fact at a profile and an instant, with no match recorded yet.</summary>
    public void Reset(UserProfile profile, long nowMs, int slots)
    {
        Profile = profile;
        Now = nowMs;
        if (_matched.Length < slots)
        {
            _matched = new bool[slots];
        }
        else
        {
            Array.Clear(_matched);
        }
    }

    /// <summary>Lets go of the profile between evaluations, so a pooled session does not keep it alive.</summary>
    public void Release() => Profile = null!;
}

/// <summary>
/// Translates a segment's rule into an NRules rule definition: one pattern over <see cref="ProfileFact"/> whose
/// condition is the rule as a LINQ expression tree (and, or and not as expression nodes; numbers and times compared
/// in the tree; traits compared by <see cref="RuleInterpreter.Compare"/>, the reference semantics), and one action
/// that records the match. The expressions read the same profile state as the compiled delegate (aggregates through
/// the specs the segment's compiled rule holds), so both say the same of every profile.
/// </summary>
internal static class NRulesTranslation
{
    /// <summary>The pattern's name: NRules binds the condition's parameter to the pattern by this name.</summary>
    private const string FactName = "fact";

    private static readonly MethodInfo MatchMethod = typeof(ProfileFact).GetMethod(nameof(ProfileFact.Match))!;
    private static readonly MethodInfo IsMemberMethod = typeof(UserProfile).GetMethod(nameof(UserProfile.IsMember))!;
    private static readonly MethodInfo CompareMethod = typeof(RuleInterpreter).GetMethod(nameof(RuleInterpreter.Compare))!;

    public static IRuleDefinition Translate(IndexedSegment segment)
    {
        var fact = Expression.Parameter(typeof(ProfileFact), FactName);
        var condition = Expression.Lambda(new Translator(fact, segment.Rule.Aggregates, segment.Rule.Catalog).Condition(segment.Rule.Rule), fact);
        var context = Expression.Parameter(typeof(IContext), "context");
        var action = Expression.Lambda(Expression.Call(fact, MatchMethod, Expression.Constant(segment.Slot)), context, fact);
        var pattern = Element.Pattern(Element.Declaration(typeof(ProfileFact), FactName), [Element.Condition(condition)], null);
        return Element.RuleDefinition(segment.Id, segment.Rule.Text, 0, Element.AndGroup(pattern),
            Element.ActionGroup(Element.Action(action, ActionTrigger.Activated | ActionTrigger.Reactivated)));
    }

    // What the expressions call for the parts that are not plain comparisons; each reads as the compiled rule does.
    internal static decimal Count(UserProfile profile, AggregateSpec spec, long now) => profile.Aggregate(spec)?.Query(now).Count ?? 0;

    internal static decimal Sum(UserProfile profile, AggregateSpec spec, long now) => profile.Aggregate(spec)?.Query(now).Sum ?? 0;

    /// <summary>min, max or avg of the window; null when the window holds no events.</summary>
    internal static decimal? Statistic(UserProfile profile, AggregateSpec spec, AggregateFunction function, long now)
    {
        var totals = profile.Aggregate(spec)?.Query(now) ?? WindowTotals.Empty;
        if (totals.Count == 0)
        {
            return null;
        }

        return function switch
        {
            AggregateFunction.Min => totals.Min,
            AggregateFunction.Max => totals.Max,
            _ => totals.Sum / totals.Count,
        };
    }

    internal static bool In(decimal? value, HashSet<decimal> set) => value is { } v && set.Contains(v);

    internal static Value Trait(UserProfile profile, string name, string[]? rest)
    {
        var value = profile.Traits.TryGetValue(name, out var v) ? v : Value.Missing;
        return rest is null ? value : value.Get(rest);
    }

    internal static bool IsPresent(Value value) => value.Kind is not (ValueKind.Missing or ValueKind.Null);

    private sealed class Translator(ParameterExpression fact, IReadOnlyList<AggregateSpec> aggregates, RuleCatalog catalog)
    {
        private readonly Expression _profile = Expression.Property(fact, nameof(ProfileFact.Profile));
        private readonly Expression _now = Expression.Property(fact, nameof(ProfileFact.Now));

        public Expression Condition(Condition condition) => condition switch
        {
            AllOf all => all.Items.AsSpan().ToArray().Select(Condition).Aggregate(Expression.AndAlso),
            AnyOf any => any.Items.AsSpan().ToArray().Select(Condition).Aggregate(Expression.OrElse),
            Not not => Expression.Not(Condition(not.Operand)),
            InSegment inSegment => Expression.Call(_profile, IsMemberMethod, Expression.Constant(catalog.SegmentSlot(inSegment.SegmentId))),
            Exists exists => Exists(exists.Operand),
            Comparison comparison => Compare(comparison),
            _ => throw new ArgumentException($"cannot translate {condition.GetType().Name}"),
        };

        private Expression Exists(Operand operand) => RuleChecker.TypeOf(operand) switch
        {
            RuleChecker.StaticType.Number when operand is AggregateRef aggregate =>
                Expression.GreaterThan(Call(nameof(Count), _profile, Expression.Constant(Spec(aggregate)), _now), Expression.Constant(0m)),
            RuleChecker.StaticType.Number => Expression.Constant(true),
            RuleChecker.StaticType.Time => Expression.Property(Time((FieldRef)operand), nameof(Nullable<long>.HasValue)),
            _ => Call(nameof(IsPresent), Dynamic((FieldRef)operand)),
        };

        private Expression Compare(Comparison comparison)
        {
            var op = comparison.Operator;
            switch (RuleChecker.TypeOf(comparison.Left))
            {
                case RuleChecker.StaticType.Number:
                    return Negated(op, CompareNumber(Number(comparison.Left), Base(op), comparison.Right));
                case RuleChecker.StaticType.Time:
                    // An ago bound moves with the evaluation's instant, as in the compiled rule.
                    var bound = comparison.Right is AgoLiteral ago
                        ? Expression.Convert(Expression.Subtract(_now, Expression.Constant(ago.Duration.Milliseconds)), typeof(long?))
                        : (Expression)Expression.Constant(((TimestampLiteral)comparison.Right).UnixMilliseconds, typeof(long?));
                    return Negated(op, Ordering(Base(op), Time((FieldRef)comparison.Left), bound));
                default:
                    return Expression.Call(CompareMethod, Dynamic((FieldRef)comparison.Left), Expression.Constant(op),
                        Expression.Constant(comparison.Right, typeof(Literal)), _now);
            }
        }

        /// <summary>!= and not in are the negations of == and in, as the compiler has them.</summary>
        private static ComparisonOperator Base(ComparisonOperator op) => op switch
        {
            ComparisonOperator.NotEqual => ComparisonOperator.Equal,
            ComparisonOperator.NotIn => ComparisonOperator.In,
            _ => op,
        };

        private static Expression Negated(ComparisonOperator op, Expression test) =>
            op is ComparisonOperator.NotEqual or ComparisonOperator.NotIn ? Expression.Not(test) : test;

        private static Expression CompareNumber(Expression value, ComparisonOperator op, Literal right)
        {
            if (op == ComparisonOperator.In)
            {
                var set = ((ListLiteral)right).Items.OfType<NumberLiteral>().Select(n => n.Value).ToHashSet();
                return Call(nameof(In), value, Expression.Constant(set));
            }

            return Ordering(op, value, Expression.Constant(((NumberLiteral)right).Value, typeof(decimal?)));
        }

        /// <summary>A comparison of two nullable values, lifted: false when the left one is missing.</summary>
        private static BinaryExpression Ordering(ComparisonOperator op, Expression left, Expression right) => op switch
        {
            ComparisonOperator.Equal => Expression.Equal(left, right),
            ComparisonOperator.LessThan => Expression.LessThan(left, right),
            ComparisonOperator.LessThanOrEqual => Expression.LessThanOrEqual(left, right),
            ComparisonOperator.GreaterThan => Expression.GreaterThan(left, right),
            ComparisonOperator.GreaterThanOrEqual => Expression.GreaterThanOrEqual(left, right),
            _ => throw new ArgumentException($"{op} does not apply to numbers or times"),
        };

        /// <summary>A number as <c>decimal?</c>: null when there is none (min, max or avg of an empty window).</summary>
        private Expression Number(Operand operand) => operand switch
        {
            FieldRef { Name: "eventCount" } => Expression.Convert(Expression.Property(_profile, nameof(UserProfile.EventCount)), typeof(decimal?)),
            FieldRef { Name: "totalSpent" } => Expression.Convert(Expression.Property(_profile, nameof(UserProfile.TotalSpent)), typeof(decimal?)),
            FieldRef { Name: "orderCount" } => Expression.Convert(Expression.Property(_profile, nameof(UserProfile.OrderCount)), typeof(decimal?)),
            AggregateRef { Function: AggregateFunction.Count } aggregate =>
                Expression.Convert(Call(nameof(Count), _profile, Expression.Constant(Spec(aggregate)), _now), typeof(decimal?)),
            AggregateRef { Function: AggregateFunction.Sum } aggregate =>
                Expression.Convert(Call(nameof(Sum), _profile, Expression.Constant(Spec(aggregate)), _now), typeof(decimal?)),
            AggregateRef aggregate => Call(nameof(Statistic), _profile, Expression.Constant(Spec(aggregate)), Expression.Constant(aggregate.Function), _now),
            _ => throw new ArgumentException($"{operand} is not a number"),
        };

        private MemberExpression Time(FieldRef field) =>
            Expression.Property(_profile, field.Name == "firstSeen" ? nameof(UserProfile.FirstSeen) : nameof(UserProfile.LastSeen));

        private MethodCallExpression Dynamic(FieldRef field)
        {
            var path = field.Name.Split('.');
            return Call(nameof(Trait), _profile, Expression.Constant(path[0]), Expression.Constant(path.Length == 1 ? null : path[1..], typeof(string[])));
        }

        /// <summary>The spec the segment's compiled rule acquired for this aggregate: held in the catalog as long as the segment is.</summary>
        private AggregateSpec Spec(AggregateRef aggregate)
        {
            var key = AggregateKey.Of(aggregate);
            foreach (var spec in aggregates)
            {
                if (spec.Key == key)
                {
                    return spec;
                }
            }

            throw new ArgumentException($"the compiled rule holds no aggregate {key.Describe()}");
        }

        private static MethodCallExpression Call(string method, params Expression[] arguments) =>
            Expression.Call(typeof(NRulesTranslation).GetMethod(method, BindingFlags.Static | BindingFlags.NonPublic)!, arguments);
    }
}
