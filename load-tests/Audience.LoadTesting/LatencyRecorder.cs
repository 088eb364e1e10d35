using System.Diagnostics;
using HdrHistogram;

namespace Audience.LoadTesting;

/// <summary>
/// A scenario's measurements in memory that does not grow with the number of operations: latencies go into an
/// HdrHistogram per second (microseconds, up to an hour, 3 significant digits: within 0.1%), keyed by the second
/// of the measured window in which each operation was meant to start. A second is sealed once the schedule has
/// moved past it and none of its operations is still running: it is summarised (<see cref="Second"/>), merged
/// into the scenario's total histogram, and its histogram reused. So at any time only the seconds with operations
/// in flight hold a histogram (about 190 KB each); a run of an hour at any rate keeps a handful of them and one
/// summary line per second.
/// </summary>
internal sealed class LatencyRecorder
{
    /// <summary>The longest latency told apart (an hour, in microseconds); longer ones count as an hour.</summary>
    public const long HighestMicroseconds = 3_600_000_000;

    public const int SignificantDigits = 3;

    /// <summary>Error kinds counted apart at most; more go under "other errors" (a step may put ids in its errors).</summary>
    private const int MaxErrorKinds = 100;

    private readonly Lock _gate = new();
    private readonly double _warmup;
    private readonly Dictionary<int, Interval> _open = [];
    private readonly Stack<LongHistogram> _spare = new();
    private readonly List<Second> _seconds = [];
    private readonly Dictionary<string, long> _errors = new(StringComparer.Ordinal);
    private readonly LongHistogram _total = NewHistogram();
    private int _frontier = int.MinValue;
    private long _operations;
    private long _succeeded;
    private long _events;
    private long _maxMicroseconds;
    private Second? _latest;
    private long _inFlight;
    private long _allOk;
    private long _allFailed;

    public LatencyRecorder(double warmupSeconds) => _warmup = warmupSeconds;

    /// <summary>An operation under way: the second it belongs to and when it was meant to start.</summary>
    public readonly record struct Pending(Interval Interval, double StartSeconds);

    /// <summary>One second of the run while operations of it may still be running.</summary>
    public sealed class Interval(int key, LongHistogram histogram)
    {
        public int Key { get; } = key;

        public LongHistogram Histogram { get; } = histogram;

        public long Pending { get; set; }

        public long Ok { get; set; }

        public long Errors { get; set; }

        public long Events { get; set; }

        public long MaxMicroseconds { get; set; }
    }

    /// <summary>Operations running now, warm-up included.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Operations that succeeded so far, warm-up included.</summary>
    public long Succeeded => Interlocked.Read(ref _allOk);

    /// <summary>Operations that failed so far, warm-up included.</summary>
    public long Failed => Interlocked.Read(ref _allFailed);

    /// <summary>Seconds holding a histogram now (for the memory bound's test).</summary>
    internal int OpenIntervals
    {
        get
        {
            lock (_gate)
            {
                return _open.Count;
            }
        }
    }

    /// <summary>The last second sealed (warm-up included: negative <see cref="Second.At"/>), for the live view.</summary>
    public Second? Latest
    {
        get
        {
            lock (_gate)
            {
                return _latest;
            }
        }
    }

    public static LongHistogram NewHistogram() => new(1, HighestMicroseconds, SignificantDigits);

    /// <summary>
    /// An operation meant to start at <paramref name="startSeconds"/> from the run's start begins. Starts must come in
    /// the order of their start times (the open model's schedule is), so that earlier seconds can be sealed.
    /// </summary>
    public Pending Begin(double startSeconds)
    {
        lock (_gate)
        {
            return BeginLocked(startSeconds);
        }
    }

    /// <summary>An operation begins now by <paramref name="clock"/> (closed model): read under the lock so starts stay in order.</summary>
    public Pending BeginNow(Stopwatch clock)
    {
        lock (_gate)
        {
            return BeginLocked(clock.Elapsed.TotalSeconds);
        }
    }

    private Pending BeginLocked(double startSeconds)
    {
        var key = (int)Math.Floor(startSeconds - _warmup);
        if (key > _frontier)
        {
            _frontier = key;
            SealIdleBefore(key);
        }

        if (!_open.TryGetValue(key, out var interval))
        {
            interval = new Interval(key, _spare.Count > 0 ? _spare.Pop() : NewHistogram());
            _open.Add(key, interval);
        }

        interval.Pending++;
        Interlocked.Increment(ref _inFlight);
        return new Pending(interval, startSeconds);
    }

    /// <summary>The operation ended after <paramref name="latencyMilliseconds"/> (counted from its start) with <paramref name="response"/>.</summary>
    public void End(Pending pending, double latencyMilliseconds, Response response)
    {
        Interlocked.Decrement(ref _inFlight);
        if (response.IsError)
        {
            Interlocked.Increment(ref _allFailed);
        }
        else
        {
            Interlocked.Increment(ref _allOk);
        }

        var micros = (long)Math.Clamp(Math.Round(latencyMilliseconds * 1000), 0, HighestMicroseconds);
        var interval = pending.Interval;
        lock (_gate)
        {
            if (response.IsError)
            {
                interval.Errors++;
                if (interval.Key >= 0)
                {
                    var kind = _errors.Count < MaxErrorKinds || _errors.ContainsKey(response.Error!) ? response.Error! : "other errors";
                    _errors[kind] = _errors.GetValueOrDefault(kind) + 1;
                }
            }
            else
            {
                interval.Ok++;
                interval.Events += response.Events;
                interval.Histogram.RecordValue(micros);
                interval.MaxMicroseconds = Math.Max(interval.MaxMicroseconds, micros);
            }

            if (--interval.Pending == 0 && interval.Key < _frontier)
            {
                Seal(interval);
            }
        }
    }

    /// <summary>The run is over and every operation has ended: seals what is left.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _frontier = int.MaxValue;
            foreach (var interval in _open.Values.OrderBy(i => i.Key).ToList())
            {
                Seal(interval);
            }
        }
    }

    private void SealIdleBefore(int key)
    {
        List<Interval>? idle = null;
        foreach (var interval in _open.Values)
        {
            if (interval.Key < key && interval.Pending == 0)
            {
                (idle ??= []).Add(interval);
            }
        }

        foreach (var interval in idle ?? [])
        {
            Seal(interval);
        }
    }

    private void Seal(Interval interval)
    {
        _open.Remove(interval.Key);
        var second = new Second(interval.Key, interval.Ok, interval.Errors, interval.Events,
            Milliseconds(interval.Histogram, 50), Milliseconds(interval.Histogram, 99), interval.MaxMicroseconds / 1000.0);
        if (interval.Key >= 0)
        {
            _seconds.Add(second);
            _total.Add(interval.Histogram);
            _operations += interval.Ok + interval.Errors;
            _succeeded += interval.Ok;
            _events += interval.Events;
            _maxMicroseconds = Math.Max(_maxMicroseconds, interval.MaxMicroseconds);
        }

        if (_latest is null || second.At >= _latest.At)
        {
            _latest = second;
        }

        interval.Histogram.Reset();
        _spare.Push(interval.Histogram);
    }

    /// <summary>What was measured (after <see cref="Complete"/>): counts, latency from the merged histogram, seconds in order.</summary>
    public Measured Result()
    {
        lock (_gate)
        {
            return new Measured(_operations, _succeeded, _events,
                Latency.From(_total, _maxMicroseconds / 1000.0),
                _errors.OrderByDescending(e => e.Value).ThenBy(e => e.Key, StringComparer.Ordinal).ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal),
                [.. _seconds.OrderBy(s => s.At)]);
        }
    }

    internal static double Milliseconds(HistogramBase histogram, double percentile) =>
        histogram.TotalCount == 0 ? 0 : histogram.GetValueAtPercentile(percentile) / 1000.0;

    public sealed record Measured(long Operations, long Succeeded, long Events, Latency Latency, IReadOnlyDictionary<string, long> Errors, IReadOnlyList<Second> Seconds);
}
