using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Audience.Silo.Grains;

/// <summary>
/// Places each partition's reader by a balanced rendezvous hash over the active silos: partitions, in order, each go
/// to the silo that scores highest for them among those with room left (⌊partitions ÷ silos⌋ each, one more for as
/// many as the remainder). Every silo computes the same answer from the same membership, every silo gets its share
/// even with few partitions, and a silo that joins or leaves moves only some of them. The reader checks the same function against the current
/// membership and steps aside when another silo has become its home.
/// </summary>
[GenerateSerializer]
[Immutable]
public sealed class PartitionPlacement : PlacementStrategy
{
    public static PartitionPlacement Instance { get; } = new();

    /// <summary>
    /// The home of partition <paramref name="partition"/> of <paramref name="partitions"/> among the silos this silo
    /// knows to be active. The director places by it and the reader checks against it, so both use the same view; a
    /// view that lags (a silo has just joined) converges within a membership refresh.
    /// </summary>
    public static SiloAddress? Home(long partition, int partitions, IClusterMembershipService membership) =>
        Home(partition, partitions, membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress));

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

        // Each silo takes ⌊partitions ÷ silos⌋, and the first (partitions mod silos) to fill up one more: every silo
        // gets its share, none more than one above another.
        var share = partitions / candidates.Length;
        var larger = partitions % candidates.Length;
        var load = new int[candidates.Length];
        for (var p = 0; p < partitions; p++)
        {
            var best = -1;
            for (var i = 0; i < candidates.Length; i++)
            {
                var room = load[i] < share || (load[i] == share && larger > 0);
                if (room && (best < 0 || Score(p, candidates[i]) > Score(p, candidates[best])))
                {
                    best = i;
                }
            }

            if (load[best]++ == share)
            {
                larger--;
            }

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

/// <summary>
/// Places the partition on its home among the active silos. Not among the silos Orleans calls compatible: that view
/// follows the cluster's type manifest, which can lag membership by many seconds after a silo joins, and a reader
/// that steps aside for a home the director does not see is placed back where it was, again and again. Every silo
/// runs the same binary, so an active silo can host any partition.
/// </summary>
public sealed class PartitionPlacementDirector(Processing.PartitionSupervisor supervisor, IClusterMembershipService membership)
    : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context) =>
        Task.FromResult(PartitionPlacement.Home(target.GrainIdentity.GetIntegerKey(), supervisor.Partitions, membership) ?? context.LocalSilo);
}
