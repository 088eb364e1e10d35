using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Polly.CircuitBreaker;

namespace Audience.Silo.Tests;

/// <summary>
/// The retry and circuit-breaker pipelines that replaced the hand-written retry loops, on a fake clock: how long they
/// wait, when they give up, when the store's breaker opens and lets a call through, and that each is counted.
/// </summary>
public sealed class ResilienceTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly AudienceMetrics _metrics = new();

    public void Dispose() => _metrics.Dispose();

    [Fact]
    public async Task Retry_StoreKeepsFailing_WaitsLongerEachTimeUpToTheMaximum()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance) { Randomizer = () => 0.5 };
        var delays = new ConcurrentQueue<TimeSpan>();
        var pipeline = resilience.Retry(Name(), Resilience.Reader, Resilience.IsStoreFailure, args =>
        {
            delays.Enqueue(args.RetryDelay);
            return ValueTask.CompletedTask;
        });
        using var stop = new CancellationTokenSource();

        var run = pipeline.ExecuteAsync(static _ => throw new StoreUnavailableException("away", new IOException()), stop.Token).AsTask();
        await AdvanceUntil(() => delays.Count >= 12);
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        var waits = delays.Take(12).ToList();
        Assert.InRange(waits[0], TimeSpan.FromMilliseconds(50), Resilience.Reader.First * 2);
        var capped = waits.IndexOf(Resilience.Reader.Max);
        Assert.InRange(capped, 3, 10);
        for (var i = 1; i < capped; i++)
        {
            Assert.True(waits[i] > waits[i - 1], $"wait {i} ({waits[i]}) is longer than wait {i - 1} ({waits[i - 1]})");
        }

        Assert.All(waits.Skip(capped), w => Assert.Equal(Resilience.Reader.Max, w));
    }

    [Fact]
    public async Task Retry_WithJitter_SpreadsTheWaitsOfTwoCallersWithinTheMaximum()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        var first = new ConcurrentQueue<TimeSpan>();
        var second = new ConcurrentQueue<TimeSpan>();
        using var stop = new CancellationTokenSource();

        var runs = new[] { first, second }.Select(delays => resilience.Retry(Name(), Resilience.Reader, Resilience.IsStoreFailure, args =>
        {
            delays.Enqueue(args.RetryDelay);
            return ValueTask.CompletedTask;
        }).ExecuteAsync(static _ => throw new TimeoutException(), stop.Token).AsTask()).ToList();
        await AdvanceUntil(() => first.Count >= 6 && second.Count >= 6);
        await stop.CancelAsync();

        foreach (var run in runs)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        }

        Assert.All(first.Concat(second), w => Assert.InRange(w, TimeSpan.Zero, Resilience.Reader.Max));
        Assert.NotEqual(first.Take(6), second.Take(6));
    }

    [Fact]
    public async Task Retry_BoundedPipeline_GivesUpAfterItsRetries()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        var tries = 0;

        var run = Resilience.RunAsync(resilience.CampaignBroadcasts, "a page", (_, _) =>
        {
            Interlocked.Increment(ref tries);
            throw new CallsFailedException(1, new TimeoutException());
        }, 0, CancellationToken.None);
        await AdvanceUntil(() => run.IsCompleted);

        await Assert.ThrowsAsync<CallsFailedException>(() => run);
        Assert.Equal(1 + Resilience.Broadcast.MaxRetries, tries);
    }

    [Fact]
    public async Task Retry_OnlyWhatItsPredicateNames_AndNeverACancellation()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        var pipeline = resilience.Retry(Name(), Resilience.Reader, Resilience.IsStoreFailure);
        var tries = 0;

        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline.ExecuteAsync(_ =>
        {
            tries++;
            throw new InvalidOperationException("a bug, not an outage");
        }).AsTask());
        Assert.Equal(1, tries);

        using var stop = new CancellationTokenSource();
        var stopped = pipeline.ExecuteAsync(async cancellationToken =>
        {
            Interlocked.Increment(ref tries);
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }, stop.Token).AsTask();
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stopped);
        Assert.Equal(2, tries);
    }

    [Fact]
    public async Task StoreCircuit_StoreKeepsFailing_OpensThenLetsOneCallThroughAfterItsBreak()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        await OpenStoreCircuit(resilience);

        // Open: a call fails at once, without reaching the store.
        var reached = 0;
        await Assert.ThrowsAsync<BrokenCircuitException>(() => resilience.StoreCircuit.ExecuteAsync(_ =>
        {
            reached++;
            return ValueTask.CompletedTask;
        }).AsTask());
        Assert.Equal(0, reached);

        // After the break, one call probes the store; another one meanwhile is refused.
        _time.Advance(Resilience.StoreBreakDuration);
        var probing = new TaskCompletionSource();
        var probe = resilience.StoreCircuit.ExecuteAsync(async _ =>
        {
            reached++;
            await probing.Task;
        }).AsTask();
        await Assert.ThrowsAsync<BrokenCircuitException>(() => resilience.StoreCircuit.ExecuteAsync(_ => ValueTask.CompletedTask).AsTask());
        probing.SetResult();
        await probe;

        // The probe succeeded: closed again.
        await resilience.StoreCircuit.ExecuteAsync(_ =>
        {
            reached++;
            return ValueTask.CompletedTask;
        });
        Assert.Equal(2, reached);
    }

    [Fact]
    public async Task Retry_ThroughAnOpenCircuit_WaitsUntilItLetsACallThrough()
    {
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        await OpenStoreCircuit(resilience);
        var delays = new ConcurrentQueue<TimeSpan>();
        var pipeline = resilience.Retry(Name(), Resilience.Reader, Resilience.IsStoreFailure, args =>
        {
            delays.Enqueue(args.RetryDelay);
            return ValueTask.CompletedTask;
        }, resilience.StoreCircuit);
        var calls = 0;

        var run = pipeline.ExecuteAsync(_ =>
        {
            Interlocked.Increment(ref calls);
            return ValueTask.FromResult(42);
        }).AsTask();
        await AdvanceUntil(() => run.IsCompleted, step: TimeSpan.FromMilliseconds(100));

        Assert.Equal(42, await run);
        Assert.Equal(1, calls);
        Assert.Equal(Resilience.StoreBreakDuration, Assert.Single(delays));
    }

    [Fact]
    public async Task Metrics_CountEachRetryOfAPipelineAndTheCircuitState()
    {
        var name = Name();
        var retries = new ConcurrentQueue<long>();
        var circuits = new ConcurrentQueue<int>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == AudienceMetrics.MeterName && instrument.Name is "audience_retries" or "audience_circuit_state")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            if (Tag(tags, "pipeline") == name)
            {
                retries.Enqueue(value);
            }
        });
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            if (Tag(tags, "pipeline") == Resilience.ProfileStore)
            {
                circuits.Enqueue(value);
            }
        });
        listener.Start();
        var resilience = new Resilience(_metrics, _time, NullLogger<Resilience>.Instance);
        var pipeline = resilience.Retry(name, Resilience.Reader, Resilience.IsStoreFailure);
        var tries = 0;

        var run = pipeline.ExecuteAsync(_ => ++tries <= 3 ? throw new TimeoutException() : ValueTask.CompletedTask).AsTask();
        await AdvanceUntil(() => run.IsCompleted);
        await run;
        await OpenStoreCircuit(resilience);
        listener.RecordObservableInstruments();

        Assert.Equal(3, retries.Sum());
        Assert.Contains(0, retries); // the series is there from the pipeline's start
        Assert.Contains((int)CircuitState.Open, circuits);
    }

    /// <summary>Fails store calls until the breaker opens.</summary>
    private static async Task OpenStoreCircuit(Resilience resilience)
    {
        for (var i = 0; i < Resilience.StoreMinimumThroughput; i++)
        {
            await Assert.ThrowsAsync<StoreUnavailableException>(() => resilience.StoreCircuit.ExecuteAsync(
                static _ => throw new StoreUnavailableException("away", new IOException())).AsTask());
        }
    }

    /// <summary>Moves the fake clock on until <paramref name="done"/>, for waits that start on other threads; bounded by the real clock.</summary>
    private async Task AdvanceUntil(Func<bool> done, TimeSpan? step = null)
    {
        var started = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "the pipeline did not get there within 30 s");
            _time.Advance(step ?? Resilience.Reader.Max);
            await Task.Yield();
        }
    }

    private static string Name() => "test-" + Guid.NewGuid().ToString("N");

    private static string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == key)
            {
                return tag.Value as string;
            }
        }

        return null;
    }
}
