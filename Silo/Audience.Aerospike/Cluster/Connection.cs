using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Audience.Aerospike.Wire;

namespace Audience.Aerospike.Cluster;

/// <summary>
/// One TCP connection to a node. Aerospike answers requests in order on a connection, so a connection carries one
/// command at a time; concurrency comes from the pool. A connection that failed or timed out mid-response is disposed,
/// never pooled, since unread response bytes would corrupt the next command.
/// </summary>
internal sealed class Connection : IDisposable
{
    private readonly Socket _socket;

    private Connection(Socket socket, long now)
    {
        _socket = socket;
        LastUsed = now;
    }

    /// <summary>Timestamp (TimeProvider ticks) of the last return to the pool, for idle trimming.</summary>
    public long LastUsed { get; set; }

    public static async Task<Connection> OpenAsync(string host, int port, long now, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
            return new Connection(socket, now);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            var sent = await _socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>Reads one proto message; the body is in a pooled array the caller returns. Returns the proto type.</summary>
    public async ValueTask<(byte Type, byte[] Body, int Length)> ReadMessageAsync(CancellationToken cancellationToken)
    {
        var header = ArrayPool<byte>.Shared.Rent(CommandWriter.ProtoHeaderSize);
        try
        {
            await ReadExactAsync(header.AsMemory(0, CommandWriter.ProtoHeaderSize), cancellationToken).ConfigureAwait(false);
            var proto = BinaryPrimitives.ReadUInt64BigEndian(header);
            var type = (byte)(proto >> 48);
            var length = (int)(proto & 0xFFFF_FFFF_FFFF);
            if ((proto >> 56) != 2 || length > 128 * 1024 * 1024)
            {
                throw new AerospikeException(ResultCode.ParseError, $"Bad proto header 0x{proto:x16}.");
            }

            var body = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
            try
            {
                await ReadExactAsync(body.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(body);
                throw;
            }

            return (type, body, length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(header);
        }
    }

    public void Dispose() => _socket.Dispose();

    private async ValueTask ReadExactAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var read = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new AerospikeException(ResultCode.NetworkError, "The server closed the connection.");
            }

            buffer = buffer[read..];
        }
    }
}
