using System.Text;
using Audience.Silo.Contracts;
using Audience.Silo.Storage;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Audience.Benchmarks;

/// <summary>
/// The ingestion path per request, without HTTP: reading and validating the body (one event, or a batch of 100, as
/// the load tool sends them) and appending to the embedded log until the commit covers it (a single appender, so each
/// append waits for its own commit: the per-request cost, not the grouped throughput). Allocations per operation are
/// what the issue asks to keep out of the path.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class IngestionBenchmarks
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private byte[] _event = [];
    private byte[] _batch = [];
    private UserEvent _parsed = null!;
    private UserEvent[] _parsedBatch = [];
    private string _directory = "";
    private EventLog _log = null!;
    private int _sequence;

    [GlobalSetup]
    public void Setup()
    {
        _event = Encoding.UTF8.GetBytes(Event(0));
        _batch = Encoding.UTF8.GetBytes("[" + string.Join(",", Enumerable.Range(0, 100).Select(Event)) + "]");
        EventParser.TryRead(_event, Now, out var e, out _);
        _parsed = e!;
        _parsedBatch = [.. EventParser.ReadBatch(_batch, Now, 1_000).Items.Select(i => i.Event!)];
        _directory = Path.Combine(Path.GetTempPath(), "audience-ingestion-bench", Guid.NewGuid().ToString("N"));
        _log = new EventLog(_directory, 4, TimeSpan.FromDays(1), TimeProvider.System, NullLogger<EventLog>.Instance);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _log.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private static string Event(int i) =>
        $$$"""{"userId":"user-{{{i}}}","eventType":"purchase","timestamp":"{{{Now:O}}}","properties":{"amount":129.5,"category":"electronics","items":3},"context":{"page":"/checkout","ip":"10.0.0.{{{i % 250}}}"}}""";

    [Benchmark(Baseline = true)]
    public bool ParseEvent() => EventParser.TryRead(_event, Now, out _, out _);

    [Benchmark(OperationsPerInvoke = 100)]
    public int ParseBatchOf100() => EventParser.ReadBatch(_batch, Now, 1_000).Items.Count;

    [Benchmark]
    public async Task<int> AppendEvent() =>
        (await _log.AppendAsync([_parsed with { EventId = "b" + Interlocked.Increment(ref _sequence) }])).Length;

    [Benchmark(OperationsPerInvoke = 100)]
    public async Task<int> AppendBatchOf100()
    {
        var batch = new UserEvent[_parsedBatch.Length];
        for (var i = 0; i < batch.Length; i++)
        {
            batch[i] = _parsedBatch[i] with { EventId = "b" + Interlocked.Increment(ref _sequence) };
        }

        return (await _log.AppendAsync(batch)).Length;
    }
}
