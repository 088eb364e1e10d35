using System.Globalization;

namespace Audience.LoadTesting;

/// <summary>The live view: once a second, on stderr, where each scenario stands and the latency of its last finished second.</summary>
internal sealed class Progress : IDisposable
{
    private readonly ScenarioRun[] _runs;
    private readonly long[] _lastOk;
    private readonly Timer _timer;
    private readonly bool _overwrite;

    public Progress(ScenarioRun[] runs)
    {
        _runs = runs;
        _lastOk = new long[runs.Length];
        _overwrite = !Console.IsErrorRedirected && runs.Length == 1;
        _timer = new Timer(_ => Show(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private void Show()
    {
        for (var r = 0; r < _runs.Length; r++)
        {
            var run = _runs[r];
            var recorder = run.Recorder;
            var elapsed = run.Clock.Elapsed.TotalSeconds;
            var ok = recorder.Succeeded;
            var last = recorder.Latest;
            var phase = elapsed < run.Scenario.WarmUp.TotalSeconds ? "warm-up " : "measuring";
            var name = _runs.Length > 1 ? run.Scenario.Name + " " : "";
            var line = string.Create(CultureInfo.InvariantCulture,
                $"{name}[{elapsed,5:F0}s/{run.Plan.TotalSeconds:F0}s] {phase} ok {ok,10:N0} errors {recorder.Failed,7:N0} ops/s {ok - _lastOk[r],8:N0} in flight {recorder.InFlight,6:N0} p50 {last?.P50 ?? 0,7:F1} ms p99 {last?.P99 ?? 0,8:F1} ms");
            _lastOk[r] = ok;
            Console.Error.Write(_overwrite ? "\r" + line : line + Environment.NewLine);
        }
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
