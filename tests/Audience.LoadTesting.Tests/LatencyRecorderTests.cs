namespace Audience.LoadTesting.Tests;

public sealed class LatencyRecorderTests
{
    /// <summary>3 significant digits: a reported value is within 0.1% of the exact one (plus the microsecond unit).</summary>
    private static void Near(double expected, double actual) =>
        Assert.InRange(actual, expected - (expected * 0.001) - 0.001, expected + (expected * 0.001) + 0.001);

    private static void Record(LatencyRecorder recorder, double startSeconds, double latencyMs, Response? response = null) =>
        recorder.End(recorder.Begin(startSeconds), latencyMs, response ?? Response.Ok());

    [Fact]
    public void Result_UniformLatencies_PercentilesWithinHistogramPrecision()
    {
        var recorder = new LatencyRecorder(warmupSeconds: 0);
        for (var micros = 1; micros <= 100_000; micros++)
        {
            Record(recorder, 0.5, micros / 1000.0);
        }

        recorder.Complete();
        var latency = recorder.Result().Latency;

        Near(50, latency.P50);
        Near(90, latency.P90);
        Near(99, latency.P99);
        Near(99.9, latency.P999);
        Assert.Equal(100, latency.Max);
    }

    [Fact]
    public void Result_ExponentialLatencies_PercentilesMatchSortedSamples()
    {
        var random = new Random(42);
        var samples = new double[200_000];
        var recorder = new LatencyRecorder(warmupSeconds: 0);
        for (var i = 0; i < samples.Length; i++)
        {
            // Mean 5 ms, whole microseconds (the histogram's unit), spread over 20 seconds of starts.
            samples[i] = Math.Round(-5 * Math.Log(1 - random.NextDouble()) * 1000) / 1000;
            Record(recorder, i / 10_000.0, samples[i]);
        }

        recorder.Complete();
        var latency = recorder.Result().Latency;
        Array.Sort(samples);
        double At(double q) => samples[(int)Math.Ceiling(q * samples.Length) - 1];

        Near(At(0.50), latency.P50);
        Near(At(0.90), latency.P90);
        Near(At(0.99), latency.P99);
        Near(At(0.999), latency.P999);
        Assert.Equal(samples[^1], latency.Max, precision: 9);
    }

    [Fact]
    public void Result_OperationsInSeveralSeconds_OneLinePerSecondAndMergedTotal()
    {
        var recorder = new LatencyRecorder(warmupSeconds: 0);
        for (var second = 0; second < 3; second++)
        {
            for (var i = 0; i < 100; i++)
            {
                Record(recorder, second + (i / 100.0), (second + 1) * 10, Response.Ok(events: 2));
            }
        }

        recorder.Complete();
        var result = recorder.Result();

        Assert.Equal([0, 1, 2], result.Seconds.Select(s => s.At));
        Assert.Equal([10.0, 20.0, 30.0], result.Seconds.Select(s => Math.Round(s.P50)));
        Assert.All(result.Seconds, s => Assert.Equal((100, 200), (s.Ok, s.Events)));
        Assert.Equal((300, 300, 600), (result.Operations, result.Succeeded, result.Events));
        Near(20, result.Latency.P50);
        Assert.Equal(30, result.Latency.Max);
    }

    [Fact]
    public void Result_WarmUpAndErrors_WarmUpLeftOutErrorsCountedByKindNotInLatency()
    {
        var recorder = new LatencyRecorder(warmupSeconds: 1.5);
        Record(recorder, 0.2, 500);
        Record(recorder, 1.4, 500, Response.Fail("http 503"));
        Record(recorder, 1.6, 4);
        Record(recorder, 1.7, 900, Response.Fail("http 503"));
        Record(recorder, 2.7, 6, Response.Fail("timeout"));

        recorder.Complete();
        var result = recorder.Result();

        Assert.Equal((3L, 1L), (result.Operations, result.Succeeded));
        Assert.Equal([("http 503", 1L), ("timeout", 1L)], result.Errors.Select(e => (e.Key, e.Value)));
        Assert.Equal(4, result.Latency.Max);
        Assert.Equal([(0, 1L, 1L), (1, 0L, 1L)], result.Seconds.Select(s => (s.At, s.Ok, s.Errors)));
    }

    [Fact]
    public void Begin_LongRunOfShortOperations_HoldsAHistogramOnlyForSecondsInFlight()
    {
        var recorder = new LatencyRecorder(warmupSeconds: 0);
        var slow = recorder.Begin(3.0);
        var mostOpen = 0;
        for (var op = 0; op < 100_000; op++)
        {
            Record(recorder, 3.0 + (op / 100.0), 1);
            mostOpen = Math.Max(mostOpen, recorder.OpenIntervals);
        }

        // Second 3 stays open while its slow operation runs; every other second is sealed once the schedule passes it.
        Assert.Equal(2, mostOpen);
        recorder.End(slow, 5_000, Response.Ok());
        Assert.Equal(1, recorder.OpenIntervals);
        recorder.Complete();
        var result = recorder.Result();

        Assert.Equal(0, recorder.OpenIntervals);
        Assert.Equal(1000, result.Seconds.Count);
        Assert.Equal(Enumerable.Range(3, 1000), result.Seconds.Select(s => s.At));
        Assert.Equal(5_000, result.Seconds[0].Max);
    }

    [Fact]
    public void End_LatencyBeyondAnHour_CountsAsAnHour()
    {
        var recorder = new LatencyRecorder(warmupSeconds: 0);
        Record(recorder, 0, TimeSpan.FromHours(3).TotalMilliseconds);
        recorder.Complete();

        Near(TimeSpan.FromHours(1).TotalMilliseconds, recorder.Result().Latency.P99);
    }
}
