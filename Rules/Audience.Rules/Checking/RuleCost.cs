using Audience.Rules.Model;
using Audience.Rules.Syntax;

namespace Audience.Rules.Checking;

/// <summary>
/// Estimates what a rule costs per event, in units of about one comparison of two numbers, at the worst the
/// event limits allow: string operations cost in proportion to the longest text an event can carry and to the
/// pattern (a substring search may compare the pattern at every position), an aggregate costs its filter on every
/// event of its type plus a walk over its buckets when read, and <c>and</c>/<c>or</c> cost all their parts (no
/// short-circuit is assumed). The checker refuses a rule over <see cref="RuleLimits.MaxCost"/>, naming its costliest
/// part, and the Silo refuses a segment that would take the sum over all segments past
/// <see cref="RuleLimits.MaxTotalCost"/>. docs/rules.md lists the unit costs.
/// </summary>
public static class RuleCost
{
    /// <summary>Reading an aggregate: the walk over up to 120 buckets.</summary>
    public const int AggregateRead = 16;

    /// <summary>Feeding an aggregate one event, before its filter: type check, property lookup, bucket update.</summary>
    public const int AggregateFeed = 4;

    /// <summary>The cost of a whole rule, with the part that costs the most (for the error message).</summary>
    public static (long Cost, object Costliest, long CostliestCost) Of(Condition rule, RuleLimits limits)
    {
        var walker = new Walker(limits);
        var cost = walker.Condition(rule);
        return (cost, walker.Costliest ?? rule, walker.CostliestCost);
    }

    private sealed class Walker(RuleLimits limits)
    {
        private readonly HashSet<AggregateRef> _fed = [];

        public object? Costliest { get; private set; }

        public long CostliestCost { get; private set; }

        public long Condition(Condition condition)
        {
            long cost = condition switch
            {
                AllOf all => all.Items.Sum(Condition),
                AnyOf any => any.Items.Sum(Condition),
                Not not => Condition(not.Operand),
                Exists exists => 1 + Operand(exists.Operand),
                InSegment => 1,
                Comparison c => Operand(c.Left) + Compare(c.Operator, c.Right),
                _ => 1,
            };
            Note(condition, cost);
            return cost;
        }

        private long Operand(Operand operand)
        {
            switch (operand)
            {
                case AggregateRef aggregate:
                    // Feeding is paid once per distinct aggregate (count, sum... of the same events share it).
                    var key = aggregate with { Function = AggregateFunction.Count };
                    var feed = _fed.Add(key) ? AggregateFeed + (aggregate.Property?.Count(c => c == '.') + 1 ?? 0) + (aggregate.Filter is { } f ? Condition(f) : 0) : 0;
                    var cost = AggregateRead + feed;
                    Note(operand, cost);
                    return cost;
                case FieldRef { Scope: FieldScope.Profile }:
                    return 1;
                case FieldRef field:
                    return 1 + field.Name.Count(c => c == '.');
                default:
                    return 1;
            }
        }

        private long Compare(ComparisonOperator op, Literal right)
        {
            var text = limits.MaxEventTextBytes;
            switch (op)
            {
                case ComparisonOperator.Contains:
                    // A substring search: the value scanned 16 bytes at a time, the pattern compared at each candidate;
                    // on a list, each element compared.
                    var pattern = right is StringLiteral s ? s.Value.Length : 8;
                    return 2 + (text / 16 * Ceiling(pattern, 16));
                case ComparisonOperator.StartsWith or ComparisonOperator.EndsWith:
                    return 2 + Ceiling(right is StringLiteral p ? p.Value.Length : 8, 16);
                case ComparisonOperator.In or ComparisonOperator.NotIn:
                    // A hash lookup; hashing a text value reads all of it.
                    return 2 + (right is ListLiteral { Items: var items } && items.Any(i => i is StringLiteral) ? text / 32 : 0);
                default:
                    return 1 + (right is StringLiteral t ? Ceiling(t.Value.Length, 32) : 0);
            }
        }

        private static long Ceiling(long value, long step) => Math.Max(1, (value + step - 1) / step);

        private void Note(object node, long cost)
        {
            // The first of the parts that cost the most is named (a comparison with its aggregate and filter, say).
            if (node is not (AllOf or AnyOf or Not) && cost > CostliestCost)
            {
                (Costliest, CostliestCost) = (node, cost);
            }
        }
    }
}
