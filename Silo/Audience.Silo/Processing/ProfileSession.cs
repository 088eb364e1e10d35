using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo.Contracts;
using Audience.Silo.Grains;
using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>What user grains and backfills share: the segments and their engine, the profile store, the outputs, the campaigns and the clock.</summary>
public sealed class SiloContext(SegmentIndex index, ISegmentEngine engine, IProfileStore store, ISiloOutputs outputs, SiloOptions options,
    [Microsoft.Extensions.DependencyInjection.FromKeyedServices(Hosting.AudienceServices.Clock)] TimeProvider time,
    Campaigns.CampaignService campaigns, AudienceMetrics metrics)
{
    public AudienceMetrics Metrics => metrics;

    public Campaigns.CampaignService Campaigns => campaigns;

    public SegmentIndex Index => index;

    /// <summary>What evaluates memberships (<c>Rules:Engine</c>); the index stays the source of the segments and of the timers.</summary>
    public ISegmentEngine Engine => engine;

    public RuleCatalog Catalog => index.Catalog;

    public IProfileStore Store => store;

    public ISiloOutputs Outputs => outputs;

    public SiloOptions Options => options;

    public TimeProvider Time => time;

    public long Now() => time.GetUtcNow().ToUnixTimeMilliseconds();
}

/// <summary>
/// The work on one user's profile between two writes: applying events, time-based and segment-driven evaluations,
/// and what they leave to deliver and to write (membership messages, orders, dead letters, history entries, index
/// changes, archived events). The user's grain keeps one for its lifetime; a backfill opens one over a stored record
/// of a user whose grain is not active. Not thread-safe: one writer per user, as Orleans guarantees the grain.
/// </summary>
public sealed class ProfileSession
{
    private readonly SiloContext _silo;
    private readonly List<MembershipChange> _changes = [];
    private readonly List<MembershipDelta> _deltas = [];
    private readonly List<HistoryChunk> _sealed = [];
    private readonly List<ArchivedEvent> _archive = [];

    private ProfileSession(ProfileRecord record, ProfileState state, SiloContext silo)
    {
        Record = record;
        State = state;
        _silo = silo;
    }

    public ProfileRecord Record { get; }

    public ProfileState State { get; }

    public string UserId => Record.UserId;

    /// <summary>Membership changes to deliver before the next write (<see cref="Delivered"/> once they are).</summary>
    public List<MembershipChangeMessage> Messages { get; } = [];

    public List<OrderAnalyticsMessage> Orders { get; } = [];

    public List<DeadLetterMessage> DeadLetters { get; } = [];

    /// <summary>What the campaigns fired for <see cref="Messages"/>: notifications to record and send, or capped ones.</summary>
    public List<Campaigns.CampaignFiring> Firings { get; } = [];

    /// <summary>How many of <see cref="Messages"/> the campaigns have seen.</summary>
    private int _campaignsSeen;

    /// <summary>Whether anything changed since the last write.</summary>
    public bool Dirty { get; private set; }

    /// <summary>Opens a stored record (or a new profile when there is none) and completes its aggregates.</summary>
    public static async Task<ProfileSession> OpenAsync(string userId, ProfileRecord? stored, SiloContext silo, CancellationToken cancellationToken)
    {
        ProfileSession session;
        if (stored is { Data.Length: > 0 })
        {
            session = new ProfileSession(stored, ProfileCodec.Decode(userId, stored.Data, silo.Catalog), silo);
        }
        else
        {
            // A new user has no past, so every current aggregate is complete (empty) for it, and its first event
            // evaluates every segment.
            var record = stored ?? new ProfileRecord { UserId = userId };
            record.UserId = userId;
            session = new ProfileSession(record, new ProfileState(new UserProfile(userId, silo.Catalog))
            {
                CompletedVersion = silo.Catalog.AggregateVersion,
                SegmentsFingerprint = silo.Index.Fingerprint,
            }, silo);
        }

        await session.CompleteAggregatesAsync(cancellationToken).ConfigureAwait(false);
        return session;
    }

    /// <summary>
    /// Fills aggregates that segments started to use after this profile's state was built, from the user's archived
    /// events (the embedded log, or the store's archive), so a new segment sees the user's past and not only what
    /// arrives next. Cheap when nothing is missing.
    /// </summary>
    public async Task CompleteAggregatesAsync(CancellationToken cancellationToken)
    {
        var catalog = _silo.Catalog;
        var version = catalog.AggregateVersion;
        if (State.CompletedVersion == version)
        {
            return;
        }

        var missing = catalog.Aggregates.Where(s => !State.IsKnown(s)).ToList();
        if (missing.Count > 0 && Record.LastSeq > 0)
        {
            await FillFromArchiveAsync(_silo.Store, _silo.Options.EventRetention, Record, State.Profile, missing, _silo.Now(), cancellationToken)
                .ConfigureAwait(false);
            Dirty = true;
        }

        State.CompletedVersion = version;
        State.StoredKnown = null;
    }

    /// <summary>
    /// Sets <paramref name="specs"/> in <paramref name="profile"/> to what the user's archived events (up to the
    /// record's last applied one, received within <paramref name="retention"/>) give them, where they give any;
    /// for a profile completed here and for a segment preview, which must agree with it.
    /// </summary>
    public static async Task FillFromArchiveAsync(IProfileStore store, TimeSpan retention, ProfileRecord record, UserProfile profile,
        IReadOnlyList<AggregateSpec> specs, long now, CancellationToken cancellationToken)
    {
        var archived = await store.ArchiveAsync(record.UserId, record.LastSeq, now - (long)retention.TotalMilliseconds, cancellationToken)
            .ConfigureAwait(false);
        var history = new List<RuleEvent>(archived.Count);
        // A chunk written by a write that then lost its generation check is archived again by the winner: each
        // event counts once.
        foreach (var entry in archived.DistinctBy(e => e.Seq))
        {
            if (EventParser.TryRead(entry.Json, DateTimeOffset.FromUnixTimeMilliseconds(entry.ReceivedAt), out var e, out _))
            {
                history.Add(EventValues.ToRuleEvent(e!));
            }
        }

        foreach (var spec in specs)
        {
            var state = new WindowedAggregate(spec.Layout);
            foreach (var e in history)
            {
                if ((spec.Key.EventType is null || spec.Key.EventType == e.Type) && spec.TryTake(e, out var value))
                {
                    state.Add(e.TimestampMs, value, now);
                }
            }

            if (state.BucketCount > 0)
            {
                // Most users have no event for most aggregates: those keep no state at all.
                profile.SetAggregate(spec, state);
            }
        }
    }

    /// <summary>Evaluates every segment again when the segments changed since this profile was last evaluated.</summary>
    public void EvaluateIfStale(long now)
    {
        var fingerprint = _silo.Index.Fingerprint;
        if (State.SegmentsFingerprint == fingerprint)
        {
            return;
        }

        _changes.Clear();
        _silo.Engine.EvaluateAll(State.Profile, now, _changes);
        RecordChanges(null, null, 0);
        State.SegmentsFingerprint = fingerprint;
        Dirty = true;
    }

    /// <summary>Applies one event; one at or below the last applied sequence number, or a resent event id, has no effect.</summary>
    public void Apply(LoggedEvent logged, string topic, int partition, long now)
    {
        if (logged.Seq <= Record.LastSeq)
        {
            return; // already applied before a restart: exactly-once effect on the profile
        }

        var e = logged.Event;
        Record.LastSeq = logged.Seq;
        Dirty = true;
        if (!State.Recent.Add(e.EventId))
        {
            return; // a client resent an event it had sent before: it has effect once
        }

        var latency = Math.Max(0, now - logged.ReceivedAt);
        try
        {
            var ruleEvent = EventValues.ToRuleEvent(e);
            var effects = State.Profile.Apply(ruleEvent, now);
            _changes.Clear();
            _silo.Engine.Evaluate(State.Profile, e.EventType, effects, now, _changes);
            RecordChanges(e.EventId, "e" + logged.Seq, latency);
            if (_silo.Outputs.WantsOrders && e.EventType == RuleEvent.Purchase)
            {
                Orders.Add(Order(e, ruleEvent, latency));
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Events are validated on the way in, so this is a bug; the event goes to the dead letters, the user goes on.
            DeadLetters.Add(new DeadLetterMessage(ex.Message, topic, partition, logged.Seq - 1, e.UserId,
                System.Text.Json.JsonSerializer.Serialize(e, SiloJsonContext.Default.UserEvent), _silo.Time.GetUtcNow()));
        }

        _archive.Add(new ArchivedEvent(logged.Seq, logged.ReceivedAt, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent)));
    }

    /// <summary>Evaluates what time alone may have changed, if the user's next due time has come.</summary>
    public void Tick(long now)
    {
        if (Record.NextDue is not { } due || due > now)
        {
            return;
        }

        _changes.Clear();
        _silo.Engine.EvaluateTimeDependent(State.Profile, now, _changes);
        RecordChanges(null, "t" + due, now - due);
        Dirty = true;
    }

    /// <summary>Applies a created or edited segment to this profile, or removes a deleted one: a backfill.</summary>
    public void ApplySegment(SegmentChangeRequest change, long now)
    {
        if (change.Deleted)
        {
            var slot = _silo.Catalog.SegmentSlot(change.SegmentId);
            if (State.Profile.IsMember(slot))
            {
                State.Profile.Leave(slot);
                Note(change.SegmentId, change.Version, string.Empty, entered: false, "manual", "segment_deleted", now, 0, null, "s" + change.Version);
                Dirty = true;
            }

            return;
        }

        if (_silo.Index.Find(change.SegmentId) is null)
        {
            return;
        }

        var started = _silo.Time.GetTimestamp();
        _changes.Clear();
        _silo.Engine.EvaluateSegment(State.Profile, change.SegmentId, now, _changes);
        RecordChanges(null, null, _silo.Time.GetElapsedTime(started).TotalMilliseconds);
        Dirty |= _changes.Count > 0;
    }

    /// <summary>
    /// What erasing this user announces and deletes: a removal with reason <c>erased</c> of each membership the profile
    /// holds, in segment order (its dedupe id names the erasure's place in the partition, <c>x&lt;seq&gt;</c>, so an
    /// erasure applied again after a crash announces the same ids), and the keys of everything the store keeps about the
    /// user. Nothing of it goes into the history, which the erasure deletes.
    /// </summary>
    public (List<MembershipChangeMessage> Removals, ProfileErasure Erasure) PlanErasure(ErasureRequest request, long now)
    {
        var segments = new HashSet<string>(StringComparer.Ordinal);
        foreach (var segment in _silo.Index.Segments)
        {
            segments.Add(segment.Id);
        }

        var removals = new List<MembershipChangeMessage>(State.Profile.Memberships.Count);
        foreach (var segmentId in State.Profile.Memberships.Keys.Select(_silo.Catalog.SegmentId).Order(StringComparer.Ordinal))
        {
            segments.Add(segmentId);
            var indexed = _silo.Index.Find(segmentId);
            removals.Add(new MembershipChangeMessage(UserId, segmentId, "removed", "erased", DateTimeOffset.FromUnixTimeMilliseconds(now),
                new MembershipChangeMetadata(indexed?.Version ?? 0, indexed?.Rule.Text ?? string.Empty, "erasure", null,
                    Math.Max(0, now - request.RequestedAt), $"{UserId}/{segmentId}/x{request.Seq}")));
        }

        var sealedChunks = (State.HistoryCount - State.OpenHistory.Count) / ProfileCodec.HistoryChunkSize;
        int[] partitions = Record.Partition == request.Partition ? [request.Partition] : [Record.Partition, request.Partition];
        return (removals, new ProfileErasure(UserId, partitions, segments, sealedChunks));
    }

    /// <summary>
    /// <see cref="Messages"/>, <see cref="Orders"/> and <see cref="DeadLetters"/> were delivered; what they record
    /// stays to be written.
    /// </summary>
    public void Delivered()
    {
        Release(Messages);
        Release(Orders);
        Release(DeadLetters);
        Release(Firings);
        _campaignsSeen = 0;
    }

    /// <summary>
    /// Evaluates the campaigns for the changes in <see cref="Messages"/> they have not seen (each change once), adding what
    /// fires to <see cref="Firings"/> and the sends to the profile, for caps. Replaying an event gives the same changes
    /// with the same ids, from the same sends, so the same notifications with the same dedupe ids.
    /// </summary>
    public void FireCampaigns(Campaigns.CampaignRules rules, long now)
    {
        if (_campaignsSeen >= Messages.Count)
        {
            return;
        }

        if (rules.Campaigns.Count > 0)
        {
            var changes = Messages.GetRange(_campaignsSeen, Messages.Count - _campaignsSeen);
            Fired(rules, changes.Max(c => c.Timestamp.ToUnixTimeMilliseconds()), sends => rules.Evaluate(changes, State.Profile, sends, now));
        }

        // Only once they are evaluated: a failure leaves them to be evaluated again (the grain reloads, the call is retried).
        _campaignsSeen = Messages.Count;
    }

    /// <summary>Evaluates a scheduled campaign's broadcast for this user, adding what fires to <see cref="Firings"/>.</summary>
    public void FireScheduled(Campaigns.CampaignRules rules, Campaigns.CampaignRecord campaign, long scheduledAt, long now) =>
        Fired(rules, scheduledAt, sends => rules.EvaluateScheduled(campaign, scheduledAt, State.Profile, sends, now));

    /// <summary>
    /// Runs an evaluation over the user's sends and keeps what fired. Sends older than the longest cap period before
    /// <paramref name="at"/> (the time of what is evaluated, not the clock's: a replay decides as the first time did) no
    /// longer count and go.
    /// </summary>
    private void Fired(Campaigns.CampaignRules rules, long at, Func<List<Campaigns.CampaignSend>, List<Campaigns.CampaignFiring>> evaluate)
    {
        var sends = State.Sends;
        var keepFrom = at - rules.LongestPeriodMs;
        if (sends.RemoveAll(s => s.At <= keepFrom) > 0)
        {
            Dirty = true;
        }

        var fired = evaluate(sends);
        if (fired.Count > 0)
        {
            Firings.AddRange(fired);
            Dirty = true;
        }
    }

    /// <summary>
    /// The write that records everything since the last one (the caller delivers <see cref="Messages"/>,
    /// <see cref="Orders"/> and <see cref="DeadLetters"/> first), and the next due time.
    /// </summary>
    public ProfileWrite TakeWrite(int partition, long now)
    {
        Record.Partition = partition;
        Record.NextDue = _silo.Index.NextTimer(State.Profile, now);
        Record.Data = ProfileCodec.Encode(State);
        var write = new ProfileWrite(Record, Record.Generation, [.. _deltas], [.. _sealed],
            _archive.Count > 0 ? EventArchive.Encode(_archive) : null, now);
        Release(_deltas);
        Release(_sealed);
        Release(_archive);
        Release(_changes);
        Delivered();
        Dirty = false;
        return write;
    }

    /// <summary>
    /// Empties a list between writes, and lets its array go if a burst grew it (a new user's first events enter dozens
    /// of segments): a grain lives for minutes with mostly quiet users, and what it holds, the GC marks.
    /// </summary>
    private static void Release<T>(List<T> list)
    {
        list.Clear();
        if (list.Capacity > 16)
        {
            list.Capacity = 0;
        }
    }

    /// <summary>Records the flips of one evaluation; <paramref name="origin"/> (or the segment's version) makes each change's dedupe id.</summary>
    private void RecordChanges(string? eventId, string? origin, double latencyMs)
    {
        foreach (var change in _changes)
        {
            var reason = change.Trigger == EvaluationTrigger.Time && !change.Entered ? "expired" : "rule_evaluation";
            Note(change.Segment.Id, change.Segment.Version, change.Segment.Rule.Text, change.Entered, reason, Trigger(change.Trigger),
                change.AtMs, latencyMs, eventId, origin ?? "s" + change.Segment.Version);
        }
    }

    private void Note(string segmentId, long version, string rule, bool entered, string reason, string trigger, long at, double latencyMs,
        string? eventId, string origin)
    {
        latencyMs = Math.Max(0, latencyMs);
        if (origin[0] == 's')
        {
            // A segment's version alone does not tell two of its changes apart (a user can enter it on two re-evaluations
            // of the same version); the entry's number in the user's history does, and a replay numbers it the same.
            origin = $"{origin}.{State.HistoryCount + 1}";
        }

        Messages.Add(new MembershipChangeMessage(UserId, segmentId, entered ? "added" : "removed", reason,
            DateTimeOffset.FromUnixTimeMilliseconds(at),
            new MembershipChangeMetadata(version, rule, trigger, eventId, latencyMs, $"{UserId}/{segmentId}/{origin}")));
        _deltas.Add(new MembershipDelta(segmentId, entered ? at : null));
        State.HistoryCount++;
        State.OpenHistory.Add(new HistoryEntry(State.HistoryCount, segmentId, entered, reason, at, latencyMs, eventId));
        if (State.OpenHistory.Count == ProfileCodec.HistoryChunkSize)
        {
            _sealed.Add(new HistoryChunk((State.HistoryCount - 1) / ProfileCodec.HistoryChunkSize, ProfileCodec.EncodeHistory(State.OpenHistory)));
            State.OpenHistory.Clear();
        }
    }

    private OrderAnalyticsMessage Order(UserEvent e, RuleEvent ruleEvent, double latencyMs)
    {
        var p = State.Profile;
        var amount = ruleEvent.Properties.TryGetValue("amount", out var a) && a.IsSummable ? a.AsNumber : (decimal?)null;
        return new OrderAnalyticsMessage(e.EventId, e.UserId, e.Timestamp, amount, e.Properties,
            [.. p.Memberships.Keys.Select(_silo.Catalog.SegmentId).Where(id => _silo.Index.Find(id) is not null).Order(StringComparer.Ordinal)],
            p.TotalSpent, p.OrderCount, p.FirstSeen is { } first ? DateTimeOffset.FromUnixTimeMilliseconds(first) : null, latencyMs);
    }

    private static string Trigger(EvaluationTrigger trigger) => trigger switch
    {
        EvaluationTrigger.Event => "event",
        EvaluationTrigger.Time => "time",
        EvaluationTrigger.Cascade => "cascade",
        _ => "segment_changed",
    };
}
