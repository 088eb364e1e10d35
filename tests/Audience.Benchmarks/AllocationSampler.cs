using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Audience.Benchmarks;

/// <summary>
/// Where the allocations go, by type: the runtime reports a sample roughly every 100 KB allocated (its allocation
/// tick), and this counts the bytes of each sample's type. Coarse, but enough to name the few types that dominate.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private readonly ConcurrentDictionary<string, long> _bytes = new();

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(source, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.PayloadNames is null)
        {
            return;
        }

        var type = e.PayloadNames.IndexOf("TypeName") is var t and >= 0 ? e.Payload![t] as string ?? "?" : "?";
        var amount = e.PayloadNames.IndexOf("AllocationAmount64") is var a and >= 0 ? Convert.ToInt64(e.Payload![a], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        _bytes.AddOrUpdate(type, amount, (_, total) => total + amount);
    }

    public void Print(long events, int top = 20)
    {
        var total = _bytes.Values.Sum();
        Console.WriteLine($"allocation samples by type (about {total / Math.Max(1, events):N0} bytes per event in all):");
        foreach (var (type, bytes) in _bytes.OrderByDescending(p => p.Value).Take(top))
        {
            Console.WriteLine($"  {bytes * 100.0 / total,5:F1}%  {bytes / Math.Max(1, events),6:N0} B/event  {type}");
        }
    }
}
