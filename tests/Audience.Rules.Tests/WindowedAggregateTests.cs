using Audience.Rules.Profiles;
using static Audience.Rules.Tests.RuleHarness;

namespace Audience.Rules.Tests;

public class WindowedAggregateTests
{
    [Theory]
    [InlineData(1, 1_000, 60)]
    [InlineData(60, 30_000, 120)]
    [InlineData(7 * 24 * 60, 7_200_000, 84)]
    [InlineData(30 * 24 * 60, 21_600_000, 120)]
    [InlineData(90 * 24 * 60, 86_400_000, 90)]
    public void Layout_ForWindow_UsesAtMost120Buckets(long windowMinutes, long width, int count)
    {
        var layout = BucketLayout.For(windowMinutes * Minute);
        Assert.Equal((width, count), (layout.WidthMs, layout.Count));
        Assert.True(layout.WidthMs * layout.Count >= windowMinutes * Minute);
    }

    [Fact]
    public void Add_TracksCountSumMinMax()
    {
        var aggregate = new WindowedAggregate(BucketLayout.For(Hour));
        aggregate.Add(Now - (10 * Minute), 5, Now);
        aggregate.Add(Now - (10 * Minute), 7, Now);
        aggregate.Add(Now - Minute, -2, Now);
        Assert.Equal(new WindowTotals(3, 10, -2, 7), aggregate.Query(Now));
    }

    [Fact]
    public void Query_ExcludesBucketsThatLeftTheWindow()
    {
        var aggregate = new WindowedAggregate(BucketLayout.For(Hour));
        aggregate.Add(Now - (50 * Minute), 1, Now);
        aggregate.Add(Now - (5 * Minute), 2, Now);
        Assert.Equal(2, aggregate.Query(Now).Count);
        Assert.Equal(new WindowTotals(1, 2, 2, 2), aggregate.Query(Now + (15 * Minute)));
        Assert.Equal(WindowTotals.Empty, aggregate.Query(Now + (2 * Hour)));
    }

    [Fact]
    public void Add_OldEvent_IsIgnored_FutureEvent_CountsNow()
    {
        var aggregate = new WindowedAggregate(BucketLayout.For(Hour));
        aggregate.Add(Now - (2 * Hour), 1, Now);
        Assert.Equal(0, aggregate.Query(Now).Count);
        aggregate.Add(Now + Day, 1, Now);
        Assert.Equal(1, aggregate.Query(Now).Count);
        Assert.Equal(0, aggregate.Query(Now + (2 * Hour)).Count);
    }

    [Fact]
    public void Memory_IsBoundedByTheBucketCount_WhateverTheRate()
    {
        var layout = BucketLayout.For(Hour);
        var aggregate = new WindowedAggregate(layout);
        for (var i = 0; i < 100_000; i++)
        {
            var at = Now + (i * 1_000L);
            aggregate.Add(at, 1, at);
        }

        Assert.True(aggregate.BucketCount <= layout.Count, $"{aggregate.BucketCount} buckets");
        // The window is the current 30 s bucket (10 events so far) and the 119 before it (30 each).
        Assert.Equal(10 + (119 * 30), aggregate.Query(Now + (99_999 * 1_000L)).Count);
    }

    [Fact]
    public void NextExpiry_IsWhenTheOldestLiveBucketLeaves()
    {
        var layout = BucketLayout.For(Hour);
        var aggregate = new WindowedAggregate(layout);
        aggregate.Add(Now - (30 * Minute), 1, Now);
        var next = aggregate.NextExpiry(Now)!.Value;
        Assert.Equal(1, aggregate.Query(next - 1).Count);
        Assert.Equal(0, aggregate.Query(next).Count);
        Assert.Null(aggregate.NextExpiry(next));
    }

    [Fact]
    public void Restore_FromBuckets_GivesTheSameTotals()
    {
        var layout = BucketLayout.For(Day);
        var aggregate = new WindowedAggregate(layout);
        aggregate.Add(Now - Hour, 3, Now);
        aggregate.Add(Now - (2 * Hour), 4, Now);
        var copy = new WindowedAggregate(layout, aggregate.Buckets.ToArray());
        Assert.Equal(aggregate.Query(Now), copy.Query(Now));
    }
}

public class SummableBoundTests
{
    [Fact]
    public void HugeAmounts_AreNotSummed_AndCannotOverflow()
    {
        var catalog = new RuleCatalog();
        using var rule = Compile("sum(purchase.amount within 1d) > 0", catalog);
        var profile = new UserProfile("u", catalog);
        for (var i = 0; i < 3; i++)
        {
            profile.Apply(Event("purchase", Now, ("amount", decimal.MaxValue)), Now);
        }

        profile.Apply(Event("purchase", Now, ("amount", Value.MaxSummable)), Now);
        Assert.Equal(Value.MaxSummable, profile.TotalSpent);
        Assert.Equal(4, profile.OrderCount);
        Assert.True(rule.Evaluate(profile, Now));
    }
}
