using Audience.Rules.Model;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;

namespace Audience.Rules.Evaluation;

/// <summary>One node of an explanation: the part of the rule, its outcome, and the value it read.</summary>
public sealed record ExplainNode(string Rule, bool Result, string? Actual, IReadOnlyList<ExplainNode> Children, string? Note = null);

/// <summary>
/// Evaluates a rule model by walking it, with no compilation. It is the reference the compiler is tested
/// against, and it explains a decision: every node's outcome and the values that were read.
/// </summary>
public static class RuleInterpreter
{
    public static bool Evaluate(Condition rule, UserProfile profile, long nowMs) => Explain(rule, profile, nowMs).Result;

    public static ExplainNode Explain(Condition rule, UserProfile profile, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(profile);
        return Node(rule, profile, nowMs, null);
    }

    /// <summary>Whether an event passes an aggregate's where filter.</summary>
    public static bool Matches(Condition filter, RuleEvent e) => Node(filter, null, e.TimestampMs, e).Result;

    private static ExplainNode Node(Condition condition, UserProfile? profile, long now, RuleEvent? e)
    {
        var text = RulePrinter.Print(condition);
        switch (condition)
        {
            case AllOf all:
                {
                    var children = all.Items.Select(c => Node(c, profile, now, e)).ToList();
                    return new ExplainNode(text, children.TrueForAll(c => c.Result), null, children);
                }

            case AnyOf any:
                {
                    var children = any.Items.Select(c => Node(c, profile, now, e)).ToList();
                    return new ExplainNode(text, children.Exists(c => c.Result), null, children);
                }

            case Not not:
                {
                    var inner = Node(not.Operand, profile, now, e);
                    return new ExplainNode(text, !inner.Result, null, [inner]);
                }

            case InSegment inSegment:
                {
                    var slot = profile!.Catalog.SegmentSlot(inSegment.SegmentId);
                    var since = profile.MemberSince(slot);
                    return new ExplainNode(text, profile.IsMember(slot), since is { } s ? "member since " + TimeText.Format(s) : "not a member", []);
                }

            case Exists exists:
                {
                    var (value, note) = Read(exists.Operand, profile, now, e);
                    var present = exists.Operand is AggregateRef
                        ? Read(((AggregateRef)exists.Operand) with { Function = AggregateFunction.Count }, profile, now, e).Value.AsNumber > 0
                        : value.Kind is not (ValueKind.Missing or ValueKind.Null);
                    return new ExplainNode(text, present, value.ToString(), [], note);
                }

            case Comparison comparison:
                {
                    var (value, note) = Read(comparison.Left, profile, now, e);
                    return new ExplainNode(text, Compare(value, comparison.Operator, comparison.Right, now), value.ToString(), [], note);
                }

            default:
                return new ExplainNode(text, false, null, [], "this part of the rule is invalid");
        }
    }

    private static (Value Value, string? Note) Read(Operand operand, UserProfile? profile, long now, RuleEvent? e)
    {
        switch (operand)
        {
            case FieldRef { Scope: FieldScope.EventProperty } property:
                return (e!.Get(property.Name.Split('.')), null);
            case FieldRef { Scope: FieldScope.Trait } trait:
                var path = trait.Name.Split('.');
                var value = profile!.Traits.TryGetValue(path[0], out var v) ? v : Value.Missing;
                return (path.Length == 1 ? value : value.Get(path[1..]), null);
            case FieldRef field:
                return (field.Name switch
                {
                    "eventCount" => Value.FromNumber(profile!.EventCount),
                    "totalSpent" => Value.FromNumber(profile!.TotalSpent),
                    "orderCount" => Value.FromNumber(profile!.OrderCount),
                    "firstSeen" => profile!.FirstSeen is { } first ? Value.FromTime(first) : Value.Missing,
                    "lastSeen" => profile!.LastSeen is { } last ? Value.FromTime(last) : Value.Missing,
                    _ => Value.Missing,
                }, null);
            case AggregateRef aggregate:
                return ReadAggregate(aggregate, profile!, now);
            default:
                return (Value.Missing, null);
        }
    }

    private static (Value Value, string? Note) ReadAggregate(AggregateRef aggregate, UserProfile profile, long now)
    {
        var spec = profile.Catalog.Aggregates.FirstOrDefault(s => s.Key == AggregateKey.Of(aggregate));
        var layout = BucketLayout.For(aggregate.Window);
        var note = $"{layout.Count} buckets of {TimeSpan.FromMilliseconds(layout.WidthMs)}";
        if (spec is null)
        {
            note = "no active segment tracks this aggregate yet, so it reads as empty";
        }

        var totals = spec is null ? WindowTotals.Empty : profile.Aggregate(spec)?.Query(now) ?? WindowTotals.Empty;
        var value = aggregate.Function switch
        {
            AggregateFunction.Count => Value.FromNumber(totals.Count),
            AggregateFunction.Sum => Value.FromNumber(totals.Sum),
            _ when totals.Count == 0 => Value.Missing,
            AggregateFunction.Min => Value.FromNumber(totals.Min),
            AggregateFunction.Max => Value.FromNumber(totals.Max),
            _ => Value.FromNumber(totals.Sum / totals.Count),
        };
        return (value, $"{note}; {totals.Count} event(s) in the window");
    }

    /// <summary>
    /// The meaning of every operator. A value of another kind than the literal never matches; != and not in
    /// are the exact negations of == and in, so they match a missing value.
    /// </summary>
    public static bool Compare(Value value, ComparisonOperator op, Literal literal, long now)
    {
        switch (op)
        {
            case ComparisonOperator.Equal:
                return Order(value, literal, now) == 0;
            case ComparisonOperator.NotEqual:
                return Order(value, literal, now) != 0;
            case ComparisonOperator.In:
                return ((ListLiteral)literal).Items.Any(item => Order(value, item, now) == 0);
            case ComparisonOperator.NotIn:
                return !((ListLiteral)literal).Items.Any(item => Order(value, item, now) == 0);
            case ComparisonOperator.Contains:
                {
                    var needle = ((StringLiteral)literal).Value;
                    return value.Kind switch
                    {
                        ValueKind.String => value.AsString.Contains(needle, StringComparison.Ordinal),
                        ValueKind.List => value.AsList.Any(v => v.Kind == ValueKind.String && v.AsString == needle),
                        _ => false,
                    };
                }

            case ComparisonOperator.StartsWith:
                return value.Kind == ValueKind.String && value.AsString.StartsWith(((StringLiteral)literal).Value, StringComparison.Ordinal);
            case ComparisonOperator.EndsWith:
                return value.Kind == ValueKind.String && value.AsString.EndsWith(((StringLiteral)literal).Value, StringComparison.Ordinal);
        }

        if (literal is BoolLiteral)
        {
            return false;
        }

        var order = Order(value, literal, now);
        return order is { } o && op switch
        {
            ComparisonOperator.LessThan => o < 0,
            ComparisonOperator.LessThanOrEqual => o <= 0,
            ComparisonOperator.GreaterThan => o > 0,
            _ => o >= 0,
        };
    }

    /// <summary>How a value orders against a literal of the same kind; null when they are of different kinds.</summary>
    private static int? Order(Value value, Literal literal, long now) => literal switch
    {
        NumberLiteral n when value.Kind == ValueKind.Number => value.AsNumber.CompareTo(n.Value),
        StringLiteral s when value.Kind == ValueKind.String => Math.Sign(string.CompareOrdinal(value.AsString, s.Value)),
        BoolLiteral b when value.Kind == ValueKind.Bool => value.AsBool == b.Value ? 0 : 1,
        TimestampLiteral t when value.TryGetTime(out var ms) => ms.CompareTo(t.UnixMilliseconds),
        AgoLiteral a when value.TryGetTime(out var ms) => ms.CompareTo(now - a.Duration.Milliseconds),
        _ => null,
    };
}
