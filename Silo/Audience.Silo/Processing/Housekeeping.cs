using Audience.Silo.Hosting;
using Audience.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// Keeps stored events within their retention: the embedded log's for <c>Silo:DeduplicationWindow</c>, once their
/// partition's reader has checkpointed past them, and the archive the profile store keeps for filling new aggregates,
/// for <c>Silo:EventRetention</c>.
/// Every ten minutes; every silo may run it, since a deletion by time is harmless to repeat.
/// </summary>
public sealed partial class Housekeeping(IServiceProvider services, SiloOptions options, [FromKeyedServices(Hosting.AudienceServices.Clock)] TimeProvider time, ILogger<Housekeeping> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var log = services.GetService<EventLog>();
        var readers = services.GetRequiredService<LocalReaders>();
        var store = services.GetRequiredService<IProfileStore>();
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            var cutoff = now - (long)options.EventRetention.TotalMilliseconds;
            try
            {
                var pruned = log?.Prune(now - (long)options.DeduplicationWindow.TotalMilliseconds, readers.Checkpoints()) ?? 0;
                var archived = await store.PruneArchiveAsync(cutoff, stoppingToken).ConfigureAwait(false);
                LogPruned(pruned, archived);
            }
            catch (Exception e) when (e is StoreUnavailableException or System.Data.Common.DbException)
            {
                LogFailed(e);
            }

            try
            {
                await Task.Delay(Interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [LoggerMessage(EventId = LogEvents.HousekeepingPruned, Level = LogLevel.Debug, Message = "Pruned {Events} logged events and {Chunks} archived chunks past their retention")]
    private partial void LogPruned(long events, long chunks);

    [LoggerMessage(EventId = LogEvents.HousekeepingFailed, Level = LogLevel.Warning, Message = "Pruning stored events failed; the next round tries again")]
    private partial void LogFailed(Exception exception);
}
