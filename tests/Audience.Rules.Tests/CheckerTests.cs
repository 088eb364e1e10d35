using Audience.Rules.Checking;
using Audience.Rules.Json;
using Audience.Rules.Syntax;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class CheckerTests
{
    [Theory]
    [InlineData("totalSpend > 1000", 1, 1, DiagnosticCodes.UnknownField, "unknown field 'totalSpend'; did you mean totalSpent?")]
    [InlineData("country == \"DE\"", 1, 1, DiagnosticCodes.UnknownField, "a trait is written traits.country")]
    [InlineData("totalSpent > \"abc\"", 1, 14, DiagnosticCodes.TypeMismatch, "totalSpent is a number and cannot be compared with the text \"abc\"")]
    [InlineData("lastSeen > 5", 1, 12, DiagnosticCodes.TypeMismatch, "lastSeen is a time and cannot be compared with the number 5")]
    [InlineData("eventCount > 30d ago", 1, 14, DiagnosticCodes.TypeMismatch, "eventCount is a number")]
    [InlineData("totalSpent contains \"1\"", 1, 1, DiagnosticCodes.TypeMismatch, "'contains' works on text, but totalSpent is a number")]
    [InlineData("traits.name contains 5", 1, 22, DiagnosticCodes.TypeMismatch, "'contains' needs a text value in quotes")]
    [InlineData("orderCount in [1, \"two\"]", 1, 19, DiagnosticCodes.TypeMismatch, "every item of the list must be a number")]
    [InlineData("lastSeen in [1]", 1, 1, DiagnosticCodes.TypeMismatch, "lastSeen is a time")]
    [InlineData("traits.x in []", 1, 13, DiagnosticCodes.TypeMismatch, "the list is empty")]
    [InlineData("traits.vip > true", 1, 14, DiagnosticCodes.TypeMismatch, "true and false cannot be ordered")]
    [InlineData("count(purchase within 100d) > 1", 1, 1, DiagnosticCodes.InvalidWindow, "the window 100d is out of range; a window is from 1m to 90d")]
    [InlineData("count(purchase within 0m) > 1", 1, 1, DiagnosticCodes.InvalidWindow, "out of range")]
    [InlineData("sum(purchase within 7d) > 1", 1, 1, DiagnosticCodes.InvalidAggregate, "sum needs a property to work on, as in sum(purchase.amount within 30d)")]
    [InlineData("count(purchase where ts > 1d ago within 7d) > 1", 1, 27, DiagnosticCodes.TypeMismatch, "cannot use 'ago'")]
    [InlineData("count(purchase within 7d) > \"x\"", 1, 29, DiagnosticCodes.TypeMismatch, "count(purchase within 7d) is a number")]
    public void Check_BadRule_ReportsPositionCodeAndMessage(string text, int line, int column, string code, string message)
    {
        var error = SingleError(text);
        Assert.Equal(code, error.Code);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
    }

    [Fact]
    public void Check_UnknownSegment_IsReported()
    {
        var graph = new SegmentGraph().Add("vip");
        var error = SingleError("inSegment(\"vipp\") or totalSpent > 5000", graph);
        Assert.Equal(DiagnosticCodes.UnknownSegment, error.Code);
        Assert.Equal("there is no segment with the id \"vipp\"", error.Message);
    }

    [Fact]
    public void Check_SelfReference_IsACycle()
    {
        var error = SingleError("inSegment(\"loyal\")", new SegmentGraph().Add("loyal"), self: "loyal");
        Assert.Equal(DiagnosticCodes.Cycle, error.Code);
    }

    [Fact]
    public void Check_IndirectCycle_NamesThePath()
    {
        // vip refers to loyal, loyal to active; making active refer to vip closes the loop.
        var graph = new SegmentGraph().Add("vip", "loyal").Add("loyal", "active").Add("active");
        var error = SingleError("totalSpent > 1 and\ninSegment(\"vip\")", graph, self: "active");
        Assert.Equal(DiagnosticCodes.Cycle, error.Code);
        Assert.Equal("inSegment(\"vip\") makes a cycle: active → vip → loyal → active", error.Message);
        Assert.Equal((2, 1), (error.Line, error.Column));
    }

    [Fact]
    public void Check_AllErrors_AreReportedInSourceOrder()
    {
        var errors = Errors("totalSpend > 1 and lastSeen > 5 and count(x within 365d) > 1 and traits.a contains 3");
        Assert.Equal(4, errors.Count);
        Assert.Equal([1, 31, 37, 84], errors.Select(e => e.Column));
    }

    [Fact]
    public void Check_TooManyNodes_IsRejected()
    {
        var text = string.Join(" or ", Enumerable.Range(0, 300).Select(i => $"eventCount == {i}"));
        var errors = Errors(text);
        Assert.Contains(errors, e => e.Code == DiagnosticCodes.TooLarge && e.Message.Contains("parts", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_TooManyAggregates_IsRejected()
    {
        var text = string.Join(" and ", Enumerable.Range(1, 20).Select(i => $"count(e{i} within 1d) > 0"));
        Assert.Contains(Errors(text), e => e.Message.Contains("different aggregates", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_ListTooLong_IsRejected()
    {
        var text = "traits.x in [" + string.Join(", ", Enumerable.Range(0, 1001)) + "]";
        Assert.Contains(Errors(text), e => e.Code == DiagnosticCodes.TooLarge);
    }

    [Fact]
    public void Check_JsonRule_ReportsSemanticErrorsAtJsonPositions()
    {
        var checkedRule = RuleChecker.Check(RuleJson.Parse("""{"conditions":[{"field":"totalSpend","operator":"gt","value":1000}]}"""));
        var error = Assert.Single(checkedRule.Errors);
        Assert.Equal(DiagnosticCodes.UnknownField, error.Code);
        Assert.Equal((1, 25), (error.Line, error.Column));
    }

    [Fact]
    public void Check_Dependencies_SayWhatTheRuleReads()
    {
        var deps = RuleChecker.Check(RuleParser.Parse(
            "totalSpent > 1 and lastSeen within 7d and traits.country == \"DE\" and count(purchase within 7d) > 1 and max(any.amount within 1h) > 5 and inSegment(\"vip\")")).Dependencies;
        Assert.Equal(ProfileFields.TotalSpent | ProfileFields.LastSeen, deps.Fields);
        Assert.Equal(["country"], deps.Traits);
        Assert.Equal(["purchase"], deps.EventTypes);
        Assert.True(deps.AnyEventType);
        Assert.Equal(["vip"], deps.Segments);
        Assert.Equal(2, deps.Aggregates.Count);
        Assert.True(deps.TimeDependent);

        Assert.False(RuleChecker.Check(RuleParser.Parse("totalSpent > 1 and lastSeen > 2024-01-01")).Dependencies.TimeDependent);
    }
}
