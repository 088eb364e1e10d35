using System.Diagnostics;

namespace Audience.LoadTesting;

/// <summary>
/// Runs one scenario's simulations from start to end and records every operation. Open model: each operation starts
/// at its intended time whatever the previous ones are doing, and its latency counts from that time. Closed model:
/// as many workers as the simulation says, each starting its next operation when the last one ends.
/// </summary>
internal sealed class ScenarioRun(Scenario scenario)
{
    private long _invocations = -1;

    public Scenario Scenario { get; } = scenario;

    public LoadPlan Plan { get; } = new(scenario.Simulations);

    public LatencyRecorder Recorder { get; } = new(scenario.WarmUp.TotalSeconds);

    public Stopwatch Clock { get; } = new();

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        Clock.Start();
        try
        {
            await (Plan.IsClosed ? RunClosedAsync(cancellationToken) : RunOpenAsync(cancellationToken)).ConfigureAwait(false);
        }
        finally
        {
            Recorder.Complete();
        }
    }

    private async Task RunOpenAsync(CancellationToken cancellationToken)
    {
        var total = Plan.TotalSeconds;
        var running = new List<Task>();
        for (long i = 0; !cancellationToken.IsCancellationRequested; i++)
        {
            var intended = Plan.IntendedSeconds(i);
            if (intended >= total)
            {
                break;
            }

            var wait = intended - Clock.Elapsed.TotalSeconds;
            if (wait > 0.001 && !await Delay(TimeSpan.FromSeconds(wait), cancellationToken).ConfigureAwait(false))
            {
                break;
            }

            var pending = Recorder.Begin(intended);
            if (Recorder.InFlight > Scenario.MaxInFlight)
            {
                // The target is so far behind that this client would only queue more: count it, do not send it.
                Recorder.End(pending, 0, Response.Fail("client: too many in flight"));
                continue;
            }

            running.Add(ExecuteAsync(pending, i, cancellationToken));
            if (running.Count > 4096)
            {
                running.RemoveAll(t => t.IsCompleted);
            }
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    /// <summary>
    /// A controller starts worker k whenever the plan wants more than k workers and k is not running; a worker stops
    /// itself when the plan wants k or fewer, or at the end. With a constant count every worker starts at once.
    /// </summary>
    private async Task RunClosedAsync(CancellationToken cancellationToken)
    {
        var total = Plan.TotalSeconds;
        var running = new int[Plan.MaxCopies];
        var workers = new List<Task>();
        var tick = TimeSpan.FromMilliseconds(Plan.Ramps ? 10 : 100);
        while (!cancellationToken.IsCancellationRequested && Clock.Elapsed.TotalSeconds < total)
        {
            var wanted = Math.Min(Plan.CopiesAt(Clock.Elapsed.TotalSeconds), running.Length);
            for (var k = 0; k < wanted; k++)
            {
                if (Interlocked.CompareExchange(ref running[k], 1, 0) == 0)
                {
                    var worker = k;
                    workers.Add(Task.Run(() => WorkAsync(worker, running, cancellationToken), CancellationToken.None));
                }
            }

            if (workers.Count > 4096)
            {
                workers.RemoveAll(t => t.IsCompleted);
            }

            var left = TimeSpan.FromSeconds(total) - Clock.Elapsed;
            if (left > TimeSpan.Zero && !await Delay(left < tick ? left : tick, cancellationToken).ConfigureAwait(false))
            {
                break;
            }
        }

        await Task.WhenAll(workers).ConfigureAwait(false);
    }

    private async Task WorkAsync(int worker, int[] running, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = Clock.Elapsed.TotalSeconds;
                if (now >= Plan.TotalSeconds || worker >= Plan.CopiesAt(now))
                {
                    return;
                }

                await ExecuteAsync(Recorder.BeginNow(Clock), Interlocked.Increment(ref _invocations), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref running[worker], 0);
        }
    }

    private async Task ExecuteAsync(LatencyRecorder.Pending pending, long index, CancellationToken cancellationToken)
    {
        Response response;
        try
        {
            response = await Scenario.Step(new ScenarioContext(Scenario.Name, index, cancellationToken)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            response = Response.Fail("cancelled");
        }
        catch (Exception e)
        {
            response = Response.Fail(ErrorKind(e));
        }

        Recorder.End(pending, (Clock.Elapsed.TotalSeconds - pending.StartSeconds) * 1000, response);
    }

    /// <summary>The error kind of an exception a step let through: short, so the reports can count them by kind.</summary>
    public static string ErrorKind(Exception e) => e switch
    {
        TaskCanceledException or TimeoutException => "timeout",
        HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } => "connection refused",
        HttpRequestException { StatusCode: { } status } => $"http {(int)status}",
        HttpRequestException => "http error",
        _ => e.GetType().Name,
    };

    /// <summary>Waits; false when cancelled.</summary>
    private static async Task<bool> Delay(TimeSpan wait, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
