namespace Audience.Rules.Syntax;

/// <summary>A position in a rule's source text; line and column start at 1.</summary>
public readonly record struct SourceSpan(int Line, int Column, int Offset, int Length)
{
    public static SourceSpan Start { get; } = new(1, 1, 0, 0);
}

/// <summary>One problem with a rule, at a place a marketer can find and with a message they can act on.</summary>
public sealed record RuleDiagnostic(string Code, string Message, SourceSpan Span)
{
    public int Line => Span.Line;

    public int Column => Span.Column;

    public override string ToString() => $"line {Line}, column {Column}: {Message}";
}

/// <summary>Stable codes, so clients can react to a kind of error without parsing its message.</summary>
public static class DiagnosticCodes
{
    public const string Syntax = "syntax";
    public const string TooLarge = "too-large";
    public const string UnknownField = "unknown-field";
    public const string UnknownFunction = "unknown-function";
    public const string TypeMismatch = "type-mismatch";
    public const string InvalidWindow = "invalid-window";
    public const string InvalidAggregate = "invalid-aggregate";
    public const string UnknownSegment = "unknown-segment";
    public const string Cycle = "cycle";
    public const string InvalidLiteral = "invalid-literal";
    public const string TooCostly = "too-costly";
}

/// <summary>Bounds that keep any rule cheap to store, check and evaluate.</summary>
public sealed record RuleLimits
{
    public static RuleLimits Default { get; } = new();

    /// <summary>Characters of rule text (or of a JSON rule document).</summary>
    public int MaxTextLength { get; init; } = 16 * 1024;

    /// <summary>Nesting of and/or/not groups and parentheses.</summary>
    public int MaxDepth { get; init; } = 24;

    /// <summary>Conditions, operands and literals in one rule.</summary>
    public int MaxNodes { get; init; } = 512;

    /// <summary>Items of one <c>in [...]</c> list.</summary>
    public int MaxListItems { get; init; } = 1000;

    /// <summary>Characters of one string literal.</summary>
    public int MaxStringLength { get; init; } = 1024;

    /// <summary>Windowed aggregates in one rule.</summary>
    public int MaxAggregates { get; init; } = 16;

    /// <summary>The longest text an event may carry in one property, in bytes: what string operations are costed at.</summary>
    public int MaxEventTextBytes { get; init; } = 8 * 1024;

    /// <summary>Cost per event of one rule (<see cref="Checking.RuleCost"/>).</summary>
    public long MaxCost { get; init; } = 20_000;

    /// <summary>Cost per event of all segments together.</summary>
    public long MaxTotalCost { get; init; } = 2_000_000;
}

/// <summary>
/// Where each model node came from in the source, by node identity: the model itself carries no
/// positions so that two rules with the same meaning are equal.
/// </summary>
public sealed class SourceMap
{
    private readonly Dictionary<object, SourceSpan> _spans = new(ReferenceEqualityComparer.Instance);

    public static SourceMap Empty { get; } = new();

    internal T Add<T>(T node, SourceSpan span)
        where T : class
    {
        _spans[node] = span;
        return node;
    }

    public SourceSpan this[object node] => _spans.TryGetValue(node, out var span) ? span : SourceSpan.Start;
}

/// <summary>What a parser produced: the model (with <see cref="Model.InvalidCondition"/> where it failed) and its errors.</summary>
public sealed record ParseResult(Model.Condition Rule, SourceMap Spans, IReadOnlyList<RuleDiagnostic> Errors)
{
    public bool Succeeded => Errors.Count == 0;
}
