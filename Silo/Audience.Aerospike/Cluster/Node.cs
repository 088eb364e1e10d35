using Audience.Aerospike.Wire;

namespace Audience.Aerospike.Cluster;

/// <summary>
/// A server node: its name (from info <c>node</c>), address, connection pool and what the tend loop last saw
/// (peers and partition generations, failed tends in a row).
/// </summary>
internal sealed class Node : IDisposable
{
    public Node(string name, string host, int port, AerospikeClientOptions options, TimeProvider time)
    {
        Name = name;
        Host = host;
        Port = port;
        Pool = new ConnectionPool(host, port, options.MaxConnectionsPerNode, time);
    }

    public string Name { get; }

    public string Host { get; }

    public int Port { get; }

    public ConnectionPool Pool { get; }

    /// <summary>-1 until the first tend, and again after a failed tend, so a node that comes back is fully re-read.</summary>
    public long PeersGeneration { get; set; } = -1;

    public long PartitionGeneration { get; set; } = -1;

    public int Failures { get; set; }

    /// <summary>Sends info commands over a pooled connection and returns name → value.</summary>
    public async Task<Dictionary<string, string>> InfoAsync(IEnumerable<string> commands, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        using var request = new MessageBuffer(256);
        CommandWriter.WriteInfo(request, commands);
        var connection = await Pool.RentAsync(cts.Token).ConfigureAwait(false);
        try
        {
            await connection.SendAsync(request.WrittenMemory, cts.Token).ConfigureAwait(false);
            var (_, body, length) = await connection.ReadMessageAsync(cts.Token).ConfigureAwait(false);
            try
            {
                var result = InfoParser.ParseResponse(body.AsSpan(0, length));
                Pool.Return(connection);
                return result;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(body);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Pool.Discard(connection);
            throw new AerospikeException(ResultCode.Timeout, $"Info request to {this} timed out.") { Node = Name };
        }
        catch
        {
            Pool.Discard(connection);
            throw;
        }
    }

    public void Dispose() => Pool.Dispose();

    public override string ToString() => $"{Name} {Host}:{Port}";
}
