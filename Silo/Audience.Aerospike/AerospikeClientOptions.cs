using Audience.Aerospike.Cluster;

namespace Audience.Aerospike;

/// <summary>
/// Client settings, bound from configuration as <c>Aerospike:*</c>. Defaults follow Aerospike's own clients
/// (AEROSPIKE.md §6) except the socket timeout, kept below the total so one stuck connection cannot use up a command's budget.
/// </summary>
public sealed record AerospikeClientOptions
{
    /// <summary>Seed hosts, "host:port" separated by commas, e.g. "127.0.0.1:3000,10.0.0.2:3000".</summary>
    public string Hosts { get; init; } = "127.0.0.1:3000";

    /// <summary>Time to connect and to answer an info request (seeding and tending).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Default total time of one command, retries included.</summary>
    public TimeSpan TotalTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Default time one attempt may wait on its socket.</summary>
    public TimeSpan SocketTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Default retries after the first attempt, for retryable failures.</summary>
    public int MaxRetries { get; init; } = 2;

    /// <summary>Pause before a retry (doubled each further retry).</summary>
    public TimeSpan RetryBackoff { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Connections per node, busy and idle together.</summary>
    public int MaxConnectionsPerNode { get; init; } = 100;

    /// <summary>Idle connections older than this are closed by the tend loop (below the server's proto-fd-idle-ms).</summary>
    public TimeSpan MaxIdle { get; init; } = TimeSpan.FromSeconds(55);

    /// <summary>How often the cluster is tended.</summary>
    public TimeSpan TendInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A node that fails this many tends in a row is removed.</summary>
    public int MaxTendFailures { get; init; } = 5;

    /// <summary>Keys per batch request to one node; larger batches are split.</summary>
    public int MaxBatchKeys { get; init; } = 5000;

    /// <summary>The seed hosts, parsed; throws with an actionable message on a malformed list.</summary>
    public IReadOnlyList<(string Host, int Port)> ParseHosts()
    {
        var result = new List<(string, int)>();
        foreach (var part in Hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result.Add(HostParser.Parse(part, 3000));
        }

        return result.Count > 0 ? result : throw new ArgumentException($"Aerospike:Hosts '{Hosts}' names no host; use \"host:port,host:port\".");
    }

    /// <summary>Throws an actionable message when a setting is out of range.</summary>
    public void Validate()
    {
        _ = ParseHosts();
        if (TotalTimeout <= TimeSpan.Zero || SocketTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Aerospike timeouts must be positive.");
        }

        if (MaxRetries < 0 || MaxConnectionsPerNode < 1 || MaxTendFailures < 1 || MaxBatchKeys < 1 || TendInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("Aerospike:MaxRetries ≥ 0, MaxConnectionsPerNode, MaxTendFailures, MaxBatchKeys ≥ 1 and TendInterval > 0 are required.");
        }
    }
}
