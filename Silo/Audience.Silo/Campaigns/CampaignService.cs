using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Indexing;
using Audience.Rules.Syntax;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Campaigns;

/// <summary>The outcome of saving a campaign: the campaign, or what is wrong with the request.</summary>
public sealed record CampaignResult(CampaignRecord? Campaign, IReadOnlyList<RuleDiagnostic> ConditionErrors, IReadOnlyList<string> Problems,
    bool NotFound = false, bool Conflict = false)
{
    public static CampaignResult Ok(CampaignRecord campaign) => new(campaign, [], []);

    public static CampaignResult Invalid(params string[] problems) => new(null, [], problems);
}

/// <summary>
/// Owns campaigns: checks and stores them (<see cref="ICampaignStore"/>), and keeps the rule set that fires them
/// (<see cref="CampaignRules"/>) in step with the store. A change made here rebuilds the set at once; changes made by
/// other processes (other Api replicas, in Kafka mode) are found by polling the store's stamp every
/// <see cref="SiloOptions.CampaignRefreshInterval"/>. The set is compiled off the evaluation path and swapped in
/// whole: evaluation uses the set it finds, and waits only for the first one at start-up, so that events replayed
/// after a restart fire the campaigns they fired before.
/// </summary>
public sealed partial class CampaignService(ICampaignStore store, SegmentService segments, SegmentIndex index, SiloOptions options,
    [Microsoft.Extensions.DependencyInjection.FromKeyedServices(Hosting.AudienceServices.Clock)] TimeProvider time,
    ILogger<CampaignService> logger) : BackgroundService
{
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly WakeSignal _changed = new();
    private CampaignRules _rules = CampaignRules.Empty;

    public ICampaignStore Store => store;

    /// <summary>The rule set in use; waits only until the first one is built.</summary>
    public ValueTask<CampaignRules> RulesAsync() =>
        _loaded.Task.IsCompleted ? ValueTask.FromResult(Volatile.Read(ref _rules)) : Wait();

    private async ValueTask<CampaignRules> Wait()
    {
        await _loaded.Task.ConfigureAwait(false);
        return Volatile.Read(ref _rules);
    }

    /// <summary>The version of the campaign the rule set fires now, if it fires it.</summary>
    public long? LiveVersion(string campaignId) => Volatile.Read(ref _rules).VersionOf(campaignId);

    public async Task<List<CampaignRecord>> ListAsync(CancellationToken cancellationToken = default) =>
        await store.AllAsync(cancellationToken).ConfigureAwait(false);

    public Task<CampaignRecord?> GetAsync(string id, CancellationToken cancellationToken = default) => store.FindAsync(id, cancellationToken);

    public async Task<CampaignResult> CreateAsync(CampaignDraft draft, CancellationToken cancellationToken = default)
    {
        var id = draft.Id ?? Campaign.NewId();
        if (await GetAsync(id, cancellationToken).ConfigureAwait(false) is not null)
        {
            return new CampaignResult(null, [], [$"A campaign with the id '{id}' already exists."], Conflict: true);
        }

        return await SaveAsync(id, draft, previous: null, cancellationToken).ConfigureAwait(false);
    }

    public async Task<CampaignResult> UpdateAsync(string id, CampaignDraft draft, CancellationToken cancellationToken = default) =>
        await GetAsync(id, cancellationToken).ConfigureAwait(false) is { } previous
            ? await SaveAsync(id, draft, previous, cancellationToken).ConfigureAwait(false)
            : new CampaignResult(null, [], [$"There is no campaign with the id '{id}'."], NotFound: true);

    public async Task<CampaignResult> DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        if (await GetAsync(id, cancellationToken).ConfigureAwait(false) is not { } campaign)
        {
            return new CampaignResult(null, [], [$"There is no campaign with the id '{id}'."], NotFound: true);
        }

        try
        {
            await store.DeleteAsync(id, campaign.Version, cancellationToken).ConfigureAwait(false);
        }
        catch (CampaignConflictException e)
        {
            return new CampaignResult(null, [], [e.Message], Conflict: true);
        }

        _changed.Wake();
        return CampaignResult.Ok(campaign);
    }

    /// <summary>Marks a scheduled campaign completed once its broadcast for <paramref name="scheduledAt"/> is done (a new version).</summary>
    public async Task CompleteAsync(string id, long scheduledAt, CancellationToken cancellationToken = default)
    {
        if (await GetAsync(id, cancellationToken).ConfigureAwait(false) is not { Broadcasts: true } campaign || campaign.ScheduledAt != scheduledAt)
        {
            return; // changed meanwhile: whoever changed it decides
        }

        try
        {
            await store.SaveAsync(campaign with { Status = Campaign.Completed, Version = campaign.Version + 1, UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds() },
                cancellationToken).ConfigureAwait(false);
            _changed.Wake();
        }
        catch (CampaignConflictException)
        {
            // Changed by a request meanwhile: it stays as that request left it.
        }
    }

    /// <summary>Why <paramref name="segmentId"/> cannot be deleted: the campaigns that point at it, if any.</summary>
    public Task<List<string>> UsingSegmentAsync(string segmentId, CancellationToken cancellationToken = default) =>
        store.UsingSegmentAsync(segmentId, cancellationToken);

    private async Task<CampaignResult> SaveAsync(string id, CampaignDraft draft, CampaignRecord? previous, CancellationToken cancellationToken)
    {
        var problems = Campaign.Problems(draft with { Id = id });
        if (problems.Count > 0)
        {
            return new CampaignResult(null, [], problems);
        }

        if (!segments.Contains(draft.SegmentId))
        {
            return new CampaignResult(null, [], [$"There is no segment with the id '{draft.SegmentId}'."]);
        }

        if (draft.Condition is { } condition)
        {
            var checkedRule = CheckCondition(condition);
            if (!checkedRule.IsValid)
            {
                return new CampaignResult(null, checkedRule.Errors, []);
            }
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var record = new CampaignRecord(id, draft.Name, draft.SegmentId, draft.Type, draft.Content, draft.Status, draft.Trigger, draft.Condition,
            draft.Caps, draft.Priority, draft.ScheduledAt, (previous?.Version ?? 0) + 1, previous?.CreatedAt ?? now, now);
        try
        {
            await store.SaveAsync(record, cancellationToken).ConfigureAwait(false);
        }
        catch (CampaignConflictException e)
        {
            return new CampaignResult(null, [], [e.Message], Conflict: true);
        }

        _changed.Wake();
        return CampaignResult.Ok(record);
    }

    private CheckedRule CheckCondition(string condition) => RuleChecker.Check(RuleParser.Parse(condition), segments);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var stamp = (string?)null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var current = await store.StampAsync(stoppingToken).ConfigureAwait(false);
                if (current != stamp)
                {
                    var all = await store.AllAsync(stoppingToken).ConfigureAwait(false);
                    // NRules compiles a rule set in milliseconds for a few campaigns and in seconds for a thousand: off the caller's thread.
                    var built = await Task.Run(() => CampaignRules.Build(all, Compile, current), stoppingToken).ConfigureAwait(false);
                    var old = Interlocked.Exchange(ref _rules, built);
                    if (!ReferenceEquals(old, CampaignRules.Empty))
                    {
                        _ = RetireAsync(old);
                    }

                    stamp = current;
                    LogBuilt(built.Campaigns.Count, all.Count);
                }

                _loaded.TrySetResult();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The store is away, or a campaign cannot be built: the set in use stays, and the next round tries again.
                LogRefreshFailed(e);
            }

            try
            {
                await _changed.WaitAsync(options.CampaignRefreshInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Releases a replaced rule set's conditions (their aggregates in the catalog) once the evaluations that took it
    /// before the swap are surely done: released at once, a condition's aggregate slot could go to a new segment while
    /// a grain still evaluates the old condition.
    /// </summary>
    private async Task RetireAsync(CampaignRules old)
    {
        await Task.Delay(TimeSpan.FromMinutes(1), time).ConfigureAwait(false);
        old.Dispose();
    }

    /// <summary>
    /// A condition as a predicate over the profile; one that no longer checks (it names a segment deleted since) never
    /// holds, so its campaign does not fire until it is corrected.
    /// </summary>
    private CompiledRule Compile(string condition)
    {
        var checkedRule = CheckCondition(condition);
        if (!checkedRule.IsValid)
        {
            LogConditionInvalid(condition, checkedRule.Errors[0].Message);
            checkedRule = RuleChecker.Check(RuleParser.Parse("eventCount < 0"));
        }

        return RuleCompiler.Compile(checkedRule, index.Catalog);
    }

    public override void Dispose()
    {
        _changed.Dispose();
        Volatile.Read(ref _rules).Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = LogEvents.CampaignsBuilt, Level = LogLevel.Information, Message = "Campaign rules rebuilt: {Firing} of {Total} campaigns fire on membership changes")]
    private partial void LogBuilt(int firing, int total);

    [LoggerMessage(EventId = LogEvents.CampaignsRefreshFailed, Level = LogLevel.Warning, Message = "Campaigns could not be read or built; the rules in use stay until the next attempt")]
    private partial void LogRefreshFailed(Exception exception);

    [LoggerMessage(EventId = LogEvents.CampaignsConditionInvalid, Level = LogLevel.Warning, Message = "A campaign condition no longer checks and never holds until it is corrected: {Condition} ({Error})")]
    private partial void LogConditionInvalid(string condition, string error);
}
