using Audience.Rules.Profiles;

namespace Audience.Rules.Indexing;

/// <summary>
/// How a user's memberships are evaluated: after an event, as time passes, for a new or edited segment, or all at
/// once. The Silo holds one, chosen at start-up (<c>Rules:Engine</c>): the <see cref="SegmentIndex"/> itself, whose
/// compiled delegates decide, or <see cref="Engines.NRulesSegmentEngine"/>. Either way the index decides which
/// segments are evaluated, in which order, and the cascades; the engine decides whether each rule holds.
/// </summary>
public interface ISegmentEngine
{
    /// <summary>Applies what an event changed to the user's memberships; appends every entry and exit to <paramref name="changes"/>.</summary>
    void Evaluate(UserProfile profile, string eventType, EventEffects effects, long nowMs, List<MembershipChange> changes);

    /// <summary>Re-evaluates the segments whose value can change with time alone; for the user's timer.</summary>
    void EvaluateTimeDependent(UserProfile profile, long nowMs, List<MembershipChange> changes);

    /// <summary>Evaluates one segment for a user (after the segment was created or edited), with cascades.</summary>
    void EvaluateSegment(UserProfile profile, string segmentId, long nowMs, List<MembershipChange> changes);

    /// <summary>Evaluates every segment for a user, in order; for a profile whose state was rebuilt.</summary>
    void EvaluateAll(UserProfile profile, long nowMs, List<MembershipChange> changes);
}

/// <summary>
/// Whether a segment's rule holds for the profile of one evaluation: what an engine gives the index's evaluation
/// loop. One instance serves one evaluation of one profile at one instant.
/// </summary>
public interface ISegmentMatcher
{
    bool Matches(IndexedSegment segment, UserProfile profile, long nowMs);

    /// <summary>A membership that other segments read (with inSegment) has just changed: outcomes computed before it are stale.</summary>
    void MembershipChanged();
}
