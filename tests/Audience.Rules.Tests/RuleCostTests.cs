using Audience.Rules.Checking;
using Audience.Rules.Syntax;
using Audience.Testing;

namespace Audience.Rules.Tests;

public sealed class RuleCostTests
{
    private static CheckedRule Check(string rule) => RuleChecker.Check(RuleParser.Parse(rule));

    [Fact]
    public void BenchmarkSegmentSets_FitTheBudgets()
    {
        var total = 0L;
        foreach (var (id, rule) in SegmentSets.ThousandSegments())
        {
            var checkedRule = Check(rule.Replace("inSegment", "traits.x == 1 or inSegment", StringComparison.Ordinal));
            Assert.True(checkedRule.IsValid, $"{id}: {string.Join("; ", checkedRule.Errors)}");
            total += checkedRule.Cost;
        }

        Assert.InRange(total, 1, RuleLimits.Default.MaxTotalCost / 20);
        Assert.True(Check(SegmentSets.OneKilobyteRule()).IsValid);
    }

    [Fact]
    public void Cost_GrowsWithTextSearchesAndPatternLength()
    {
        var plain = Check("totalSpent > 1000").Cost;
        var prefix = Check("traits.email startsWith \"ab\"").Cost;
        var shortSearch = Check("traits.email contains \"ab\"").Cost;
        var longSearch = Check($"traits.email contains \"{new string('a', 85)}\"").Cost;
        Assert.True(plain < prefix && prefix < shortSearch && shortSearch < longSearch, $"{plain} {prefix} {shortSearch} {longSearch}");

        // An aggregate's filter is paid once even when the rule reads the aggregate twice.
        var once = Check("count(purchase where category contains \"shoe\" within 7d) > 1").Cost;
        var twice = Check("count(purchase where category contains \"shoe\" within 7d) > 1 and sum(purchase where category contains \"shoe\" within 7d) < 9").Cost;
        Assert.True(twice < 2 * once, $"{once} {twice}");
    }

    [Fact]
    public void HostileRule_IsRefused_NamingItsCostliestPart()
    {
        // The rule from the hostile-testing report: 16 windowed counts, each filtered by 9 contains on 85-character text.
        var windows = new[] { "1m", "5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "2d", "3d", "7d", "14d", "30d", "60d", "90d" };
        string Filter(int w) => string.Join(" and ", Enumerable.Range(0, 9).Select(c => $"p{c} contains \"{new string((char)('a' + ((w + c) % 26)), 85)}\""));
        var rule = string.Join(" or\n", windows.Select((window, w) => $"count(purchase where {Filter(w)} within {window}) >= 1"));
        Assert.InRange(rule.Length, 14_000, RuleLimits.Default.MaxTextLength);

        var result = Check(rule);
        var error = Assert.Single(result.Errors);
        Assert.Equal(DiagnosticCodes.TooCostly, error.Code);
        Assert.Contains("units per event, more than the 20,000 one segment may", error.Message, StringComparison.Ordinal);
        Assert.Contains("contains", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, error.Line);
    }

    [Fact]
    public void ModeratelyCostlyRule_IsAccepted()
    {
        var rule = string.Join(" or ", Enumerable.Range(1, 16).Select(d => $"count(purchase where category contains \"shoe\" within {d}d) >= 1"));
        var result = Check(rule);
        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.InRange(result.Cost, 1_000, RuleLimits.Default.MaxCost);
    }
}
