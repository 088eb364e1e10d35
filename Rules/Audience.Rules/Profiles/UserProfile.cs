using Audience.Rules.Checking;

namespace Audience.Rules.Profiles;

/// <summary>
/// What applying one event changed, so that only the segments that read it are re-evaluated. A user's first
/// event sets <see cref="NewProfile"/>: every segment is then evaluated once, since a rule such as
/// <c>traits.country != "DE"</c> can hold for a user whose first event touched nothing it reads.
/// </summary>
public readonly record struct EventEffects(ProfileFields Fields, IReadOnlyList<string> Traits, bool NewProfile = false)
{
    public static IReadOnlyList<string> NoTraits { get; } = [];
}

/// <summary>
/// Everything rules can read about one user: built-in statistics, traits, windowed aggregates and segment
/// memberships. It is bound to the <see cref="RuleCatalog"/> of its process, whose slots it is indexed by.
/// Not thread-safe: in the Silo a profile has exactly one writer, the user's actor.
/// </summary>
public sealed class UserProfile
{
    private readonly RuleCatalog _catalog;
    private readonly Dictionary<string, Value> _traits = new(StringComparer.Ordinal);
    private Value[] _traitSlots = [];
    private int _traitVersion = -1;
    private WindowedAggregate?[] _aggregates = [];
    private AggregateSpec?[] _aggregateOwners = [];
    private ulong[] _memberBits = [];
    private readonly MembershipDictionary _memberSince = new();

    public UserProfile(string userId, RuleCatalog catalog)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        UserId = userId;
        _catalog = catalog;
    }

    public string UserId { get; }

    public RuleCatalog Catalog => _catalog;

    public long EventCount { get; set; }

    /// <summary>The sum of <c>properties.amount</c> over the user's <c>purchase</c> events.</summary>
    public decimal TotalSpent { get; set; }

    /// <summary>The number of <c>purchase</c> events.</summary>
    public long OrderCount { get; set; }

    /// <summary>The earliest event time seen, in Unix milliseconds; null before the first event.</summary>
    public long? FirstSeen { get; set; }

    /// <summary>The latest event time seen, in Unix milliseconds; null before the first event.</summary>
    public long? LastSeen { get; set; }

    public IReadOnlyDictionary<string, Value> Traits => _traits;

    /// <summary>
    /// Applies one event: statistics, traits (from <c>identify</c>), and every aggregate the catalog's rules need.
    /// <paramref name="nowMs"/> is the processing time, which places the event's window.
    /// </summary>
    public EventEffects Apply(RuleEvent e, long nowMs)
    {
        var fields = ProfileFields.EventCount | ProfileFields.LastSeen;
        var isNew = EventCount == 0;
        EventCount++;
        if (FirstSeen is null || e.TimestampMs < FirstSeen)
        {
            FirstSeen = e.TimestampMs;
            fields |= ProfileFields.FirstSeen;
        }

        if (LastSeen is null || e.TimestampMs > LastSeen)
        {
            LastSeen = e.TimestampMs;
        }

        if (e.Type == RuleEvent.Purchase)
        {
            OrderCount++;
            fields |= ProfileFields.OrderCount;
            if (e.Properties.TryGetValue("amount", out var amount) && amount.IsSummable)
            {
                TotalSpent += amount.AsNumber;
                fields |= ProfileFields.TotalSpent;
            }
        }

        var traits = EventEffects.NoTraits;
        if (e.Type == RuleEvent.Identify && e.Properties.Count > 0)
        {
            // Only traits whose value changes: a rule reading a trait that kept its value keeps its outcome.
            List<string>? changed = null;
            foreach (var (name, value) in e.Properties)
            {
                var held = _traits.TryGetValue(name, out var current) ? current : Value.Missing;
                var next = value.Kind is ValueKind.Null ? Value.Missing : value;
                if (!held.Equals(next))
                {
                    SetTrait(name, value);
                    (changed ??= new List<string>(e.Properties.Count)).Add(name);
                }
            }

            traits = changed ?? EventEffects.NoTraits;
        }

        var (ofType, ofAny) = _catalog.AggregatesFor(e.Type);
        Feed(ofType, e, nowMs);
        Feed(ofAny, e, nowMs);
        return new EventEffects(fields, traits, isNew);
    }

    private void Feed(AggregateSpec[] specs, RuleEvent e, long nowMs)
    {
        foreach (var spec in specs)
        {
            if (spec.TryTake(e, out var value))
            {
                StateFor(spec, create: true)!.Add(e.TimestampMs, value, nowMs);
            }
        }
    }

    /// <summary>Sets a trait; <see cref="Value.Null"/> or <see cref="Value.Missing"/> removes it.</summary>
    public void SetTrait(string name, Value value)
    {
        if (value.Kind is ValueKind.Missing or ValueKind.Null)
        {
            _traits.Remove(name);
        }
        else
        {
            _traits[name] = value;
        }

        _traitVersion = -1;
    }

    /// <summary>The trait held in a catalog slot; what compiled rules read.</summary>
    public Value TraitAt(int slot)
    {
        if (_traitVersion != _catalog.TraitVersion)
        {
            RebindTraits();
        }

        return (uint)slot < (uint)_traitSlots.Length ? _traitSlots[slot] : Value.Missing;
    }

    private void RebindTraits()
    {
        var version = _catalog.TraitVersion;
        var names = _catalog.TraitNames;
        if (_traitSlots.Length != names.Length)
        {
            _traitSlots = new Value[names.Length];
        }

        for (var i = 0; i < names.Length; i++)
        {
            _traitSlots[i] = names[i] is { } name && _traits.TryGetValue(name, out var v) ? v : Value.Missing;
        }

        _traitVersion = version;
    }

    /// <summary>This user's state for an aggregate spec; null when the user has no events for it.</summary>
    public WindowedAggregate? Aggregate(AggregateSpec spec) => StateFor(spec, create: false);

    /// <summary>Replaces the state of one aggregate, for loading a stored profile or backfilling a new spec.</summary>
    public void SetAggregate(AggregateSpec spec, WindowedAggregate? state)
    {
        EnsureAggregateSlot(spec.Slot);
        _aggregates[spec.Slot] = state;
        _aggregateOwners[spec.Slot] = state is null ? null : spec;
    }

    /// <summary>The aggregates this profile holds state for, with their specs.</summary>
    public IEnumerable<(AggregateSpec Spec, WindowedAggregate State)> AggregateStates()
    {
        for (var i = 0; i < _aggregates.Length; i++)
        {
            if (_aggregates[i] is { } state && _aggregateOwners[i] is { } spec && spec.References > 0)
            {
                yield return (spec, state);
            }
        }
    }

    private WindowedAggregate? StateFor(AggregateSpec spec, bool create)
    {
        var slot = spec.Slot;
        if ((uint)slot < (uint)_aggregates.Length && ReferenceEquals(_aggregateOwners[slot], spec))
        {
            return _aggregates[slot];
        }

        // No state, or state left by an earlier spec that had this slot: start afresh.
        if (!create)
        {
            return null;
        }

        EnsureAggregateSlot(slot);
        var state = new WindowedAggregate(spec.Layout);
        _aggregates[slot] = state;
        _aggregateOwners[slot] = spec;
        return state;
    }

    private void EnsureAggregateSlot(int slot)
    {
        if (slot < _aggregates.Length)
        {
            return;
        }

        var size = Math.Max(slot + 1, _catalog.AggregateCapacity);
        Array.Resize(ref _aggregates, size);
        Array.Resize(ref _aggregateOwners, size);
    }

    public bool IsMember(int segmentSlot) =>
        (uint)(segmentSlot >> 6) < (uint)_memberBits.Length && (_memberBits[segmentSlot >> 6] & (1UL << segmentSlot)) != 0;

    /// <summary>When the user entered the segment, or null when not a member.</summary>
    public long? MemberSince(int segmentSlot) => _memberSince.TryGetValue(segmentSlot, out var since) ? since : null;

    /// <summary>The segments the user is in (catalog slots) with the time they entered.</summary>
    public MembershipDictionary Memberships => _memberSince;

    public void Enter(int segmentSlot, long sinceMs)
    {
        var word = segmentSlot >> 6;
        if (word >= _memberBits.Length)
        {
            Array.Resize(ref _memberBits, word + 1);
        }

        _memberBits[word] |= 1UL << segmentSlot;
        _memberSince.Set(segmentSlot, sinceMs);
    }

    public void Leave(int segmentSlot)
    {
        var word = segmentSlot >> 6;
        if (word < _memberBits.Length)
        {
            _memberBits[word] &= ~(1UL << segmentSlot);
        }

        _memberSince.Remove(segmentSlot);
    }
}
