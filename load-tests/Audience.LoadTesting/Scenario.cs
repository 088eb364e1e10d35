namespace Audience.LoadTesting;

/// <summary>
/// A load-test scenario, in NBomber's shape: a name and an async step run once per operation, with an optional
/// set-up (<see cref="WithInit"/>) and tear-down (<see cref="WithClean"/>), the load simulations that say when
/// operations start, a warm-up and thresholds. Immutable: each <c>With...</c> returns a changed copy.
/// </summary>
/// <example>
/// <code>
/// var scenario = Scenario.Create("ingest", async context =>
///     {
///         using var response = await http.PostAsJsonAsync("/api/events", evt, context.CancellationToken);
///         return response.StatusCode == HttpStatusCode.Accepted ? Response.Ok() : Response.Fail($"http {(int)response.StatusCode}");
///     })
///     .WithLoadSimulations(Simulation.Inject(rate: 500, interval: TimeSpan.FromSeconds(1), during: TimeSpan.FromSeconds(35)))
///     .WithWarmUpDuration(TimeSpan.FromSeconds(5))
///     .WithThresholds(Threshold.P99Below(TimeSpan.FromMilliseconds(50)));
/// </code>
/// </example>
public sealed record Scenario
{
    private Scenario(string name, Func<ScenarioContext, Task<Response>> step)
    {
        Name = name;
        Step = step;
        Description = name;
    }

    /// <summary>The scenario's name: in the reports, and the sub-folder of its reports when a run has several.</summary>
    public string Name { get; }

    /// <summary>One operation. Its latency is measured from its intended start (open model) or actual start (closed).</summary>
    public Func<ScenarioContext, Task<Response>> Step { get; }

    /// <summary>Runs once before the clock starts; an exception fails the run's set-up (exit code 2).</summary>
    public Func<ScenarioInitContext, Task>? Init { get; private init; }

    /// <summary>Runs once after the run, whether it succeeded or not.</summary>
    public Func<ScenarioInitContext, Task>? Clean { get; private init; }

    /// <summary>What the operation does, for the reports (the name by default).</summary>
    public string Description { get; private init; }

    /// <summary>What is loaded (a URL, bootstrap servers), for the reports; null when not said.</summary>
    public string? Target { get; private init; }

    /// <summary>The load, in order: all open (<see cref="Simulation.Inject"/>) or all closed (<see cref="Simulation.KeepConstant"/>).</summary>
    public IReadOnlyList<Simulation> Simulations { get; private init; } = [];

    /// <summary>The first part of the simulations' timeline, run but left out of the results.</summary>
    public TimeSpan WarmUp { get; private init; }

    /// <summary>Checked on the measured results; one missed makes the run's exit code 1.</summary>
    public IReadOnlyList<Threshold> Thresholds { get; private init; } = [];

    /// <summary>
    /// Open model: operations outstanding at most; beyond it a start is counted as an error (<c>client: too many in flight</c>)
    /// instead of being sent, so a stalled target cannot make the client queue without bound.
    /// </summary>
    public int MaxInFlight { get; private init; } = 20_000;

    /// <summary>A scenario named <paramref name="name"/> whose operation is <paramref name="step"/>.</summary>
    public static Scenario Create(string name, Func<ScenarioContext, Task<Response>> step)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(step);
        if (name.AsSpan().IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
        {
            throw new ArgumentException($"A scenario's name is a folder name in the reports: '{name}' has a character a file name cannot have.", nameof(name));
        }

        return new Scenario(name, step);
    }

    public Scenario WithInit(Func<ScenarioInitContext, Task> init) => this with { Init = init };

    public Scenario WithClean(Func<ScenarioInitContext, Task> clean) => this with { Clean = clean };

    public Scenario WithDescription(string description) => this with { Description = description };

    public Scenario WithTarget(string target) => this with { Target = target };

    /// <summary>The load, run one after the other; a ramp starts where the simulation before it ended (or at 0).</summary>
    public Scenario WithLoadSimulations(params Simulation[] simulations)
    {
        if (simulations.Length > 0 && simulations.Any(s => s.IsClosed != simulations[0].IsClosed))
        {
            throw new ArgumentException("A scenario's simulations are either all open (Inject, RampingInject) or all closed (KeepConstant, RampingConstant).", nameof(simulations));
        }

        return this with { Simulations = [.. simulations] };
    }

    /// <summary>Operations meant to start in the first <paramref name="duration"/> of the simulations are run but not measured.</summary>
    public Scenario WithWarmUpDuration(TimeSpan duration)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(duration, TimeSpan.Zero);
        return this with { WarmUp = duration };
    }

    public Scenario WithoutWarmUp() => this with { WarmUp = TimeSpan.Zero };

    public Scenario WithThresholds(params Threshold[] thresholds) => this with { Thresholds = [.. thresholds] };

    public Scenario WithMaxInFlight(int operations)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(operations, 1);
        return this with { MaxInFlight = operations };
    }

    /// <summary>The whole timeline (warm-up included), in seconds.</summary>
    internal double TotalSeconds => Simulations.Sum(s => s.During.TotalSeconds);

    /// <summary>What is wrong with the scenario for a run, or null.</summary>
    internal string? Problem() =>
        Simulations.Count == 0 ? $"scenario '{Name}' has no load simulation: add .WithLoadSimulations(...)."
        : WarmUp.TotalSeconds >= TotalSeconds ? $"scenario '{Name}': the warm-up ({WarmUp.TotalSeconds:0.##} s) leaves nothing of the simulations ({TotalSeconds:0.##} s) to measure."
        : null;
}

/// <summary>What one operation is given: which scenario, its number in the run, and the run's cancellation.</summary>
public readonly record struct ScenarioContext(string ScenarioName, long InvocationNumber, CancellationToken CancellationToken);

/// <summary>What a scenario's set-up and tear-down are given.</summary>
public readonly record struct ScenarioInitContext(string ScenarioName, CancellationToken CancellationToken);

/// <summary>
/// How one operation ended: succeeded, carrying <see cref="Events"/> events (the reports' events per second), or
/// failed with an error kind (the reports count errors by kind, so keep it short: <c>http 503</c>, <c>timeout</c>).
/// </summary>
public readonly record struct Response(int Events, string? Error)
{
    public bool IsError => Error is not null;

    public static Response Ok(int events = 1) => new(events, null);

    public static Response Fail(string kind) => new(0, kind);
}
