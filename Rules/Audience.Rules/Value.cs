using System.Globalization;

namespace Audience.Rules;

/// <summary>What kind of value a <see cref="Value"/> holds.</summary>
public enum ValueKind : byte
{
    /// <summary>No value: an absent trait, a property the event does not carry, an aggregate over no events.</summary>
    Missing = 0,
    Null,
    Bool,
    Number,
    String,
    Time,
    List,
    Object,
}

/// <summary>
/// A dynamically typed value as traits and event properties carry it. Numbers are decimals so that
/// money adds up exactly; times are milliseconds since the Unix epoch, UTC. A string that reads as an
/// ISO-8601 timestamp also carries that instant, so a trait such as <c>"2024-01-15T10:30:00Z"</c> can be
/// compared both as text and as a time.
/// </summary>
public readonly struct Value : IEquatable<Value>
{
    private readonly object? _ref;
    private readonly decimal _number;
    private readonly long _time;
    private readonly bool _hasTime;

    private Value(ValueKind kind, object? reference = null, decimal number = 0, long time = 0, bool hasTime = false)
    {
        Kind = kind;
        _ref = reference;
        _number = number;
        _time = time;
        _hasTime = hasTime;
    }

    public ValueKind Kind { get; }

    /// <summary>
    /// The largest magnitude a number may have to be added into a total or an aggregate (10^15). Decimal sums of
    /// such values cannot overflow within any realistic event count; larger numbers are kept as traits but never
    /// summed, and the ingestion API rejects them.
    /// </summary>
    public const decimal MaxSummable = 1_000_000_000_000_000m;

    /// <summary>True for a number that may be added into totals and aggregates.</summary>
    public bool IsSummable => Kind == ValueKind.Number && Math.Abs(_number) <= MaxSummable;

    public static Value Missing => default;

    public static Value Null { get; } = new(ValueKind.Null);

    public static Value True { get; } = new(ValueKind.Bool, number: 1);

    public static Value False { get; } = new(ValueKind.Bool, number: 0);

    public static Value FromBool(bool value) => value ? True : False;

    public static Value FromNumber(decimal value) => new(ValueKind.Number, number: value);

    public static Value FromTime(long unixMilliseconds) => new(ValueKind.Time, time: unixMilliseconds, hasTime: true);

    public static Value FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return TimeText.TryParse(value, out var ms)
            ? new Value(ValueKind.String, value, time: ms, hasTime: true)
            : new Value(ValueKind.String, value);
    }

    public static Value FromList(IReadOnlyList<Value> items) => new(ValueKind.List, items);

    public static Value FromObject(IReadOnlyDictionary<string, Value> properties) => new(ValueKind.Object, properties);

    public bool IsMissing => Kind == ValueKind.Missing;

    public bool AsBool => _number != 0;

    public decimal AsNumber => _number;

    public string AsString => _ref as string ?? string.Empty;

    public IReadOnlyList<Value> AsList => _ref as IReadOnlyList<Value> ?? [];

    public IReadOnlyDictionary<string, Value> AsObject => _ref as IReadOnlyDictionary<string, Value> ?? EmptyObject;

    /// <summary>The instant this value stands for: a time, or a string holding an ISO-8601 timestamp.</summary>
    public bool TryGetTime(out long unixMilliseconds)
    {
        unixMilliseconds = _time;
        return _hasTime;
    }

    /// <summary>Follows a dotted property path (<c>product.category</c>) through nested objects.</summary>
    public Value Get(string[] path)
    {
        var current = this;
        foreach (var segment in path)
        {
            if (current.Kind != ValueKind.Object || !current.AsObject.TryGetValue(segment, out current))
            {
                return Missing;
            }
        }

        return current;
    }

    public bool Equals(Value other)
    {
        if (Kind != other.Kind)
        {
            return false;
        }

        return Kind switch
        {
            ValueKind.Missing or ValueKind.Null => true,
            ValueKind.Bool or ValueKind.Number => _number == other._number,
            ValueKind.Time => _time == other._time,
            ValueKind.String => string.Equals(AsString, other.AsString, StringComparison.Ordinal),
            ValueKind.List => AsList.SequenceEqual(other.AsList),
            ValueKind.Object => AsObject.Count == other.AsObject.Count
                && AsObject.All(kv => other.AsObject.TryGetValue(kv.Key, out var v) && v.Equals(kv.Value)),
            _ => false,
        };
    }

    public override bool Equals(object? obj) => obj is Value other && Equals(other);

    public override int GetHashCode() => Kind switch
    {
        ValueKind.Bool or ValueKind.Number => HashCode.Combine(Kind, _number),
        ValueKind.Time => HashCode.Combine(Kind, _time),
        ValueKind.String => HashCode.Combine(Kind, StringComparer.Ordinal.GetHashCode(AsString)),
        _ => (int)Kind,
    };

    public static bool operator ==(Value left, Value right) => left.Equals(right);

    public static bool operator !=(Value left, Value right) => !left.Equals(right);

    /// <summary>A short, readable rendering for explanations and logs.</summary>
    public override string ToString() => Kind switch
    {
        ValueKind.Missing => "(none)",
        ValueKind.Null => "null",
        ValueKind.Bool => AsBool ? "true" : "false",
        ValueKind.Number => _number.ToString(CultureInfo.InvariantCulture),
        ValueKind.String => Syntax.RulePrinter.Quote(AsString),
        ValueKind.Time => TimeText.Format(_time),
        ValueKind.List => "[" + string.Join(", ", AsList.Select(v => v.ToString())) + "]",
        ValueKind.Object => "{" + string.Join(", ", AsObject.Select(kv => kv.Key + ": " + kv.Value)) + "}",
        _ => "?",
    };

    private static readonly IReadOnlyDictionary<string, Value> EmptyObject = new Dictionary<string, Value>();
}

/// <summary>ISO-8601 timestamps to and from milliseconds since the Unix epoch.</summary>
public static class TimeText
{
    private static readonly string[] Formats =
    [
        "yyyy-MM-dd",
        "yyyy-MM-dd'T'HH:mm",
        "yyyy-MM-dd'T'HH:mm:ss",
        "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF",
        "yyyy-MM-dd'T'HH:mmK",
        "yyyy-MM-dd'T'HH:mm:ssK",
        "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK",
    ];

    /// <summary>Reads an ISO-8601 date or date-time; a value without an offset is UTC.</summary>
    public static bool TryParse(string text, out long unixMilliseconds)
    {
        unixMilliseconds = 0;
        // Cheap shape test first: traits are often plain text and this runs for every string trait.
        if (text.Length < 10 || text.Length > 40 || !char.IsAsciiDigit(text[0]) || text[4] != '-' || text[7] != '-')
        {
            return false;
        }

        if (!DateTimeOffset.TryParseExact(text, Formats, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            return false;
        }

        unixMilliseconds = parsed.ToUnixTimeMilliseconds();
        return true;
    }

    /// <summary>The canonical form: UTC, seconds always, milliseconds only when not zero.</summary>
    public static string Format(long unixMilliseconds)
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds);
        return time.ToString(time.Millisecond == 0 ? "yyyy-MM-dd'T'HH:mm:ss'Z'" : "yyyy-MM-dd'T'HH:mm:ss.fff'Z'",
            CultureInfo.InvariantCulture);
    }

    /// <summary>The range of instants a rule or an event may name: years 1 to 9999.</summary>
    public static bool IsRepresentable(long unixMilliseconds) =>
        unixMilliseconds >= DateTimeOffset.MinValue.ToUnixTimeMilliseconds()
        && unixMilliseconds <= DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
}
