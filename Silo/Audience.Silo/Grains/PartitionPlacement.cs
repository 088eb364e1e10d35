using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Audience.Silo.Grains;

/// <summary>
/// Places each partition's reader by a balanced rendezvous hash over the active silos: partitions, in order, each go
/// to the silo that scores highest for them among those with room left (at most ⌈partitions ÷ silos⌉ each). Every
/// silo computes the same answer from the same membership, every silo gets its share even with few partitions, and a
/// silo that joins or leaves moves only some of them. The reader checks the same function against the current
/// membership and steps aside when another silo has become its home.
/// </summary>
[GenerateSerializer]
[Immutable]
public sealed class PartitionPlacement : PlacementStrategy
{
    public static PartitionPlacement Instance { get; } = new();

    /// <summary>The silo partition <paramref name="partition"/> of <paramref name="partitions"/> belongs on, or null without silos.</summary>
    public static SiloAddress? Home(long partition, int partitions, IEnumerable<SiloAddress> silos)
    {
        var candidates = silos.Distinct().OrderBy(s => s.ToParsableString(), StringComparer.Ordinal).ToArray();
        if (candidates.Length == 0)
        {
            return null;
        }

        if (partitions <= partition)
        {
            return candidates.MaxBy(s => Score(partition, s));
        }

        var capacity = (partitions + candidates.Length - 1) / candidates.Length;
        var load = new int[candidates.Length];
        for (var p = 0; p < partitions; p++)
        {
            var best = -1;
            for (var i = 0; i < candidates.Length; i++)
            {
                if (load[i] < capacity && (best < 0 || Score(p, candidates[i]) > Score(p, candidates[best])))
                {
                    best = i;
                }
            }

            load[best]++;
            if (p == partition)
            {
                return candidates[best];
            }
        }

        return null;
    }

    private static ulong Score(long partition, SiloAddress silo)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in silo.ToParsableString())
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        hash ^= (ulong)partition * 0x9E3779B97F4A7C15UL;
        hash ^= hash >> 33;
        hash *= 0xFF51AFD7ED558CCDUL;
        hash ^= hash >> 33;
        return hash;
    }
}

/// <summary>Marks a grain keyed by partition number for <see cref="PartitionPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class PartitionPlacementAttribute() : PlacementAttribute(PartitionPlacement.Instance);

/// <summary>Chooses the home silo of the partition among the silos compatible with the grain.</summary>
public sealed class PartitionPlacementDirector(Processing.PartitionSupervisor supervisor) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        return Task.FromResult(PartitionPlacement.Home(target.GrainIdentity.GetIntegerKey(), supervisor.Partitions, silos) ?? context.LocalSilo);
    }
}
