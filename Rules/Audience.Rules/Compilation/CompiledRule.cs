using Audience.Rules.Checking;
using Audience.Rules.Model;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;

namespace Audience.Rules.Compilation;

/// <summary>What a compiled rule is evaluated against: a profile, the moment, and (inside filters) the event.</summary>
public readonly struct EvaluationContext(UserProfile profile, long nowMs, RuleEvent? e = null)
{
    public UserProfile Profile { get; } = profile;

    public long Now { get; } = nowMs;

    public RuleEvent? Event { get; } = e;
}

internal delegate bool Predicate(in EvaluationContext c);

/// <summary>For a profile and a moment, the next instant at which a time-dependent part of a rule may change value.</summary>
internal delegate long? TimeProbe(UserProfile profile, long nowMs);

/// <summary>A time the rule compares with a moving bound (<c>lastSeen &lt; 30d ago</c>): the field and the offset.</summary>
public readonly record struct TimeSource(FieldRef Field, long OffsetMs);

/// <summary>
/// A checked rule compiled to a delegate. Immutable and thread-safe; evaluation reads the profile by slot and
/// does no name lookups and no allocation. Dispose it when its segment is removed, so the catalog can stop
/// maintaining aggregates that nothing reads.
/// </summary>
public sealed class CompiledRule : IDisposable
{
    private readonly Predicate _predicate;
    private readonly TimeProbe[] _probes;
    private Action? _release;

    internal CompiledRule(Condition rule, RuleDependencies dependencies, Predicate predicate, TimeProbe[] probes,
        IReadOnlyList<TimeSource> timeSources, IReadOnlyList<AggregateSpec> aggregates, RuleCatalog catalog, Action release)
    {
        TimeSources = timeSources;
        Rule = rule;
        Text = RulePrinter.Print(rule);
        Dependencies = dependencies;
        _predicate = predicate;
        _probes = probes;
        Aggregates = aggregates;
        Catalog = catalog;
        _release = release;
    }

    public Condition Rule { get; }

    /// <summary>The canonical text of the rule.</summary>
    public string Text { get; }

    public RuleDependencies Dependencies { get; }

    /// <summary>The aggregate specs the rule reads, as interned in the catalog.</summary>
    public IReadOnlyList<AggregateSpec> Aggregates { get; }

    public RuleCatalog Catalog { get; }

    /// <summary>The times the rule compares with <c>ago</c> bounds.</summary>
    public IReadOnlyList<TimeSource> TimeSources { get; }

    /// <summary>Whether the rule's value can change with time alone (windows, <c>ago</c>).</summary>
    public bool IsTimeDependent => _probes.Length > 0;

    public bool Evaluate(UserProfile profile, long nowMs) => _predicate(new EvaluationContext(profile, nowMs));

    /// <summary>
    /// The earliest instant after <paramref name="nowMs"/> at which the rule's value may change without a new
    /// event, or null if it cannot. It may not actually change then; re-evaluate and ask again.
    /// </summary>
    public long? NextChange(UserProfile profile, long nowMs)
    {
        long? next = null;
        foreach (var probe in _probes)
        {
            if (probe(profile, nowMs) is { } at && at > nowMs && (next is null || at < next))
            {
                next = at;
            }
        }

        return next;
    }

    public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
}
