using Audience.Rules.Profiles;

namespace Audience.Rules.Tests;

public class MembershipDictionaryTests
{
    [Fact]
    public void RandomEntersAndLeaves_AgreeWithADictionary_AndEnumerateInSlotOrder()
    {
        var random = new Random(12);
        var map = new MembershipDictionary();
        var expected = new Dictionary<int, long>();
        for (var step = 0; step < 20_000; step++)
        {
            var slot = random.Next(300);
            if (random.Next(3) == 0)
            {
                Assert.Equal(expected.Remove(slot), map.Remove(slot));
            }
            else
            {
                var since = random.NextInt64(1_000_000);
                expected[slot] = since;
                map.Set(slot, since);
            }

            Assert.Equal(expected.Count, map.Count);
        }

        Assert.Equal(expected.OrderBy(e => e.Key), map);
        Assert.Equal(expected.Keys.Order(), map.Keys);
        foreach (var slot in Enumerable.Range(0, 300))
        {
            Assert.Equal(expected.TryGetValue(slot, out var since), map.TryGetValue(slot, out var found));
            Assert.Equal(since, found);
            Assert.Equal(expected.ContainsKey(slot), map.ContainsKey(slot));
        }
    }

    [Fact]
    public void ACapacitySetBeforehand_TakesItsEntriesWithoutGrowing_AndAMissingSlotIsNotFound()
    {
        var map = new MembershipDictionary();
        map.EnsureCapacity(3);
        map.Set(30, 3);
        map.Set(10, 1);
        map.Set(20, 2);
        map.Set(20, 22);
        Assert.Equal([10, 20, 30], map.Keys);
        Assert.Equal([1L, 22L, 3L], map.Values);
        Assert.Equal(22, map[20]);
        Assert.Throws<KeyNotFoundException>(() => map[15]);
        Assert.False(map.Remove(15));
    }
}
