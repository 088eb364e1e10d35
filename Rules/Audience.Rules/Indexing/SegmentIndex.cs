using System.Collections.Concurrent;
using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Model;
using Audience.Rules.Profiles;

namespace Audience.Rules.Indexing;

/// <summary>An active segment as the index holds it.</summary>
public sealed class IndexedSegment
{
    internal IndexedSegment(string id, int slot, long version, CompiledRule rule)
    {
        Id = id;
        Slot = slot;
        Version = version;
        Rule = rule;
    }

    public string Id { get; }

    public int Slot { get; }

    public long Version { get; }

    public CompiledRule Rule { get; }
}

/// <summary>Why a membership was re-evaluated.</summary>
public enum EvaluationTrigger : byte
{
    /// <summary>An event changed what the rule reads.</summary>
    Event,

    /// <summary>Time passed: a window slid or an <c>ago</c> bound moved.</summary>
    Time,

    /// <summary>The segment was created or edited and is being applied to existing profiles.</summary>
    SegmentChanged,

    /// <summary>A segment this one refers to with inSegment changed for the user.</summary>
    Cascade,
}

/// <summary>A user entered or left a segment.</summary>
public readonly record struct MembershipChange(IndexedSegment Segment, bool Entered, long AtMs, EvaluationTrigger Trigger);

/// <summary>
/// The active segments, indexed by what their rules read, so that an event re-evaluates only the segments it can
/// affect. Readers work on an immutable snapshot and never block; adding, replacing or removing a segment builds
/// a new snapshot that copies only the lists that segment is in. Segments that refer to others with inSegment
/// are evaluated after them (by rank), and a change of membership cascades to the segments that refer to it.
/// As an <see cref="ISegmentEngine"/> it is the compiled engine: each segment's compiled delegate decides.
/// </summary>
public sealed class SegmentIndex(RuleCatalog catalog) : ISegmentEngine
{
    private readonly Lock _gate = new();
    private volatile Snapshot _snapshot = Snapshot.Empty;
    private long _revision;

    public RuleCatalog Catalog => catalog;

    public int Count => _snapshot.ById.Count;

    public IReadOnlyCollection<IndexedSegment> Segments => _snapshot.ById.Values;

    public IndexedSegment? Find(string segmentId) => _snapshot.ById.GetValueOrDefault(segmentId);

    /// <summary>
    /// A 64-bit digest of the segments held (ids and versions), the same in every process that holds the same
    /// segments: a profile stamped with it was evaluated against exactly these segments, so one whose stamp differs
    /// must be evaluated again.
    /// </summary>
    public ulong Fingerprint => _snapshot.Fingerprint;

    /// <summary>Counts the changes made to the index (every upsert and removal), in this process only.</summary>
    public long Revision => Interlocked.Read(ref _revision);

    /// <summary>Raised after a segment was added, replaced or removed, on the thread that changed it.</summary>
    public event Action? Changed;

    /// <summary>Adds a segment or replaces its rule. The index owns the compiled rule from now on and disposes it when replaced.</summary>
    public IndexedSegment Upsert(string segmentId, CompiledRule rule, long version = 1)
    {
        ArgumentNullException.ThrowIfNull(rule);
        var segment = new IndexedSegment(segmentId, catalog.SegmentSlot(segmentId), version, rule);
        IndexedSegment? previous;
        lock (_gate)
        {
            var snapshot = _snapshot;
            previous = snapshot.ById.GetValueOrDefault(segmentId);
            if (previous is not null)
            {
                snapshot = snapshot.Without(previous);
            }

            _snapshot = snapshot.With(segment, catalog);
            Interlocked.Increment(ref _revision);
        }

        previous?.Rule.Dispose();
        Changed?.Invoke();
        return segment;
    }

    public bool Remove(string segmentId)
    {
        IndexedSegment? previous;
        lock (_gate)
        {
            previous = _snapshot.ById.GetValueOrDefault(segmentId);
            if (previous is null)
            {
                return false;
            }

            _snapshot = _snapshot.Without(previous);
            Interlocked.Increment(ref _revision);
        }

        previous.Rule.Dispose();
        Changed?.Invoke();
        return true;
    }

    /// <summary>The segments an event can affect, in evaluation order (segments before those that refer to them).</summary>
    public IReadOnlyList<IndexedSegment> Affected(string eventType, EventEffects effects) => _snapshot.Affected(eventType, effects);

    /// <summary>Applies what an event changed to the user's memberships; appends every entry and exit to <paramref name="changes"/>.</summary>
    public void Evaluate(UserProfile profile, string eventType, EventEffects effects, long nowMs, List<MembershipChange> changes) =>
        Evaluate(profile, eventType, effects, nowMs, changes, default(CompiledMatcher));

    /// <summary>Re-evaluates the segments whose value can change with time alone; for the user's timer.</summary>
    public void EvaluateTimeDependent(UserProfile profile, long nowMs, List<MembershipChange> changes) =>
        EvaluateTimeDependent(profile, nowMs, changes, default(CompiledMatcher));

    /// <summary>Evaluates one segment for a user (after the segment was created or edited), with cascades.</summary>
    public void EvaluateSegment(UserProfile profile, string segmentId, long nowMs, List<MembershipChange> changes) =>
        EvaluateSegment(profile, segmentId, nowMs, changes, default(CompiledMatcher));

    /// <summary>Evaluates every segment for a user, in order; for a profile whose state was rebuilt.</summary>
    public void EvaluateAll(UserProfile profile, long nowMs, List<MembershipChange> changes) =>
        EvaluateAll(profile, nowMs, changes, default(CompiledMatcher));

    /// <summary><see cref="Evaluate(UserProfile, string, EventEffects, long, List{MembershipChange})"/>, another engine's <paramref name="matcher"/> deciding.</summary>
    public void Evaluate<TMatcher>(UserProfile profile, string eventType, EventEffects effects, long nowMs, List<MembershipChange> changes, TMatcher matcher)
        where TMatcher : ISegmentMatcher
    {
        var snapshot = _snapshot;
        Run(snapshot, effects.NewProfile ? snapshot.AllInOrder() : snapshot.Affected(eventType, effects), profile, nowMs, EvaluationTrigger.Event, changes, matcher);
    }

    /// <summary><see cref="EvaluateTimeDependent(UserProfile, long, List{MembershipChange})"/>, another engine's <paramref name="matcher"/> deciding.</summary>
    public void EvaluateTimeDependent<TMatcher>(UserProfile profile, long nowMs, List<MembershipChange> changes, TMatcher matcher)
        where TMatcher : ISegmentMatcher
    {
        var snapshot = _snapshot;
        Run(snapshot, snapshot.TimeDependent, profile, nowMs, EvaluationTrigger.Time, changes, matcher);
    }

    /// <summary><see cref="EvaluateSegment(UserProfile, string, long, List{MembershipChange})"/>, another engine's <paramref name="matcher"/> deciding.</summary>
    public void EvaluateSegment<TMatcher>(UserProfile profile, string segmentId, long nowMs, List<MembershipChange> changes, TMatcher matcher)
        where TMatcher : ISegmentMatcher
    {
        var snapshot = _snapshot;
        if (snapshot.ById.TryGetValue(segmentId, out var segment))
        {
            Run(snapshot, [segment], profile, nowMs, EvaluationTrigger.SegmentChanged, changes, matcher);
        }
    }

    /// <summary><see cref="EvaluateAll(UserProfile, long, List{MembershipChange})"/>, another engine's <paramref name="matcher"/> deciding.</summary>
    public void EvaluateAll<TMatcher>(UserProfile profile, long nowMs, List<MembershipChange> changes, TMatcher matcher)
        where TMatcher : ISegmentMatcher
    {
        var snapshot = _snapshot;
        Run(snapshot, snapshot.AllInOrder(), profile, nowMs, EvaluationTrigger.SegmentChanged, changes, matcher);
    }

    /// <summary>
    /// The earliest instant after <paramref name="nowMs"/> at which a time-dependent segment may change for this
    /// user, or null. Computed from the user's aggregate windows and the distinct <c>ago</c> bounds of all rules,
    /// not rule by rule, so it stays cheap with many segments.
    /// </summary>
    public long? NextTimer(UserProfile profile, long nowMs)
    {
        var snapshot = _snapshot;
        if (snapshot.TimeDependent.Length == 0)
        {
            return null;
        }

        long? next = null;
        foreach (var (_, state) in profile.AggregateStates())
        {
            if (state.NextExpiry(nowMs) is { } at && (next is null || at < next))
            {
                next = at;
            }
        }

        foreach (var (field, offsets) in snapshot.TimeSources)
        {
            if (!ReadTime(profile, field, out var t))
            {
                continue;
            }

            // The first bound not yet passed: t + offset (+1 ms for strict comparisons) > now.
            foreach (var offset in offsets)
            {
                var at = t + offset > nowMs ? t + offset : t + offset + 1;
                if (at > nowMs && (next is null || at < next))
                {
                    next = at;
                    break;
                }
            }
        }

        return next;
    }

    private static bool ReadTime(UserProfile profile, FieldRef field, out long t)
    {
        long? value = field switch
        {
            { Scope: FieldScope.Profile, Name: "firstSeen" } => profile.FirstSeen,
            { Scope: FieldScope.Profile } => profile.LastSeen,
            _ => profile.Traits.TryGetValue(field.Name.Split('.')[0], out var trait)
                && (field.Name.Contains('.', StringComparison.Ordinal) ? trait.Get(field.Name.Split('.')[1..]) : trait).TryGetTime(out var ms)
                ? ms : null,
        };
        t = value.GetValueOrDefault();
        return value.HasValue;
    }

    /// <summary>
    /// Evaluates <paramref name="ordered"/> in rank order. When a segment flips, the segments that refer to it are
    /// queued; they rank above it, so merging the queue with the ordered list evaluates each of them once, after
    /// everything it refers to.
    /// </summary>
    private static void Run<TMatcher>(Snapshot snapshot, IndexedSegment[] ordered, UserProfile profile, long nowMs,
        EvaluationTrigger trigger, List<MembershipChange> changes, TMatcher matcher)
        where TMatcher : ISegmentMatcher
    {
        // Cascades are rare: the queue and the done set are only allocated once a flip has dependents.
        PriorityQueue<IndexedSegment, (int Rank, int Slot)>? cascade = null;
        HashSet<int>? done = null;
        var i = 0;
        while (true)
        {
            IndexedSegment segment;
            var cascaded = false;
            if (cascade is { Count: > 0 } && (i >= ordered.Length || Key(snapshot, cascade.Peek()).CompareTo(Key(snapshot, ordered[i])) <= 0))
            {
                segment = cascade.Dequeue();
                cascaded = true;
            }
            else if (i < ordered.Length)
            {
                segment = ordered[i++];
            }
            else
            {
                return;
            }

            if (done is not null && !done.Add(segment.Slot))
            {
                continue;
            }

            var member = profile.IsMember(segment.Slot);
            var matches = matcher.Matches(segment, profile, nowMs);
            if (member == matches)
            {
                continue;
            }

            if (matches)
            {
                profile.Enter(segment.Slot, nowMs);
            }
            else
            {
                profile.Leave(segment.Slot);
            }

            changes.Add(new MembershipChange(segment, matches, nowMs, cascaded ? EvaluationTrigger.Cascade : trigger));
            if (snapshot.Dependents.TryGetValue(segment.Slot, out var dependents))
            {
                matcher.MembershipChanged();
                cascade ??= new PriorityQueue<IndexedSegment, (int, int)>();
                done ??= [];
                foreach (var dependent in dependents)
                {
                    cascade.Enqueue(dependent, Key(snapshot, dependent));
                }
            }
        }
    }

    /// <summary>The compiled engine's matcher: the segment's compiled delegate (a struct, so the loop is specialised for it).</summary>
    private readonly struct CompiledMatcher : ISegmentMatcher
    {
        public bool Matches(IndexedSegment segment, UserProfile profile, long nowMs) => segment.Rule.Evaluate(profile, nowMs);

        public void MembershipChanged()
        {
        }
    }

    private static (int Rank, int Slot) Key(Snapshot snapshot, IndexedSegment segment) => (snapshot.RankOf(segment), segment.Slot);

    private sealed class Snapshot
    {
        private const int MaxCachedKeys = 4096;

        public static Snapshot Empty { get; } = new();

        public Dictionary<string, IndexedSegment> ById { get; private init; } = new(StringComparer.Ordinal);

        /// <summary>Segments by the built-in field they read; indexed by the bit position of the field.</summary>
        public IndexedSegment[][] ByField { get; private init; } = [[], [], [], [], []];

        public Dictionary<string, IndexedSegment[]> ByTrait { get; private init; } = new(StringComparer.Ordinal);

        public Dictionary<string, IndexedSegment[]> ByEventType { get; private init; } = new(StringComparer.Ordinal);

        public IndexedSegment[] AnyEventType { get; private init; } = [];

        public IndexedSegment[] TimeDependent { get; private init; } = [];

        /// <summary>By segment slot: the segments whose rules refer to it with inSegment.</summary>
        public Dictionary<int, IndexedSegment[]> Dependents { get; private init; } = [];

        public Dictionary<int, int> Ranks { get; private init; } = [];

        public Dictionary<FieldRef, long[]> TimeSources { get; private init; } = [];

        private readonly ConcurrentDictionary<(string EventType, ProfileFields Fields, string Traits), IndexedSegment[]> _affected = new();

        public int RankOf(IndexedSegment segment) => Ranks.GetValueOrDefault(segment.Slot);

        /// <summary>
        /// The segments an event's effects can change, in evaluation order; cached per event type, fields and
        /// changed traits (a few thousand shapes at most; others are computed each time).
        /// </summary>
        public IndexedSegment[] Affected(string eventType, EventEffects effects)
        {
            var key = (eventType, effects.Fields, effects.Traits.Count == 0 ? string.Empty : string.Join('\n', effects.Traits));
            if (!_affected.TryGetValue(key, out var list))
            {
                list = Order(Union(eventType, effects.Fields, effects.Traits));
                if (_affected.Count < MaxCachedKeys)
                {
                    _affected[key] = list;
                }
            }

            return list;
        }

        public IndexedSegment[] AllInOrder() => _all ??= Order(ById.Values);

        private IndexedSegment[]? _all;

        public ulong Fingerprint
        {
            get
            {
                // Computed once per snapshot; a race computes the same value twice, never a torn one.
                if (!_hasFingerprint)
                {
                    _fingerprint = Digest(ById.Values);
                    _hasFingerprint = true;
                }

                return _fingerprint;
            }
        }

        private ulong _fingerprint;
        private volatile bool _hasFingerprint;

        /// <summary>Order-independent: the sum of a mixed hash of each segment's id and version.</summary>
        private static ulong Digest(IEnumerable<IndexedSegment> segments)
        {
            var digest = 0x9E3779B97F4A7C15UL;
            foreach (var segment in segments)
            {
                var hash = 14695981039346656037UL;
                foreach (var c in segment.Id)
                {
                    hash = (hash ^ c) * 1099511628211UL;
                }

                hash ^= (ulong)segment.Version * 0xBF58476D1CE4E5B9UL;
                hash ^= hash >> 31;
                digest += hash * 0x94D049BB133111EBUL;
            }

            return digest;
        }

        private HashSet<IndexedSegment> Union(string eventType, ProfileFields fields, IReadOnlyList<string> traits)
        {
            var set = new HashSet<IndexedSegment>();
            for (var bit = 0; bit < ByField.Length; bit++)
            {
                if (((int)fields & (1 << bit)) != 0)
                {
                    set.UnionWith(ByField[bit]);
                }
            }

            if (ByEventType.TryGetValue(eventType, out var ofType))
            {
                set.UnionWith(ofType);
            }

            set.UnionWith(AnyEventType);
            foreach (var trait in traits)
            {
                if (ByTrait.TryGetValue(trait, out var readers))
                {
                    set.UnionWith(readers);
                }
            }

            return set;
        }

        private IndexedSegment[] Order(IEnumerable<IndexedSegment> segments) =>
            [.. segments.OrderBy(RankOf).ThenBy(s => s.Slot)];

        public Snapshot With(IndexedSegment segment, RuleCatalog catalog)
        {
            var deps = segment.Rule.Dependencies;
            var dependents = new Dictionary<int, IndexedSegment[]>(Dependents);
            foreach (var referenced in deps.Segments)
            {
                var slot = catalog.SegmentSlot(referenced);
                dependents[slot] = [.. dependents.GetValueOrDefault(slot) ?? [], segment];
            }

            var byId = new Dictionary<string, IndexedSegment>(ById, StringComparer.Ordinal) { [segment.Id] = segment };
            var next = new Snapshot
            {
                ById = byId,
                ByField = WithFields(ByField, deps.Fields, segment, add: true),
                ByTrait = WithKeys(ByTrait, deps.Traits, segment, add: true),
                ByEventType = WithKeys(ByEventType, deps.EventTypes, segment, add: true),
                AnyEventType = deps.AnyEventType ? [.. AnyEventType, segment] : AnyEventType,
                TimeDependent = segment.Rule.IsTimeDependent ? [.. TimeDependent, segment] : TimeDependent,
                Dependents = dependents,
                Ranks = Ranks,
                TimeSources = segment.Rule.TimeSources.Count > 0 ? BuildTimeSources(byId.Values) : TimeSources,
            };
            return next.Reranked(segment, catalog);
        }

        public Snapshot Without(IndexedSegment segment)
        {
            var deps = segment.Rule.Dependencies;
            var dependents = new Dictionary<int, IndexedSegment[]>(Dependents);
            foreach (var (slot, list) in Dependents)
            {
                if (Array.IndexOf(list, segment) >= 0)
                {
                    var rest = list.Where(s => s != segment).ToArray();
                    if (rest.Length == 0)
                    {
                        dependents.Remove(slot);
                    }
                    else
                    {
                        dependents[slot] = rest;
                    }
                }
            }

            var byId = new Dictionary<string, IndexedSegment>(ById, StringComparer.Ordinal);
            byId.Remove(segment.Id);
            var ranks = new Dictionary<int, int>(Ranks);
            ranks.Remove(segment.Slot);
            return new Snapshot
            {
                ById = byId,
                ByField = WithFields(ByField, deps.Fields, segment, add: false),
                ByTrait = WithKeys(ByTrait, deps.Traits, segment, add: false),
                ByEventType = WithKeys(ByEventType, deps.EventTypes, segment, add: false),
                AnyEventType = deps.AnyEventType ? [.. AnyEventType.Where(s => s != segment)] : AnyEventType,
                TimeDependent = segment.Rule.IsTimeDependent ? [.. TimeDependent.Where(s => s != segment)] : TimeDependent,
                Dependents = dependents,
                Ranks = ranks,
                TimeSources = segment.Rule.TimeSources.Count > 0 ? BuildTimeSources(byId.Values) : TimeSources,
            };
        }

        /// <summary>
        /// Gives the segment its rank (one more than the highest rank it refers to) and passes a changed rank on
        /// to the segments that refer to it. Only the changed segment and its dependents are visited.
        /// </summary>
        private Snapshot Reranked(IndexedSegment segment, RuleCatalog catalog)
        {
            var ranks = new Dictionary<int, int>(Ranks);
            var work = new Queue<IndexedSegment>([segment]);
            var guard = 0;
            while (work.TryDequeue(out var current) && guard++ < 100_000)
            {
                var rank = 0;
                foreach (var referenced in current.Rule.Dependencies.Segments)
                {
                    rank = Math.Max(rank, ranks.GetValueOrDefault(catalog.SegmentSlot(referenced)) + 1);
                }

                if (ranks.TryGetValue(current.Slot, out var old) && old == rank && current != segment)
                {
                    continue;
                }

                ranks[current.Slot] = rank;
                foreach (var dependent in Dependents.GetValueOrDefault(current.Slot) ?? [])
                {
                    work.Enqueue(dependent);
                }
            }

            return new Snapshot
            {
                ById = ById,
                ByField = ByField,
                ByTrait = ByTrait,
                ByEventType = ByEventType,
                AnyEventType = AnyEventType,
                TimeDependent = TimeDependent,
                Dependents = Dependents,
                Ranks = ranks,
                TimeSources = TimeSources,
            };
        }

        private static Dictionary<FieldRef, long[]> BuildTimeSources(IEnumerable<IndexedSegment> segments) =>
            segments.SelectMany(s => s.Rule.TimeSources)
                .GroupBy(t => t.Field)
                .ToDictionary(g => g.Key, g => g.Select(t => t.OffsetMs).Distinct().Order().ToArray());

        private static IndexedSegment[][] WithFields(IndexedSegment[][] byField, ProfileFields fields, IndexedSegment segment, bool add)
        {
            var copy = (IndexedSegment[][])byField.Clone();
            for (var bit = 0; bit < copy.Length; bit++)
            {
                if (((int)fields & (1 << bit)) != 0)
                {
                    copy[bit] = add ? [.. copy[bit], segment] : [.. copy[bit].Where(s => s != segment)];
                }
            }

            return copy;
        }

        private static Dictionary<string, IndexedSegment[]> WithKeys(Dictionary<string, IndexedSegment[]> map,
            IReadOnlySet<string> keys, IndexedSegment segment, bool add)
        {
            if (keys.Count == 0)
            {
                return map;
            }

            var copy = new Dictionary<string, IndexedSegment[]>(map, StringComparer.Ordinal);
            foreach (var key in keys)
            {
                var list = copy.GetValueOrDefault(key) ?? [];
                list = add ? [.. list, segment] : [.. list.Where(s => s != segment)];
                if (list.Length == 0)
                {
                    copy.Remove(key);
                }
                else
                {
                    copy[key] = list;
                }
            }

            return copy;
        }
    }
}
