using System.Collections.Concurrent;

namespace Audience.Aerospike.Cluster;

/// <summary>
/// A node's connections: idle ones on a stack (the most recently used first, so the rest age out and get trimmed),
/// and a count of all open ones bounded by the pool size. No locks: the stack is lock-free and the count is interlocked.
/// </summary>
internal sealed class ConnectionPool : IDisposable
{
    private readonly ConcurrentStack<Connection> _idle = new();
    private readonly string _host;
    private readonly int _port;
    private readonly int _maxSize;
    private readonly TimeProvider _time;
    private int _open;
    private bool _disposed;

    public ConnectionPool(string host, int port, int maxSize, TimeProvider time)
    {
        _host = host;
        _port = port;
        _maxSize = maxSize;
        _time = time;
    }

    public int Open => Volatile.Read(ref _open);

    public int Idle => _idle.Count;

    public async ValueTask<Connection> RentAsync(CancellationToken cancellationToken)
    {
        if (_idle.TryPop(out var connection))
        {
            return connection;
        }

        if (Interlocked.Increment(ref _open) > _maxSize)
        {
            Interlocked.Decrement(ref _open);
            throw new AerospikeException(ResultCode.NoMoreConnections, $"All {_maxSize} connections to {_host}:{_port} are busy.");
        }

        try
        {
            return await Connection.OpenAsync(_host, _port, _time.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _open);
            throw;
        }
    }

    /// <summary>Returns a healthy connection; a connection that failed must go to <see cref="Discard"/>.</summary>
    public void Return(Connection connection)
    {
        if (Volatile.Read(ref _disposed))
        {
            Discard(connection);
            return;
        }

        connection.LastUsed = _time.GetTimestamp();
        _idle.Push(connection);
    }

    public void Discard(Connection connection)
    {
        connection.Dispose();
        Interlocked.Decrement(ref _open);
    }

    /// <summary>Closes idle connections unused for longer than <paramref name="maxIdle"/> (the oldest sit at the bottom).</summary>
    public void Trim(TimeSpan maxIdle)
    {
        var keep = new List<Connection>();
        while (_idle.TryPop(out var connection))
        {
            if (_time.GetElapsedTime(connection.LastUsed) > maxIdle)
            {
                Discard(connection);
            }
            else
            {
                keep.Add(connection);
            }
        }

        for (var i = keep.Count - 1; i >= 0; i--)
        {
            _idle.Push(keep[i]);
        }
    }

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        while (_idle.TryPop(out var connection))
        {
            Discard(connection);
        }
    }
}
