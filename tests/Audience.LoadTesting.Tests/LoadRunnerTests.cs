using System.Text.Json;

namespace Audience.LoadTesting.Tests;

/// <summary>Short runs (a fraction of a second) of in-process steps: no network, no assertion on rates.</summary>
public sealed class LoadRunnerTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "load-runner-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    private static Simulation Inject(double perSecond, int milliseconds) =>
        Simulation.Inject(perSecond, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(milliseconds));

    private Task<RunResult> Run(params Scenario[] scenarios) =>
        LoadRunner.RegisterScenarios(scenarios).WithReportFolder(_folder).WithoutProgress().RunAsync();

    [Fact]
    public async Task RunAsync_ClosedModel_KeepsTheConcurrency()
    {
        var current = 0;
        var most = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var scenario = Scenario.Create("closed", async _ =>
            {
                var now = Interlocked.Increment(ref current);
                InterlockedMax(ref most, now);
                if (now == 4)
                {
                    allIn.TrySetResult();
                }

                // Until all four are in at least once, so the test does not depend on how the workers are scheduled.
                await Task.WhenAny(allIn.Task, Task.Delay(TimeSpan.FromSeconds(5)));
                await Task.Delay(2);
                Interlocked.Decrement(ref current);
                return Response.Ok();
            })
            // Long enough for all four workers to start on a busy machine: a worker that starts after the end does nothing.
            .WithLoadSimulations(Simulation.KeepConstant(copies: 4, during: TimeSpan.FromSeconds(3)));

        var result = await Run(scenario);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(4, most);
        Assert.Equal(0, current);
        Assert.True(result.Scenarios[0].Succeeded >= 4);
        Assert.Equal("closed model, 4 concurrent workers", result.Scenarios[0].Model);
    }

    [Fact]
    public async Task RunAsync_ThresholdMissed_ExitCode1AndNamedInTheReport()
    {
        var scenario = Scenario.Create("failing", _ => Task.FromResult(Response.Fail("http 503")))
            .WithLoadSimulations(Inject(100, 300))
            .WithThresholds(Threshold.ErrorRateBelow(1), Threshold.P99Below(TimeSpan.FromSeconds(10)));

        var result = await Run(scenario);

        Assert.Equal(1, result.ExitCode);
        var stats = result.Scenarios.Single();
        Assert.Equal(["errors 100% >= 1%", "p99 0.0 ms > 10000.0 ms"], stats.ThresholdsMissed);
        Assert.Equal(stats.Operations, stats.Errors["http 503"]);
        Assert.Contains("Thresholds missed: errors 100% >= 1%", await File.ReadAllTextAsync(Path.Combine(_folder, "report.md")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_ThresholdsMet_ExitCode0AndEveryReportWritten()
    {
        var scenario = Scenario.Create("fine", _ => Task.FromResult(Response.Ok(events: 3)))
            .WithLoadSimulations(Inject(200, 600))
            .WithWarmUpDuration(TimeSpan.FromMilliseconds(200))
            .WithTarget("in-process")
            .WithThresholds(Threshold.ErrorRateBelow(1), Threshold.P99Below(TimeSpan.FromSeconds(10)),
                Threshold.Create("three events per operation", s => s.Events == 3 * s.Succeeded));

        var result = await Run(scenario);

        Assert.Equal(0, result.ExitCode);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_folder, "report.json")));
        var root = report.RootElement;
        Assert.Equal("fine", root.GetProperty("scenario").GetString());
        Assert.Equal("in-process", root.GetProperty("target").GetString());
        Assert.Equal(0.4, root.GetProperty("durationSeconds").GetDouble(), precision: 9);
        Assert.Equal(0.2, root.GetProperty("warmupSeconds").GetDouble(), precision: 9);
        // 200/s for 0.6 s, the first 0.2 s not measured: operations 40 to 119.
        Assert.Equal(80, root.GetProperty("operations").GetInt64());
        Assert.Equal(240, root.GetProperty("events").GetInt64());
        Assert.Equal("second,ok,errors,events,p50_ms,p99_ms,max_ms", File.ReadLines(Path.Combine(_folder, "per-second.csv")).First());
        Assert.Contains("<svg", await File.ReadAllTextAsync(Path.Combine(_folder, "latency.html")), StringComparison.Ordinal);
        Assert.Contains("| operations |", await File.ReadAllTextAsync(Path.Combine(_folder, "report.md")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_OpenModelStalledClient_LatencyCountsFromIntendedStart()
    {
        // The first operation blocks the scheduler for 300 ms (and fails, so it is not in the latency itself): the
        // operations meant to start meanwhile start late, and their latency must include the wait.
        var scenario = Scenario.Create("stall", context =>
            {
                if (context.InvocationNumber == 0)
                {
                    Thread.Sleep(300);
                    return Task.FromResult(Response.Fail("stalled"));
                }

                return Task.FromResult(Response.Ok());
            })
            .WithLoadSimulations(Inject(100, 500));

        var stats = (await Run(scenario)).Scenarios.Single();

        Assert.Equal(50, stats.Operations);
        Assert.InRange(stats.Latency.Max, 250, double.MaxValue);
    }

    [Fact]
    public async Task RunAsync_InitFails_ExitCode2AndCleanStillRuns()
    {
        var cleaned = false;
        var scenario = Scenario.Create("broken", _ => Task.FromResult(Response.Ok()))
            .WithInit(_ => throw new InvalidOperationException("no target"))
            .WithClean(_ =>
            {
                cleaned = true;
                return Task.CompletedTask;
            })
            .WithLoadSimulations(Inject(10, 100));

        var result = await Run(scenario);

        Assert.Equal((2, "set-up failed: no target"), (result.ExitCode, result.SetUpError));
        Assert.True(cleaned);
    }

    [Fact]
    public async Task RunAsync_StepThrows_CountedAsAnErrorOfItsKind()
    {
        var scenario = Scenario.Create("throws", context => context.InvocationNumber % 2 == 0
                ? throw new HttpRequestException("refused", null, System.Net.HttpStatusCode.ServiceUnavailable)
                : Task.FromResult(Response.Ok()))
            .WithLoadSimulations(Inject(100, 200));

        var stats = (await Run(scenario)).Scenarios.Single();

        Assert.Equal([("http 503", 10L)], stats.Errors.Select(e => (e.Key, e.Value)));
        Assert.Equal(10, stats.Succeeded);
    }

    [Fact]
    public async Task RunAsync_TwoScenarios_ReportsInAFolderEach()
    {
        var a = Scenario.Create("a", _ => Task.FromResult(Response.Ok())).WithLoadSimulations(Inject(50, 200));
        var b = Scenario.Create("b", _ => Task.FromResult(Response.Ok())).WithLoadSimulations(Simulation.KeepConstant(2, TimeSpan.FromMilliseconds(100)));

        var result = await Run(a, b);

        Assert.Equal(["a", "b"], result.Scenarios.Select(s => s.Scenario));
        Assert.True(File.Exists(Path.Combine(_folder, "a", "report.json")));
        Assert.True(File.Exists(Path.Combine(_folder, "b", "report.json")));
    }

    [Fact]
    public async Task RunAsync_NoSimulation_Throws()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Run(Scenario.Create("idle", _ => Task.FromResult(Response.Ok()))));
        Assert.Contains("no load simulation", error.Message, StringComparison.Ordinal);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }
}
