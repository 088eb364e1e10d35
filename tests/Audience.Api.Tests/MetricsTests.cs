using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace Audience.Api.Tests;

/// <summary>
/// The service's series at <c>/metrics</c>, in Prometheus' text, after seed 004's flow and a campaign. The service runs
/// as its own process: meters are process-wide, so services of other tests in this process would add to the counts.
/// </summary>
public sealed partial class MetricsTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), "audience-metrics", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean.
        }
    }

    [Fact]
    public async Task Metrics_after_the_demo_flow_have_the_named_series_with_the_right_values()
    {
        Directory.CreateDirectory(_data);
        using var service = await ServiceProcess.StartAsync(_data);
        var http = service.Http;
        var segmentId = await http.CreateSegment(new { name = "VIP", rule = "totalSpent > 1000" });
        var created = await http.PostJson("/api/campaigns", $$"""
            {"id": "welcome", "name": "welcome", "segmentId": "{{segmentId}}", "type": "email", "content": {"template": "hi"}, "status": "active"}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await Http.Eventually(async () => (await (await http.GetAsync("/api/campaigns/welcome")).Json()).GetProperty("live").GetBoolean(), "the campaign is live");

        await http.Send("vip", "purchase", new { amount = 1500 }, eventId: "order-1");
        await http.Send("small", "purchase", new { amount = 10 });
        await http.Send("vip", "purchase", new { amount = 1500 }, eventId: "order-1");
        Assert.Equal(HttpStatusCode.BadRequest, (await http.PostJson("/api/events", """{"userId": "", "eventType": "purchase"}""")).StatusCode);
        await Http.Eventually(async () => (await http.SegmentsOf("vip")).Contains(segmentId), "the VIP enters");
        await Http.Eventually(async () => await http.EventCountOf("small") == 1, "the other event is applied");
        // A segment created once the profiles are stored: its backfill goes through them.
        await Task.Delay(1500);
        var later = await http.CreateSegment(new { name = "buyers", rule = "orderCount >= 1" });
        await Http.Eventually(async () => (await http.SegmentsOf("small")).Contains(later), "the backfill places the buyers");

        Dictionary<string, double> series = [];
        await Http.Eventually(async () =>
        {
            series = Parse(await http.GetStringAsync("/metrics"));
            return Sum(series, "audience_backfill_profiles_total") >= 2 && Sum(series, "audience_store_operation_duration_seconds_count", "operation=\"write\"") > 0
                && Sum(series, "audience_notifications_total") == 1;
        }, "the series are exported");

        Assert.Equal(2, Sum(series, "audience_events_accepted_total"));
        Assert.Equal(1, Sum(series, "audience_events_duplicate_total"));
        Assert.Equal(1, Sum(series, "audience_events_rejected_total", "reason=\"invalid\""));
        Assert.Equal(2, Sum(series, "audience_events_applied_total"));
        // The VIP into VIP, then both users into "buyers" by its backfill.
        Assert.Equal(3, Sum(series, "audience_membership_changes_total", "action=\"added\"", "reason=\"rule_evaluation\""));
        Assert.True(Sum(series, "audience_qualify_latency_seconds_count") >= 1);
        Assert.True(Sum(series, "audience_qualify_latency_seconds_bucket", "le=\"+Inf\"") >= 1);
        Assert.Equal(1, Sum(series, "audience_notifications_total", "type=\"email\"", "status=\"sent\""));
        Assert.Equal(0, Sum(series, "audience_dead_letters_total"));
        Assert.True(Sum(series, "audience_grains_active") >= 2);
        Assert.Equal(0, Sum(series, "audience_store_errors_total"));
        Assert.Contains(series.Keys, k => k.StartsWith("audience_writebehind_pending", StringComparison.Ordinal));
        Assert.Contains(series.Keys, k => k.StartsWith("audience_retries_total{", StringComparison.Ordinal) && k.Contains("pipeline=\"partition-write\"", StringComparison.Ordinal));
        Assert.Contains(series.Keys, k => k.StartsWith("audience_circuit_state{", StringComparison.Ordinal) && k.Contains("pipeline=\"profile-store\"", StringComparison.Ordinal));
        Assert.Equal(0, Sum(series, "audience_circuit_state", "pipeline=\"profile-store\""));
        Assert.Contains(series.Keys, k => k.StartsWith("http_server_request_duration_seconds", StringComparison.Ordinal));
        Assert.Contains(series.Keys, k => k.StartsWith("dotnet_gc_", StringComparison.Ordinal) || k.StartsWith("process_runtime_dotnet", StringComparison.Ordinal));
    }

    /// <summary>Each sample line's series (name and labels) and value.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var series = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (Match m in SampleLine().Matches(text))
        {
            series[m.Groups[1].Value] = double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        }

        return series;
    }

    /// <summary>The sum of a metric's samples whose labels contain every one of <paramref name="labels"/>.</summary>
    private static double Sum(Dictionary<string, double> series, string name, params string[] labels) =>
        series.Where(s => (s.Key == name || s.Key.StartsWith(name + "{", StringComparison.Ordinal)) && labels.All(l => s.Key.Contains(l, StringComparison.Ordinal)))
            .Sum(s => s.Value);

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([-+0-9.eE]+|NaN|\+Inf)(?: \d+)?$", RegexOptions.Multiline)]
    private static partial Regex SampleLine();
}
