namespace Audience.LoadTests;

/// <summary>
/// When the i-th operation is meant to start, in seconds from the run's start, for the open models (as NBomber
/// has them): a constant rate, or a rate that ramps linearly from one value to another over the whole run
/// (warm-up included). Latency in an open model is measured from this intended time, not from the moment the
/// request actually left, so a stalled server cannot hide its stall by slowing the client (no coordinated omission).
/// </summary>
internal sealed class LoadModel(double rate, double? rampTo, double totalSeconds)
{
    public double IntendedSeconds(long i)
    {
        if (rampTo is not { } end || end == rate)
        {
            return i / rate;
        }

        // i operations by time t: rate*t + (end - rate) * t^2 / (2T); solve the quadratic for t.
        var a = (end - rate) / (2 * totalSeconds);
        var discriminant = (rate * rate) + (4 * a * i);
        return discriminant < 0 ? double.PositiveInfinity : (-rate + Math.Sqrt(discriminant)) / (2 * a);
    }

    public string Describe() => rampTo is { } end && end != rate
        ? $"open model, ramp from {rate:N0}/s to {end:N0}/s"
        : $"open model, constant {rate:N0}/s";
}
