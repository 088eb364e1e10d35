using Audience.Rules.Model;
using Audience.Rules.Syntax;

namespace Audience.Rules.Checking;

/// <summary>The built-in statistics every profile keeps.</summary>
[Flags]
public enum ProfileFields
{
    None = 0,
    EventCount = 1,
    TotalSpent = 2,
    OrderCount = 4,
    FirstSeen = 8,
    LastSeen = 16,
}

/// <summary>The segments a rule may refer to, and what each of them refers to (for cycle detection).</summary>
public interface ISegmentGraph
{
    bool Contains(string segmentId);

    IEnumerable<string> DependenciesOf(string segmentId);
}

/// <summary>What a rule reads. The compiler, the segment index and the Silo's timers are driven by it.</summary>
public sealed record RuleDependencies(
    ProfileFields Fields,
    IReadOnlySet<string> Traits,
    IReadOnlyList<AggregateRef> Aggregates,
    IReadOnlySet<string> EventTypes,
    bool AnyEventType,
    IReadOnlySet<string> Segments,
    bool TimeDependent);

/// <summary>A rule after checking; only a rule without errors can be compiled. <see cref="Cost"/> is per event (see <see cref="RuleCost"/>).</summary>
public sealed record CheckedRule(Condition Rule, RuleDependencies Dependencies, IReadOnlyList<RuleDiagnostic> Errors, long Cost = 0)
{
    public bool IsValid => Errors.Count == 0;
}

/// <summary>
/// Checks a parsed rule: names, types, windows, limits, segment references and cycles. It reports every
/// error it finds, each at the place in the source it concerns, with a message a marketer can act on.
/// </summary>
public static class RuleChecker
{
    public static readonly IReadOnlyList<string> BuiltinFields = ["eventCount", "totalSpent", "orderCount", "firstSeen", "lastSeen"];

    /// <summary>The shortest and longest window an aggregate may slide over.</summary>
    public static readonly TimeSpan MinWindow = TimeSpan.FromMinutes(1);

    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(90);

    internal enum StaticType
    {
        Number,
        Time,
        Dynamic,
    }

    public static CheckedRule Check(ParseResult parsed, ISegmentGraph? segments = null, string? selfSegmentId = null, RuleLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        limits ??= RuleLimits.Default;
        var walker = new Walker(parsed.Spans, segments, selfSegmentId, limits);
        walker.Condition(parsed.Rule, inFilter: false);
        walker.CheckSize(parsed.Rule);
        var (cost, costliest, costliestCost) = RuleCost.Of(parsed.Rule, limits);
        if (cost > limits.MaxCost && parsed.Errors.Count == 0)
        {
            walker.Errors.Add(new RuleDiagnostic(DiagnosticCodes.TooCostly,
                $"the rule costs about {cost:N0} units per event, more than the {limits.MaxCost:N0} one segment may; its costliest part, "
                + $"{Describe(costliest)}, costs {costliestCost:N0}. Text searches (contains) cost in proportion to their pattern and to the "
                + $"longest text an event may carry ({limits.MaxEventTextBytes:N0} bytes): use shorter patterns, ==, startsWith, or fewer aggregates",
                parsed.Spans[costliest]));
        }

        var errors = parsed.Errors.Concat(walker.Errors)
            .DistinctBy(e => (e.Span.Offset, e.Message))
            .OrderBy(e => e.Span.Line).ThenBy(e => e.Span.Column)
            .ToList();
        return new CheckedRule(parsed.Rule, walker.Dependencies(), errors, cost);
    }

    private static string Describe(object node)
    {
        var text = node switch
        {
            Condition condition => RulePrinter.Print(condition),
            Operand operand => RulePrinter.Print(operand),
            _ => "the rule",
        };
        return text.Length > 120 ? "'" + text[..117] + "...'" : "'" + text + "'";
    }

    internal static ProfileFields FieldFlag(string name) => name switch
    {
        "eventCount" => ProfileFields.EventCount,
        "totalSpent" => ProfileFields.TotalSpent,
        "orderCount" => ProfileFields.OrderCount,
        "firstSeen" => ProfileFields.FirstSeen,
        "lastSeen" => ProfileFields.LastSeen,
        _ => ProfileFields.None,
    };

    internal static StaticType TypeOf(Operand operand) => operand switch
    {
        FieldRef { Scope: FieldScope.Profile, Name: "firstSeen" or "lastSeen" } => StaticType.Time,
        FieldRef { Scope: FieldScope.Profile } => StaticType.Number,
        AggregateRef => StaticType.Number,
        _ => StaticType.Dynamic,
    };

    private sealed class Walker(SourceMap spans, ISegmentGraph? segments, string? self, RuleLimits limits)
    {
        private ProfileFields _fields;
        private readonly HashSet<string> _traits = new(StringComparer.Ordinal);
        private readonly List<AggregateRef> _aggregates = [];
        private readonly HashSet<string> _eventTypes = new(StringComparer.Ordinal);
        private bool _anyEventType;
        private readonly HashSet<string> _segments = new(StringComparer.Ordinal);
        private bool _timeDependent;

        public List<RuleDiagnostic> Errors { get; } = [];

        public RuleDependencies Dependencies() => new(_fields, _traits, _aggregates, _eventTypes, _anyEventType, _segments, _timeDependent);

        public void Condition(Condition condition, bool inFilter)
        {
            switch (condition)
            {
                case AllOf all:
                    foreach (var item in all.Items)
                    {
                        Condition(item, inFilter);
                    }

                    break;
                case AnyOf any:
                    foreach (var item in any.Items)
                    {
                        Condition(item, inFilter);
                    }

                    break;
                case Not not:
                    Condition(not.Operand, inFilter);
                    break;
                case Exists exists:
                    Operand(exists.Operand, inFilter);
                    break;
                case InSegment inSegment:
                    Segment(inSegment);
                    break;
                case Comparison comparison:
                    if (Operand(comparison.Left, inFilter))
                    {
                        Compare(comparison, inFilter);
                    }

                    break;
            }
        }

        /// <summary>Checks what a comparison reads; false when it is unusable, so its types are not checked too.</summary>
        private bool Operand(Operand operand, bool inFilter)
        {
            switch (operand)
            {
                case FieldRef { Scope: FieldScope.Profile } field:
                    var flag = FieldFlag(field.Name);
                    if (flag == ProfileFields.None)
                    {
                        Error(field, DiagnosticCodes.UnknownField, UnknownFieldMessage(field.Name));
                        return false;
                    }

                    _fields |= flag;
                    return true;
                case FieldRef { Scope: FieldScope.Trait } trait:
                    if (!IsPath(trait.Name))
                    {
                        Error(trait, DiagnosticCodes.UnknownField, $"'{trait.Name}' is not a valid trait name; use letters, digits and _ (for example traits.country)");
                        return false;
                    }

                    _traits.Add(TopLevel(trait.Name));
                    return true;
                case FieldRef property:
                    if (!IsPath(property.Name) || TextParser.ReservedWords.Contains(TopLevel(property.Name)))
                    {
                        Error(property, DiagnosticCodes.UnknownField, $"'{property.Name}' cannot be used as an event property name in a filter; use letters, digits and _, and not a keyword such as 'in'");
                        return false;
                    }

                    return true;
                case AggregateRef aggregate:
                    return Aggregate(aggregate);
                default:
                    return false;
            }
        }

        private bool Aggregate(AggregateRef aggregate)
        {
            var ok = true;
            if (aggregate.EventType is { } type && (type.Length == 0 || type.Length > 128 || type.Any(char.IsControl)))
            {
                Error(aggregate, DiagnosticCodes.InvalidAggregate, "an event type is 1 to 128 printable characters");
                ok = false;
            }

            if (aggregate.Function != AggregateFunction.Count && aggregate.Property is null)
            {
                var fn = RulePrinter.FunctionName(aggregate.Function);
                Error(aggregate, DiagnosticCodes.InvalidAggregate,
                    $"{fn} needs a property to work on, as in {fn}({aggregate.EventType ?? "any"}.amount within 30d)");
                ok = false;
            }

            if (aggregate.Property is { } property && !IsPath(property))
            {
                Error(aggregate, DiagnosticCodes.InvalidAggregate, $"'{property}' is not a valid property name; use letters, digits and _");
                ok = false;
            }

            var window = TimeSpan.FromMilliseconds(aggregate.Window.Milliseconds);
            if (window < MinWindow || window > MaxWindow)
            {
                Error(aggregate, DiagnosticCodes.InvalidWindow,
                    $"the window {aggregate.Window} is out of range; a window is from 1m to 90d");
                ok = false;
            }

            if (aggregate.Filter is { } filter)
            {
                Condition(filter, inFilter: true);
            }

            if (aggregate.EventType is null)
            {
                _anyEventType = true;
            }
            else
            {
                _eventTypes.Add(aggregate.EventType);
            }

            if (!_aggregates.Contains(aggregate))
            {
                _aggregates.Add(aggregate);
            }

            _timeDependent = true;
            return ok;
        }

        private void Compare(Comparison comparison, bool inFilter)
        {
            var type = TypeOf(comparison.Left);
            var left = Describe(comparison.Left, type);
            var op = comparison.Operator;
            var right = comparison.Right;
            if (right is AgoLiteral)
            {
                if (inFilter)
                {
                    // A filter is applied once, when the event arrives; a moving time would mean something else later.
                    Error(right, DiagnosticCodes.TypeMismatch, "a where filter reads each event once, as it arrives, so it cannot use 'ago'; compare with a fixed time such as 2024-01-15");
                    return;
                }

                _timeDependent = true;
            }

            switch (op)
            {
                case ComparisonOperator.In or ComparisonOperator.NotIn:
                    if (right is not ListLiteral list)
                    {
                        Error(right, DiagnosticCodes.TypeMismatch, $"'{RulePrinter.Symbol(op)}' needs a list, as in [\"DE\", \"AT\"]");
                        return;
                    }

                    if (list.Items.Count == 0)
                    {
                        Error(right, DiagnosticCodes.TypeMismatch, "the list is empty; add at least one value");
                    }

                    if (type == StaticType.Time)
                    {
                        Error(comparison, DiagnosticCodes.TypeMismatch, $"{left} cannot be compared with a list; compare it with a time, as in {Name(comparison.Left)} within 7d");
                        return;
                    }

                    foreach (var item in list.Items)
                    {
                        if (type == StaticType.Number && item is not NumberLiteral)
                        {
                            Error(item, DiagnosticCodes.TypeMismatch, $"{left}, so every item of the list must be a number; {RulePrinter.Print(item)} is not");
                        }
                    }

                    return;
                case ComparisonOperator.Contains or ComparisonOperator.StartsWith or ComparisonOperator.EndsWith:
                    if (type != StaticType.Dynamic)
                    {
                        Error(comparison, DiagnosticCodes.TypeMismatch, $"'{RulePrinter.Symbol(op)}' works on text, but {left}");
                        return;
                    }

                    if (right is not StringLiteral)
                    {
                        Error(right, DiagnosticCodes.TypeMismatch, $"'{RulePrinter.Symbol(op)}' needs a text value in quotes, not {Kind(right)}");
                    }

                    return;
            }

            if (right is ListLiteral)
            {
                Error(right, DiagnosticCodes.TypeMismatch, "a list can only follow 'in' or 'not in'");
                return;
            }

            var ordering = op is not (ComparisonOperator.Equal or ComparisonOperator.NotEqual);
            switch (type)
            {
                case StaticType.Number when right is not NumberLiteral:
                    Error(right, DiagnosticCodes.TypeMismatch, $"{left} and cannot be compared with {Kind(right)}; compare it with a number, as in {Name(comparison.Left)} > 100");
                    break;
                case StaticType.Time when right is not (TimestampLiteral or AgoLiteral):
                    Error(right, DiagnosticCodes.TypeMismatch, $"{left} and cannot be compared with {Kind(right)}; compare it with a time such as 30d ago or 2024-01-15");
                    break;
                case StaticType.Dynamic when ordering && right is BoolLiteral:
                    Error(right, DiagnosticCodes.TypeMismatch, $"true and false cannot be ordered; use == or != with a boolean");
                    break;
            }
        }

        private void Segment(InSegment inSegment)
        {
            var id = inSegment.SegmentId;
            _segments.Add(id);
            if (self is not null && id == self)
            {
                Error(inSegment, DiagnosticCodes.Cycle, $"a segment cannot refer to itself: inSegment(\"{id}\")");
                return;
            }

            if (segments is null)
            {
                return;
            }

            if (!segments.Contains(id))
            {
                Error(inSegment, DiagnosticCodes.UnknownSegment, $"there is no segment with the id \"{id}\"");
                return;
            }

            if (self is not null && FindPath(id, self) is { } path)
            {
                Error(inSegment, DiagnosticCodes.Cycle,
                    $"inSegment(\"{id}\") makes a cycle: {self} → {string.Join(" → ", path)}");
            }
        }

        /// <summary>A path of segment references from <paramref name="from"/> to <paramref name="to"/>, if one exists.</summary>
        private List<string>? FindPath(string from, string to)
        {
            var visited = new HashSet<string>(StringComparer.Ordinal);
            var path = new List<string>();

            bool Visit(string id)
            {
                path.Add(id);
                if (id == to)
                {
                    return true;
                }

                if (visited.Add(id))
                {
                    foreach (var next in segments!.DependenciesOf(id))
                    {
                        if (Visit(next))
                        {
                            return true;
                        }
                    }
                }

                path.RemoveAt(path.Count - 1);
                return false;
            }

            return Visit(from) ? path : null;
        }

        public void CheckSize(Condition rule)
        {
            var nodes = Count(rule);
            if (nodes > limits.MaxNodes)
            {
                Errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                    $"the rule has {nodes} parts; at most {limits.MaxNodes} are allowed, so split it into segments and combine them with inSegment", SourceSpan.Start));
            }

            if (_aggregates.Count > limits.MaxAggregates)
            {
                Errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                    $"the rule uses {_aggregates.Count} different aggregates; at most {limits.MaxAggregates} are allowed", SourceSpan.Start));
            }
        }

        private static int Count(Condition condition) => condition switch
        {
            AllOf all => 1 + all.Items.Sum(Count),
            AnyOf any => 1 + any.Items.Sum(Count),
            Not not => 1 + Count(not.Operand),
            Comparison c => 1 + Count(c.Left) + (c.Right is ListLiteral l ? 1 + l.Items.Count : 1),
            Exists e => 1 + Count(e.Operand),
            _ => 1,
        };

        private static int Count(Operand operand) => operand is AggregateRef { Filter: { } filter } ? 1 + Count(filter) : 1;

        private static string UnknownFieldMessage(string name)
        {
            var suggestion = BuiltinFields.Concat(["traits." + name])
                .Select(f => (Field: f, Distance: Distance(name, f)))
                .Where(x => x.Distance <= 2 && !x.Field.StartsWith("traits.", StringComparison.Ordinal))
                .OrderBy(x => x.Distance)
                .Select(x => x.Field)
                .FirstOrDefault();
            var hint = suggestion is not null
                ? $"did you mean {suggestion}?"
                : $"the fields are {string.Join(", ", BuiltinFields)}; a trait is written traits.{name}";
            return $"unknown field '{name}'; {hint}";
        }

        private static int Distance(string a, string b)
        {
            a = a.ToLowerInvariant();
            b = b.ToLowerInvariant();
            var previous = new int[b.Length + 1];
            var current = new int[b.Length + 1];
            for (var j = 0; j <= b.Length; j++)
            {
                previous[j] = j;
            }

            for (var i = 1; i <= a.Length; i++)
            {
                current[0] = i;
                for (var j = 1; j <= b.Length; j++)
                {
                    var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                    current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
                }

                (previous, current) = (current, previous);
            }

            return previous[b.Length];
        }

        private static string Describe(Operand operand, StaticType type) => type switch
        {
            StaticType.Number => $"{Name(operand)} is a number",
            StaticType.Time => $"{Name(operand)} is a time",
            _ => $"{Name(operand)} can hold any value",
        };

        private static string Name(Operand operand) => RulePrinter.Print(operand);

        private static string Kind(Literal literal) => literal switch
        {
            NumberLiteral n => $"the number {RulePrinter.Print(n)}",
            StringLiteral s => $"the text {RulePrinter.Print(s)}",
            BoolLiteral b => $"the boolean {RulePrinter.Print(b)}",
            TimestampLiteral t => $"the time {RulePrinter.Print(t)}",
            AgoLiteral a => $"the time {RulePrinter.Print(a)}",
            _ => "a list",
        };

        private static bool IsPath(string name) =>
            name.Split('.').All(part => part.Length > 0 && Lexer.IsIdentifierStart(part[0]) && part.All(Lexer.IsIdentifierPart));

        internal static string TopLevel(string path)
        {
            var dot = path.IndexOf('.', StringComparison.Ordinal);
            return dot < 0 ? path : path[..dot];
        }

        private void Error(object node, string code, string message) => Errors.Add(new RuleDiagnostic(code, message, spans[node]));
    }
}
