using System.Text.Json;
using Audience.Rules.Evaluation;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging;
using Orleans.Placement;

namespace Audience.Silo.Grains;

/// <summary>One user: the single writer of the user's profile, and the place queries about the user are answered.</summary>
public interface IUserGrain : IGrainWithStringKey
{
    /// <summary>
    /// Applies a partition's events for this user and delivers what they changed; the profile is written at the
    /// reader's next <see cref="Write"/>. False when this grain no longer holds events it applied before
    /// (<see cref="EventBatch.AppliedThrough"/>): they were lost with an activation, and the partition is read again.
    /// </summary>
    Task<bool> Apply(EventBatch batch);

    /// <summary>
    /// Writes what this grain applied and has not written, for the reader to move its checkpoint past
    /// <paramref name="appliedThrough"/>. False when it does not hold that event: it was lost with an activation.
    /// </summary>
    Task<bool> Write(int partition, long appliedThrough);

    /// <summary>Evaluates what time alone changed, if the user's due time has come (the partition's sweep calls it).</summary>
    Task Tick();

    /// <summary>Applies a created, edited or deleted segment to this user: the backfill of an active grain.</summary>
    Task ApplySegment(SegmentChangeRequest change);

    /// <summary>
    /// A scheduled campaign's broadcast (of <paramref name="version"/> or later) reaches this member: its notification is
    /// delivered and the profile written. Fails with <see cref="CampaignNotReadyException"/> while this silo's campaign
    /// rules do not hold that version yet (they are refreshed every few seconds): the broadcast tries again.
    /// </summary>
    Task Broadcast(string campaignId, long scheduledAt, long version);

    /// <summary>
    /// Erases everything kept about this user, as the partition's reader reaches the erasure in the user's stream (it has
    /// had every grain write what it applied before): a removal with reason <c>erased</c> of each membership is delivered
    /// like any change, then the store deletes the record (with its due time), its membership index entries, its history
    /// and archived events, and the campaign store the user's notifications; the grain starts over as a user with
    /// nothing stored, and the user's events after the erasure build a new profile. Applied again (the partition read
    /// again after a crash), it finds nothing left and announces nothing more.
    /// </summary>
    Task Erase(ErasureRequest request);

    Task<ProfileView?> GetProfile();

    Task<ExplainResult?> Explain(string segmentId);

    /// <summary>The user's membership changes after <paramref name="afterSeq"/>, oldest first.</summary>
    Task<HistoryEntry[]> History(long afterSeq, int limit);
}

/// <summary>
/// The user grain. Activated from its stored record (a user without one starts empty), it keeps a
/// <see cref="ProfileSession"/>. Events are applied and their outputs delivered at once; the record is written
/// behind, when the partition's reader asks before moving its checkpoint (so a busy user is written once a second,
/// not once per batch), and before the grain deactivates. Other calls that change the profile (a due time, a
/// backfill, a query that brings it up to date) deliver and write at once. Outputs always go before the write that
/// records them, so a crash repeats an output but never loses one. The grain is placed where its first caller runs,
/// which is normally the reader of its partition; a call from a reader on another silo is counted as remote and the
/// grain deactivates after it, so that the reader's next call activates it beside the reader.
/// </summary>
[PreferLocalPlacement]
public sealed partial class UserGrain(
    [PersistentState("profile", ProfileGrainStorage.Name)] IPersistentState<ProfileRecord> stored,
    SiloContext silo,
    ActiveUsers active,
    SiloMetrics metrics,
    ILocalSiloDetails local,
    ILogger<UserGrain> logger) : Grain, IUserGrain
{
    private ProfileSession _session = null!;

    /// <summary>Set when delivering or writing failed: what is in memory is not to be written, the store is the truth.</summary>
    private bool _broken;

    private string UserId => this.GetPrimaryKeyString();

    /// <summary>The user has a profile: a stored one, or events applied and not yet written.</summary>
    private bool HasProfile => stored.RecordExists || _session.Dirty;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _session = await ProfileSession.OpenAsync(UserId, stored.RecordExists ? stored.State : null, silo, cancellationToken);
        active.Add(UserId);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        active.Remove(UserId);
        if (_session is { Dirty: true } && !_broken)
        {
            try
            {
                await Save(_session.Record.Partition, silo.Now());
            }
            catch (Exception e)
            {
                // The reader finds out at its next call or write for this user, and reads the partition again.
                LogWriteOnDeactivationFailed(e, UserId);
            }
        }
    }

    public async Task<bool> Apply(EventBatch batch)
    {
        if (!batch.Reader.Equals(local.SiloAddress))
        {
            metrics.RemoteCall();
            DeactivateOnIdle();
        }

        if (_session.Record.LastSeq < batch.AppliedThrough)
        {
            return false;
        }

        // Traced: a span continuing the trace of the requests that sent these events, around applying them and
        // delivering what they changed (whose messages carry it on).
        using var span = Hosting.Telemetry.Source.HasListeners()
            ? Hosting.Telemetry.StartConsumer("apply " + batch.Topic, batch.Events.Select(e => e.TraceParent), batch.Topic, batch.Partition)
            : null;
        span?.SetTag("messaging.batch.message_count", batch.Events.Length);
        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        var campaigns = await silo.Campaigns.RulesAsync();
        _session.EvaluateIfStale(now);
        try
        {
            // Campaigns are evaluated after each change's cause, on the profile as it left it: the re-evaluation
            // after a segment change first, then each event.
            _session.FireCampaigns(campaigns, now);
            foreach (var e in batch.Events)
            {
                _session.Apply(e, batch.Topic, batch.Partition, now);
                _session.FireCampaigns(campaigns, now);
            }
        }
        catch
        {
            Break();
            throw;
        }

        _session.Record.Partition = batch.Partition;
        await Deliver();
        return true;
    }

    public async Task<bool> Write(int partition, long appliedThrough)
    {
        if (_session.Record.LastSeq < appliedThrough)
        {
            return false;
        }

        // A segment saved since this user's events were applied found no stored record of theirs to backfill.
        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        _session.EvaluateIfStale(now);
        await Save(partition, now);
        return true;
    }

    public async Task Tick()
    {
        if (!HasProfile)
        {
            DeactivateOnIdle();
            return;
        }

        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        _session.EvaluateIfStale(now);
        _session.Tick(now);
        await Save(_session.Record.Partition, now);
    }

    public async Task ApplySegment(SegmentChangeRequest change)
    {
        if (!HasProfile)
        {
            DeactivateOnIdle();
            return;
        }

        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        _session.ApplySegment(change, now);
        await Save(_session.Record.Partition, now);
    }

    public async Task Broadcast(string campaignId, long scheduledAt, long version)
    {
        if (!HasProfile)
        {
            DeactivateOnIdle();
            return;
        }

        var rules = await silo.Campaigns.RulesAsync();
        if (rules.Campaigns.FirstOrDefault(c => c.Id == campaignId) is not { Broadcasts: true } campaign || campaign.Version < version || campaign.ScheduledAt != scheduledAt)
        {
            throw new CampaignNotReadyException(campaignId, version);
        }

        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        _session.EvaluateIfStale(now);
        try
        {
            _session.FireScheduled(rules, campaign, scheduledAt, now);
        }
        catch
        {
            Break();
            throw;
        }

        await Save(_session.Record.Partition, now);
    }

    public async Task Erase(ErasureRequest request)
    {
        if (_session.Record.LastSeq >= request.Seq)
        {
            // Applied already by this activation (the partition is read again from before it): nothing before it is left.
            return;
        }

        var now = silo.Now();
        var (removals, erasure) = _session.PlanErasure(request, now);
        try
        {
            // Announced before anything is deleted: after a crash in between, the stored profile gives the same removals
            // with the same ids again.
            await silo.Outputs.DeliverAsync(removals, [], []);
            silo.Metrics.Delivered(removals, []);
            await silo.Store.EraseAsync(erasure);
            await silo.Campaigns.Store.EraseUserAsync(UserId);

            // What this activation holds goes too: the grain state is read again (nothing is stored), and the session
            // starts empty at the erasure's place, so nothing before it is applied again.
            await stored.ReadStateAsync();
            _session = await ProfileSession.OpenAsync(UserId, null, silo, default);
            _session.Record.LastSeq = request.Seq;
            _session.Record.Partition = request.Partition;
        }
        catch
        {
            Break();
            throw;
        }

        silo.Metrics.Erased();
        LogErased(UserId, request.ErasureId, removals.Count);
    }

    public async Task<ProfileView?> GetProfile()
    {
        if (!HasProfile)
        {
            DeactivateOnIdle();
            return null;
        }

        await Refresh();
        var p = _session.State.Profile;
        return new ProfileView(p.UserId, p.EventCount, p.TotalSpent, p.OrderCount, p.FirstSeen, p.LastSeen, TraitsJson(p),
            [.. p.Memberships.Select(m => new MembershipView(silo.Catalog.SegmentId(m.Key), m.Value)).OrderBy(m => m.SegmentId, StringComparer.Ordinal)],
            silo.Index.NextTimer(p, silo.Now()));
    }

    public async Task<ExplainResult?> Explain(string segmentId)
    {
        if (!HasProfile || silo.Index.Find(segmentId) is not { } segment)
        {
            if (!HasProfile)
            {
                DeactivateOnIdle();
            }

            return null;
        }

        await Refresh();
        var profile = _session.State.Profile;
        return new ExplainResult(View(RuleInterpreter.Explain(segment.Rule.Rule, profile, silo.Now())), profile.IsMember(segment.Slot));
    }

    public async Task<HistoryEntry[]> History(long afterSeq, int limit)
    {
        var state = _session.State;
        var openFrom = state.HistoryCount - state.OpenHistory.Count; // entries after this are in the open chunk
        var entries = new List<HistoryEntry>(limit);
        if (afterSeq < openFrom)
        {
            var chunks = await silo.Store.HistoryAsync(UserId, afterSeq / ProfileCodec.HistoryChunkSize, (limit / ProfileCodec.HistoryChunkSize) + 2);
            foreach (var chunk in chunks)
            {
                entries.AddRange(ProfileCodec.DecodeHistory(chunk.Chunk, chunk.Data).Where(e => e.Seq > afterSeq));
            }
        }

        entries.AddRange(state.OpenHistory.Where(e => e.Seq > afterSeq));
        if (!HasProfile)
        {
            DeactivateOnIdle();
        }

        return [.. entries.Take(limit)];
    }

    /// <summary>Brings a queried profile up to date with the segments, writing what that changed.</summary>
    private async Task Refresh()
    {
        await _session.CompleteAggregatesAsync(default);
        var now = silo.Now();
        _session.EvaluateIfStale(now);
        _session.Tick(now);
        await Save(_session.Record.Partition, now);
    }

    /// <summary>Delivers the outputs of what changed; a failure deactivates the grain, which reloads from the store.</summary>
    private async Task Deliver()
    {
        var session = _session;
        if (session.Messages.Count == 0 && session.Orders.Count == 0 && session.DeadLetters.Count == 0 && session.Firings.Count == 0)
        {
            return;
        }

        try
        {
            // What a due time, a backfill or a query changed: the campaigns not yet evaluated for it are now.
            session.FireCampaigns(await silo.Campaigns.RulesAsync(), silo.Now());
            await silo.Outputs.DeliverAsync(session.Messages, session.Orders, session.Firings);
            silo.Metrics.Delivered(session.Messages, session.Firings);
            foreach (var deadLetter in session.DeadLetters)
            {
                LogDeadLetter(deadLetter.Error, UserId);
                silo.Metrics.DeadLetter();
                await silo.Outputs.DeadLetterAsync(deadLetter);
            }

            session.Delivered();
        }
        catch
        {
            Break();
            throw;
        }
    }

    /// <summary>Delivers what changed, then writes the record; a failure deactivates the grain, which reloads from the store.</summary>
    private async Task Save(int partition, long now)
    {
        if (!_session.Dirty)
        {
            return;
        }

        await Deliver();
        try
        {
            var write = _session.TakeWrite(partition, now);
            stored.State = write.Record;
            stored.State.Pending = write;
            await stored.WriteStateAsync();
        }
        catch
        {
            Break();
            throw;
        }

        // The profile lives decoded in the session; its encoded copy is only needed for the write.
        stored.State.Data = [];
    }

    /// <summary>What is in memory may be ahead of the store, or of the outputs: the next activation starts from what was written.</summary>
    private void Break()
    {
        _broken = true;
        DeactivateOnIdle();
    }

    private static string TraitsJson(Audience.Rules.Profiles.UserProfile profile)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in profile.Traits)
            {
                writer.WritePropertyName(name);
                EventValues.Write(writer, value);
            }

            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static ExplanationView View(ExplainNode node) =>
        new(node.Rule, node.Result, node.Actual, node.Note, [.. node.Children.Select(View)]);

    [LoggerMessage(EventId = LogEvents.UserGrainDeadLetter, Level = LogLevel.Error, Message = "An event of user {UserId} could not be applied and went to the dead letters: {Error}")]
    private partial void LogDeadLetter(string error, string userId);

    [LoggerMessage(EventId = LogEvents.UserGrainErased, Level = LogLevel.Information, Message = "User {UserId} erased ({ErasureId}): profile, history, archived events and notifications deleted, {Memberships} memberships removed")]
    private partial void LogErased(string userId, string erasureId, int memberships);

    [LoggerMessage(EventId = LogEvents.UserGrainWriteOnDeactivationFailed, Level = LogLevel.Warning, Message = "The profile of user {UserId} could not be written as its grain deactivated; its partition reads its events again")]
    private partial void LogWriteOnDeactivationFailed(Exception exception, string userId);
}

/// <summary>This silo's campaign rules do not hold the campaign's version a broadcast asks for yet; the broadcast tries again.</summary>
[GenerateSerializer]
public sealed class CampaignNotReadyException : Exception
{
    public CampaignNotReadyException(string campaignId, long version)
        : base($"The campaign rules of this silo do not hold version {version} of campaign '{campaignId}' yet.")
    {
    }

    public CampaignNotReadyException()
    {
    }

    public CampaignNotReadyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
