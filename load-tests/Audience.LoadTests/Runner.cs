using System.Diagnostics;

namespace Audience.LoadTests;

/// <summary>One finished operation: when it was meant to start, how long it took, and how it ended.</summary>
internal readonly record struct Sample(double IntendedSeconds, double LatencyMs, int Events, string? Error);

/// <summary>
/// Runs a scenario under a load model for warm-up plus duration and records every operation. Open model: each
/// operation starts at its intended time whatever the previous ones are doing, and its latency counts from that
/// time. Closed model: <c>--concurrency</c> workers each start the next operation when theirs ends.
/// </summary>
internal sealed class Runner(IScenario scenario, LoadOptions options, double rate)
{
    private readonly List<Sample> _samples = new(1 << 16);
    private readonly Lock _gate = new();
    private long _inFlight;
    private long _started;
    private long _ok;
    private long _failed;

    public double TotalSeconds => (options.Warmup + options.Duration).TotalSeconds;

    public long InFlight => Interlocked.Read(ref _inFlight);

    public long Started => Interlocked.Read(ref _started);

    public long Succeeded => Interlocked.Read(ref _ok);

    public long Failed => Interlocked.Read(ref _failed);

    public Stopwatch Clock { get; } = new();

    public string Model => options.IsClosed
        ? $"closed model, {options.Concurrency} concurrent workers"
        : new LoadModel(rate, options.RampTo, TotalSeconds).Describe();

    /// <summary>Samples so far (a copy; safe while running).</summary>
    public List<Sample> Samples()
    {
        lock (_gate)
        {
            return [.. _samples];
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        Clock.Start();
        if (options.IsClosed)
        {
            long next = -1;
            await Task.WhenAll(Enumerable.Range(0, options.Concurrency!.Value).Select(_ => Task.Run(async () =>
            {
                while (Clock.Elapsed.TotalSeconds < TotalSeconds && !cancellationToken.IsCancellationRequested)
                {
                    await Execute(Interlocked.Increment(ref next), Clock.Elapsed.TotalSeconds, cancellationToken);
                }
            }, cancellationToken)));
            return;
        }

        var model = new LoadModel(rate, options.RampTo, TotalSeconds);
        var running = new List<Task>();
        for (long i = 0; !cancellationToken.IsCancellationRequested; i++)
        {
            var intended = model.IntendedSeconds(i);
            if (intended >= TotalSeconds)
            {
                break;
            }

            var wait = intended - Clock.Elapsed.TotalSeconds;
            if (wait > 0.001)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait), cancellationToken);
            }

            if (Interlocked.Read(ref _inFlight) >= options.MaxInFlight)
            {
                // The target is so far behind that this client would only queue more: count it, do not send it.
                Record(new Sample(intended, 0, 0, "client: too many in flight"));
                continue;
            }

            running.Add(Execute(i, intended, cancellationToken));
            if (running.Count > 4096)
            {
                running.RemoveAll(t => t.IsCompleted);
            }
        }

        await Task.WhenAll(running);
    }

    private async Task Execute(long index, double intended, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _started);
        Outcome outcome;
        try
        {
            outcome = await scenario.ExecuteAsync(index, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = Outcome.Failed("cancelled");
        }
        catch (Exception e)
        {
            outcome = Outcome.Failed(e.GetType().Name);
        }

        Interlocked.Decrement(ref _inFlight);
        Record(new Sample(intended, (Clock.Elapsed.TotalSeconds - intended) * 1000, outcome.Events, outcome.Error));
    }

    private void Record(Sample sample)
    {
        if (sample.Error is null)
        {
            Interlocked.Increment(ref _ok);
        }
        else
        {
            Interlocked.Increment(ref _failed);
        }

        lock (_gate)
        {
            _samples.Add(sample);
        }
    }
}
