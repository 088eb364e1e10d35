using Audience.Rules.Profiles;
using Audience.Silo.Campaigns;
using Audience.Silo.Contracts;
using BenchmarkDotNet.Attributes;
using static Audience.Benchmarks.BenchmarkData;

namespace Audience.Benchmarks;

/// <summary>
/// What a membership change costs the campaigns: one user entering one segment, evaluated by the campaigns' NRules
/// rule set (a session per evaluation, as the user grains do), with the campaigns spread over 100 segments (so 1% of
/// them listen to the change), half with a condition in the rule language and half with a cap. The compile time of the
/// rule set is printed by the setup.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class CampaignBenchmarks
{
    private const int Segments = 100;

    private CampaignRules _rules = null!;
    private UserProfile _profile = null!;
    private MembershipChangeMessage[] _change = null!;
    private MembershipChangeMessage[] _other = null!;
    private readonly List<CampaignSend> _sends = [];

    [Params(1, 10, 100, 1000)]
    public int CampaignCount { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var catalog = new RuleCatalog();
        var campaigns = Enumerable.Range(0, CampaignCount).Select(i => new CampaignRecord(
            $"c{i}", $"campaign {i}", $"s{i % Segments}", "email", new CampaignContent("t", null, ["orderCount"]), Campaign.Active, Campaign.OnEnter,
            i % 2 == 0 ? "totalSpent > 100" : null, i % 2 == 1 ? [new CampaignCap(1, "7d", Campaign.CampaignScope)] : [], i % 7, null, 1, 0, 0)).ToList();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _rules = CampaignRules.Build(campaigns, condition => Compile(condition, catalog), "bench");
        Console.WriteLine($"// NRules compiled {CampaignCount} campaigns in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms");
        _profile = new UserProfile("u1", catalog);
        _profile.Apply(Purchase(500, Now), Now);
        _change = [new MembershipChangeMessage("u1", "s0", "added", "rule_evaluation", DateTimeOffset.FromUnixTimeMilliseconds(Now),
            new MembershipChangeMetadata(1, "rule", "event", "e1", 0, "u1/s0/e1"))];
        _other = [_change[0] with { SegmentId = "quiet" }];
    }

    /// <summary>One change into a segment that 1% of the campaigns listen to.</summary>
    [Benchmark]
    public int EnterOneSegment()
    {
        _sends.Clear();
        return _rules.Evaluate(_change, _profile, _sends, Now).Count;
    }

    /// <summary>One change into a segment no campaign listens to: the common case, which creates no session.</summary>
    [Benchmark]
    public int EnterASegmentNoCampaignListensTo()
    {
        _sends.Clear();
        return _rules.Evaluate(_other, _profile, _sends, Now).Count;
    }

    [GlobalCleanup]
    public void Cleanup() => _rules.Dispose();
}
