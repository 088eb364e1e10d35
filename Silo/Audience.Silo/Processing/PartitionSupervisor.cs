using Audience.Silo.Grains;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// Keeps every partition read: each second it pings every partition's grain, which activates a reader wherever one
/// is missing (at start, after a silo died, after a move). Every silo runs one, so the pings go on whichever silos are
/// left. <see cref="Ready"/> says that a round reached every partition. Its pace is the system clock's, like
/// Orleans' own timers, whatever clock the profiles use.
/// </summary>
public sealed partial class PartitionSupervisor(IPartitionSources sources, IGrainFactory grains, ILogger<PartitionSupervisor> logger)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private volatile bool _ready;

    public bool Ready => _ready;

    public int Partitions { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            Partitions = await sources.CountAsync(stoppingToken).ConfigureAwait(false);
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await Task.WhenAll(Enumerable.Range(0, Partitions).Select(p => grains.GetGrain<IPartitionGrain>(p).Ping())).ConfigureAwait(false);
                    _ready = true;
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    LogPingFailed(e);
                }

                await Task.Delay(Interval, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    [LoggerMessage(EventId = LogEvents.SupervisorPingFailed, Level = LogLevel.Warning, Message = "Pinging the partition readers failed; trying again")]
    private partial void LogPingFailed(Exception exception);
}
