using Audience.Rules;
using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Json;
using Audience.Rules.Model;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;

namespace Audience.Rules.Tests;

/// <summary>A segment graph held in a dictionary: id to the ids its rule refers to.</summary>
internal sealed class SegmentGraph : ISegmentGraph
{
    private readonly Dictionary<string, string[]> _edges = new(StringComparer.Ordinal);

    public SegmentGraph Add(string id, params string[] refersTo)
    {
        _edges[id] = refersTo;
        return this;
    }

    public bool Contains(string segmentId) => _edges.ContainsKey(segmentId);

    public IEnumerable<string> DependenciesOf(string segmentId) => _edges.GetValueOrDefault(segmentId) ?? [];
}

/// <summary>The test harness for rules: parse, check and compile in one call, with readable failures.</summary>
internal static class RuleHarness
{
    /// <summary>2024-06-01T12:00:00Z, the "now" of most tests.</summary>
    public static readonly long Now = DateTimeOffset.Parse("2024-06-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();

    public const long Minute = 60_000;
    public const long Hour = 60 * Minute;
    public const long Day = 24 * Hour;

    public static Condition Parse(string text)
    {
        var result = RuleParser.Parse(text);
        Assert.True(result.Succeeded, $"'{text}' should parse, but: {string.Join("; ", result.Errors)}");
        return result.Rule;
    }

    public static IReadOnlyList<RuleDiagnostic> Errors(string text, ISegmentGraph? graph = null, string? self = null, RuleLimits? limits = null) =>
        RuleChecker.Check(RuleParser.Parse(text, limits), graph, self, limits).Errors;

    public static RuleDiagnostic SingleError(string text, ISegmentGraph? graph = null, string? self = null)
    {
        var errors = Errors(text, graph, self);
        Assert.True(errors.Count == 1, $"expected one error for '{text}', got: {string.Join("; ", errors)}");
        return errors[0];
    }

    public static CompiledRule Compile(string text, RuleCatalog catalog, ISegmentGraph? graph = null)
    {
        var isJson = text.TrimStart().StartsWith('{');
        var parsed = isJson ? RuleJson.Parse(text) : RuleParser.Parse(text);
        var checkedRule = RuleChecker.Check(parsed, graph);
        Assert.True(checkedRule.IsValid, $"'{text}' should be valid, but: {string.Join("; ", checkedRule.Errors)}");
        return RuleCompiler.Compile(checkedRule, catalog);
    }

    public static RuleEvent Event(string type, long at, params (string Name, object Value)[] properties) =>
        new(type, at, properties.ToDictionary(p => p.Name, p => ToValue(p.Value)));

    public static Value ToValue(object value) => value switch
    {
        Value v => v,
        bool b => Value.FromBool(b),
        int i => Value.FromNumber(i),
        long l => Value.FromNumber(l),
        decimal d => Value.FromNumber(d),
        double d => Value.FromNumber((decimal)d),
        string s => Value.FromString(s),
        string[] list => Value.FromList([.. list.Select(Value.FromString)]),
        _ => throw new ArgumentException($"no value for {value}"),
    };
}
