using Microsoft.Extensions.Logging;

namespace Audience.Aerospike.Cluster;

/// <summary>
/// The client's view of the cluster: active nodes and a partition map per namespace, kept current by a tend loop
/// (AEROSPIKE.md §6, §8.8). Each tend asks every node for <c>node</c>, <c>peers-generation</c> and
/// <c>partition-generation</c>; a changed peers generation fetches <c>peers-clear-std</c> (nodes join), a changed
/// partition generation fetches <c>replicas</c>; a node failing <see cref="AerospikeClientOptions.MaxTendFailures"/>
/// tends in a row is removed (nodes leave). With no node left, the seeds are tried again.
/// Nodes and maps are replaced whole, so commands read them without locks; only the tend loop writes.
/// </summary>
internal sealed class AerospikeCluster : IAsyncDisposable
{
    private static readonly string[] TendCommands = ["node", "peers-generation", "partition-generation"];
    private static readonly string[] ReplicasCommands = ["partition-generation", "replicas"];
    private static readonly string[] PeersCommands = ["peers-clear-std"];
    private static readonly string[] ValidateCommands = ["node", "build"];

    private readonly AerospikeClientOptions _options;
    private readonly IReadOnlyList<(string Host, int Port)> _seeds;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AerospikeMetrics _metrics;
    private readonly CancellationTokenSource _stopping = new();
    private volatile Node[] _nodes = [];
    private volatile Dictionary<string, Partitions> _maps = new(StringComparer.Ordinal);
    private Task _loop = Task.CompletedTask;

    public AerospikeCluster(AerospikeClientOptions options, TimeProvider time, ILogger logger, AerospikeMetrics metrics)
    {
        _options = options;
        _seeds = options.ParseHosts();
        _time = time;
        _logger = logger;
        _metrics = metrics;
        metrics.ObservePools(() => _nodes);
    }

    public IReadOnlyList<Node> Nodes => _nodes;

    /// <summary>Seeds and tends once (so the first command has a partition map), then starts the tend loop.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await TendAsync(cancellationToken).ConfigureAwait(false);
        if (_nodes.Length == 0)
        {
            throw new AerospikeException(ResultCode.InvalidNode, $"No Aerospike node answered at {_options.Hosts}.");
        }

        _loop = RunAsync(_stopping.Token);
    }

    /// <summary>The node serving a partition: replica 0 (master) for writes and first reads, the next replica on each read retry.</summary>
    public Node? GetNode(string ns, int partition, int replica)
    {
        if (_maps.TryGetValue(ns, out var map))
        {
            return map.Get(partition, replica) ?? map.Get(partition, 0);
        }

        return null;
    }

    /// <summary>Any active node, for info commands.</summary>
    public Node GetAnyNode()
    {
        var nodes = _nodes;
        return nodes.Length > 0 ? nodes[Random.Shared.Next(nodes.Length)]
            : throw new AerospikeException(ResultCode.InvalidNode, "The Aerospike cluster has no active node.");
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }

        foreach (var node in _nodes)
        {
            node.Dispose();
        }

        _stopping.Dispose();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.TendInterval, _time);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await TendAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.TendFailed(_logger, ex);
            }
        }
    }

    internal async Task TendAsync(CancellationToken cancellationToken)
    {
        _metrics.Tend();
        if (_nodes.Length == 0)
        {
            await SeedAsync(cancellationToken).ConfigureAwait(false);
        }

        var nodes = _nodes;
        var peersChanged = new List<Node>();
        var partitionsChanged = new List<Node>();
        var removed = new List<Node>();
        var answers = await Task.WhenAll(nodes.Select(n => TryInfoAsync(n, TendCommands, cancellationToken))).ConfigureAwait(false);
        for (var i = 0; i < nodes.Length; i++)
        {
            var node = nodes[i];
            var info = answers[i];
            if (info is null || !info.TryGetValue("node", out var name) || name != node.Name)
            {
                // A node that stops answering (or another node now at its address) is marked unknown so a return re-reads everything.
                node.Failures++;
                node.PeersGeneration = -1;
                node.PartitionGeneration = -1;
                node.Pool.Trim(TimeSpan.Zero);
                if (node.Failures >= _options.MaxTendFailures || (info is not null && info.ContainsKey("node")))
                {
                    removed.Add(node);
                }

                continue;
            }

            node.Failures = 0;
            if (ParseLong(info, "peers-generation") != node.PeersGeneration)
            {
                peersChanged.Add(node);
            }

            if (ParseLong(info, "partition-generation") != node.PartitionGeneration)
            {
                partitionsChanged.Add(node);
            }
        }

        var added = new List<Node>();
        foreach (var node in peersChanged)
        {
            var info = await TryInfoAsync(node, PeersCommands, cancellationToken).ConfigureAwait(false);
            if (info is null || !info.TryGetValue("peers-clear-std", out var text))
            {
                continue;
            }

            var (generation, peers) = InfoParser.ParsePeers(text);
            foreach (var (peerName, host, port) in peers)
            {
                if (nodes.Any(n => n.Name == peerName) || added.Any(n => n.Name == peerName))
                {
                    continue;
                }

                var peer = await TryCreateNodeAsync(host, port, cancellationToken).ConfigureAwait(false);
                if (peer is not null && peer.Name == peerName)
                {
                    added.Add(peer);
                    partitionsChanged.Add(peer);
                }
                else
                {
                    peer?.Dispose();
                }
            }

            node.PeersGeneration = generation;
        }

        if (added.Count > 0 || removed.Count > 0)
        {
            _nodes = [.. nodes.Except(removed).Concat(added)];
            foreach (var node in added)
            {
                Log.NodeAdded(_logger, node.Name, node.Host, node.Port);
            }

            foreach (var node in removed)
            {
                Log.NodeRemoved(_logger, node.Name, node.Host, node.Port, node.Failures);
            }
        }

        if (partitionsChanged.Count > 0 || removed.Count > 0)
        {
            await RefreshPartitionsAsync(partitionsChanged, removed, cancellationToken).ConfigureAwait(false);
        }

        foreach (var node in removed)
        {
            node.Dispose();
        }

        foreach (var node in _nodes)
        {
            node.Pool.Trim(_options.MaxIdle);
        }
    }

    private async Task RefreshPartitionsAsync(List<Node> changed, List<Node> removed, CancellationToken cancellationToken)
    {
        var maps = new Dictionary<string, Partitions>(StringComparer.Ordinal);
        foreach (var (ns, old) in _maps)
        {
            var copy = new Partitions(old.Replicas.Length);
            for (var r = 0; r < old.Replicas.Length; r++)
            {
                for (var p = 0; p < Partitions.Count; p++)
                {
                    var owner = old.Replicas[r][p];
                    copy.Replicas[r][p] = owner is null || removed.Contains(owner) || changed.Contains(owner) ? null : owner;
                }
            }

            maps[ns] = copy;
        }

        foreach (var node in changed)
        {
            var info = await TryInfoAsync(node, ReplicasCommands, cancellationToken).ConfigureAwait(false);
            if (info is null || !info.TryGetValue("replicas", out var replicas))
            {
                continue;
            }

            InfoParser.ParseReplicas(replicas, (ns, replicaCount, replica, partition) =>
            {
                if (!maps.TryGetValue(ns, out var map) || map.Replicas.Length != replicaCount)
                {
                    map = Resize(map, replicaCount);
                    maps[ns] = map;
                }

                map.Replicas[replica][partition] = node;
            });
            node.PartitionGeneration = ParseLong(info, "partition-generation");
        }

        _maps = maps;
    }

    private static Partitions Resize(Partitions? old, int replicaCount)
    {
        var map = new Partitions(replicaCount);
        if (old is not null)
        {
            for (var r = 0; r < Math.Min(replicaCount, old.Replicas.Length); r++)
            {
                old.Replicas[r].CopyTo(map.Replicas[r], 0);
            }
        }

        return map;
    }

    private async Task SeedAsync(CancellationToken cancellationToken)
    {
        foreach (var (host, port) in _seeds)
        {
            var node = await TryCreateNodeAsync(host, port, cancellationToken).ConfigureAwait(false);
            if (node is not null)
            {
                _nodes = [node];
                Log.NodeAdded(_logger, node.Name, host, port);
                return;
            }
        }
    }

    /// <summary>Validates an address by asking its node name; null if it does not answer.</summary>
    private async Task<Node?> TryCreateNodeAsync(string host, int port, CancellationToken cancellationToken)
    {
        var probe = new Node("?", host, port, _options, _time);
        var info = await TryInfoAsync(probe, ValidateCommands, cancellationToken).ConfigureAwait(false);
        probe.Dispose();
        return info is not null && info.TryGetValue("node", out var name) && name.Length > 0
            ? new Node(name, host, port, _options, _time)
            : null;
    }

    private async Task<Dictionary<string, string>?> TryInfoAsync(Node node, string[] commands, CancellationToken cancellationToken)
    {
        try
        {
            return await node.InfoAsync(commands, _options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.InfoFailed(_logger, node.Host, node.Port, ex.Message);
            return null;
        }
    }

    private static long ParseLong(Dictionary<string, string> info, string name) =>
        info.TryGetValue(name, out var text) && long.TryParse(text, out var value) ? value : -2;
}
