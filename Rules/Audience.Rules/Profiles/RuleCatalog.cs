using Audience.Rules.Compilation;
using Audience.Rules.Model;

namespace Audience.Rules.Profiles;

/// <summary>
/// An aggregate over one user's events that at least one active rule reads. Specs that differ only in the
/// function (count, sum, min, max, avg of the same events) share one spec and one state per user.
/// </summary>
public sealed class AggregateSpec
{
    internal AggregateSpec(AggregateKey key, int slot, int version)
    {
        Key = key;
        Id = key.Describe();
        Slot = slot;
        Version = version;
        var hash = 14695981039346656037UL;
        foreach (var c in Id)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        StableHash = hash;
        Layout = BucketLayout.For(key.WindowMs);
        PropertyPath = key.Property?.Split('.');
        Filter = key.Filter is null ? null : RuleCompiler.CompileFilter(key.Filter);
    }

    public AggregateKey Key { get; }

    /// <summary>The key as stable text (<see cref="AggregateKey.Describe"/>), computed once.</summary>
    public string Id { get; }

    /// <summary>A 64-bit FNV-1a hash of <see cref="Id"/>: a short name for the spec that is the same in every process.</summary>
    public ulong StableHash { get; }

    /// <summary>
    /// The catalog's <see cref="RuleCatalog.AggregateVersion"/> once this spec was added: a profile completed at a
    /// version holds complete state for every spec of that version or before.
    /// </summary>
    public int Version { get; }

    /// <summary>The index of this spec's state in every profile; reused once the spec is released.</summary>
    public int Slot { get; }

    public BucketLayout Layout { get; }

    internal string[]? PropertyPath { get; }

    internal Func<RuleEvent, bool>? Filter { get; }

    internal int References { get; set; }

    /// <summary>Whether this spec takes the event, and the value it contributes (0 for a plain count).</summary>
    public bool TryTake(RuleEvent e, out decimal value)
    {
        value = 0;
        if (Filter is not null && !Filter(e))
        {
            return false;
        }

        if (PropertyPath is null)
        {
            return true;
        }

        var v = e.Get(PropertyPath);
        if (!v.IsSummable)
        {
            return false;
        }

        value = v.AsNumber;
        return true;
    }
}

/// <summary>What identifies the state of an aggregate: the events it takes and its window.</summary>
public sealed record AggregateKey(string? EventType, string? Property, Condition? Filter, long WindowMs)
{
    public static AggregateKey Of(AggregateRef aggregate) =>
        new(aggregate.EventType, aggregate.Property, aggregate.Filter, aggregate.Window.Milliseconds);

    /// <summary>A stable text for the key, the same in every process: how stored aggregate state names its spec.</summary>
    public string Describe() => (EventType is null ? "any" : Syntax.RulePrinter.Quote(EventType))
        + (Property is null ? string.Empty : "." + Property)
        + (Filter is null ? string.Empty : " where " + Syntax.RulePrinter.Print(Filter))
        + " within " + WindowMs.ToString(System.Globalization.CultureInfo.InvariantCulture) + "ms";
}

/// <summary>
/// The symbol tables shared by compiled rules and profiles in one process: trait names, aggregate specs and
/// segment ids, each mapped to a dense slot so that a compiled rule reads a profile by index, never by name.
/// Writes (compiling or releasing a rule) take a lock; reads see immutable snapshots and never block.
/// </summary>
public sealed class RuleCatalog
{
    private readonly Lock _gate = new();

    private readonly Dictionary<string, int> _traitSlots = new(StringComparer.Ordinal);
    private readonly List<int> _traitReferences = [];
    private readonly Stack<int> _freeTraitSlots = new();
    private volatile string?[] _traitNames = [];

    private readonly Dictionary<AggregateKey, AggregateSpec> _specs = [];
    private readonly Stack<int> _freeSpecSlots = new();
    private int _specCapacity;
    private volatile SpecsByEventType _specsByType = SpecsByEventType.Empty;

    private readonly Dictionary<string, int> _segmentSlots = new(StringComparer.Ordinal);
    private volatile string[] _segmentIds = [];

    /// <summary>Changes whenever a trait slot is given to a new name; profiles re-read their trait slots then.</summary>
    public int TraitVersion => _traitVersion;

    private volatile int _traitVersion;

    internal string?[] TraitNames => _traitNames;

    public int AggregateCapacity => Volatile.Read(ref _specCapacity);

    /// <summary>Changes whenever an aggregate spec is added; a holder of profiles checks it to fill new aggregates.</summary>
    public int AggregateVersion => _aggregateVersion;

    private volatile int _aggregateVersion;

    /// <summary>The specs an event of <paramref name="eventType"/> may feed: those of that type, then those of any type.</summary>
    public (AggregateSpec[] OfType, AggregateSpec[] OfAnyType) AggregatesFor(string eventType)
    {
        var snapshot = _specsByType;
        return (snapshot.ByType.TryGetValue(eventType, out var ofType) ? ofType : [], snapshot.Any);
    }

    /// <summary>Every aggregate spec in use.</summary>
    public IReadOnlyList<AggregateSpec> Aggregates
    {
        get
        {
            var snapshot = _specsByType;
            return [.. snapshot.ByType.Values.SelectMany(s => s), .. snapshot.Any];
        }
    }

    internal int AcquireTrait(string name)
    {
        lock (_gate)
        {
            if (_traitSlots.TryGetValue(name, out var slot))
            {
                _traitReferences[slot]++;
                return slot;
            }

            if (_freeTraitSlots.TryPop(out slot))
            {
                _traitReferences[slot] = 1;
            }
            else
            {
                slot = _traitReferences.Count;
                _traitReferences.Add(1);
            }

            _traitSlots[name] = slot;
            var names = new string?[_traitReferences.Count];
            _traitNames.CopyTo(names, 0);
            names[slot] = name;
            _traitNames = names;
            _traitVersion++;
            return slot;
        }
    }

    internal void ReleaseTrait(string name)
    {
        lock (_gate)
        {
            if (!_traitSlots.TryGetValue(name, out var slot) || --_traitReferences[slot] > 0)
            {
                return;
            }

            _traitSlots.Remove(name);
            _freeTraitSlots.Push(slot);
            var names = (string?[])_traitNames.Clone();
            names[slot] = null;
            _traitNames = names;
            _traitVersion++;
        }
    }

    internal AggregateSpec AcquireAggregate(AggregateRef aggregate)
    {
        var key = AggregateKey.Of(aggregate);
        lock (_gate)
        {
            if (!_specs.TryGetValue(key, out var spec))
            {
                var slot = _freeSpecSlots.TryPop(out var free) ? free : _specCapacity++;
                spec = new AggregateSpec(key, slot, _aggregateVersion + 1);
                _specs[key] = spec;
                _specsByType = _specsByType.With(spec);
                _aggregateVersion++;
            }

            spec.References++;
            return spec;
        }
    }

    internal void ReleaseAggregate(AggregateSpec spec)
    {
        lock (_gate)
        {
            if (--spec.References > 0)
            {
                return;
            }

            _specs.Remove(spec.Key);
            _freeSpecSlots.Push(spec.Slot);
            _specsByType = _specsByType.Without(spec);
        }
    }

    /// <summary>The slot of a segment id. Segment slots are never reused, so a stale membership bit can never point at another segment.</summary>
    public int SegmentSlot(string segmentId)
    {
        lock (_gate)
        {
            if (_segmentSlots.TryGetValue(segmentId, out var slot))
            {
                return slot;
            }

            slot = _segmentIds.Length;
            _segmentSlots[segmentId] = slot;
            _segmentIds = [.. _segmentIds, segmentId];
            return slot;
        }
    }

    public string SegmentId(int slot) => _segmentIds[slot];

    private sealed record SpecsByEventType(IReadOnlyDictionary<string, AggregateSpec[]> ByType, AggregateSpec[] Any)
    {
        public static SpecsByEventType Empty { get; } = new(new Dictionary<string, AggregateSpec[]>(StringComparer.Ordinal), []);

        public SpecsByEventType With(AggregateSpec spec)
        {
            if (spec.Key.EventType is not { } type)
            {
                return this with { Any = [.. Any, spec] };
            }

            var byType = new Dictionary<string, AggregateSpec[]>(ByType, StringComparer.Ordinal);
            byType[type] = byType.TryGetValue(type, out var existing) ? [.. existing, spec] : [spec];
            return this with { ByType = byType };
        }

        public SpecsByEventType Without(AggregateSpec spec)
        {
            if (spec.Key.EventType is not { } type)
            {
                return this with { Any = [.. Any.Where(s => s != spec)] };
            }

            var byType = new Dictionary<string, AggregateSpec[]>(ByType, StringComparer.Ordinal);
            var rest = byType[type].Where(s => s != spec).ToArray();
            if (rest.Length == 0)
            {
                byType.Remove(type);
            }
            else
            {
                byType[type] = rest;
            }

            return this with { ByType = byType };
        }
    }
}
