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
