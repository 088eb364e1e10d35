using Audience.Silo.Grains;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Campaigns;

/// <summary>One scheduled campaign's broadcast, run by a single activation in the cluster.</summary>
public interface ICampaignBroadcastGrain : IGrainWithStringKey
{
    /// <summary>Starts the broadcast for <paramref name="scheduledAt"/>, or lets the one running go on; returns at once.</summary>
    Task Start(long scheduledAt);
}

/// <summary>
/// Broadcasts a scheduled campaign to every member of its segment, a page of <see cref="Page"/> members at a time in
/// user id order through the membership index: each member's grain evaluates the campaign (condition, caps) and delivers
/// and writes like any other change; then the page's last user id is recorded (<see cref="BroadcastProgress"/>). A crash
/// or a move of the grain resumes after the last page recorded: the members of the page in flight are reached again,
/// and record nothing twice (their notification ids are those of the first time, and the profile remembers the send).
/// Orleans keeps one activation per campaign, so silos may all ask it to start.
/// </summary>
public sealed partial class CampaignBroadcastGrain(SiloContext silo, UserGrains users, Hosting.Resilience resilience, ILogger<CampaignBroadcastGrain> logger)
    : Grain, ICampaignBroadcastGrain
{
    public const int Page = 200;

    private Task? _running;

    public Task Start(long scheduledAt)
    {
        if (_running is null || _running.IsCompleted)
        {
            // Runs in the grain's turns, between the calls it receives; the silos' checks keep the grain active meanwhile.
            _running = Run(this.GetPrimaryKeyString(), scheduledAt);
        }

        return Task.CompletedTask;
    }

    private async Task Run(string campaignId, long scheduledAt)
    {
        var store = silo.Campaigns.Store;
        try
        {
            var progress = await store.BroadcastAsync(campaignId, scheduledAt) ?? new BroadcastProgress(campaignId, scheduledAt, string.Empty, 0, null);
            while (progress.CompletedAt is null)
            {
                var rules = await silo.Campaigns.RulesAsync();
                if (rules.Campaigns.FirstOrDefault(c => c.Id == campaignId && c.Broadcasts && c.ScheduledAt == scheduledAt) is not { } campaign)
                {
                    return; // paused, rescheduled or deleted meanwhile: the progress stays for a later start
                }

                var members = await silo.Store.MembersAsync(campaign.SegmentId, progress.Cursor, Page);
                await Reach([.. members.Select(m => m.UserId)], campaign);
                progress = members.Count == 0
                    ? progress with { CompletedAt = silo.Now() }
                    : progress with { Cursor = members[^1].UserId, Processed = progress.Processed + members.Count };
                await store.SaveBroadcastAsync(progress);
            }

            LogCompleted(campaignId, progress.Processed);
            await silo.Campaigns.CompleteAsync(campaignId, scheduledAt);
        }
        catch (Exception e)
        {
            // A store or a silo away: the next start (the silos check every Silo:CampaignRefreshInterval) goes on from the last page.
            LogInterrupted(e, campaignId);
        }
    }

    /// <summary>
    /// Has every member's grain take the broadcast, through the <see cref="Hosting.Resilience.CampaignBroadcast"/>
    /// pipeline: a member whose grain keeps failing (three tries) is skipped and logged, so that one user cannot hold up
    /// the broadcast. A silo whose campaign rules are behind fails the page, to be tried again at the next start.
    /// </summary>
    private async Task Reach(List<string> members, CampaignRecord campaign)
    {
        var page = new PageOfMembers(members, campaign);
        try
        {
            // In the grain's turns: the pipeline continues on the grain's scheduler.
            await Hosting.Resilience.RunAsync(resilience.CampaignBroadcasts, Hosting.Resilience.CampaignBroadcast,
                static (state, _) => state.Grain.ReachOnce(state.Page), (Grain: this, Page: page), CancellationToken.None, continueOnCapturedContext: true);
        }
        catch (Hosting.CallsFailedException)
        {
            foreach (var (member, error) in page.Members.Zip(page.Errors))
            {
                LogMemberSkipped(error, campaign.Id, member);
            }
        }
    }

    /// <summary>One try: the members still to reach; those whose grain failed are left in the page for the next.</summary>
    private async Task ReachOnce(PageOfMembers page)
    {
        var campaign = page.Campaign;
        var calls = page.Members.Select(m => users.Get(m).Broadcast(campaign.Id, campaign.ScheduledAt!.Value, campaign.Version)).ToArray();
        try
        {
            await Task.WhenAll(calls);
            return;
        }
        catch (Exception)
        {
            // Sorted out member by member below.
        }

        var errors = calls.Where(c => !c.IsCompletedSuccessfully).Select(c => c.Exception!.GetBaseException()).ToList();
        if (errors.OfType<CampaignNotReadyException>().FirstOrDefault() is { } notReady)
        {
            throw notReady;
        }

        page.Members = [.. page.Members.Where((_, i) => !calls[i].IsCompletedSuccessfully)];
        page.Errors = errors;
        throw new Hosting.CallsFailedException(errors.Count, errors[0]);
    }

    private sealed class PageOfMembers(List<string> members, CampaignRecord campaign)
    {
        public CampaignRecord Campaign { get; } = campaign;

        public List<string> Members { get; set; } = members;

        public List<Exception> Errors { get; set; } = [];
    }

    [LoggerMessage(EventId = LogEvents.BroadcastMemberSkipped, Level = LogLevel.Error, Message = "The broadcast of campaign {CampaignId} skips {UserId}, whose grain failed three times")]
    private partial void LogMemberSkipped(Exception exception, string campaignId, string userId);

    [LoggerMessage(EventId = LogEvents.BroadcastCompleted, Level = LogLevel.Information, Message = "The broadcast of campaign {CampaignId} reached its {Members} members")]
    private partial void LogCompleted(string campaignId, long members);

    [LoggerMessage(EventId = LogEvents.BroadcastInterrupted, Level = LogLevel.Warning, Message = "The broadcast of campaign {CampaignId} was interrupted; it goes on from its last page at the next check")]
    private partial void LogInterrupted(Exception exception, string campaignId);
}

/// <summary>
/// On every silo: every <see cref="SiloOptions.CampaignRefreshInterval"/>, asks the broadcast grain of each active
/// scheduled campaign whose time has come, and whose broadcast is not complete, to start or go on.
/// </summary>
public sealed partial class CampaignBroadcasts(SiloContext silo, IGrainFactory grains, ILogger<CampaignBroadcasts> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(silo.Options.CampaignRefreshInterval);
        do
        {
            try
            {
                var now = silo.Now();
                foreach (var campaign in (await silo.Campaigns.RulesAsync()).Campaigns.Where(c => c.Broadcasts && c.ScheduledAt <= now))
                {
                    var at = campaign.ScheduledAt!.Value;
                    if ((await silo.Campaigns.Store.BroadcastAsync(campaign.Id, at, stoppingToken))?.CompletedAt is null)
                    {
                        await grains.GetGrain<ICampaignBroadcastGrain>(campaign.Id).Start(at);
                    }
                    else
                    {
                        // Done, but not marked completed (that write failed): mark it now.
                        await silo.Campaigns.CompleteAsync(campaign.Id, at, stoppingToken);
                    }
                }
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                LogCheckFailed(e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    [LoggerMessage(EventId = LogEvents.BroadcastCheckFailed, Level = LogLevel.Warning, Message = "Scheduled campaigns could not be checked; the next check tries again")]
    private partial void LogCheckFailed(Exception exception);
}
