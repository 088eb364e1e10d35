using System.Collections.Concurrent;

namespace Audience.Aerospike.Cluster;

/// <summary>
/// A node's connections: idle ones on a stack (the most recently used first, so the rest age out and get trimmed),
/// and at most the pool size in use at once. A command that finds them all in use waits for one, within its own
/// timeout (a burst of commands queues instead of failing). The idle stack is lock-free.
/// </summary>
internal sealed class ConnectionPool : IDisposable
{
    private readonly ConcurrentStack<Connection> _idle = new();
    private readonly SemaphoreSlim _inUse;
    private readonly string _host;
    private readonly int _port;
    private readonly TimeProvider _time;
    private int _open;
    private bool _disposed;

    public ConnectionPool(string host, int port, int maxSize, TimeProvider time)
    {
        _host = host;
        _port = port;
        _time = time;
        _inUse = new SemaphoreSlim(maxSize, maxSize);
    }

    public int Open => Volatile.Read(ref _open);

    public int Idle => _idle.Count;

    /// <summary>
    /// A connection for one command: an idle one, or a new one; when <c>maxSize</c> are in use, waits for one to come
    /// back (cancelled with the command's timeout, which the caller reports as such).
    /// </summary>
    public async ValueTask<Connection> RentAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        await _inUse.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_idle.TryPop(out var connection))
            {
                return connection;
            }

            Interlocked.Increment(ref _open);
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
        catch
        {
            _inUse.Release();
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
        _inUse.Release();
    }

    /// <summary>Closes a rented connection that failed or timed out mid-command.</summary>
    public void Discard(Connection connection)
    {
        Close(connection);
        _inUse.Release();
    }

    private void Close(Connection connection)
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
                Close(connection);
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
            Close(connection);
        }
    }
}
