using Audience.Rules.Model;
using Audience.Rules.Syntax;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class ParserTests
{
    private static readonly FieldRef TotalSpent = new(FieldScope.Profile, "totalSpent");
    private static readonly FieldRef OrderCount = new(FieldScope.Profile, "orderCount");
    private static readonly FieldRef EventCount = new(FieldScope.Profile, "eventCount");

    [Fact]
    public void Parse_IssueExamples_MeanWhatTheySay()
    {
        Assert.Equal(new Comparison(TotalSpent, ComparisonOperator.GreaterThan, new NumberLiteral(1000)), Parse("totalSpent > 1000"));

        Assert.Equal(
            new AllOf(
                new Comparison(TotalSpent, ComparisonOperator.GreaterThanOrEqual, new NumberLiteral(1000)),
                new Comparison(OrderCount, ComparisonOperator.GreaterThanOrEqual, new NumberLiteral(2))),
            Parse("totalSpent >= 1000 and orderCount >= 2"));

        Assert.Equal(
            new Comparison(new AggregateRef(AggregateFunction.Count, "purchase", null, null, new Duration(7, DurationUnit.Days)),
                ComparisonOperator.GreaterThanOrEqual, new NumberLiteral(3)),
            Parse("count(purchase within 7d) >= 3"));

        Assert.Equal(
            new Comparison(
                new AggregateRef(AggregateFunction.Sum, "purchase", "amount",
                    new Comparison(new FieldRef(FieldScope.EventProperty, "category"), ComparisonOperator.Equal, new StringLiteral("electronics")),
                    new Duration(30, DurationUnit.Days)),
                ComparisonOperator.GreaterThan, new NumberLiteral(500)),
            Parse("sum(purchase.amount where category == \"electronics\" within 30d) > 500"));

        Assert.Equal(
            new AllOf(
                new Comparison(new FieldRef(FieldScope.Trait, "country"), ComparisonOperator.In,
                    new ListLiteral(new StringLiteral("DE"), new StringLiteral("AT"), new StringLiteral("CH"))),
                new Not(new Comparison(EventCount, ComparisonOperator.GreaterThan, new NumberLiteral(100)))),
            Parse("traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)"));

        Assert.Equal(
            new Comparison(new AggregateRef(AggregateFunction.Count, null, null, null, new Duration(30, DurationUnit.Days)),
                ComparisonOperator.Equal, new NumberLiteral(0)),
            Parse("count(any within 30d) == 0"));

        Assert.Equal(
            new AnyOf(new InSegment("vip"), new Comparison(TotalSpent, ComparisonOperator.GreaterThan, new NumberLiteral(5000))),
            Parse("inSegment(\"vip\") or totalSpent > 5000"));
    }

    [Fact]
    public void Parse_Precedence_NotBindsTighterThanAndTighterThanOr()
    {
        var a = new Comparison(EventCount, ComparisonOperator.GreaterThan, new NumberLiteral(1));
        var b = new Comparison(EventCount, ComparisonOperator.GreaterThan, new NumberLiteral(2));
        var c = new Comparison(EventCount, ComparisonOperator.GreaterThan, new NumberLiteral(3));

        Assert.Equal(new AnyOf(a, new AllOf(b, c)), Parse("eventCount > 1 or eventCount > 2 and eventCount > 3"));
        Assert.Equal(new AnyOf(new AllOf(a, b), c), Parse("eventCount > 1 and eventCount > 2 or eventCount > 3"));
        Assert.Equal(new AllOf(new Not(a), b), Parse("not eventCount > 1 and eventCount > 2"));
        Assert.Equal(new AllOf(new AnyOf(a, b), c), Parse("(eventCount > 1 or eventCount > 2) and eventCount > 3"));
        Assert.Equal(new Not(new AnyOf(a, b)), Parse("not (eventCount > 1 or eventCount > 2)"));
        Assert.Equal(new Not(new Not(a)), Parse("not not eventCount > 1"));
    }

    [Theory]
    [InlineData("eventCount == 1", ComparisonOperator.Equal)]
    [InlineData("eventCount = 1", ComparisonOperator.Equal)]
    [InlineData("eventCount != 1", ComparisonOperator.NotEqual)]
    [InlineData("eventCount <> 1", ComparisonOperator.NotEqual)]
    [InlineData("eventCount < 1", ComparisonOperator.LessThan)]
    [InlineData("eventCount <= 1", ComparisonOperator.LessThanOrEqual)]
    [InlineData("eventCount > 1", ComparisonOperator.GreaterThan)]
    [InlineData("eventCount >= 1", ComparisonOperator.GreaterThanOrEqual)]
    public void Parse_ComparisonOperators_AreRecognised(string text, ComparisonOperator expected)
    {
        var comparison = Assert.IsType<Comparison>(Parse(text));
        Assert.Equal(expected, comparison.Operator);
    }

    [Theory]
    [InlineData("traits.email contains \"@\"", ComparisonOperator.Contains)]
    [InlineData("traits.email startsWith \"a\"", ComparisonOperator.StartsWith)]
    [InlineData("traits.email endsWith \"@example.com\"", ComparisonOperator.EndsWith)]
    [InlineData("traits.plan in [\"pro\", \"team\"]", ComparisonOperator.In)]
    [InlineData("traits.plan not in [\"free\"]", ComparisonOperator.NotIn)]
    public void Parse_StringAndListOperators_AreRecognised(string text, ComparisonOperator expected)
    {
        var comparison = Assert.IsType<Comparison>(Parse(text));
        Assert.Equal(expected, comparison.Operator);
    }

    [Fact]
    public void Parse_TimeSugar_BecomesComparisonsWithAgo()
    {
        var lastSeen = new FieldRef(FieldScope.Profile, "lastSeen");
        var thirtyDays = new AgoLiteral(new Duration(30, DurationUnit.Days));
        Assert.Equal(new Comparison(lastSeen, ComparisonOperator.GreaterThanOrEqual, new AgoLiteral(new Duration(7, DurationUnit.Days))), Parse("lastSeen within 7d"));
        Assert.Equal(new Comparison(lastSeen, ComparisonOperator.LessThan, thirtyDays), Parse("lastSeen before 30d ago"));
        Assert.Equal(new Comparison(lastSeen, ComparisonOperator.GreaterThan, thirtyDays), Parse("lastSeen after 30d ago"));
        Assert.Equal(new Comparison(lastSeen, ComparisonOperator.LessThan, thirtyDays), Parse("lastSeen < 30d ago"));
        var jan = DateTimeOffset.Parse("2024-01-15T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
        Assert.Equal(new Comparison(new FieldRef(FieldScope.Profile, "firstSeen"), ComparisonOperator.LessThan, new TimestampLiteral(jan)), Parse("firstSeen before 2024-01-15"));
        Assert.Equal(new Comparison(new FieldRef(FieldScope.Profile, "firstSeen"), ComparisonOperator.GreaterThanOrEqual, new TimestampLiteral(jan + (10 * Hour) + (30 * Minute))),
            Parse("firstSeen >= 2024-01-15T12:30:00+02:00"));
    }

    [Fact]
    public void Parse_Literals_AllKinds()
    {
        Assert.Equal(new NumberLiteral(-12.5m), ((Comparison)Parse("traits.x == -12.5")).Right);
        Assert.Equal(new NumberLiteral(1500m), ((Comparison)Parse("traits.x == 1.5e3")).Right);
        Assert.Equal(new BoolLiteral(true), ((Comparison)Parse("traits.x == true")).Right);
        Assert.Equal(new BoolLiteral(false), ((Comparison)Parse("traits.x == FALSE")).Right);
        Assert.Equal(new StringLiteral("it's \"quoted\"\n"), ((Comparison)Parse("traits.x == \"it's \\\"quoted\\\"\\n\"")).Right);
        Assert.Equal(new StringLiteral("single"), ((Comparison)Parse("traits.x == 'single'")).Right);
        Assert.Equal(new AgoLiteral(new Duration(2, DurationUnit.Weeks)), ((Comparison)Parse("traits.x > 2w ago")).Right);
        Assert.Equal(new AgoLiteral(new Duration(30, DurationUnit.Minutes)), ((Comparison)Parse("traits.x > 30m ago")).Right);
        Assert.Equal(new AgoLiteral(new Duration(12, DurationUnit.Hours)), ((Comparison)Parse("traits.x > 12h ago")).Right);
    }

    [Fact]
    public void Parse_KeywordsAnyCase_CommentsAndNewlines()
    {
        var rule = Parse("""
            # big spenders in the DACH region
            totalSpent > 1000 AND
              traits.country IN ["DE"]   # country from identify
            """);
        Assert.IsType<AllOf>(rule);
    }

    [Fact]
    public void Parse_AggregateForms()
    {
        var avg = (AggregateRef)((Comparison)Parse("avg(purchase.amount within 90d) > 50")).Left;
        Assert.Equal(AggregateFunction.Avg, avg.Function);
        Assert.Equal("amount", avg.Property);

        var nested = (AggregateRef)((Comparison)Parse("max(\"page-view\".meta.duration where meta.source == \"ads\" and meta.duration > 3 within 1h) > 10")).Left;
        Assert.Equal("page-view", nested.EventType);
        Assert.Equal("meta.duration", nested.Property);
        Assert.IsType<AllOf>(nested.Filter);

        var exists = Assert.IsType<Exists>(Parse("count(login within 1d) exists"));
        Assert.IsType<AggregateRef>(exists.Operand);
    }

    [Fact]
    public void Parse_NestedTraitPath_IsOneTraitWithAPath()
    {
        var comparison = (Comparison)Parse("traits.address.city == \"Berlin\"");
        Assert.Equal(new FieldRef(FieldScope.Trait, "address.city"), comparison.Left);
    }

    [Theory]
    [InlineData("totalSpent >", 1, 13, "the rule ends where a value was expected")]
    [InlineData("totalSpent 1000", 1, 12, "expected an operator")]
    [InlineData("(totalSpent > 1", 1, 16, "expected ')' to close the '(' at line 1, column 1")]
    [InlineData("totalSpent > 1)", 1, 15, "this ')' has no matching '('")]
    [InlineData("totalSpent > \"abc", 1, 14, "this string is not closed")]
    [InlineData("count(purchase) > 1", 1, 15, "expected 'within' and a window")]
    [InlineData("count(purchase within 7) > 1", 1, 23, "expected a window length after 'within'")]
    [InlineData("total(purchase within 7d) > 1", 1, 1, "unknown function 'total'")]
    [InlineData("lastSeen > 30d", 1, 12, "write 30d ago")]
    [InlineData("totalSpent > 1 totalSpent < 5", 1, 16, "expected 'and' or 'or' before 'totalSpent'")]
    [InlineData("", 1, 1, "the rule is empty")]
    [InlineData("totalSpent > 2024-13-45", 1, 14, "is not a valid timestamp")]
    [InlineData("totalSpent > 10x", 1, 14, "neither a number nor a duration")]
    [InlineData("totalSpent ~ 5", 1, 12, "unexpected character '~'")]
    [InlineData("totalSpent > 1 and\n  orderCount >", 2, 15, "the rule ends where a value was expected")]
    [InlineData("count(purchase where inSegment(\"x\") within 7d) > 1", 1, 22, "inSegment(...) cannot be used inside a where filter")]
    public void Parse_SyntaxError_ReportsPositionAndMessage(string text, int line, int column, string message)
    {
        var result = RuleParser.Parse(text);
        Assert.False(result.Succeeded);
        var error = result.Errors[0];
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SeveralSyntaxErrors_AreAllReported()
    {
        var result = RuleParser.Parse("totalSpent > and orderCount >= or eventCount ! 3");
        Assert.Equal(3, result.Errors.Count);
        Assert.Equal([14, 32, 46], result.Errors.Select(e => e.Column));
    }

    [Fact]
    public void Parse_TooDeep_IsRejectedWithoutStackOverflow()
    {
        var text = new string('(', 5_000) + "eventCount > 1" + new string(')', 5_000);
        var result = RuleParser.Parse(text);
        Assert.Contains(result.Errors, e => e.Code == DiagnosticCodes.TooLarge && e.Message.Contains("nested too deeply", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_TooLong_IsRejected()
    {
        var text = "eventCount > 1" + new string(' ', RuleLimits.Default.MaxTextLength);
        var error = Assert.Single(RuleParser.Parse(text).Errors);
        Assert.Equal(DiagnosticCodes.TooLarge, error.Code);
    }

    [Fact]
    public void Print_IssueExamples_AreCanonical()
    {
        Assert.Equal("traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)",
            RulePrinter.Print(Parse("traits.country IN ['DE','AT','CH'] AND NOT eventCount > 100")));
        Assert.Equal("sum(purchase.amount where category == \"electronics\" within 30d) > 500",
            RulePrinter.Print(Parse("sum( purchase.amount where category = 'electronics' within 30d )>500")));
        Assert.Equal("lastSeen >= 7d ago", RulePrinter.Print(Parse("lastSeen within 7d")));
        Assert.Equal("(eventCount > 1 or eventCount > 2) and eventCount > 3",
            RulePrinter.Print(Parse("(eventCount > 1 or eventCount > 2) and eventCount > 3")));
        Assert.Equal("firstSeen < 2024-01-15T10:30:00Z", RulePrinter.Print(Parse("firstSeen before 2024-01-15T10:30:00Z")));
        Assert.Equal("count(\"page view\" within 1d) > 0", RulePrinter.Print(Parse("count('page view' within 1d) > 0")));
        Assert.Equal("count(\"in\" within 1d) > 0", RulePrinter.Print(Parse("count(\"in\" within 1d) > 0")));
    }
}
