using System.ComponentModel.DataAnnotations;

namespace Audience.Silo;

/// <summary>Configuration of the embedded Silo (section <c>Silo</c>, plus the top-level <c>DataDirectory</c>).</summary>
public sealed record SiloOptions
{
    /// <summary>Where the embedded database lives (configuration key <c>DataDirectory</c>).</summary>
    [Required]
    public string DataDirectory { get; init; } = "./data";

    /// <summary>Partitions of the in-process log; each is processed in order by one worker.</summary>
    [Range(1, 256)]
    public int Partitions { get; init; } = 4;

    /// <summary>Longest time a changed profile waits before it is written to the store.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Changed profiles that trigger a write before the interval is over.</summary>
    [Range(1, 100_000)]
    public int FlushBatchSize { get; init; } = 2_000;

    /// <summary>An actor not used for this long is deactivated (its state is already written).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Most active actors per partition; the least recently used are deactivated beyond it.</summary>
    [Range(10, 10_000_000)]
    public int MaxActiveActorsPerPartition { get; init; } = 100_000;

    /// <summary>Events read from the log per step of a partition worker.</summary>
    [Range(1, 100_000)]
    public int ReadBatchSize { get; init; } = 1_000;

    /// <summary>How long events are kept in the log: at least the longest window, so new aggregates can be filled.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan EventRetention { get; init; } = TimeSpan.FromDays(91);
}
