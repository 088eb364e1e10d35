using System.Collections.Concurrent;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using NRules;

namespace Audience.Rules.Engines;

/// <summary>
/// The NRules segment engine (<c>Rules:Engine=nrules</c>): each segment's rule is translated into one NRules rule
/// (<see cref="NRulesTranslation"/>), and NRules decides which rules hold for the profile being evaluated. The
/// <see cref="SegmentIndex"/> stays the source of which segments exist, their slots and versions, which of them an
/// event, time or a segment change re-evaluates, in which order, and the cascades: the two engines give the same
/// memberships and the same changes.
/// <para>
/// The rule set is compiled from the index by <see cref="Rebuild"/>, off the evaluation path (NRules takes seconds
/// for a thousand rules), and swapped in whole; an evaluation uses the set that was in when it started and never
/// waits for a compile. A segment that set does not hold, or holds in an earlier version (one created or edited
/// since), is evaluated by its compiled delegate until the next set is in: a segment is in force from the moment
/// it is saved, its backfill included, whichever engine runs.
/// </para>
/// <para>
/// The one fact is the profile at the instant (<see cref="ProfileFact"/>): NRules evaluates every rule of the set
/// when it changes, and the index takes the outcomes of the segments it selected. After a flip that other segments
/// read (inSegment), the fact is updated and NRules fires again before those are read. Thread-safe: each evaluation
/// takes a session of its own from the set's pool.
/// </para>
/// </summary>
public sealed class NRulesSegmentEngine(SegmentIndex index) : ISegmentEngine
{
    private readonly Lock _building = new();
    private volatile RuleSet _rules = RuleSet.Empty;
    private long _fallbacks;

    public SegmentIndex Index => index;

    /// <summary>Whether the rule set in use was built from the index as it is (see <see cref="SegmentIndex.Revision"/>).</summary>
    public bool IsCurrent => _rules.Revision == index.Revision;

    /// <summary>The segments (NRules rules) of the set in use.</summary>
    public int RuleCount => _rules.Count;

    /// <summary>Evaluations of a segment made by its compiled delegate because the set in use did not hold it yet, since start.</summary>
    public long CompiledFallbacks => Interlocked.Read(ref _fallbacks);

    /// <summary>
    /// Translates and compiles the index's segments into a new NRules rule set and swaps it in; false when the set in
    /// use was already built from the index's current revision. Evaluations in flight finish on their own set.
    /// </summary>
    public bool Rebuild(CancellationToken cancellationToken = default)
    {
        lock (_building)
        {
            // The revision first: a change that lands before the segments are read is built now and again later.
            var revision = index.Revision;
            if (_rules.Revision == revision)
            {
                return false;
            }

            _rules = RuleSet.Build([.. index.Segments], revision, cancellationToken);
            return true;
        }
    }

    public void Evaluate(UserProfile profile, string eventType, EventEffects effects, long nowMs, List<MembershipChange> changes)
    {
        var (rules, evaluation) = Begin();
        index.Evaluate(profile, eventType, effects, nowMs, changes, evaluation);
        End(rules, evaluation);
    }

    public void EvaluateTimeDependent(UserProfile profile, long nowMs, List<MembershipChange> changes)
    {
        var (rules, evaluation) = Begin();
        index.EvaluateTimeDependent(profile, nowMs, changes, evaluation);
        End(rules, evaluation);
    }

    public void EvaluateSegment(UserProfile profile, string segmentId, long nowMs, List<MembershipChange> changes)
    {
        var (rules, evaluation) = Begin();
        index.EvaluateSegment(profile, segmentId, nowMs, changes, evaluation);
        End(rules, evaluation);
    }

    public void EvaluateAll(UserProfile profile, long nowMs, List<MembershipChange> changes)
    {
        var (rules, evaluation) = Begin();
        index.EvaluateAll(profile, nowMs, changes, evaluation);
        End(rules, evaluation);
    }

    private (RuleSet Rules, Evaluation Evaluation) Begin()
    {
        var rules = _rules;
        return (rules, rules.Rent());
    }

    /// <summary>
    /// Returns the evaluation's session to its set. Not in a finally: a session whose evaluation threw may hold a
    /// half-fired agenda, and is dropped with it.
    /// </summary>
    private void End(RuleSet rules, Evaluation evaluation)
    {
        if (evaluation.Fallbacks > 0)
        {
            Interlocked.Add(ref _fallbacks, evaluation.Fallbacks);
        }

        rules.Return(evaluation);
    }

    /// <summary>A compiled NRules rule set, the segments it was built from (by slot), and its pool of sessions.</summary>
    private sealed class RuleSet
    {
        private readonly IndexedSegment?[] _bySlot;
        private readonly ConcurrentBag<Evaluation> _pool = [];

        private RuleSet(IndexedSegment?[] bySlot, ISessionFactory? factory, long revision, int count)
        {
            _bySlot = bySlot;
            Factory = factory;
            Revision = revision;
            Count = count;
        }

        public static RuleSet Empty { get; } = new([], null, 0, 0);

        public ISessionFactory? Factory { get; }

        public long Revision { get; }

        public int Count { get; }

        public int Slots => _bySlot.Length;

        public static RuleSet Build(IndexedSegment[] segments, long revision, CancellationToken cancellationToken)
        {
            var bySlot = new IndexedSegment?[segments.Length == 0 ? 0 : segments.Max(s => s.Slot) + 1];
            foreach (var segment in segments)
            {
                bySlot[segment.Slot] = segment;
            }

            var factory = segments.Length == 0
                ? null
                : new NRules.RuleCompiler().Compile(segments.Select(NRulesTranslation.Translate), cancellationToken);
            return new RuleSet(bySlot, factory, revision, segments.Length);
        }

        /// <summary>Whether this set holds the rule of this very segment (the index makes a new one for every version).</summary>
        public bool Holds(IndexedSegment segment) =>
            (uint)segment.Slot < (uint)_bySlot.Length && ReferenceEquals(_bySlot[segment.Slot], segment);

        public Evaluation Rent() => _pool.TryTake(out var evaluation) ? evaluation : new Evaluation(this);

        public void Return(Evaluation evaluation)
        {
            evaluation.Reset();
            _pool.Add(evaluation);
        }
    }

    /// <summary>
    /// One evaluation's matcher, and the pooled NRules session behind it: the session holds the one fact, inserted at
    /// its first use and updated after. NRules fires only when a segment of the set is asked for, so an event that
    /// affects no segment costs no NRules work.
    /// </summary>
    private sealed class Evaluation(RuleSet rules) : ISegmentMatcher
    {
        private readonly ProfileFact _fact = new();
        private ISession? _session;
        private bool _inserted;
        private bool _fired;

        public int Fallbacks { get; private set; }

        public bool Matches(IndexedSegment segment, UserProfile profile, long nowMs)
        {
            if (!rules.Holds(segment))
            {
                Fallbacks++;
                return segment.Rule.Evaluate(profile, nowMs);
            }

            if (!_fired)
            {
                Fire(profile, nowMs);
            }

            return _fact.Matched(segment.Slot);
        }

        public void MembershipChanged() => _fired = false;

        public void Reset()
        {
            _fired = false;
            Fallbacks = 0;
            _fact.Release();
        }

        private void Fire(UserProfile profile, long nowMs)
        {
            _session ??= rules.Factory!.CreateSession();
            _fact.Reset(profile, nowMs, rules.Slots);
            if (_inserted)
            {
                _session.Update(_fact);
            }
            else
            {
                _session.Insert(_fact);
                _inserted = true;
            }

            _session.Fire();
            _fired = true;
        }
    }
}
