using Audience.Rules.Compilation;
using Audience.Rules.Engines;
using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using BenchmarkDotNet.Attributes;
using static Audience.Benchmarks.BenchmarkData;

namespace Audience.Benchmarks;

/// <summary>One rule against one profile: the compiled delegate, and the tree-walking interpreter for scale.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class SingleRuleBenchmarks
{
    private RuleCatalog _catalog = null!;
    private CompiledRule _simple = null!;
    private CompiledRule _windowed = null!;
    private UserProfile _profile = null!;

    [GlobalSetup]
    public void Setup()
    {
        _catalog = new RuleCatalog();
        _simple = Compile("totalSpent > 1000", _catalog);
        _windowed = Compile("totalSpent > 1000 and count(purchase within 7d) >= 3 and traits.country in [\"DE\", \"AT\", \"CH\"]", _catalog);
        _profile = new UserProfile("u1", _catalog);
        _profile.Apply(new RuleEvent("identify", Now, new Dictionary<string, Audience.Rules.Value> { ["country"] = Audience.Rules.Value.FromString("DE") }), Now);
        for (var i = 0; i < 5; i++)
        {
            _profile.Apply(Purchase(300, Now - (i * 3_600_000L)), Now);
        }
    }

    [Benchmark(Baseline = true)]
    public bool Compiled_Comparison() => _simple.Evaluate(_profile, Now);

    [Benchmark]
    public bool Compiled_ThreeClausesWithWindow() => _windowed.Evaluate(_profile, Now);

    [Benchmark]
    public bool Interpreted_ThreeClausesWithWindow() => RuleInterpreter.Evaluate(_windowed.Rule, _profile, Now);
}

/// <summary>
/// One purchase event against 1,000 active segments, 5% of which read what a purchase changes. "Indexed" is what
/// the Silo does; "All" evaluates every segment and is the cost the index saves.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class SegmentIndexBenchmarks
{
    private SegmentIndex _index = null!;
    private UserProfile _profile = null!;
    private RuleEvent _purchase = null!;
    private EventEffects _effects;
    private CompiledRule[] _all = null!;
    private readonly List<MembershipChange> _changes = [];
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        var catalog = new RuleCatalog();
        _index = new SegmentIndex(catalog);
        foreach (var (id, rule) in ThousandSegments())
        {
            _index.Upsert(id, Compile(rule, catalog));
        }

        _all = [.. _index.Segments.Select(s => s.Rule)];
        _profile = new UserProfile("u1", catalog);
        _now = Now;
        _purchase = Purchase(120, _now);
        for (var i = 0; i < 20; i++)
        {
            var effects = _profile.Apply(Purchase(120, _now), _now);
            _index.Evaluate(_profile, "purchase", effects, _now, _changes);
        }

        _effects = _profile.Apply(_purchase, _now);
        var affected = _index.Affected("purchase", _effects).Count;
        Console.WriteLine($"// {affected} of {_index.Count} segments are affected by a purchase");
    }

    [Benchmark(Baseline = true)]
    public int Reevaluate_Indexed()
    {
        _changes.Clear();
        _index.Evaluate(_profile, "purchase", _effects, _now, _changes);
        return _changes.Count;
    }

    [Benchmark]
    public int Reevaluate_AllSegments()
    {
        var matches = 0;
        foreach (var rule in _all)
        {
            if (rule.Evaluate(_profile, _now))
            {
                matches++;
            }
        }

        return matches;
    }

    /// <summary>The whole turn for one event: apply it to the profile (stats and windows), then re-evaluate.</summary>
    [Benchmark]
    public int ApplyAndReevaluate_Indexed()
    {
        _changes.Clear();
        var effects = _profile.Apply(_purchase, _now);
        _index.Evaluate(_profile, "purchase", effects, _now, _changes);
        return _changes.Count;
    }
}

/// <summary>
/// The two segment engines (<c>Rules:Engine</c>) on one purchase event, at 1 to 1,000 segments of the thousand's mix
/// (5% read what a purchase changes; at 1 and 10 segments, one does): what a user grain's evaluation costs. The
/// profile stays the same, so no membership flips: the steady state of a user who keeps buying.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class SegmentEngineBenchmarks
{
    private SegmentIndex _index = null!;
    private NRulesSegmentEngine _nrules = null!;
    private UserProfile _profile = null!;
    private EventEffects _effects;
    private readonly List<MembershipChange> _changes = [];
    private long _now;

    [Params(1, 10, 100, 1000)]
    public int SegmentCount { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var catalog = new RuleCatalog();
        _index = new SegmentIndex(catalog);
        foreach (var (id, rule) in Segments(SegmentCount))
        {
            _index.Upsert(id, Compile(rule, catalog));
        }

        _nrules = new NRulesSegmentEngine(_index);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _nrules.Rebuild();
        Console.WriteLine($"// NRules compiled {_nrules.RuleCount} rules in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms");
        _profile = new UserProfile("u1", catalog);
        _now = Now;
        for (var i = 0; i < 20; i++)
        {
            var effects = _profile.Apply(Purchase(120, _now), _now);
            _index.Evaluate(_profile, "purchase", effects, _now, _changes);
        }

        _effects = _profile.Apply(Purchase(120, _now), _now);
        Console.WriteLine($"// {_index.Affected("purchase", _effects).Count} of {_index.Count} segments are affected by a purchase");
    }

    [Benchmark(Baseline = true)]
    public int Compiled()
    {
        _changes.Clear();
        _index.Evaluate(_profile, "purchase", _effects, _now, _changes);
        return _changes.Count;
    }

    [Benchmark]
    public int NRules()
    {
        _changes.Clear();
        _nrules.Evaluate(_profile, "purchase", _effects, _now, _changes);
        return _changes.Count;
    }
}

/// <summary>Authoring cost: a 1 KB rule from text to a compiled delegate.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class CompileBenchmarks
{
    private readonly string _rule = OneKilobyteRule();
    private readonly RuleCatalog _catalog = new();

    [Benchmark]
    public int ParseCheckCompile_1KB()
    {
        using var compiled = Compile(_rule, _catalog);
        return compiled.Aggregates.Count;
    }
}

/// <summary>The per-event cost of one windowed aggregate.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class AggregateBenchmarks
{
    private WindowedAggregate _aggregate = null!;
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        _aggregate = new WindowedAggregate(BucketLayout.For(7 * 86_400_000L));
        _now = Now;
    }

    [Benchmark]
    public void Add_InOrder()
    {
        _now += 1_000;
        _aggregate.Add(_now, 12.5m, _now);
    }

    [Benchmark]
    public long Query() => _aggregate.Query(_now).Count;
}
