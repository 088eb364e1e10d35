using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Audience.Api.Tests.Kafka;
using Audience.Testing;

namespace Audience.Api.Tests.Deploy;

/// <summary>
/// The chart's Druid supervisor specs (helm/audience/files/druid) against what the service really puts on their topics:
/// the service runs in Kafka mode (the Api in process, a Silo process, the mock cluster, PostgreSQL), kcat reads
/// orders-analytics and user-segments, and every dimension and metric field of each spec must be in every message with
/// the type Druid reads it as, and the timestamp column must parse with the spec's format.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class DruidSpecTests : IDisposable
{
    private readonly MockKafka _kafka = new();
    private readonly TestDatabase _database = new();

    [Fact]
    public async Task Every_field_of_the_Druid_specs_is_in_the_messages_with_its_type_and_the_timestamps_parse()
    {
        var specs = Directory.GetFiles(Path.Combine(ChartTests.Root, "helm", "audience", "files", "druid"), "*.json")
            .ToDictionary(f => Path.GetFileName(f), f => JsonDocument.Parse(File.ReadAllText(f)).RootElement.Clone());
        Assert.Equal(["orders-analytics.json", "user-segments.json"], specs.Keys.Order());

        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(new Dictionary<string, string>
        {
            ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
            ["Postgres:ConnectionString"] = _database.ConnectionString,
        });
        var started = DateTimeOffset.UtcNow.AddMinutes(-1);
        var vip = await api.Http.CreateSegment(new { name = "VIP", rule = "totalSpent > 1000" });
        var purchases = new[] { ("druid-1", 1500m, "electronics"), ("druid-2", 20.5m, "books"), ("druid-1", 99.99m, "books"), ("druid-3", 2500m, "garden") };
        foreach (var (user, amount, category) in purchases)
        {
            await api.Http.Send(user, "purchase", new { amount, category });
        }

        foreach (var user in new[] { "druid-1", "druid-3" })
        {
            await Http.Eventually(async () => (await api.Http.SegmentsOf(user)).Contains(vip), $"{user} enters VIP\n{silo.Log}", 60_000);
        }

        // A segment created after the purchases: its backfill's changes (trigger segment_changed) are on the topic too.
        var buyers = await api.Http.CreateSegment(new { name = "buyers", rule = "orderCount >= 1" });
        foreach (var user in new[] { "druid-1", "druid-2", "druid-3" })
        {
            await Http.Eventually(async () => (await api.Http.SegmentsOf(user)).Contains(buyers), $"{user} enters buyers\n{silo.Log}", 60_000);
        }

        var messages = new Dictionary<string, List<JsonElement>>();
        await Http.Eventually(() =>
        {
            foreach (var (file, spec) in specs)
            {
                messages[file] = [.. _kafka.Read(Topic(spec)).Select(m => JsonDocument.Parse(m.Value).RootElement.Clone())];
            }

            return Task.FromResult(messages["orders-analytics.json"].Count >= purchases.Length && messages["user-segments.json"].Count >= 5);
        }, "the orders and the changes are on their topics", 60_000);

        Assert.Equal(purchases.Length, messages["orders-analytics.json"].Count);
        Assert.Contains(messages["user-segments.json"], m => m.GetProperty("metadata").GetProperty("trigger").GetString() == "segment_changed");
        foreach (var (file, spec) in specs)
        {
            var schema = spec.GetProperty("spec").GetProperty("dataSchema");
            Assert.False(string.IsNullOrEmpty(schema.GetProperty("dataSource").GetString()), $"{file}: no dataSource");
            var fields = Fields(spec).ToList();
            var names = fields.Select(f => f.Output).ToList();
            Assert.True(names.Count == names.Distinct().Count(), $"{file}: a dimension and a metric share a name: {string.Join(", ", names)}");
            var timestamp = schema.GetProperty("timestampSpec");
            foreach (var message in messages[file])
            {
                var column = Read(spec, message, timestamp.GetProperty("column").GetString()!);
                Assert.True(column is { } time && ParsesWith(time, timestamp.GetProperty("format").GetString()!, out var at) && at >= started && at <= DateTimeOffset.UtcNow.AddMinutes(1),
                    $"{file}: timestamp {column} does not parse as '{timestamp.GetProperty("format")}' to a time of this test\n{message}");
                foreach (var field in fields.Where(f => f.Input is not null))
                {
                    var value = Read(spec, message, field.Input!);
                    Assert.True(value is not null, $"{file}: {field.Output} reads '{field.Input}', which is not in\n{message}");
                    Assert.True(HasType(value.Value, field.Type), $"{file}: {field.Output} reads '{field.Input}' as {field.Type}, but it is {value}\n{message}");
                }
            }
        }
    }

    /// <summary>Each dimension and metric of a spec: its output name, the input field it reads and the type it reads it as.</summary>
    private static IEnumerable<(string Output, string? Input, string Type)> Fields(JsonElement spec)
    {
        var schema = spec.GetProperty("spec").GetProperty("dataSchema");
        foreach (var dimension in schema.GetProperty("dimensionsSpec").GetProperty("dimensions").EnumerateArray())
        {
            var name = dimension.ValueKind == JsonValueKind.String ? dimension.GetString()! : dimension.GetProperty("name").GetString()!;
            var type = dimension.ValueKind == JsonValueKind.String ? "string" : dimension.GetProperty("type").GetString()!;
            yield return (name, name, type);
        }

        foreach (var metric in schema.GetProperty("metricsSpec").EnumerateArray())
        {
            var type = metric.GetProperty("type").GetString()!;
            Assert.True(MetricInputs.ContainsKey(type), $"metric type {type} is not one this test knows");
            yield return (metric.GetProperty("name").GetString()!, metric.TryGetProperty("fieldName", out var field) ? field.GetString() : null, MetricInputs[type]);
        }
    }

    /// <summary>What each aggregator reads its field as.</summary>
    private static readonly Dictionary<string, string> MetricInputs = new()
    {
        ["count"] = "none",
        ["longSum"] = "long",
        ["longMax"] = "long",
        ["longMin"] = "long",
        ["doubleSum"] = "double",
        ["doubleMax"] = "double",
        ["doubleMin"] = "double",
        ["floatSum"] = "double",
        ["hyperUnique"] = "string",
    };

    /// <summary>
    /// A field as Druid's JSON input format reads it: a flattenSpec field's path, or (with field discovery) a top-level
    /// field whose value is a primitive or a list of primitives; null when absent or null.
    /// </summary>
    private static JsonElement? Read(JsonElement spec, JsonElement message, string name)
    {
        var flatten = spec.GetProperty("spec").GetProperty("ioConfig").GetProperty("inputFormat").GetProperty("flattenSpec");
        foreach (var field in flatten.GetProperty("fields").EnumerateArray())
        {
            if (field.GetProperty("name").GetString() == name)
            {
                Assert.Equal("path", field.GetProperty("type").GetString());
                var path = field.GetProperty("expr").GetString()!;
                Assert.Matches(@"^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$", path);
                var value = message;
                foreach (var step in path[2..].Split('.'))
                {
                    if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty(step, out value))
                    {
                        return null;
                    }
                }

                return value.ValueKind == JsonValueKind.Null ? null : value;
            }
        }

        if (flatten.GetProperty("useFieldDiscovery").GetBoolean() && message.TryGetProperty(name, out var top)
            && top.ValueKind is not (JsonValueKind.Null or JsonValueKind.Object)
            && (top.ValueKind != JsonValueKind.Array || top.EnumerateArray().All(e => e.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array))))
        {
            return top;
        }

        return null;
    }

    private static bool HasType(JsonElement value, string type) => type switch
    {
        // A list of strings is a multi-value string dimension.
        "string" => value.ValueKind == JsonValueKind.String
            || value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String),
        "long" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
        "double" or "float" => value.ValueKind == JsonValueKind.Number,
        _ => false,
    };

    /// <summary>
    /// Whether a timestamp parses with a timestampSpec format: "iso" is Joda's ISODateTimeFormat.dateTimeParser (a date,
    /// optionally T and a time with up to 9 fraction digits, optionally Z or an offset), "millis" and "posix" numbers,
    /// "auto" either.
    /// </summary>
    internal static bool ParsesWith(JsonElement value, string format, out DateTimeOffset at)
    {
        at = default;
        switch (format)
        {
            case "iso":
                return value.ValueKind == JsonValueKind.String && JodaIso().IsMatch(value.GetString()!)
                    && DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out at);
            case "millis":
                if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var ms))
                {
                    at = DateTimeOffset.FromUnixTimeMilliseconds(ms);
                    return true;
                }

                return false;
            case "posix":
                if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var seconds))
                {
                    at = DateTimeOffset.FromUnixTimeSeconds(seconds);
                    return true;
                }

                return false;
            case "auto":
                return ParsesWith(value, "iso", out at) || ParsesWith(value, "millis", out at);
            default:
                Assert.Fail($"timestamp format '{format}' is not one this test knows");
                return false;
        }
    }

    [Fact]
    public void ParsesWith_iso_takes_what_Joda_takes_and_refuses_the_rest()
    {
        foreach (var text in new[] { "2026-11-23T09:00:00.12+00:00", "2026-11-23T09:00:00.1234567+00:00", "2026-11-23T09:00:00Z", "2026-11-23" })
        {
            Assert.True(ParsesWith(JsonDocument.Parse($"\"{text}\"").RootElement, "iso", out _), text);
        }

        foreach (var text in new[] { "23.11.2026 09:00", "2026-11-23 09:00:00", "2026-11-23T09:00:00.1234567890Z", "1700000000000" })
        {
            Assert.False(ParsesWith(JsonDocument.Parse($"\"{text}\"").RootElement, "iso", out _), text);
        }

        Assert.True(ParsesWith(JsonDocument.Parse("1700000000000").RootElement, "auto", out var at));
        Assert.Equal(2023, at.Year);
    }

    private static string Topic(JsonElement spec) => spec.GetProperty("spec").GetProperty("ioConfig").GetProperty("topic").GetString()!;

    [GeneratedRegex(@"^[+-]?\d{4,}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")]
    private static partial Regex JodaIso();

    public void Dispose()
    {
        _kafka.Dispose();
        _database.Dispose();
    }
}
