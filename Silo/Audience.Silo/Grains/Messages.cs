using Audience.Silo.Contracts;

namespace Audience.Silo.Grains;

/// <summary>
/// An event at its place in a partition: its sequence number (a Kafka offset + 1), when it was received, and the trace
/// context of the request that sent it (a <c>traceparent</c> header on Kafka; null when traces are off).
/// </summary>
[GenerateSerializer]
[Immutable]
public sealed record LoggedEvent([property: Id(0)] long Seq, [property: Id(1)] long ReceivedAt, [property: Id(2)] UserEvent Event,
    [property: Id(3)] string? TraceParent = null);

/// <summary>
/// One user's events of a partition's batch, in order; one grain call carries them all. <see cref="AppliedThrough"/>
/// is the last of the user's events the reader has had applied since its checkpoint and not yet written (0 if
/// none): a grain that does not hold it lost them, and the partition is read again from its checkpoint.
/// </summary>
[GenerateSerializer]
[Immutable]
public sealed record EventBatch(
    [property: Id(0)] int Partition,
    [property: Id(1)] string Topic,
    [property: Id(2)] SiloAddress Reader,
    [property: Id(3)] LoggedEvent[] Events,
    [property: Id(4)] long AppliedThrough = 0);

/// <summary>
/// An erasure of the user at its place in the user's partition (<see cref="Seq"/>), as the partition's reader reaches it:
/// after every event of the user before it. <see cref="RequestedAt"/> is when it was asked for (Unix ms).
/// </summary>
[GenerateSerializer]
[Immutable]
public sealed record ErasureRequest([property: Id(0)] int Partition, [property: Id(1)] long Seq, [property: Id(2)] string ErasureId, [property: Id(3)] long RequestedAt);

/// <summary>A segment to apply to a user's profile (created, edited) or to remove from it (deleted): a backfill.</summary>
[GenerateSerializer]
[Immutable]
public sealed record SegmentChangeRequest([property: Id(0)] string SegmentId, [property: Id(1)] long Version, [property: Id(2)] bool Deleted);

/// <summary>A user's membership of a segment, for queries.</summary>
[GenerateSerializer]
[Immutable]
public sealed record MembershipView([property: Id(0)] string SegmentId, [property: Id(1)] long Since);

/// <summary>A copy of a profile for queries; traits as the JSON object the API returns.</summary>
[GenerateSerializer]
[Immutable]
public sealed record ProfileView(
    [property: Id(0)] string UserId,
    [property: Id(1)] long EventCount,
    [property: Id(2)] decimal TotalSpent,
    [property: Id(3)] long OrderCount,
    [property: Id(4)] long? FirstSeen,
    [property: Id(5)] long? LastSeen,
    [property: Id(6)] string TraitsJson,
    [property: Id(7)] MembershipView[] Memberships,
    [property: Id(8)] long? NextDue);

/// <summary>Why a rule holds or not for a user: each node of the rule, its outcome and the value it read.</summary>
[GenerateSerializer]
[Immutable]
public sealed record ExplanationView(
    [property: Id(0)] string Rule,
    [property: Id(1)] bool Result,
    [property: Id(2)] string? Value,
    [property: Id(3)] string? Note,
    [property: Id(4)] ExplanationView[] Children);

/// <summary>An explanation and whether the user is a member now.</summary>
[GenerateSerializer]
[Immutable]
public sealed record ExplainResult([property: Id(0)] ExplanationView Explanation, [property: Id(1)] bool Member);
