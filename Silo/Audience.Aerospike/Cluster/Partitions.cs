namespace Audience.Aerospike.Cluster;

/// <summary>
/// One namespace's partition map: for each replica index (0 = master) and each of the 4096 partitions, the owning node.
/// Replaced whole on change (copy on write), so commands read it without locks.
/// </summary>
internal sealed class Partitions
{
    public const int Count = 4096;

    public Partitions(int replicaCount)
    {
        Replicas = new Node?[replicaCount][];
        for (var i = 0; i < replicaCount; i++)
        {
            Replicas[i] = new Node?[Count];
        }
    }

    public Node?[][] Replicas { get; }

    /// <summary>The node for a partition: the master on the first attempt, the next replica on each retry of a read.</summary>
    public Node? Get(int partition, int replica) => Replicas[replica % Replicas.Length][partition];
}
