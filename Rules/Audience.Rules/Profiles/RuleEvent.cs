namespace Audience.Rules.Profiles;

/// <summary>An event as rules see it: its type, when it happened, and its properties.</summary>
public sealed class RuleEvent
{
    public const string Purchase = "purchase";
    public const string Identify = "identify";

    private static readonly IReadOnlyDictionary<string, Value> NoProperties = new Dictionary<string, Value>();

    public RuleEvent(string type, long timestampMs, IReadOnlyDictionary<string, Value>? properties = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(type);
        Type = type;
        TimestampMs = timestampMs;
        Properties = properties ?? NoProperties;
    }

    public string Type { get; }

    public long TimestampMs { get; }

    public IReadOnlyDictionary<string, Value> Properties { get; }

    /// <summary>Follows a property path such as <c>["product", "category"]</c>.</summary>
    public Value Get(string[] path)
    {
        if (path.Length == 0 || !Properties.TryGetValue(path[0], out var value))
        {
            return Value.Missing;
        }

        return path.Length == 1 ? value : value.Get(path[1..]);
    }
}
