using Audience.Rules.Profiles;

namespace Audience.Silo.Processing;

/// <summary>
/// One user's activation: the profile and what the Silo needs to keep it exact. Only its partition worker
/// touches it, so it needs no locks.
/// </summary>
internal sealed class Actor(UserProfile profile, long lastSeq, HashSet<AggregateSpec> knownAggregates, RecentEventIds recentEvents)
{
    public UserProfile Profile { get; } = profile;

    public string UserId => Profile.UserId;

    /// <summary>The log sequence number of the last event applied: a replayed event at or below it is skipped.</summary>
    public long LastSeq { get; set; } = lastSeq;

    /// <summary>The aggregates whose state is complete for this user (filled from history if they came later).</summary>
    public HashSet<AggregateSpec> KnownAggregates { get; } = knownAggregates;

    /// <summary>The catalog's aggregate version when <see cref="KnownAggregates"/> was last completed.</summary>
    public int AggregateVersion { get; set; } = -1;

    /// <summary>The user's last event ids, so a resent event has effect once.</summary>
    public RecentEventIds RecentEvents { get; } = recentEvents;

    public long? NextTimer { get; set; }

    /// <summary>The version of the profile in the store (0 before its first save), for optimistic concurrency.</summary>
    public long Version { get; set; }

    public long LastUsed { get; set; }

    public bool Dirty { get; set; }
}
