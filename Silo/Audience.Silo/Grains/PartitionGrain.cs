using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Grains;

/// <summary>A partition of the event stream; its activation is the partition's single reader.</summary>
public interface IPartitionGrain : IGrainWithIntegerKey
{
    /// <summary>Activates the reader if it is not running; a reader away from its home silo, or stopped, steps aside.</summary>
    Task Ping();

    /// <summary>The sequence number up to which the partition is applied and written.</summary>
    Task<long> Checkpoint();
}

/// <summary>
/// Hosts a <see cref="PartitionReader"/> for as long as it is active. Orleans places it (on the partition's home silo,
/// <see cref="PartitionPlacement"/>) and keeps it single; the <see cref="PartitionSupervisor"/> of every silo pings
/// every partition, which (re)activates a reader wherever it is missing, after a crash or a move. When the cluster
/// changes and another silo becomes the partition's home, the grain migrates there at its next ping: the reader stops
/// (its checkpoint is written) and the new activation starts one at the new home. The partition's epoch in the store
/// fences an old reader that has not noticed yet.
/// </summary>
[KeepAlive]
[PartitionPlacement]
public sealed partial class PartitionGrain(
    IPartitionSources sources,
    SiloContext silo,
    UserGrains users,
    LocalReaders readers,
    ActiveUsers active,
    SiloMetrics metrics,
    ILocalSiloDetails local,
    IClusterMembershipService membership,
    PartitionSupervisor supervisor,
    Hosting.Resilience resilience,
    ILogger<PartitionGrain> logger) : Grain, IPartitionGrain, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private PartitionReader? _reader;
    private Task _run = Task.CompletedTask;

    private int Partition => (int)this.GetPrimaryKeyLong();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _reader = new PartitionReader(Partition, sources, silo, users, local.SiloAddress, active, metrics, resilience, logger);
        readers.Add(_reader);
        metrics.Owns(Partition, owned: true);
        // The reader runs beside the grain, not in its turns: it calls other grains and waits on the source.
        _run = Task.Run(() => _reader.RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task Ping()
    {
        if (_run.IsCompleted)
        {
            if (_run.Exception?.GetBaseException() is { } error)
            {
                LogStopped(error, Partition);
            }

            DeactivateOnIdle();
        }
        else if (Home() is { } home && !home.Equals(local.SiloAddress))
        {
            // A migration, not a deactivation: the directory passes from this activation to the new one in one step,
            // so a ping that still finds this silo in some caller's cache is forwarded to the new home instead of
            // activating the partition here again.
            LogMoving(Partition, local.SiloAddress, home);
            MigrateOnIdle();
        }

        return Task.CompletedTask;
    }

    public Task<long> Checkpoint() => Task.FromResult(_reader?.Checkpoint ?? 0);

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        try
        {
            // Bounded by Orleans' deactivation timeout: a reader stops between batches, its batch written.
            await _run.WaitAsync(cancellationToken);
        }
        catch (Exception e) when (e is OperationCanceledException or PartitionFencedException or TimeoutException)
        {
            // Stopped, or someone else owns the partition now; either way it is no longer this silo's.
        }
        finally
        {
            readers.Remove(_reader!);
            metrics.Owns(Partition, owned: false);
            LogReleased(Partition, local.SiloAddress, reason.Description);
        }
    }

    public void Dispose() => _stop.Dispose();

    private SiloAddress? Home() => PartitionPlacement.Home(Partition, supervisor.Partitions, membership);

    [LoggerMessage(EventId = LogEvents.PartitionGrainMoving, Level = LogLevel.Information, Message = "Partition {Partition} moves from {From} to its home {To}")]
    private partial void LogMoving(int partition, SiloAddress from, SiloAddress to);

    [LoggerMessage(EventId = LogEvents.PartitionGrainStopped, Level = LogLevel.Warning, Message = "The reader of partition {Partition} stopped; it starts again")]
    private partial void LogStopped(Exception exception, int partition);

    [LoggerMessage(EventId = LogEvents.PartitionGrainReleased, Level = LogLevel.Information, Message = "Partition {Partition} released by {Silo} ({Reason})")]
    private partial void LogReleased(int partition, SiloAddress silo, string reason);
}
