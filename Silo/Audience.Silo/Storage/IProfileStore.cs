namespace Audience.Silo.Storage;

/// <summary>
/// One user as the profile store keeps it, shaped like an Aerospike record: the key (<see cref="UserId"/>), a
/// generation that grows with every write (the ETag of optimistic concurrency; 0 for a record not stored yet),
/// the bins the store indexes (the partition, the last event applied, the next due time) and the encoded profile
/// (<see cref="ProfileCodec"/>). The membership history beyond the open chunk held in <see cref="Data"/>, the
/// per-segment membership index and the archived events live in records of their own, written in the same batch.
/// </summary>
public sealed class ProfileRecord
{
    public string UserId { get; set; } = string.Empty;

    public int Partition { get; set; }

    /// <summary>The sequence number of the last event applied (offset + 1 in Kafka mode): replays at or below it are skipped.</summary>
    public long LastSeq { get; set; }

    /// <summary>When time alone may next change one of the user's memberships (Unix ms), or null.</summary>
    public long? NextDue { get; set; }

    public byte[] Data { get; set; } = [];

    public long Generation { get; set; }

    /// <summary>What the next write of this record carries with it (not part of the record; set by its grain).</summary>
    public ProfileWrite? Pending { get; set; }
}

/// <summary>A user entered (<see cref="Since"/> set) or left a segment: one change to the per-segment membership index.</summary>
public readonly record struct MembershipDelta(string SegmentId, long? Since);

/// <summary>A sealed chunk of a user's membership history: entries <c>Chunk × size + 1</c> onwards, encoded.</summary>
public sealed record HistoryChunk(long Chunk, byte[] Data);

/// <summary>A user's events of one batch, compressed, for filling aggregates a new segment needs.</summary>
public sealed record ArchiveChunk(long FirstSeq, long LastSeq, long ReceivedAt, byte[] Data);

/// <summary>
/// One record to write, expected at generation <see cref="ExpectedGeneration"/> (0: it must not exist yet), with the
/// records that go with it: its membership index changes, its newly sealed history chunks and its archived events.
/// </summary>
public sealed record ProfileWrite(
    ProfileRecord Record,
    long ExpectedGeneration,
    IReadOnlyList<MembershipDelta> Memberships,
    IReadOnlyList<HistoryChunk> History,
    ArchiveChunk? Archive,
    long UpdatedAt);

/// <summary>
/// Everything a store needs to find each of a user's records by key, for an erasure: the partitions whose directory
/// may list the user, the segments whose membership index may, and how many history chunks the user has sealed.
/// </summary>
public sealed record ProfileErasure(string UserId, IReadOnlyCollection<int> Partitions, IReadOnlyCollection<string> SegmentIds, long HistoryChunks);

/// <summary>A membership row as queries return it.</summary>
public sealed record MembershipRow(string SegmentId, string UserId, long Since);

/// <summary>A partition's checkpoint and the epoch that fences every earlier owner.</summary>
public readonly record struct PartitionLease(int Partition, long Epoch, long Checkpoint);

/// <summary>An archived event: its sequence number, when it was received, and its JSON as the log keeps it.</summary>
public readonly record struct ArchivedEvent(long Seq, long ReceivedAt, byte[] Json);

/// <summary>
/// Where profiles, the membership index, the membership history and the partitions' checkpoints live. Thread-safe
/// and async; writes come in batches (the grain storage groups concurrent grains' writes into one
/// <see cref="WriteAsync"/>). Every implementation passes the same contract tests
/// (tests/Audience.Silo.Tests/ProfileStoreContract.cs).
/// </summary>
public interface IProfileStore
{
    /// <summary><c>embedded</c> or <c>postgres</c>.</summary>
    string Kind { get; }

    Task<ProfileRecord?> ReadAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>The stored records among <paramref name="userIds"/>, in one round trip where the store can.</summary>
    Task<IReadOnlyDictionary<string, ProfileRecord>> ReadManyAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes each record whose stored generation is still the expected one, with the records that go with it, and
    /// returns per write its new generation, or 0 when another writer got there first (nothing of that write is
    /// stored). Records of one call are written in one transaction where the store has them.
    /// </summary>
    Task<long[]> WriteAsync(IReadOnlyList<ProfileWrite> writes, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes the partition over: a new epoch, which makes every earlier owner's <see cref="CheckpointAsync"/> fail,
    /// and the checkpoint to resume after.
    /// </summary>
    Task<PartitionLease> ClaimPartitionAsync(int partition, CancellationToken cancellationToken = default);

    /// <summary>Moves the partition's checkpoint; false if another owner has claimed the partition since.</summary>
    Task<bool> CheckpointAsync(int partition, long epoch, long seq, CancellationToken cancellationToken = default);

    /// <summary>The checkpoint of every partition ever claimed: how far the silos have applied and written each.</summary>
    Task<IReadOnlyDictionary<int, long>> CheckpointsAsync(CancellationToken cancellationToken = default);

    /// <summary>Users of a partition whose next due time is at or before <paramref name="upTo"/>, earliest first.</summary>
    Task<IReadOnlyList<string>> DueAsync(int partition, long upTo, int limit, CancellationToken cancellationToken = default);

    /// <summary>Stored records of a partition in user id order after <paramref name="afterUserId"/>: for backfills.</summary>
    Task<IReadOnlyList<ProfileRecord>> ScanAsync(int partition, string afterUserId, int limit, CancellationToken cancellationToken = default);

    Task<long> CountUsersAsync(int partition, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit, CancellationToken cancellationToken = default);

    Task<long> CountMembersAsync(string segmentId, CancellationToken cancellationToken = default);

    /// <summary>The user's sealed history chunks from <paramref name="fromChunk"/> on, in order, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<HistoryChunk>> HistoryAsync(string userId, long fromChunk, int limit, CancellationToken cancellationToken = default);

    /// <summary>The user's archived events up to <paramref name="uptoSeq"/> received since <paramref name="receivedSince"/>.</summary>
    Task<IReadOnlyList<ArchivedEvent>> ArchiveAsync(string userId, long uptoSeq, long receivedSince, CancellationToken cancellationToken = default);

    /// <summary>Deletes archived events received before <paramref name="receivedBefore"/>; returns how many chunks went.</summary>
    Task<long> PruneArchiveAsync(long receivedBefore, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes everything stored about a user: the record (with its due time and partition directory entry), its entries
    /// in the membership index of <see cref="ProfileErasure.SegmentIds"/>, its history chunks and its archived events;
    /// in one transaction where the store has them. Erasing a user with nothing stored does nothing.
    /// </summary>
    Task EraseAsync(ProfileErasure erasure, CancellationToken cancellationToken = default);

    /// <summary>The segment versions whose backfill over this partition's stored profiles has completed.</summary>
    Task<IReadOnlyDictionary<string, long>> BackfilledVersionsAsync(int partition, CancellationToken cancellationToken = default);

    /// <summary>How many partitions have been claimed, and every completed backfill (segment and version) of every partition.</summary>
    Task<(int Partitions, IReadOnlyList<(string SegmentId, long Version)> Completed)> BackfillSummaryAsync(CancellationToken cancellationToken = default);

    /// <summary>Records completed backfills; a null version forgets the segment (its deletion was applied).</summary>
    Task MarkBackfilledAsync(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills, CancellationToken cancellationToken = default);
}

/// <summary>The store is unavailable (a connection failed): wait and try again; nothing was written.</summary>
public sealed class StoreUnavailableException(string message, Exception inner) : Exception(message, inner);
