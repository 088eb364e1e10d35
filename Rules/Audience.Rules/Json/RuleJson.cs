using System.Globalization;
using System.Text;
using System.Text.Json;
using Audience.Rules.Model;
using Audience.Rules.Syntax;

namespace Audience.Rules.Json;

/// <summary>
/// The JSON notation of a rule: seed 004's condition tree
/// (<c>{"conditions":[{"field":"totalSpent","operator":"gt","value":1000}]}</c>, conditions combined with AND),
/// extended with <c>all</c>, <c>any</c>, <c>not</c>, aggregates and <c>inSegment</c> so that it says
/// everything the text notation can. The reference is in docs/rules.md.
/// </summary>
public static class RuleJson
{
    private static readonly Dictionary<string, ComparisonOperator> Operators = new(StringComparer.OrdinalIgnoreCase)
    {
        ["eq"] = ComparisonOperator.Equal,
        ["=="] = ComparisonOperator.Equal,
        ["ne"] = ComparisonOperator.NotEqual,
        ["neq"] = ComparisonOperator.NotEqual,
        ["!="] = ComparisonOperator.NotEqual,
        ["lt"] = ComparisonOperator.LessThan,
        ["<"] = ComparisonOperator.LessThan,
        ["lte"] = ComparisonOperator.LessThanOrEqual,
        ["<="] = ComparisonOperator.LessThanOrEqual,
        ["gt"] = ComparisonOperator.GreaterThan,
        [">"] = ComparisonOperator.GreaterThan,
        ["gte"] = ComparisonOperator.GreaterThanOrEqual,
        [">="] = ComparisonOperator.GreaterThanOrEqual,
        ["in"] = ComparisonOperator.In,
        ["notIn"] = ComparisonOperator.NotIn,
        ["not_in"] = ComparisonOperator.NotIn,
        ["contains"] = ComparisonOperator.Contains,
        ["startsWith"] = ComparisonOperator.StartsWith,
        ["endsWith"] = ComparisonOperator.EndsWith,
    };

    private static readonly string[] FunctionNames = ["count", "sum", "min", "max", "avg"];

    private const string OperatorList = "eq, ne, lt, lte, gt, gte, in, notIn, contains, startsWith, endsWith, exists, within, before, after";

    /// <summary>Reads a JSON rule document; errors carry the line and column in <paramref name="json"/>.</summary>
    public static ParseResult Parse(string json, RuleLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        limits ??= RuleLimits.Default;
        var errors = new List<RuleDiagnostic>();
        var map = new SourceMap();
        if (json.Length > limits.MaxTextLength)
        {
            errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                $"a rule document may be at most {limits.MaxTextLength} characters long; this one has {json.Length}", SourceSpan.Start));
            return new ParseResult(new InvalidCondition(), map, errors);
        }

        var root = PositionedJson.Parse(json, limits.MaxDepth, out var syntaxError);
        if (root is null)
        {
            errors.Add(syntaxError!);
            return new ParseResult(new InvalidCondition(), map, errors);
        }

        var reader = new Reader(map, errors, limits);
        var rule = reader.ReadCondition(root, 0, inFilter: false);
        return new ParseResult(rule, map, errors);
    }

    /// <summary>Writes the canonical JSON form: a top-level <c>and</c> as seed 004's <c>conditions</c> list.</summary>
    public static string Write(Condition rule, bool indented = false)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            WriteCondition(writer, rule, topLevel: true);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static void WriteCondition(Utf8JsonWriter writer, Condition condition, bool topLevel = false)
    {
        switch (condition)
        {
            case AllOf { Items.Count: 1 } single:
                WriteCondition(writer, single.Items[0], topLevel);
                return;
            case AnyOf { Items.Count: 1 } single:
                WriteCondition(writer, single.Items[0], topLevel);
                return;
            case AllOf all:
                WriteGroup(writer, topLevel ? "conditions" : "all", all.Items);
                return;
            case AnyOf any:
                WriteGroup(writer, "any", any.Items);
                return;
        }

        writer.WriteStartObject();
        switch (condition)
        {
            case Not not:
                writer.WritePropertyName("not");
                WriteCondition(writer, not.Operand);
                break;
            case InSegment inSegment:
                writer.WriteString("inSegment", inSegment.SegmentId);
                break;
            case Exists exists:
                WriteOperand(writer, exists.Operand);
                writer.WriteString("operator", "exists");
                break;
            case Comparison comparison:
                WriteOperand(writer, comparison.Left);
                writer.WriteString("operator", OperatorName(comparison.Operator));
                writer.WritePropertyName("value");
                WriteLiteral(writer, comparison.Right);
                break;
        }

        writer.WriteEndObject();
    }

    private static void WriteGroup(Utf8JsonWriter writer, string name, EquatableArray<Condition> items)
    {
        writer.WriteStartObject();
        writer.WriteStartArray(name);
        foreach (var item in items)
        {
            WriteCondition(writer, item);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteOperand(Utf8JsonWriter writer, Operand operand)
    {
        switch (operand)
        {
            case FieldRef field:
                writer.WriteString("field", field.Scope == FieldScope.Trait ? "traits." + field.Name : field.Name);
                break;
            case AggregateRef aggregate:
                writer.WriteStartObject("aggregate");
                writer.WriteString("function", RulePrinter.FunctionName(aggregate.Function));
                writer.WriteString("eventType", aggregate.EventType ?? "any");
                if (aggregate.Property is not null)
                {
                    writer.WriteString("property", aggregate.Property);
                }

                if (aggregate.Filter is not null)
                {
                    writer.WritePropertyName("where");
                    WriteCondition(writer, aggregate.Filter);
                }

                writer.WriteString("within", aggregate.Window.ToString());
                writer.WriteEndObject();
                break;
        }
    }

    private static void WriteLiteral(Utf8JsonWriter writer, Literal literal)
    {
        switch (literal)
        {
            case NumberLiteral number:
                writer.WriteNumberValue(number.Value);
                break;
            case StringLiteral text:
                writer.WriteStringValue(text.Value);
                break;
            case BoolLiteral boolean:
                writer.WriteBooleanValue(boolean.Value);
                break;
            case TimestampLiteral timestamp:
                writer.WriteStartObject();
                writer.WriteString("timestamp", TimeText.Format(timestamp.UnixMilliseconds));
                writer.WriteEndObject();
                break;
            case AgoLiteral ago:
                writer.WriteStartObject();
                writer.WriteString("ago", ago.Duration.ToString());
                writer.WriteEndObject();
                break;
            case ListLiteral list:
                writer.WriteStartArray();
                foreach (var item in list.Items)
                {
                    WriteLiteral(writer, item);
                }

                writer.WriteEndArray();
                break;
        }
    }

    public static string OperatorName(ComparisonOperator op) => op switch
    {
        ComparisonOperator.Equal => "eq",
        ComparisonOperator.NotEqual => "ne",
        ComparisonOperator.LessThan => "lt",
        ComparisonOperator.LessThanOrEqual => "lte",
        ComparisonOperator.GreaterThan => "gt",
        ComparisonOperator.GreaterThanOrEqual => "gte",
        ComparisonOperator.In => "in",
        ComparisonOperator.NotIn => "notIn",
        ComparisonOperator.Contains => "contains",
        ComparisonOperator.StartsWith => "startsWith",
        _ => "endsWith",
    };

    private sealed class Reader(SourceMap map, List<RuleDiagnostic> errors, RuleLimits limits)
    {
        public Condition ReadCondition(PositionedNode node, int depth, bool inFilter)
        {
            if (depth > limits.MaxDepth)
            {
                return Invalid(node, DiagnosticCodes.TooLarge, $"the rule is nested too deeply; at most {limits.MaxDepth} levels are allowed");
            }

            if (node.Kind != JsonNodeKind.Object)
            {
                return Invalid(node, $"a condition must be an object, but this is {node.Describe()}");
            }

            var keys = node.Properties.Select(p => p.Name).ToList();
            foreach (var group in new[] { "conditions", "all", "any" })
            {
                if (keys.Contains(group))
                {
                    RejectOthers(node, group);
                    return ReadGroup(node, group, depth, inFilter);
                }
            }

            if (keys.Contains("not"))
            {
                RejectOthers(node, "not");
                return map.Add(new Not(ReadCondition(Get(node, "not")!, depth + 1, inFilter)), node.Span);
            }

            if (keys.Contains("inSegment"))
            {
                RejectOthers(node, "inSegment");
                var id = Get(node, "inSegment")!;
                if (inFilter)
                {
                    return Invalid(id, "inSegment cannot be used inside a where filter, which reads the event's properties");
                }

                return id.Kind == JsonNodeKind.String && !string.IsNullOrEmpty(id.Text)
                    ? map.Add(new InSegment(id.Text), node.Span)
                    : Invalid(id, "inSegment needs the segment's id as a string");
            }

            return ReadComparison(node, depth, inFilter);
        }

        private Condition ReadGroup(PositionedNode node, string key, int depth, bool inFilter)
        {
            var list = Get(node, key)!;
            if (list.Kind != JsonNodeKind.Array || list.Items.Count == 0)
            {
                return Invalid(list, $"'{key}' must be a non-empty array of conditions");
            }

            var items = list.Items.Select(item => ReadCondition(item, depth + 1, inFilter)).ToArray();
            if (items.Length == 1)
            {
                return items[0];
            }

            return key == "any" ? map.Add(new AnyOf(items), node.Span) : map.Add(new AllOf(items), node.Span);
        }

        private Condition ReadComparison(PositionedNode node, int depth, bool inFilter)
        {
            var known = new HashSet<string> { "field", "aggregate", "operator", "value" };
            foreach (var (name, nameSpan, _) in node.Properties)
            {
                if (!known.Contains(name))
                {
                    Error(nameSpan, $"unknown key '{name}'; a condition has field (or aggregate), operator and value, or is one of conditions, all, any, not, inSegment");
                }
            }

            Operand? operand = null;
            var field = Get(node, "field");
            var aggregate = Get(node, "aggregate");
            if (field is not null && aggregate is not null)
            {
                Error(node.Span, "a condition has either 'field' or 'aggregate', not both");
            }
            else if (field is not null)
            {
                operand = ReadField(field, inFilter);
            }
            else if (aggregate is not null)
            {
                operand = inFilter
                    ? InvalidOperand(aggregate, "an aggregate cannot be used inside a where filter, which reads the event's properties")
                    : ReadAggregate(aggregate, depth);
            }
            else
            {
                Error(node.Span, "a condition needs a 'field' (or an 'aggregate'), an 'operator' and usually a 'value'");
            }

            var opNode = Get(node, "operator");
            if (opNode is null || opNode.Kind != JsonNodeKind.String)
            {
                Error(opNode?.Span ?? node.Span, $"a condition needs an 'operator' string: one of {OperatorList}");
                return new InvalidCondition();
            }

            var opText = opNode.Text!;
            var valueNode = Get(node, "value");
            if (opText == "exists")
            {
                if (valueNode is not null)
                {
                    Error(valueNode.Span, "'exists' takes no value");
                }

                return operand is null ? new InvalidCondition() : map.Add(new Exists(operand), node.Span);
            }

            if (valueNode is null)
            {
                Error(node.Span, $"the operator '{opText}' needs a 'value'");
                return new InvalidCondition();
            }

            ComparisonOperator op;
            Literal? value;
            switch (opText)
            {
                case "within" when !inFilter:
                    op = ComparisonOperator.GreaterThanOrEqual;
                    value = valueNode.Kind == JsonNodeKind.String && Duration.TryParse(valueNode.Text!, out var d)
                        ? map.Add(new AgoLiteral(d), valueNode.Span)
                        : InvalidLiteral(valueNode, "'within' needs a duration such as \"7d\"");
                    break;
                case "before" or "after" when !inFilter:
                    op = opText == "before" ? ComparisonOperator.LessThan : ComparisonOperator.GreaterThan;
                    value = ReadLiteral(valueNode, operand, timeExpected: true);
                    if (value is not null and not (AgoLiteral or TimestampLiteral))
                    {
                        value = InvalidLiteral(valueNode, $"'{opText}' needs a time: {{\"ago\": \"30d\"}} or {{\"timestamp\": \"2024-01-15T00:00:00Z\"}}");
                    }

                    break;
                default:
                    if (!Operators.TryGetValue(opText, out op))
                    {
                        Error(opNode.Span, $"unknown operator '{opText}'; expected one of {OperatorList}");
                        return new InvalidCondition();
                    }

                    if (op is ComparisonOperator.In or ComparisonOperator.NotIn)
                    {
                        value = valueNode.Kind == JsonNodeKind.Array
                            ? ReadList(valueNode)
                            : InvalidLiteral(valueNode, $"'{opText}' needs an array of values, as in [\"DE\", \"AT\"]");
                    }
                    else
                    {
                        value = valueNode.Kind == JsonNodeKind.Array
                            ? InvalidLiteral(valueNode, $"an array can only be used with in or notIn, not with '{opText}'")
                            : ReadLiteral(valueNode, operand, timeExpected: false);
                    }

                    break;
            }

            return operand is null || value is null ? new InvalidCondition() : map.Add(new Comparison(operand, op, value), node.Span);
        }

        private FieldRef? ReadField(PositionedNode node, bool inFilter)
        {
            if (node.Kind != JsonNodeKind.String || string.IsNullOrEmpty(node.Text))
            {
                Error(node.Span, "'field' must be a field name such as \"totalSpent\" or \"traits.country\"");
                return null;
            }

            var name = node.Text;
            if (inFilter)
            {
                return map.Add(new FieldRef(FieldScope.EventProperty, name), node.Span);
            }

            return name.StartsWith("traits.", StringComparison.Ordinal)
                ? map.Add(new FieldRef(FieldScope.Trait, name["traits.".Length..]), node.Span)
                : map.Add(new FieldRef(FieldScope.Profile, name), node.Span);
        }

        private AggregateRef? ReadAggregate(PositionedNode node, int depth)
        {
            if (node.Kind != JsonNodeKind.Object)
            {
                Error(node.Span, "'aggregate' must be an object with function, eventType, property, where and within");
                return null;
            }

            var ok = true;
            foreach (var (name, nameSpan, _) in node.Properties)
            {
                if (name is not ("function" or "eventType" or "property" or "where" or "within"))
                {
                    Error(nameSpan, $"unknown key '{name}' in an aggregate; expected function, eventType, property, where, within");
                    ok = false;
                }
            }

            var function = Get(node, "function");
            var index = function?.Kind == JsonNodeKind.String
                ? Array.FindIndex(FunctionNames, f => string.Equals(f, function.Text, StringComparison.OrdinalIgnoreCase))
                : -1;
            if (index < 0)
            {
                Errors(function?.Span ?? node.Span, DiagnosticCodes.UnknownFunction, "'function' must be one of count, sum, min, max, avg");
                ok = false;
            }

            var type = Get(node, "eventType");
            string? eventType = null;
            if (type is { Kind: JsonNodeKind.String } && !string.IsNullOrEmpty(type.Text))
            {
                eventType = type.Text == "any" ? null : type.Text;
            }
            else if (type is not null && type.Kind != JsonNodeKind.Null)
            {
                Error(type.Span, "'eventType' must be an event type name, or \"any\"");
                ok = false;
            }

            var propertyNode = Get(node, "property");
            string? property = null;
            if (propertyNode is { Kind: JsonNodeKind.String } && !string.IsNullOrEmpty(propertyNode.Text))
            {
                property = propertyNode.Text;
            }
            else if (propertyNode is not null && propertyNode.Kind != JsonNodeKind.Null)
            {
                Error(propertyNode.Span, "'property' must be a property name such as \"amount\"");
                ok = false;
            }

            var whereNode = Get(node, "where");
            var filter = whereNode is null || whereNode.Kind == JsonNodeKind.Null ? null : ReadCondition(whereNode, depth + 1, inFilter: true);
            var within = Get(node, "within");
            var window = default(Duration);
            if (within is not { Kind: JsonNodeKind.String } || !Duration.TryParse(within.Text!, out window))
            {
                Errors(within?.Span ?? node.Span, DiagnosticCodes.InvalidWindow, "'within' must be a window such as \"30m\", \"12h\", \"7d\" or \"2w\"");
                ok = false;
            }

            return ok ? map.Add(new AggregateRef((AggregateFunction)index, eventType, property, filter, window), node.Span) : null;
        }

        private Literal? ReadLiteral(PositionedNode node, Operand? operand, bool timeExpected)
        {
            switch (node.Kind)
            {
                case JsonNodeKind.Number:
                    return decimal.TryParse(node.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                        ? map.Add(new NumberLiteral(number), node.Span)
                        : InvalidLiteral(node, $"the number {node.Text} is out of range");
                case JsonNodeKind.String:
                    // An ISO-8601 string compared with firstSeen or lastSeen means that instant.
                    if ((timeExpected || operand is FieldRef { Scope: FieldScope.Profile, Name: "firstSeen" or "lastSeen" })
                        && TimeText.TryParse(node.Text!, out var ms))
                    {
                        return map.Add(new TimestampLiteral(ms), node.Span);
                    }

                    if (node.Text!.Length > limits.MaxStringLength)
                    {
                        errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                            $"a string may hold at most {limits.MaxStringLength} characters; this one has {node.Text.Length}", node.Span));
                    }

                    return map.Add(new StringLiteral(node.Text), node.Span);
                case JsonNodeKind.True or JsonNodeKind.False:
                    return map.Add(new BoolLiteral(node.Kind == JsonNodeKind.True), node.Span);
                case JsonNodeKind.Object when node.Properties.Count == 1 && node.Properties[0].Name == "ago":
                    return node.Properties[0].Value is { Kind: JsonNodeKind.String } agoNode && Duration.TryParse(agoNode.Text!, out var d)
                        ? map.Add(new AgoLiteral(d), node.Span)
                        : InvalidLiteral(node.Properties[0].Value, "'ago' must be a duration such as \"30d\"");
                case JsonNodeKind.Object when node.Properties.Count == 1 && node.Properties[0].Name == "timestamp":
                    return node.Properties[0].Value is { Kind: JsonNodeKind.String } tsNode && TimeText.TryParse(tsNode.Text!, out var t)
                        ? map.Add(new TimestampLiteral(t), node.Span)
                        : InvalidLiteral(node.Properties[0].Value, "'timestamp' must be an ISO-8601 time such as \"2024-01-15T10:30:00Z\"");
                default:
                    return InvalidLiteral(node, $"a value must be a number, a string, a boolean, {{\"ago\": \"30d\"}} or {{\"timestamp\": \"...\"}}, not {node.Describe()}");
            }
        }

        private ListLiteral? ReadList(PositionedNode node)
        {
            if (node.Items.Count > limits.MaxListItems)
            {
                Errors(node.Span, DiagnosticCodes.TooLarge, $"a list may hold at most {limits.MaxListItems} items");
                return null;
            }

            var items = new List<Literal>();
            foreach (var item in node.Items)
            {
                if (item.Kind is not (JsonNodeKind.Number or JsonNodeKind.String or JsonNodeKind.True or JsonNodeKind.False))
                {
                    Error(item.Span, $"a list holds numbers, strings or booleans, not {item.Describe()}");
                    continue;
                }

                if (ReadLiteral(item, null, timeExpected: false) is { } literal)
                {
                    items.Add(literal);
                }
            }

            return items.Count == node.Items.Count ? map.Add(new ListLiteral([.. items]), node.Span) : null;
        }

        private void RejectOthers(PositionedNode node, string key)
        {
            foreach (var (name, nameSpan, _) in node.Properties)
            {
                if (name != key)
                {
                    Error(nameSpan, $"'{key}' stands alone in its object; move '{name}' into a condition of its own");
                }
            }
        }

        private static PositionedNode? Get(PositionedNode node, string key)
        {
            foreach (var (name, _, value) in node.Properties)
            {
                if (name == key)
                {
                    return value;
                }
            }

            return null;
        }

        private InvalidCondition Invalid(PositionedNode node, string message) => Invalid(node, DiagnosticCodes.Syntax, message);

        private InvalidCondition Invalid(PositionedNode node, string code, string message)
        {
            Errors(node.Span, code, message);
            return new InvalidCondition();
        }

        private Operand? InvalidOperand(PositionedNode node, string message)
        {
            Error(node.Span, message);
            return null;
        }

        private Literal? InvalidLiteral(PositionedNode node, string message)
        {
            Errors(node.Span, DiagnosticCodes.InvalidLiteral, message);
            return null;
        }

        private void Error(SourceSpan span, string message) => Errors(span, DiagnosticCodes.Syntax, message);

        private void Errors(SourceSpan span, string code, string message) => errors.Add(new RuleDiagnostic(code, message, span));
    }
}
