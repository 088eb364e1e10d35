using System.Globalization;
using System.Text;
using System.Text.Json;
using HdrHistogram;

namespace Audience.LoadTesting;

/// <summary>Latency percentiles, in milliseconds (from an HdrHistogram: within 0.1%; the max is exact).</summary>
public sealed record Latency(double P50, double P90, double P99, double P999, double Max)
{
    internal static Latency From(HistogramBase histogram, double maxMilliseconds) => new(
        LatencyRecorder.Milliseconds(histogram, 50), LatencyRecorder.Milliseconds(histogram, 90),
        LatencyRecorder.Milliseconds(histogram, 99), LatencyRecorder.Milliseconds(histogram, 99.9), maxMilliseconds);
}

/// <summary>One second of the measured window: the operations meant to start in it, and the latency of those that succeeded.</summary>
public sealed record Second(int At, long Ok, long Errors, long Events, double P50, double P99, double Max);

/// <summary>The formats a run writes: <c>report.md</c>, <c>report.json</c>, <c>per-second.csv</c>, <c>latency.html</c>.</summary>
public enum ReportFormat
{
    Md,
    Json,
    Csv,
    Html,
}

/// <summary>What a scenario measured, over the measured window only (operations meant to start after the warm-up).</summary>
public sealed record ScenarioStats(
    string Scenario,
    string Description,
    string Model,
    string? Target,
    DateTimeOffset StartedAt,
    double DurationSeconds,
    double WarmupSeconds,
    long Operations,
    long Succeeded,
    long Events,
    double OperationsPerSecond,
    double EventsPerSecond,
    Latency Latency,
    IReadOnlyDictionary<string, long> Errors,
    IReadOnlyList<Second> Seconds,
    IReadOnlyList<string> ThresholdsMissed)
{
    /// <summary>Failed operations, in percent of those measured (0 when none ran).</summary>
    public double ErrorPercent => Operations == 0 ? 0 : 100.0 * (Operations - Succeeded) / Operations;

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    internal static ScenarioStats From(Scenario scenario, string model, DateTimeOffset startedAt, LatencyRecorder.Measured measured)
    {
        var warmup = scenario.WarmUp.TotalSeconds;
        var duration = scenario.TotalSeconds - warmup;
        var stats = new ScenarioStats(scenario.Name, scenario.Description, model, scenario.Target, startedAt, duration, warmup,
            measured.Operations, measured.Succeeded, measured.Events, measured.Succeeded / duration, measured.Events / duration,
            measured.Latency, measured.Errors, measured.Seconds, []);
        return stats with { ThresholdsMissed = [.. scenario.Thresholds.Select(t => t.Check(stats)).OfType<string>()] };
    }

    /// <summary>Writes the reports in <paramref name="formats"/> (all when empty) into <paramref name="directory"/>.</summary>
    public void Write(string directory, IReadOnlyCollection<ReportFormat>? formats = null)
    {
        bool Wanted(ReportFormat format) => formats is null || formats.Contains(format);
        Directory.CreateDirectory(directory);
        if (Wanted(ReportFormat.Json))
        {
            File.WriteAllText(Path.Combine(directory, "report.json"), JsonSerializer.Serialize(this, JsonOptions));
        }

        if (Wanted(ReportFormat.Csv))
        {
            File.WriteAllText(Path.Combine(directory, "per-second.csv"), Csv());
        }

        if (Wanted(ReportFormat.Md))
        {
            File.WriteAllText(Path.Combine(directory, "report.md"), Markdown());
        }

        if (Wanted(ReportFormat.Html))
        {
            File.WriteAllText(Path.Combine(directory, "latency.html"), Chart.Html(this));
        }
    }

    public string Csv()
    {
        var csv = new StringBuilder("second,ok,errors,events,p50_ms,p99_ms,max_ms\n");
        foreach (var s in Seconds)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{s.At},{s.Ok},{s.Errors},{s.Events},{s.P50:F3},{s.P99:F3},{s.Max:F3}\n");
        }

        return csv.ToString();
    }

    public string Markdown()
    {
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture, $"""
            # Load test: {Scenario}

            - what: {Description}
            - load: {Model}; {DurationSeconds:0.##} s measured after {WarmupSeconds:0.##} s of warm-up
            - target: {Target ?? "(not given)"}; started {StartedAt:u}; {Environment.ProcessorCount} cores on the client's machine

            | operations | succeeded | ops/s | events/s | p50 | p90 | p99 | p99.9 | max |
            |---:|---:|---:|---:|---:|---:|---:|---:|---:|
            | {Operations:N0} | {Succeeded:N0} | {OperationsPerSecond:N0} | {EventsPerSecond:N0} | {Latency.P50:F2} ms | {Latency.P90:F2} ms | {Latency.P99:F2} ms | {Latency.P999:F2} ms | {Latency.Max:F2} ms |

            """);
        md.AppendLine();
        md.AppendLine(Errors.Count == 0 ? "No errors." : "| error | count |\n|---|---:|");
        foreach (var (kind, count) in Errors)
        {
            md.Append(CultureInfo.InvariantCulture, $"| {kind} | {count:N0} |\n");
        }

        md.AppendLine();
        md.AppendLine(ThresholdsMissed.Count == 0 ? "Thresholds: met (or none given)." : "Thresholds missed: " + string.Join("; ", ThresholdsMissed) + ".");
        md.AppendLine();
        md.AppendLine("Latency is measured from each operation's intended start time (open model) or its actual start (closed model); " +
            "percentiles from an HdrHistogram (3 significant digits). Per second: `per-second.csv`; chart: `latency.html`.");
        return md.ToString();
    }
}
