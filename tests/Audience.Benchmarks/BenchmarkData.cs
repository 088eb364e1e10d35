using Audience.Rules;
using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;
using Audience.Testing;

namespace Audience.Benchmarks;

internal static class BenchmarkData
{
    public static readonly long Now = DateTimeOffset.Parse("2024-06-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();

    public static IEnumerable<(string Id, string Rule)> ThousandSegments() => SegmentSets.ThousandSegments();

    /// <summary><paramref name="count"/> of the thousand, in the same mix: 95% on traits, 5% on purchases.</summary>
    public static IEnumerable<(string Id, string Rule)> Segments(int count) =>
        ThousandSegments().Take(950 * count / 1000).Concat(ThousandSegments().Skip(950).Take(Math.Max(1, count / 20)));

    public static string OneKilobyteRule() => SegmentSets.OneKilobyteRule();

    public static CompiledRule Compile(string text, RuleCatalog catalog) =>
        RuleCompiler.Compile(RuleChecker.Check(RuleParser.Parse(text)), catalog);

    public static RuleEvent Purchase(decimal amount, long at) => new("purchase", at, new Dictionary<string, Value>
    {
        ["amount"] = Value.FromNumber(amount),
        ["category"] = Value.FromString("electronics"),
        ["productId"] = Value.FromString("prod_789"),
    });

}
