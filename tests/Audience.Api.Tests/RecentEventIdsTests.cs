using Audience.Silo.Processing;

namespace Audience.Api.Tests;

public sealed class RecentEventIdsTests
{
    [Fact]
    public void Refuses_a_recent_id_forgets_the_oldest_beyond_capacity_and_survives_a_round_trip()
    {
        var recent = new RecentEventIds();
        Assert.True(recent.Add("a"));
        Assert.False(recent.Add("a"));
        for (var i = 0; i < RecentEventIds.Capacity - 1; i++)
        {
            Assert.True(recent.Add($"e{i}"));
        }

        Assert.False(recent.Add("a"));
        Assert.True(recent.Add("one more")); // "a" is now the oldest beyond capacity
        Assert.True(recent.Add("a"));

        var restored = new RecentEventIds([.. recent.Hashes]);
        Assert.Equal(recent.Hashes, restored.Hashes);
        Assert.False(restored.Add("one more"));
        Assert.False(restored.Add("a"));
    }
}
