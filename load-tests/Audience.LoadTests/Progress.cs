using System.Globalization;

namespace Audience.LoadTests;

/// <summary>The live view: once a second, on stderr, where the run stands and the latency of the last second.</summary>
internal sealed class Progress : IDisposable
{
    private readonly Runner _runner;
    private readonly LoadOptions _options;
    private readonly Timer _timer;
    private readonly bool _overwrite = !Console.IsErrorRedirected;
    private long _lastOk;

    public Progress(Runner runner, LoadOptions options)
    {
        _runner = runner;
        _options = options;
        _timer = new Timer(_ => Show(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private void Show()
    {
        var elapsed = _runner.Clock.Elapsed.TotalSeconds;
        var ok = _runner.Succeeded;
        var recent = _runner.Samples().Where(s => s.Error is null && s.IntendedSeconds >= elapsed - 2 && s.IntendedSeconds < elapsed - 1)
            .Select(s => s.LatencyMs).Order().ToArray();
        var phase = elapsed < _options.Warmup.TotalSeconds ? "warm-up " : "measuring";
        var line = string.Create(CultureInfo.InvariantCulture,
            $"[{elapsed,5:F0}s/{_runner.TotalSeconds:F0}s] {phase} ok {ok,10:N0} errors {_runner.Failed,7:N0} ops/s {ok - _lastOk,8:N0} in flight {_runner.InFlight,6:N0} p50 {Latency.Of(recent).P50,7:F1} ms p99 {Latency.Of(recent).P99,8:F1} ms");
        _lastOk = ok;
        Console.Error.Write(_overwrite ? "\r" + line : line + Environment.NewLine);
    }

    public void Dispose()
    {
        _timer.Dispose();
        if (_overwrite)
        {
            Console.Error.WriteLine();
        }
    }
}
