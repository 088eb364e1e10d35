using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Silo.Contracts;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// The embedded Silo: one <see cref="PartitionWorker"/> per partition of the in-process log, each the single
/// writer of its users' actors. Routes queries to the worker that owns the user, and segment changes to all.
/// </summary>
public sealed class SiloHost : BackgroundService, IProfileQueries
{
    private static readonly TimeSpan PruneInterval = TimeSpan.FromMinutes(10);

    private readonly PartitionWorker[] _workers;
    private readonly LogPartitionSource[] _sources;
    private readonly EventLog _log;
    private readonly SiloOptions _options;
    private readonly TimeProvider _time;
    private volatile bool _running;

    public SiloHost(SiloOptions options, Database database, EventLog log, IProfileStoreFactory stores, SegmentService segments,
        ChangeFeed feed, TimeProvider time, ILogger<SiloHost> logger)
    {
        _log = log;
        _options = options;
        _time = time;
        var outputs = new FeedOutputs(feed);
        _sources = [.. Enumerable.Range(0, options.Partitions).Select(p => new LogPartitionSource(log, database, p))];
        _workers = [.. _sources.Select(source => new PartitionWorker(source, stores.Open(), stores.Open(), options, segments.Index, outputs, time, logger))];
        segments.Changed += change =>
        {
            foreach (var worker in _workers)
            {
                worker.Enqueue(change);
            }
        };
    }

    /// <summary>True once every partition worker is running.</summary>
    public bool IsRunning => _running;

    public int ActiveActors => _workers.Sum(w => w.ActiveActors);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var runs = _workers.Select(w => Task.Run(() => w.RunAsync(stoppingToken), CancellationToken.None)).ToList();
        runs.Add(Task.Run(() => PruneLoop(stoppingToken), CancellationToken.None));
        _running = true;
        try
        {
            await Task.WhenAll(runs).ConfigureAwait(false);
        }
        finally
        {
            _running = false;
            foreach (var worker in _workers)
            {
                worker.Dispose();
            }

            foreach (var source in _sources)
            {
                source.Dispose();
            }
        }
    }

    /// <summary>Keeps the log within its retention, so the embedded database does not grow without bound.</summary>
    private async Task PruneLoop(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                _log.Prune(_time.GetUtcNow().ToUnixTimeMilliseconds() - (long)_options.EventRetention.TotalMilliseconds);
            }
            catch (Microsoft.Data.Sqlite.SqliteException)
            {
                // Pruning is housekeeping; the next round tries again.
            }

            try
            {
                await Task.Delay(PruneInterval, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private PartitionWorker WorkerFor(string userId) => _workers[EventValues.PartitionOf(userId, _workers.Length)];

    public Task<ProfileView?> GetProfileAsync(string userId) => WorkerFor(userId).Invoke(w => w.View(userId));

    public Task<List<HistoryEntry>> GetHistoryAsync(string userId, long afterId, int limit) =>
        WorkerFor(userId).Invoke(w => w.History(userId, afterId, limit));

    public Task<(ExplainNode? Explanation, bool Member)> ExplainAsync(string userId, string segmentId) =>
        WorkerFor(userId).Invoke(w => (w.Explain(userId, segmentId, out var member), member));
}
