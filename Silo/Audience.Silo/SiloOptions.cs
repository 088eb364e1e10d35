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

    /// <summary>A user grain not called for this long is deactivated (writing its state if it has not been written).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Events a partition reader takes per step, at most.</summary>
    [Range(1, 100_000)]
    public int ReadBatchSize { get; init; } = 5_000;

    /// <summary>
    /// Under load, how often a partition reader has its users' grains write what they applied and then moves the
    /// partition's checkpoint: the longest a profile's changes wait in memory, and about what a crash makes the
    /// partition read again. An idle partition writes at once.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often a process looks for campaigns changed by another process (an Api replica, in Kafka mode); a change
    /// made through this process's own API takes effect without waiting for it.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan CampaignRefreshInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A partition reader also writes and moves its checkpoint once this many users have unwritten changes.</summary>
    [Range(1, 1_000_000)]
    public int MaxUnwrittenUsers { get; init; } = 20_000;

    /// <summary>How long the profile store archives each user's events: at least the longest window, so new aggregates can be filled.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan EventRetention { get; init; } = TimeSpan.FromDays(91);

    /// <summary>
    /// Embedded: how long the log keeps events (once every reader has passed them) and so how long a repeated event id
    /// is refused as a duplicate; the ids are held in memory (about 40 bytes each). Past it, a user's last 32 event ids,
    /// kept with the profile, still make a resent event count once, as in Kafka mode.
    /// </summary>
    [Range(typeof(TimeSpan), "00:01:00", "7.00:00:00")]
    public TimeSpan DeduplicationWindow { get; init; } = TimeSpan.FromHours(1);
}
