namespace Audience.Rules.Model;

/// <summary>
/// The rule model: what a segment's rule says, independent of the notation it was written in.
/// This is what is persisted (as canonical text) and what the checker and compiler work on.
/// Equality is structural; source positions live beside the model in a <see cref="Syntax.SourceMap"/>.
/// </summary>
public abstract record Condition;

/// <summary>Every item holds (<c>and</c>).</summary>
public sealed record AllOf(EquatableArray<Condition> Items) : Condition
{
    public AllOf(params Condition[] items) : this(new EquatableArray<Condition>(items)) { }
}

/// <summary>At least one item holds (<c>or</c>).</summary>
public sealed record AnyOf(EquatableArray<Condition> Items) : Condition
{
    public AnyOf(params Condition[] items) : this(new EquatableArray<Condition>(items)) { }
}

public sealed record Not(Condition Operand) : Condition;

/// <summary><c>left op right</c>; the right side is always a literal (a list for <c>in</c>).</summary>
public sealed record Comparison(Operand Left, ComparisonOperator Operator, Literal Right) : Condition;

/// <summary><c>operand exists</c>: the trait or property is present, or the aggregate saw at least one event.</summary>
public sealed record Exists(Operand Operand) : Condition;

/// <summary><c>inSegment("id")</c>: the user is currently a member of another segment.</summary>
public sealed record InSegment(string SegmentId) : Condition;

/// <summary>A part of the rule that could not be read; only ever present alongside an error.</summary>
public sealed record InvalidCondition : Condition;

public enum ComparisonOperator : byte
{
    Equal,
    NotEqual,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
}

/// <summary>What a comparison reads.</summary>
public abstract record Operand;

public enum FieldScope : byte
{
    /// <summary>A built-in profile statistic: eventCount, totalSpent, orderCount, firstSeen, lastSeen.</summary>
    Profile,

    /// <summary><c>traits.name</c>, set by <c>identify</c> events.</summary>
    Trait,

    /// <summary>A property of the event inside an aggregate's <c>where</c> filter (a dotted path).</summary>
    EventProperty,
}

public sealed record FieldRef(FieldScope Scope, string Name) : Operand;

public enum AggregateFunction : byte
{
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// <summary>
/// <c>fn(eventType[.property] [where filter] within window)</c>: an aggregate over the user's events of
/// one type (<see cref="EventType"/> null means any type) in a sliding window.
/// </summary>
public sealed record AggregateRef(
    AggregateFunction Function,
    string? EventType,
    string? Property,
    Condition? Filter,
    Duration Window) : Operand;

public abstract record Literal;

public sealed record NumberLiteral(decimal Value) : Literal;

public sealed record StringLiteral(string Value) : Literal;

public sealed record BoolLiteral(bool Value) : Literal;

/// <summary>An absolute instant, milliseconds since the Unix epoch (UTC).</summary>
public sealed record TimestampLiteral(long UnixMilliseconds) : Literal;

/// <summary><c>30d ago</c>: the instant that lies the duration before the moment of evaluation.</summary>
public sealed record AgoLiteral(Duration Duration) : Literal;

public sealed record ListLiteral(EquatableArray<Literal> Items) : Literal
{
    public ListLiteral(params Literal[] items) : this(new EquatableArray<Literal>(items)) { }
}
