using System.Net;
using Audience.Silo.Grains;

namespace Audience.Silo.Tests;

/// <summary>The partitions' homes: balanced, the same on every silo, and mostly unmoved when a silo joins.</summary>
public sealed class PartitionPlacementTests
{
    public static TheoryData<int, int> Shapes()
    {
        var data = new TheoryData<int, int>();
        foreach (var silos in new[] { 1, 2, 3, 4, 5, 7 })
        {
            foreach (var partitions in new[] { 1, 2, 3, 4, 8, 12, 16, 64 })
            {
                data.Add(silos, partitions);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_silo_gets_its_share_whatever_the_addresses(int silos, int partitions)
    {
        var random = new Random(silos * 1000 + partitions);
        for (var trial = 0; trial < 50; trial++)
        {
            var cluster = Silos(random, silos);
            var homes = Homes(partitions, cluster);
            var loads = cluster.Select(s => homes.Count(h => h == s)).ToArray();
            Assert.All(loads, load => Assert.InRange(load, partitions / silos, (partitions + silos - 1) / silos));

            // Every silo computes the same homes, whatever order its membership lists the silos in.
            Assert.Equal(homes, Homes(partitions, cluster.OrderBy(_ => random.Next()).ToArray()));
        }
    }

    [Theory]
    [InlineData(2, 16)]
    [InlineData(3, 16)]
    [InlineData(4, 64)]
    public void A_silo_joining_moves_few_partitions_and_only_to_itself_mostly(int silos, int partitions)
    {
        var random = new Random(silos + partitions);
        var moved = 0;
        var movedElsewhere = 0;
        const int Trials = 200;
        for (var trial = 0; trial < Trials; trial++)
        {
            var cluster = Silos(random, silos + 1);
            var before = Homes(partitions, cluster[..silos]);
            var after = Homes(partitions, cluster);
            for (var p = 0; p < partitions; p++)
            {
                if (before[p] != after[p])
                {
                    moved++;
                    movedElsewhere += after[p] == cluster[silos] ? 0 : 1;
                }
            }
        }

        // The newcomer's share has to move; a placement that reshuffled everything would move about partitions × silos ÷ (silos + 1).
        var share = (double)partitions / (silos + 1);
        Assert.InRange(moved / (double)Trials, share * 0.9, share * 1.6);
        Assert.True(movedElsewhere < moved / 3, $"{movedElsewhere} of {moved} moves went between old silos");
    }

    [Fact]
    public void No_silos_no_home() => Assert.Null(PartitionPlacement.Home(0, 4, []));

    private static SiloAddress[] Homes(int partitions, SiloAddress[] silos) =>
        Enumerable.Range(0, partitions).Select(p => PartitionPlacement.Home(p, partitions, silos)!).ToArray();

    private static SiloAddress[] Silos(Random random, int count) =>
        Enumerable.Range(0, count)
            .Select(_ => SiloAddress.New(IPAddress.Loopback, random.Next(1024, 65535), random.Next(100_000, 200_000)))
            .DistinctBy(s => s.ToParsableString())
            .ToArray() is { } silos && silos.Length == count ? silos : Silos(random, count);
}
