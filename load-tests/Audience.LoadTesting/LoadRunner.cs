using System.Globalization;

namespace Audience.LoadTesting;

/// <summary>
/// Runs scenarios, as NBomber's <c>NBomberRunner</c>: <c>await LoadRunner.RegisterScenarios(a, b).WithReportFolder("results").RunAsync()</c>.
/// Scenarios run side by side, each with its own clock, measurements and thresholds. On the console: a line per
/// scenario before it starts, a live view once a second on stderr, and each report in Markdown on stdout at the end.
/// Reports go to the report folder (with several scenarios, to a sub-folder per scenario).
/// </summary>
public sealed class LoadRunner
{
    private readonly Scenario[] _scenarios;
    private string _folder = "results";
    private ReportFormat[]? _formats;
    private bool _progress = true;

    private LoadRunner(Scenario[] scenarios) => _scenarios = scenarios;

    public static LoadRunner RegisterScenarios(params Scenario[] scenarios)
    {
        if (scenarios.Length == 0)
        {
            throw new ArgumentException("Register at least one scenario.", nameof(scenarios));
        }

        if (scenarios.GroupBy(s => s.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ArgumentException($"Two scenarios are named '{twice.Key}': each needs its own name (and report folder).", nameof(scenarios));
        }

        return new LoadRunner([.. scenarios]);
    }

    /// <summary>Where the reports go ("results" by default).</summary>
    public LoadRunner WithReportFolder(string folder)
    {
        _folder = folder;
        return this;
    }

    /// <summary>Which reports to write (all by default; none with no argument).</summary>
    public LoadRunner WithReportFormats(params ReportFormat[] formats)
    {
        _formats = formats;
        return this;
    }

    /// <summary>No live view on stderr.</summary>
    public LoadRunner WithoutProgress()
    {
        _progress = false;
        return this;
    }

    /// <summary>
    /// Sets every scenario up, runs them, writes the reports and tears them down. <see cref="RunResult.ExitCode"/>: 0
    /// done and thresholds met, 1 a threshold missed, 2 a failed set-up. A scenario that cannot run as configured
    /// (no simulation, a warm-up as long as the run) is an <see cref="ArgumentException"/> before anything starts.
    /// </summary>
    public async Task<RunResult> RunAsync(CancellationToken cancellationToken = default)
    {
        if (_scenarios.Select(s => s.Problem()).OfType<string>().FirstOrDefault() is { } problem)
        {
            throw new ArgumentException(problem);
        }

        var initialized = new List<Scenario>();
        try
        {
            foreach (var scenario in _scenarios)
            {
                try
                {
                    if (scenario.Init is { } init)
                    {
                        await init(new ScenarioInitContext(scenario.Name, cancellationToken)).ConfigureAwait(false);
                    }

                    initialized.Add(scenario);
                }
                catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    initialized.Add(scenario);
                    var error = $"set-up failed: {(_scenarios.Length > 1 ? scenario.Name + ": " : "")}{e.Message}";
                    await Console.Error.WriteLineAsync(error).ConfigureAwait(false);
                    return new RunResult([], 2, error);
                }
            }

            return await MeasureAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var scenario in initialized)
            {
                await CleanAsync(scenario).ConfigureAwait(false);
            }
        }
    }

    private async Task<RunResult> MeasureAsync(CancellationToken cancellationToken)
    {
        var runs = _scenarios.Select(s => new ScenarioRun(s)).ToArray();
        foreach (var run in runs)
        {
            var s = run.Scenario;
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{s.Name}: {s.Description}; {run.Plan.Describe()}; {s.WarmUp.TotalSeconds:0.##} s warm-up + {run.Plan.TotalSeconds - s.WarmUp.TotalSeconds:0.##} s")).ConfigureAwait(false);
        }

        var startedAt = DateTimeOffset.UtcNow;
        var all = Task.WhenAll(runs.Select(r => r.RunAsync(cancellationToken)));
        using (_progress ? new Progress(runs) : null)
        {
            await all.ConfigureAwait(false);
        }

        var stats = runs.Select(r => ScenarioStats.From(r.Scenario, r.Plan.Describe(), startedAt, r.Recorder.Result())).ToList();
        foreach (var s in stats)
        {
            var folder = runs.Length == 1 ? _folder : Path.Combine(_folder, s.Scenario);
            if (_formats is not { Length: 0 })
            {
                s.Write(folder, _formats);
            }

            await Console.Out.WriteLineAsync(s.Markdown()).ConfigureAwait(false);
            await Console.Out.WriteLineAsync($"results in {Path.GetFullPath(folder)}").ConfigureAwait(false);
        }

        return new RunResult(stats, stats.Any(s => s.ThresholdsMissed.Count > 0) ? 1 : 0, null);
    }

    private static async Task CleanAsync(Scenario scenario)
    {
        if (scenario.Clean is not { } clean)
        {
            return;
        }

        try
        {
            await clean(new ScenarioInitContext(scenario.Name, CancellationToken.None)).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // A failed tear-down does not change what was measured; say so and go on with the others.
            await Console.Error.WriteLineAsync($"clean-up of {scenario.Name} failed: {e.Message}").ConfigureAwait(false);
        }
    }
}

/// <summary>What a run ended with: each scenario's results, the exit code (0 met, 1 a threshold missed, 2 set-up failed) and the set-up error if any.</summary>
public sealed record RunResult(IReadOnlyList<ScenarioStats> Scenarios, int ExitCode, string? SetUpError);
