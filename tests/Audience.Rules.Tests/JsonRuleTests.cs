using Audience.Rules.Json;
using Audience.Rules.Model;
using Audience.Rules.Syntax;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class JsonRuleTests
{
    [Fact]
    public void Parse_Seed004ConditionTree_IsTotalSpentGreaterThan1000()
    {
        var result = RuleJson.Parse("""{"conditions":[{"field":"totalSpent","operator":"gt","value":1000}]}""");
        Assert.True(result.Succeeded, string.Join("; ", result.Errors));
        Assert.Equal(Parse("totalSpent > 1000"), result.Rule);
    }

    [Fact]
    public void Parse_SeveralConditions_AreCombinedWithAnd()
    {
        var result = RuleJson.Parse("""
            {"conditions":[
              {"field":"totalSpent","operator":"gte","value":1000},
              {"field":"orderCount","operator":"gte","value":2}
            ]}
            """);
        Assert.Equal(Parse("totalSpent >= 1000 and orderCount >= 2"), result.Rule);
    }

    [Theory]
    [InlineData("""{"aggregate":{"function":"count","eventType":"purchase","within":"7d"},"operator":"gte","value":3}""",
        "count(purchase within 7d) >= 3")]
    [InlineData("""{"aggregate":{"function":"sum","eventType":"purchase","property":"amount","where":{"field":"category","operator":"eq","value":"electronics"},"within":"30d"},"operator":"gt","value":500}""",
        "sum(purchase.amount where category == \"electronics\" within 30d) > 500")]
    [InlineData("""{"all":[{"field":"traits.country","operator":"in","value":["DE","AT","CH"]},{"not":{"field":"eventCount","operator":"gt","value":100}}]}""",
        "traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)")]
    [InlineData("""{"aggregate":{"function":"count","eventType":"any","within":"30d"},"operator":"eq","value":0}""",
        "count(any within 30d) == 0")]
    [InlineData("""{"any":[{"inSegment":"vip"},{"field":"totalSpent","operator":"gt","value":5000}]}""",
        "inSegment(\"vip\") or totalSpent > 5000")]
    [InlineData("""{"field":"lastSeen","operator":"within","value":"7d"}""", "lastSeen within 7d")]
    [InlineData("""{"field":"lastSeen","operator":"before","value":{"ago":"30d"}}""", "lastSeen before 30d ago")]
    [InlineData("""{"field":"firstSeen","operator":"lt","value":"2024-01-15T00:00:00Z"}""", "firstSeen < 2024-01-15")]
    [InlineData("""{"field":"traits.signup","operator":"gt","value":{"timestamp":"2024-01-15"}}""", "traits.signup > 2024-01-15")]
    [InlineData("""{"field":"traits.email","operator":"exists"}""", "traits.email exists")]
    [InlineData("""{"field":"traits.plan","operator":"notIn","value":["free"]}""", "traits.plan not in [\"free\"]")]
    [InlineData("""{"field":"traits.email","operator":"endsWith","value":"@example.com"}""", "traits.email endsWith \"@example.com\"")]
    public void Parse_JsonForm_EqualsTextForm(string json, string text)
    {
        var result = RuleJson.Parse(json);
        Assert.True(result.Succeeded, string.Join("; ", result.Errors));
        Assert.Equal(Parse(text), result.Rule);
    }

    [Fact]
    public void Write_ThenParse_GivesTheSameRule()
    {
        foreach (var text in new[]
        {
            "totalSpent > 1000",
            "totalSpent >= 1000 and orderCount >= 2",
            "sum(purchase.amount where category == \"electronics\" within 30d) > 500",
            "traits.country in [\"DE\", \"AT\", \"CH\"] and not (eventCount > 100)",
            "inSegment(\"vip\") or totalSpent > 5000",
            "lastSeen < 30d ago and firstSeen > 2024-01-15T10:30:00Z",
            "(eventCount > 1 or eventCount > 2) or eventCount > 3",
        })
        {
            var rule = Parse(text);
            var json = RuleJson.Write(rule);
            var back = RuleJson.Parse(json);
            Assert.True(back.Succeeded, json + ": " + string.Join("; ", back.Errors));
            Assert.Equal(rule, back.Rule);
        }
    }

    [Fact]
    public void Write_TopLevelAnd_UsesSeedConditionsList()
    {
        Assert.Equal("""{"conditions":[{"field":"totalSpent","operator":"gt","value":1000},{"field":"orderCount","operator":"gte","value":2}]}""",
            RuleJson.Write(Parse("totalSpent > 1000 and orderCount >= 2")));
    }

    [Theory]
    [InlineData("""{"conditions":[{"field":"totalSpent","operator":"gt","value":1000]}""", 1, 66, "invalid JSON")]
    [InlineData("""{"conditions":[{"field":"totalSpent","operator":"greater","value":1000}]}""", 1, 49, "unknown operator 'greater'")]
    [InlineData("""{"conditions":[{"field":"totalSpent","opertor":"gt","value":1000}]}""", 1, 38, "unknown key 'opertor'")]
    [InlineData("""{"conditions":[]}""", 1, 15, "'conditions' must be a non-empty array")]
    [InlineData("""{"conditions":[{"field":"totalSpent","operator":"gt"}]}""", 1, 16, "needs a 'value'")]
    [InlineData("""{"conditions":[{"field":"traits.x","operator":"in","value":"DE"}]}""", 1, 60, "needs an array")]
    [InlineData("""{"conditions":[{"field":"traits.x","operator":"eq","value":{"a":1}}]}""", 1, 60, "a value must be")]
    [InlineData("""{"aggregate":{"function":"median","eventType":"purchase","within":"7d"},"operator":"gt","value":1}""", 1, 26, "'function' must be one of")]
    [InlineData("""{"aggregate":{"function":"count","eventType":"purchase","within":"seven days"},"operator":"gt","value":1}""", 1, 66, "'within' must be a window")]
    [InlineData("[1,2]", 1, 1, "a condition must be an object")]
    public void Parse_BadJson_ReportsPositionAndMessage(string json, int line, int column, string message)
    {
        var result = RuleJson.Parse(json);
        Assert.False(result.Succeeded);
        var error = result.Errors[0];
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
    }

    [Fact]
    public void Parse_ErrorOnLaterLine_HasThatLine()
    {
        var result = RuleJson.Parse("{\n  \"conditions\": [\n    {\"field\": \"totalSpent\", \"operator\": \"bigger\", \"value\": 1}\n  ]\n}");
        var error = Assert.Single(result.Errors);
        Assert.Equal((3, 41), (error.Line, error.Column));
    }

    [Fact]
    public void Parse_EveryError_IsReported()
    {
        var result = RuleJson.Parse("""{"conditions":[{"field":"a","operator":"zz","value":1},{"field":"b","operator":"gt"},{"inSegment":5}]}""");
        Assert.Equal(3, result.Errors.Count);
    }

    [Fact]
    public void Parse_TooDeep_IsRejected()
    {
        var json = string.Concat(Enumerable.Repeat("{\"not\":", 40)) + "{\"field\":\"eventCount\",\"operator\":\"gt\",\"value\":1}" + new string('}', 40);
        var result = RuleJson.Parse(json);
        Assert.Contains(result.Errors, e => e.Code == DiagnosticCodes.TooLarge);
    }
}
