using System.Globalization;

namespace Audience.LoadTesting;

/// <summary>
/// A check on a scenario's measured results: one missed makes the run's exit code 1 and is named in the reports.
/// Ready-made: <see cref="P99Below"/>, <see cref="ErrorRateBelow"/>, <see cref="RateAtLeast"/>; any other with <see cref="Create"/>.
/// </summary>
public sealed class Threshold
{
    private readonly Func<ScenarioStats, string?> _check;

    private Threshold(string description, Func<ScenarioStats, string?> check)
    {
        Description = description;
        _check = check;
    }

    public string Description { get; }

    /// <summary>Why it was missed, or null when met.</summary>
    public string? Check(ScenarioStats stats) => _check(stats);

    /// <summary>Any condition on the results, as NBomber's <c>Threshold.Create(stats => ...)</c>; <paramref name="description"/> names it when missed.</summary>
    public static Threshold Create(string description, Func<ScenarioStats, bool> isMet) =>
        new(description, stats => isMet(stats) ? null : description + " not met");

    /// <summary>p99 latency at most <paramref name="max"/> (missed too when nothing succeeded).</summary>
    public static Threshold P99Below(TimeSpan max) => new($"p99 <= {max.TotalMilliseconds:0.#} ms", stats =>
        stats.Latency.P99 > max.TotalMilliseconds || stats.Succeeded == 0
            ? string.Create(CultureInfo.InvariantCulture, $"p99 {stats.Latency.P99:F1} ms > {max.TotalMilliseconds:F1} ms")
            : null);

    /// <summary>Failed operations below <paramref name="percent"/> percent of those measured (missed too when none ran).</summary>
    public static Threshold ErrorRateBelow(double percent) => new($"errors < {percent:0.##}%", stats =>
        stats.ErrorPercent >= percent || stats.Operations == 0
            ? string.Create(CultureInfo.InvariantCulture, $"errors {stats.ErrorPercent:0.##}% >= {percent:0.##}%")
            : null);

    /// <summary>At least <paramref name="eventsPerSecond"/> events per second succeeded.</summary>
    public static Threshold RateAtLeast(double eventsPerSecond) => new($"rate >= {eventsPerSecond:N0}/s", stats =>
        stats.EventsPerSecond < eventsPerSecond
            ? string.Create(CultureInfo.InvariantCulture, $"rate {stats.EventsPerSecond:N0}/s < {eventsPerSecond:N0}/s")
            : null);

    public override string ToString() => Description;
}
