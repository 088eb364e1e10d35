namespace Audience.Silo.Storage;

/// <summary>
/// A profile row: its encoded state, the last event applied, its next timer, and its version for optimistic
/// concurrency (0 for a profile the store does not hold yet).
/// </summary>
public sealed record StoredProfile(string UserId, long LastSeq, long? NextTimer, byte[] State, long Version = 0);

/// <summary>One membership change to record: in the history, and in the current memberships.</summary>
public sealed record HistoryRow(string UserId, string SegmentId, bool Entered, string Reason, long At, double LatencyMs, string? EventId);

/// <summary>A membership row as queries return it.</summary>
public sealed record MembershipRow(string SegmentId, string UserId, long Since);

/// <summary>A history row as queries return it.</summary>
public sealed record HistoryEntry(long Id, string SegmentId, string Action, string Reason, long At, double LatencyMs, string? EventId);

/// <summary>
/// Where profiles, current memberships and membership history live. A partition worker opens one and writes
/// behind through <see cref="Save"/>: the changed profiles, their membership changes and the partition's checkpoint
/// in one transaction, so the store always holds the state after some prefix of the partition's events.
/// Every implementation passes the same contract tests (tests/Audience.Api.Tests/ProfileStoreContract.cs).
/// Not thread-safe: one instance per worker or per query.
/// </summary>
public interface IProfileStore : IDisposable
{
    StoredProfile? Load(string userId);

    /// <summary>The stored profiles among <paramref name="userIds"/>, by user id, in one round trip where the store can.</summary>
    Dictionary<string, StoredProfile> LoadMany(IReadOnlyCollection<string> userIds);

    long LoadCheckpoint(int partition);

    /// <summary>
    /// Writes changed profiles, their membership changes and the checkpoint, atomically. Each profile is written
    /// only if the store still holds the version it was loaded at; otherwise nothing is written and
    /// <see cref="ProfileConflictException"/> says that another writer (a new owner of the partition) got there first.
    /// </summary>
    void Save(int partition, IReadOnlyList<(StoredProfile Profile, long UpdatedAt)> profiles, IReadOnlyList<HistoryRow> history, long checkpoint);

    /// <summary>The users of a partition in id order, after <paramref name="afterUserId"/>; for backfills.</summary>
    List<string> Users(int partition, string afterUserId, int limit);

    long CountUsers(int partition);

    /// <summary>Users of a partition whose timer is due by <paramref name="upTo"/>.</summary>
    List<string> DueTimers(int partition, long upTo, int limit);

    List<MembershipRow> Members(string segmentId, string afterUserId, int limit);

    long CountMembers(string segmentId);

    List<HistoryEntry> History(string userId, long afterId, int limit);

    /// <summary>The segment versions whose backfill over this partition's stored profiles has completed.</summary>
    Dictionary<string, long> BackfilledVersions(int partition);

    /// <summary>Records completed backfills, in one transaction; a null version forgets the segment (its deletion was applied).</summary>
    void MarkBackfilled(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills);
}

/// <summary>Opens profile stores of one kind: <c>embedded</c> (SQLite) or <c>postgres</c>.</summary>
public interface IProfileStoreFactory
{
    string Kind { get; }

    IProfileStore Open();
}

/// <summary>A profile changed in the store since it was loaded: this writer no longer owns it.</summary>
public sealed class ProfileConflictException(string message) : Exception(message);
