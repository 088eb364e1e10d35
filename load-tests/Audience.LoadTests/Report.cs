using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Audience.LoadTests;

/// <summary>Latency percentiles, in milliseconds.</summary>
internal sealed record Latency(double P50, double P90, double P99, double P999, double Max)
{
    public static Latency Of(double[] sorted) => sorted.Length == 0
        ? new Latency(0, 0, 0, 0, 0)
        : new Latency(At(sorted, 0.50), At(sorted, 0.90), At(sorted, 0.99), At(sorted, 0.999), sorted[^1]);

    private static double At(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
}

/// <summary>One second of the measured window.</summary>
internal sealed record Second(int At, long Ok, long Errors, long Events, double P50, double P99, double Max);

/// <summary>What a run measured, over the measured window only (operations meant to start after the warm-up).</summary>
internal sealed record Results(
    string Scenario,
    string Description,
    string Model,
    string Target,
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
    public static Results From(LoadOptions options, string description, string model, DateTimeOffset startedAt, List<Sample> samples)
    {
        var warmup = options.Warmup.TotalSeconds;
        var measured = samples.Where(s => s.IntendedSeconds >= warmup).ToList();
        var ok = measured.Where(s => s.Error is null).ToList();
        var duration = options.Duration.TotalSeconds;
        var events = ok.Sum(s => (long)s.Events);
        var seconds = measured.GroupBy(s => (int)(s.IntendedSeconds - warmup)).OrderBy(g => g.Key).Select(g =>
        {
            var latencies = g.Where(s => s.Error is null).Select(s => s.LatencyMs).Order().ToArray();
            var latency = Latency.Of(latencies);
            return new Second(g.Key, latencies.Length, g.LongCount(s => s.Error is not null), g.Where(s => s.Error is null).Sum(s => (long)s.Events),
                latency.P50, latency.P99, latency.Max);
        }).ToList();
        var results = new Results(options.Scenario, description, model, options.Target, startedAt, duration, warmup,
            measured.Count, ok.Count, events, ok.Count / duration, events / duration,
            Latency.Of([.. ok.Select(s => s.LatencyMs).Order()]),
            measured.Where(s => s.Error is not null).GroupBy(s => s.Error!).OrderByDescending(g => g.Count()).ToDictionary(g => g.Key, g => g.LongCount()),
            seconds, []);
        var missed = new List<string>();
        if (options.MaxP99 is { } maxP99 && (results.Latency.P99 > maxP99.TotalMilliseconds || ok.Count == 0))
        {
            missed.Add($"p99 {results.Latency.P99:F1} ms > {maxP99.TotalMilliseconds:F1} ms");
        }

        if (options.MinRate is { } minRate && results.EventsPerSecond < minRate)
        {
            missed.Add($"rate {results.EventsPerSecond:N0}/s < {minRate:N0}/s");
        }

        return results with { ThresholdsMissed = missed };
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Writes report.md, report.json, per-second.csv and latency.html into <paramref name="directory"/>.</summary>
    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "report.json"), JsonSerializer.Serialize(this, JsonOptions));
        File.WriteAllText(Path.Combine(directory, "per-second.csv"), Csv());
        File.WriteAllText(Path.Combine(directory, "report.md"), Markdown());
        File.WriteAllText(Path.Combine(directory, "latency.html"), Chart.Html(this));
    }

    private string Csv()
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
            - target: {Target}; started {StartedAt:u}; {Environment.ProcessorCount} cores on the client's machine

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
        md.AppendLine("Latency is measured from each operation's intended start time (open model) or its actual start (closed model). Per second: `per-second.csv`; chart: `latency.html`.");
        return md.ToString();
    }
}
