namespace Audience.LoadTesting.Tests;

public sealed class LoadPlanTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void IntendedSeconds_ConstantRate_EvenlySpacedUntilTheEnd()
    {
        var plan = new LoadPlan([Simulation.Inject(rate: 50, interval: TimeSpan.FromMilliseconds(500), during: TimeSpan.FromSeconds(2))]);

        Assert.Equal([0, 0.01, 0.02], new[] { 0L, 1, 2 }.Select(i => Math.Round(plan.IntendedSeconds(i), 9)));
        Assert.True(plan.IntendedSeconds(199) < 2);
        Assert.Equal(double.PositiveInfinity, plan.IntendedSeconds(200));
        Assert.Equal("open model, constant 100/s", plan.Describe());
    }

    [Fact]
    public void IntendedSeconds_Ramp_StartsFollowTheLinearRate()
    {
        var plan = new LoadPlan([Simulation.RampingInject(rate: 300, interval: Second, during: TimeSpan.FromSeconds(10), from: 100)]);
        var starts = Enumerable.Range(0, 2001).Select(i => plan.IntendedSeconds(i)).ToArray();

        // The rate goes 100/s -> 300/s over 10 s: 2,000 operations, 110 of them in the first second (100 -> 120/s).
        Assert.Equal(2000, starts.Count(double.IsFinite));
        Assert.Equal(110, starts.Count(t => t < 1));
        Assert.True(starts.Take(2000).Zip(starts.Skip(1).Take(1999)).All(p => p.First < p.Second));
        Assert.Equal("open model, ramp from 100/s to 300/s", plan.Describe());
    }

    [Fact]
    public void IntendedSeconds_Sequence_ARampStartsWhereTheRateBeforeEnded()
    {
        var plan = new LoadPlan(
        [
            Simulation.Inject(rate: 10, interval: Second, during: TimeSpan.FromSeconds(2)),
            Simulation.RampingInject(rate: 30, interval: Second, during: TimeSpan.FromSeconds(2)),
        ]);

        Assert.Equal(1.9, plan.IntendedSeconds(19), precision: 9);
        Assert.Equal(2.0, plan.IntendedSeconds(20), precision: 9);
        Assert.Equal(4.0, plan.TotalSeconds);
        Assert.Equal(20 + 40, Enumerable.Range(0, 100).Count(i => double.IsFinite(plan.IntendedSeconds(i))));
        Assert.Equal("open model, constant 10/s for 2 s, then ramp from 10/s to 30/s for 2 s", plan.Describe());
    }

    [Fact]
    public void CopiesAt_ClosedModels_ConstantAndRamping()
    {
        var plan = new LoadPlan(
        [
            Simulation.KeepConstant(copies: 4, during: TimeSpan.FromSeconds(2)),
            Simulation.RampingConstant(copies: 14, during: TimeSpan.FromSeconds(10)),
        ]);

        Assert.True(plan.IsClosed);
        Assert.Equal([4, 4, 4, 9, 14, 0], new[] { 0, 1.5, 2, 7, 11.99, 12 }.Select(plan.CopiesAt));
        Assert.Equal(14, plan.MaxCopies);
    }

    [Fact]
    public void WithLoadSimulations_OpenAndClosedMixed_Throws()
    {
        var scenario = Scenario.Create("mixed", _ => Task.FromResult(Response.Ok()));

        var error = Assert.Throws<ArgumentException>(() => scenario.WithLoadSimulations(
            Simulation.Inject(rate: 10, interval: Second, during: Second), Simulation.KeepConstant(copies: 2, during: Second)));
        Assert.Contains("all open", error.Message, StringComparison.Ordinal);
    }
}
