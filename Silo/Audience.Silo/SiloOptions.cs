using System.ComponentModel.DataAnnotations;

namespace Audience.Silo;

/// <summary>Configuration of the Silo (section <c>Silo</c>, plus the top-level <c>DataDirectory</c>).</summary>
public sealed record SiloOptions
{
    /// <summary>Where the embedded database lives (configuration key <c>DataDirectory</c>).</summary>
    [Required]
    public string DataDirectory { get; init; } = "./data";

    /// <summary>Partitions of the embedded log; each is read in order by one reader.</summary>
    [Range(1, 256)]
    public int Partitions { get; init; } = 4;

    /// <summary>A user grain not called for this long is deactivated (its state is already written).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Events a partition reader takes per step, at most.</summary>
    [Range(1, 100_000)]
    public int ReadBatchSize { get; init; } = 1_000;

    /// <summary>How long events are kept in the log: at least the longest window, so new aggregates can be filled.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan EventRetention { get; init; } = TimeSpan.FromDays(91);
}
