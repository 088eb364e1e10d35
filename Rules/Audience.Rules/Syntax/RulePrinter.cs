using System.Globalization;
using System.Text;
using Audience.Rules.Model;

namespace Audience.Rules.Syntax;

/// <summary>
/// Prints a rule model as canonical text: lower-case keywords, double-quoted strings, UTC timestamps,
/// <c>not (...)</c> always parenthesised. Parsing the printed text gives back an equal model.
/// </summary>
public static class RulePrinter
{
    public static string Print(Condition rule)
    {
        var builder = new StringBuilder();
        Write(builder, rule, Precedence.Or);
        return builder.ToString();
    }

    public static string Print(Operand operand)
    {
        var builder = new StringBuilder();
        Write(builder, operand);
        return builder.ToString();
    }

    public static string Print(Literal literal)
    {
        var builder = new StringBuilder();
        Write(builder, literal);
        return builder.ToString();
    }

    private enum Precedence
    {
        Or,
        And,
        Unary,
    }

    private static void Write(StringBuilder b, Condition condition, Precedence context)
    {
        switch (condition)
        {
            case AnyOf { Items.Count: 1 } single:
                Write(b, single.Items[0], context);
                break;
            case AllOf { Items.Count: 1 } single:
                Write(b, single.Items[0], context);
                break;
            case AnyOf any:
                WriteGroup(b, any.Items, " or ", context > Precedence.Or, Precedence.And);
                break;
            case AllOf all:
                WriteGroup(b, all.Items, " and ", context > Precedence.And, Precedence.Unary);
                break;
            case Not not:
                b.Append("not (");
                Write(b, not.Operand, Precedence.Or);
                b.Append(')');
                break;
            case Comparison comparison:
                Write(b, comparison.Left);
                b.Append(' ').Append(Symbol(comparison.Operator)).Append(' ');
                Write(b, comparison.Right);
                break;
            case Exists exists:
                Write(b, exists.Operand);
                b.Append(" exists");
                break;
            case InSegment inSegment:
                b.Append("inSegment(").Append(Quote(inSegment.SegmentId)).Append(')');
                break;
            default:
                b.Append("<invalid>");
                break;
        }
    }

    /// <summary>
    /// Writes the items of a group. An item that is itself a group of the same kind keeps its parentheses
    /// (it came from nested JSON groups), so the printed text parses back to the same nesting.
    /// </summary>
    private static void WriteGroup(StringBuilder b, EquatableArray<Condition> items, string separator, bool parenthesise, Precedence itemContext)
    {
        if (parenthesise)
        {
            b.Append('(');
        }

        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                b.Append(separator);
            }

            Write(b, items[i], itemContext);
        }

        if (parenthesise)
        {
            b.Append(')');
        }
    }

    internal static void Write(StringBuilder b, Operand operand)
    {
        switch (operand)
        {
            case FieldRef { Scope: FieldScope.Trait } trait:
                b.Append("traits.").Append(trait.Name);
                break;
            case FieldRef field:
                b.Append(field.Name);
                break;
            case AggregateRef aggregate:
                b.Append(FunctionName(aggregate.Function)).Append('(');
                b.Append(aggregate.EventType is null ? "any" : EventTypeText(aggregate.EventType));
                if (aggregate.Property is not null)
                {
                    b.Append('.').Append(aggregate.Property);
                }

                if (aggregate.Filter is not null)
                {
                    b.Append(" where ");
                    Write(b, aggregate.Filter, Precedence.Or);
                }

                b.Append(" within ").Append(aggregate.Window).Append(')');
                break;
        }
    }

    internal static void Write(StringBuilder b, Literal literal)
    {
        switch (literal)
        {
            case NumberLiteral number:
                b.Append(number.Value.ToString(CultureInfo.InvariantCulture));
                break;
            case StringLiteral text:
                b.Append(Quote(text.Value));
                break;
            case BoolLiteral boolean:
                b.Append(boolean.Value ? "true" : "false");
                break;
            case TimestampLiteral timestamp:
                b.Append(TimeText.Format(timestamp.UnixMilliseconds));
                break;
            case AgoLiteral ago:
                b.Append(ago.Duration).Append(" ago");
                break;
            case ListLiteral list:
                b.Append('[');
                for (var i = 0; i < list.Items.Count; i++)
                {
                    if (i > 0)
                    {
                        b.Append(", ");
                    }

                    Write(b, list.Items[i]);
                }

                b.Append(']');
                break;
        }
    }

    public static string FunctionName(AggregateFunction function) => function switch
    {
        AggregateFunction.Count => "count",
        AggregateFunction.Sum => "sum",
        AggregateFunction.Min => "min",
        AggregateFunction.Max => "max",
        _ => "avg",
    };

    public static string Symbol(ComparisonOperator op) => op switch
    {
        ComparisonOperator.Equal => "==",
        ComparisonOperator.NotEqual => "!=",
        ComparisonOperator.LessThan => "<",
        ComparisonOperator.LessThanOrEqual => "<=",
        ComparisonOperator.GreaterThan => ">",
        ComparisonOperator.GreaterThanOrEqual => ">=",
        ComparisonOperator.In => "in",
        ComparisonOperator.NotIn => "not in",
        ComparisonOperator.Contains => "contains",
        ComparisonOperator.StartsWith => "startsWith",
        _ => "endsWith",
    };

    /// <summary>An event type prints bare when it reads as a name, quoted otherwise.</summary>
    private static string EventTypeText(string eventType) =>
        IsPlainName(eventType) ? eventType : Quote(eventType);

    /// <summary>True for a name that the text notation can write without quotes.</summary>
    public static bool IsPlainName(string name) =>
        name.Length > 0 && Lexer.IsIdentifierStart(name[0]) && name.All(Lexer.IsIdentifierPart)
        && !TextParser.ReservedWords.Contains(name);

    public static string Quote(string text)
    {
        var b = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\t': b.Append("\\t"); break;
                case '\r': b.Append("\\r"); break;
                case < ' ': b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: b.Append(c); break;
            }
        }

        return b.Append('"').ToString();
    }
}
