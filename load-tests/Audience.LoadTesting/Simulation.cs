using System.Globalization;

namespace Audience.LoadTesting;

/// <summary>
/// One stretch of load, as NBomber has them. Open model (<see cref="Inject"/>, <see cref="RampingInject"/>):
/// operations start at their intended times whatever the previous ones are doing, evenly spread, and their latency
/// counts from that intended time, so a stalled target cannot hide its stall by slowing the client (no coordinated
/// omission). Closed model (<see cref="KeepConstant"/>, <see cref="RampingConstant"/>): that many workers ("copies"),
/// each starting its next operation when the last one ends.
/// </summary>
public sealed record Simulation
{
    private Simulation(bool isClosed, double? from, double to, TimeSpan during)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(during, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(to);
        if (from is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(from), "A ramp cannot start below 0.");
        }

        IsClosed = isClosed;
        From = from;
        To = to;
        During = during;
    }

    /// <summary>Closed model (copies) rather than open (a rate).</summary>
    public bool IsClosed { get; }

    /// <summary>Where a ramp starts (per second, or copies); null: where the simulation before ended, or 0. Equal to <see cref="To"/> when constant.</summary>
    public double? From { get; }

    /// <summary>The rate per second, or the copies, at the end of this simulation.</summary>
    public double To { get; }

    public TimeSpan During { get; }

    /// <summary>Open model: <paramref name="rate"/> operations per <paramref name="interval"/>, for <paramref name="during"/>.</summary>
    public static Simulation Inject(double rate, TimeSpan interval, TimeSpan during)
    {
        var perSecond = PerSecond(rate, interval);
        return new Simulation(isClosed: false, perSecond, perSecond, during);
    }

    /// <summary>
    /// Open model: a rate changing linearly to <paramref name="rate"/> per <paramref name="interval"/> over
    /// <paramref name="during"/>, from <paramref name="from"/> (same unit) or else from where the simulation before ended (0 if none).
    /// </summary>
    public static Simulation RampingInject(double rate, TimeSpan interval, TimeSpan during, double? from = null) =>
        new(isClosed: false, from is { } start ? PerSecond(start, interval) : null, PerSecond(rate, interval), during);

    /// <summary>Closed model: <paramref name="copies"/> workers for <paramref name="during"/>.</summary>
    public static Simulation KeepConstant(int copies, TimeSpan during) => new(isClosed: true, copies, copies, during);

    /// <summary>Closed model: workers added or stopped linearly to <paramref name="copies"/> over <paramref name="during"/>, from <paramref name="from"/> or where the simulation before ended.</summary>
    public static Simulation RampingConstant(int copies, TimeSpan during, int? from = null) => new(isClosed: true, from, copies, during);

    private static double PerSecond(double rate, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rate);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        return rate / interval.TotalSeconds;
    }
}

/// <summary>
/// A scenario's simulations laid end to end: when the i-th operation is meant to start (open model), and how many
/// workers should run at a time (closed model).
/// </summary>
internal sealed class LoadPlan
{
    private readonly Stretch[] _stretches;

    private readonly record struct Stretch(double Start, double Length, double From, double To, double OperationsBefore)
    {
        public double Operations => (From + To) / 2 * Length;
    }

    public LoadPlan(IReadOnlyList<Simulation> simulations)
    {
        _stretches = new Stretch[simulations.Count];
        double start = 0, operations = 0, previous = 0;
        for (var k = 0; k < simulations.Count; k++)
        {
            var s = simulations[k];
            var stretch = new Stretch(start, s.During.TotalSeconds, s.From ?? previous, s.To, operations);
            _stretches[k] = stretch;
            start += stretch.Length;
            operations += stretch.Operations;
            previous = s.To;
        }

        IsClosed = simulations.Count > 0 && simulations[0].IsClosed;
        TotalSeconds = start;
        MaxCopies = IsClosed ? (int)Math.Ceiling(_stretches.Max(s => Math.Max(s.From, s.To))) : 0;
    }

    public bool IsClosed { get; }

    public double TotalSeconds { get; }

    public int MaxCopies { get; }

    /// <summary>Whether the closed model's worker count changes within a stretch (so it is checked often).</summary>
    public bool Ramps => _stretches.Any(s => s.From != s.To);

    /// <summary>Open model: when the i-th operation (from 0) is meant to start, in seconds from the start; infinity past the end.</summary>
    public double IntendedSeconds(long i)
    {
        foreach (var s in _stretches)
        {
            var j = i - s.OperationsBefore;
            if (j < 0 || j >= s.Operations)
            {
                continue;
            }

            if (s.From == s.To)
            {
                return s.Start + (j / s.From);
            }

            // j operations by time t into the stretch: From*t + (To - From) * t^2 / (2 * Length); solve for t.
            var a = (s.To - s.From) / (2 * s.Length);
            var discriminant = Math.Max(0, (s.From * s.From) + (4 * a * j));
            return s.Start + ((-s.From + Math.Sqrt(discriminant)) / (2 * a));
        }

        return double.PositiveInfinity;
    }

    /// <summary>Closed model: how many workers should be running at <paramref name="seconds"/> from the start.</summary>
    public int CopiesAt(double seconds)
    {
        foreach (var s in _stretches)
        {
            if (seconds >= s.Start && seconds < s.Start + s.Length)
            {
                return (int)Math.Round(s.From + ((s.To - s.From) * (seconds - s.Start) / s.Length));
            }
        }

        return 0;
    }

    public string Describe()
    {
        var parts = _stretches.Select(s => Describe(s) + (_stretches.Length > 1 ? string.Create(CultureInfo.InvariantCulture, $" for {s.Length:0.##} s") : ""));
        return (IsClosed ? "closed model, " : "open model, ") + string.Join(", then ", parts);
    }

    private string Describe(Stretch s) => IsClosed
        ? s.From == s.To ? $"{N(s.To)} concurrent workers" : $"ramp from {N(s.From)} to {N(s.To)} concurrent workers"
        : s.From == s.To ? $"constant {N(s.To)}/s" : $"ramp from {N(s.From)}/s to {N(s.To)}/s";

    private static string N(double value) => value.ToString(value >= 10 || value == Math.Floor(value) ? "N0" : "0.##", CultureInfo.InvariantCulture);
}
