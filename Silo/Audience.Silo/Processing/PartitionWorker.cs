using System.Data.Common;
using System.Text.Json;
using System.Threading.Channels;
using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo.Contracts;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// Processes one partition of the log, in order, on one logical thread: the single writer of every actor whose
/// user hashes to this partition. Each step reads a batch of events and applies them (an event at or below an
/// actor's last applied sequence number is a replay and is skipped), runs queries and segment backfills posted
/// to it, fires due timers, and writes changed profiles behind in one transaction with the partition's
/// checkpoint. Queries run on the worker too, so they see the same state events do.
/// </summary>
internal sealed partial class PartitionWorker : IDisposable
{
    private const int BackfillPage = 200;
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);

    private readonly int _partition;
    private readonly SiloOptions _options;
    private readonly SegmentIndex _index;
    private readonly RuleCatalog _catalog;
    private readonly ISiloOutputs _outputs;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IPartitionSource _source;
    private readonly IProfileStore _store;
    private readonly IProfileStore _writer;
    private readonly CancellationTokenSource _stopping = new();
    private Task _writing = Task.CompletedTask;
    private bool _resumedBackfills;
    private readonly Dictionary<string, Actor> _actors = new(StringComparer.Ordinal);
    private readonly HashSet<Actor> _dirty = [];
    private readonly List<HistoryRow> _history = [];
    private readonly List<MembershipChange> _changes = [];
    private readonly PriorityQueue<Actor, long> _timers = new();
    private readonly Queue<BackfillJob> _backfills = new();
    private readonly Dictionary<string, StoredProfile?> _prefetched = new(StringComparer.Ordinal);
    private readonly Channel<Action> _control = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private long _appliedSeq;
    private long _checkpoint;
    private long _lastFlush;
    private long _lastSweep;

    /// <param name="store">For the worker's reads.</param>
    /// <param name="writer">For the write-behind, which runs beside the worker (a second connection where that matters).</param>
    public PartitionWorker(IPartitionSource source, IProfileStore store, IProfileStore writer, SiloOptions options, SegmentIndex index,
        ISiloOutputs outputs, TimeProvider time, ILogger logger)
    {
        _partition = source.Partition;
        _source = source;
        _store = store;
        _writer = writer;
        _options = options;
        _index = index;
        _catalog = index.Catalog;
        _outputs = outputs;
        _time = time;
        _logger = logger;
    }

    public int Partition => _partition;

    public int ActiveActors => _actors.Count;

    /// <summary>Runs <paramref name="work"/> on the worker and returns its result.</summary>
    public Task<T> Invoke<T>(Func<PartitionWorker, T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _control.Writer.TryWrite(() =>
        {
            try
            {
                completion.TrySetResult(work(this));
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
            }
        });
        _source.Wake();
        return completion.Task;
    }

    public void Enqueue(SegmentChange change)
    {
        _control.Writer.TryWrite(() => _backfills.Enqueue(new BackfillJob(change)));
        _source.Wake();
    }

    /// <summary>
    /// Runs until <paramref name="stopping"/>, then writes everything behind. Ends with
    /// <see cref="ProfileConflictException"/> when another writer took over its profiles, or with
    /// <see cref="DeliveryException"/> when an output was lost; either way it drops what it holds, and its owner
    /// restarts the partition from the last checkpoint.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        _appliedSeq = _checkpoint = _source.Start(_store);
        _lastFlush = Now();
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (!Step())
                {
                    await WaitForWork(stopping).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (DbException e)
            {
                // The store is unavailable for a read: keep what is in memory, pause, and try again (the step's
                // events are read again); nothing past the checkpoint is lost because the log still holds it.
                LogStoreUnavailable(e, _partition);
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stopping).ConfigureAwait(false);
            }
        }

        // Stopping: the last write-behind gets a few seconds to land; if the store is away, the log replays it.
        _stopping.CancelAfter(TimeSpan.FromSeconds(10));
        DrainOnShutdown();
    }

    private bool Step()
    {
        if (!_resumedBackfills)
        {
            ResumeBackfills();
            _resumedBackfills = true;
        }

        var worked = false;
        var events = _source.Read(_appliedSeq, _options.ReadBatchSize);
        Prefetch(events);
        foreach (var e in events)
        {
            Apply(e);
            worked = true;
        }

        _prefetched.Clear();

        while (_control.Reader.TryRead(out var work))
        {
            work();
            worked = true;
        }

        var now = Now();
        worked |= FireTimers(now);
        worked |= StepBackfill(now);
        if (_dirty.Count >= _options.FlushBatchSize
            || ((_dirty.Count > 0 || _history.Count > 0 || _appliedSeq != _checkpoint) && now - _lastFlush >= _options.FlushInterval.TotalMilliseconds))
        {
            Flush();
        }

        if (now - _lastSweep >= SweepInterval.TotalMilliseconds)
        {
            Sweep(now);
        }

        return worked;
    }

    private async Task WaitForWork(CancellationToken stopping)
    {
        var wait = _options.FlushInterval;
        if (_timers.TryPeek(out _, out var due))
        {
            wait = TimeSpan.FromMilliseconds(Math.Clamp(due - Now(), 0, wait.TotalMilliseconds));
        }

        // One signal for both kinds of work: the log wakes it for new events, Invoke and Enqueue for the rest.
        await _source.WaitAsync(wait, stopping).ConfigureAwait(false);
    }

    private void Apply(LoggedEvent logged)
    {
        if (logged.Event is not { } e)
        {
            _appliedSeq = logged.Seq;
            return;
        }

        var actor = Activate(e.UserId, create: true)!;
        if (logged.Seq <= actor.LastSeq)
        {
            // Already applied before a restart: exactly-once effect on the profile.
            _appliedSeq = logged.Seq;
            return;
        }

        if (!actor.RecentEvents.Add(e.EventId))
        {
            // A client resent an event it had sent before: it has effect once.
            actor.LastSeq = _appliedSeq = logged.Seq;
            MarkDirty(actor);
            return;
        }

        var now = Now();
        try
        {
            var ruleEvent = EventValues.ToRuleEvent(e);
            var effects = actor.Profile.Apply(ruleEvent, now);
            _changes.Clear();
            _index.Evaluate(actor.Profile, e.EventType, effects, now, _changes);
            Record(actor, _changes, e.EventId, "e" + logged.Seq, now - logged.ReceivedAt);
            if (_outputs.WantsOrders && e.EventType == RuleEvent.Purchase)
            {
                EmitOrder(actor, e, ruleEvent, now - logged.ReceivedAt);
            }
        }
        catch (Exception ex) when (ex is not DbException and not DeliveryException)
        {
            // Events are validated on the way in, so this is a bug; skip the event rather than stop the partition.
            LogEventFailed(ex, e.EventId, _partition);
            _outputs.DeadLetter(new DeadLetterMessage(ex.Message, _source.Topic, _partition, logged.Seq - 1, e.UserId,
                JsonSerializer.Serialize(e, SiloJsonContext.Default.UserEvent), _time.GetUtcNow()));
        }

        actor.LastSeq = logged.Seq;
        MarkDirty(actor);
        Reschedule(actor, now);
        _appliedSeq = logged.Seq;
    }

    /// <summary>Loads the stored profiles of a batch's inactive users in one round trip, instead of one each.</summary>
    private void Prefetch(IReadOnlyList<LoggedEvent> events)
    {
        var missing = new HashSet<string>(StringComparer.Ordinal);
        foreach (var logged in events)
        {
            if (logged.Event is { } e && !_actors.ContainsKey(e.UserId))
            {
                missing.Add(e.UserId);
            }
        }

        if (missing.Count < 2)
        {
            return;
        }

        var found = _store.LoadMany(missing);
        foreach (var userId in missing)
        {
            _prefetched[userId] = found.GetValueOrDefault(userId);
        }
    }

    private Actor? Activate(string userId, bool create)
    {
        var now = Now();
        if (_actors.TryGetValue(userId, out var actor))
        {
            actor.LastUsed = now;
            EnsureAggregates(actor, now);
            return actor;
        }

        var stored = _prefetched.Remove(userId, out var prefetched) ? prefetched : _store.Load(userId);
        if (stored is null && !create)
        {
            return null;
        }

        if (stored is null)
        {
            // A new user has no history, so every current aggregate is complete (empty) for it.
            actor = new Actor(new UserProfile(userId, _catalog), 0, [.. _catalog.Aggregates], new RecentEventIds()) { AggregateVersion = _catalog.AggregateVersion };
        }
        else
        {
            var profile = ProfileCodec.Decode(userId, stored.State, _catalog, out var known, out var recent);
            actor = new Actor(profile, stored.LastSeq, known, recent) { NextTimer = stored.NextTimer, Version = stored.Version };
            if (stored.NextTimer is { } due)
            {
                _timers.Enqueue(actor, due);
            }
        }

        actor.LastUsed = now;
        _actors[userId] = actor;
        EnsureAggregates(actor, now);
        return actor;
    }

    /// <summary>
    /// Fills aggregates that segments started to use after this user's state was built, from the user's events
    /// still in the log, so a new segment sees the user's past and not only what arrives next.
    /// </summary>
    private void EnsureAggregates(Actor actor, long now)
    {
        var version = _catalog.AggregateVersion;
        if (actor.AggregateVersion == version)
        {
            return;
        }

        var missing = _catalog.Aggregates.Where(s => !actor.KnownAggregates.Contains(s)).ToList();
        if (missing.Count > 0 && actor.LastSeq > 0)
        {
            var history = _source.ReadUser(actor.UserId, actor.LastSeq, now - (long)_options.EventRetention.TotalMilliseconds)
                .Where(l => l.Event is not null).Select(l => EventValues.ToRuleEvent(l.Event!)).ToList();
            foreach (var spec in missing)
            {
                var state = new WindowedAggregate(spec.Layout);
                foreach (var e in history)
                {
                    if ((spec.Key.EventType is null || spec.Key.EventType == e.Type) && spec.TryTake(e, out var value))
                    {
                        state.Add(e.TimestampMs, value, now);
                    }
                }

                actor.Profile.SetAggregate(spec, state);
            }

            MarkDirty(actor);
        }

        actor.KnownAggregates.UnionWith(missing);
        actor.AggregateVersion = version;
    }

    /// <summary>Records and emits the flips of one evaluation; <paramref name="origin"/> makes each change's dedupe id.</summary>
    private void Record(Actor actor, List<MembershipChange> changes, string? eventId, string origin, double latencyMs)
    {
        foreach (var change in changes)
        {
            var reason = change.Trigger switch
            {
                EvaluationTrigger.Time => change.Entered ? "rule_evaluation" : "expired",
                _ => "rule_evaluation",
            };
            Publish(actor.UserId, change.Segment.Id, change.Segment.Version, change.Segment.Rule.Text, change.Entered, reason,
                Trigger(change.Trigger), change.AtMs, latencyMs, eventId, origin);
        }

        if (changes.Count > 0)
        {
            MarkDirty(actor);
        }
    }

    private void Publish(string userId, string segmentId, long version, string rule, bool entered, string reason, string trigger,
        long at, double latencyMs, string? eventId, string origin)
    {
        latencyMs = Math.Max(0, latencyMs);
        _history.Add(new HistoryRow(userId, segmentId, entered, reason, at, latencyMs, eventId));
        _outputs.MembershipChanged(new MembershipChangeMessage(userId, segmentId, entered ? "added" : "removed", reason,
            DateTimeOffset.FromUnixTimeMilliseconds(at),
            new MembershipChangeMetadata(version, rule, trigger, eventId, latencyMs, $"{userId}/{segmentId}/{origin}")));
    }

    private void EmitOrder(Actor actor, UserEvent e, RuleEvent ruleEvent, double latencyMs)
    {
        var p = actor.Profile;
        var amount = ruleEvent.Properties.TryGetValue("amount", out var a) && a.IsSummable ? a.AsNumber : (decimal?)null;
        _outputs.Order(new OrderAnalyticsMessage(e.EventId, e.UserId, e.Timestamp, amount, e.Properties,
            [.. p.Memberships.Keys.Select(_catalog.SegmentId).Order(StringComparer.Ordinal)], p.TotalSpent, p.OrderCount,
            p.FirstSeen is { } first ? DateTimeOffset.FromUnixTimeMilliseconds(first) : null, Math.Max(0, latencyMs)));
    }

    private static string Trigger(EvaluationTrigger trigger) => trigger switch
    {
        EvaluationTrigger.Event => "event",
        EvaluationTrigger.Time => "time",
        EvaluationTrigger.Cascade => "cascade",
        _ => "segment_changed",
    };

    private void Reschedule(Actor actor, long now)
    {
        var next = _index.NextTimer(actor.Profile, now);
        if (next != actor.NextTimer)
        {
            actor.NextTimer = next;
            MarkDirty(actor);
            if (next is { } due)
            {
                _timers.Enqueue(actor, due);
            }
        }
    }

    private bool FireTimers(long now)
    {
        var fired = false;
        while (_timers.TryPeek(out var actor, out var due) && due <= now)
        {
            _timers.Dequeue();
            if (actor.NextTimer != due || !_actors.ContainsKey(actor.UserId))
            {
                continue;
            }

            actor.NextTimer = null;
            EnsureAggregates(actor, now);
            _changes.Clear();
            _index.EvaluateTimeDependent(actor.Profile, now, _changes);
            Record(actor, _changes, null, "t" + due, now - due);
            Reschedule(actor, now);
            MarkDirty(actor);
            fired = true;
        }

        return fired;
    }

    /// <summary>
    /// Queues the backfills this partition has not completed: those cut short by a crash or a stop, or begun by the
    /// partition's previous owner in Kafka mode, and segments saved just before a crash. A completed backfill is
    /// recorded per partition and segment version; running one again changes nothing, so a repeat is harmless.
    /// </summary>
    private void ResumeBackfills()
    {
        var done = _store.BackfilledVersions(_partition);
        var missing = _index.Segments.Where(s => !done.TryGetValue(s.Id, out var version) || version != s.Version)
            .Select(s => new SegmentChange(s.Id, s.Version, Deleted: false, new BackfillProgress(1)))
            .Concat(done.Where(d => _index.Find(d.Key) is null).Select(d => new SegmentChange(d.Key, d.Value + 1, Deleted: true, new BackfillProgress(1))))
            .ToList();
        if (missing.Count > 0 && _store.CountUsers(_partition) == 0)
        {
            // No stored profile to apply them to (a new partition, or segments made before any event): done.
            _store.MarkBackfilled(_partition, [.. missing.Select(c => (c.SegmentId, c.Deleted ? null : (long?)c.Version))]);
            return;
        }

        foreach (var change in missing)
        {
            _backfills.Enqueue(new BackfillJob(change));
        }
    }

    private bool StepBackfill(long now)
    {
        if (!_backfills.TryPeek(out var job))
        {
            return false;
        }

        if (!job.Started)
        {
            // Everything in memory goes to the store first, so paging through the store sees every user.
            Flush(wait: true);
            job.Started = true;
            job.Change.Progress.Total += _store.CountUsers(_partition);
        }

        var users = _store.Users(_partition, job.Cursor, BackfillPage);
        var slot = _catalog.SegmentSlot(job.Change.SegmentId);
        foreach (var userId in users)
        {
            var actor = Activate(userId, create: false)!;
            _changes.Clear();
            if (job.Change.Deleted)
            {
                if (actor.Profile.IsMember(slot))
                {
                    actor.Profile.Leave(slot);
                    Publish(userId, job.Change.SegmentId, job.Change.Version, string.Empty, entered: false, "manual", "segment_deleted", now, 0, null,
                        "s" + job.Change.Version);
                    MarkDirty(actor);
                }
            }
            else
            {
                var started = _time.GetTimestamp();
                _index.EvaluateSegment(actor.Profile, job.Change.SegmentId, now, _changes);
                Record(actor, _changes, null, "s" + job.Change.Version, _time.GetElapsedTime(started).TotalMilliseconds);
                Reschedule(actor, now);
            }
        }

        job.Change.Progress.Add(users.Count);
        if (users.Count < BackfillPage)
        {
            _backfills.Dequeue();
            Flush(wait: true);
            _store.MarkBackfilled(_partition, [(job.Change.SegmentId, job.Change.Deleted ? null : job.Change.Version)]);
            job.Change.Progress.PartitionDone();
        }
        else
        {
            job.Cursor = users[^1];
        }

        return true;
    }

    /// <summary>
    /// Writes behind: takes a snapshot of every changed profile, the membership changes and the checkpoint, and
    /// hands it to the writer, which waits until the outputs emitted up to the snapshot are delivered, then writes
    /// it in one transaction, then reports the checkpoint to the source. In that order, a crash anywhere repeats
    /// outputs (each with its change id) but never loses one. The worker goes on meanwhile; one write is in flight
    /// at most, and snapshots are written in the order they were taken, so each profile's version check holds.
    /// With <paramref name="wait"/>, returns only once everything is written (before paging through the store,
    /// dropping actors, answering history, or stopping).
    /// </summary>
    public void Flush(bool wait = false)
    {
        if (_dirty.Count > 0 || _history.Count > 0 || _appliedSeq != _checkpoint)
        {
            WaitForWrite();
            var now = Now();
            var rows = _dirty.Select(a => (new StoredProfile(a.UserId, a.LastSeq, a.NextTimer, ProfileCodec.Encode(a.Profile, a.KnownAggregates, a.RecentEvents), a.Version), now)).ToList();
            foreach (var actor in _dirty)
            {
                actor.Dirty = false;
                actor.Version++; // the version the store will hold once this write lands; later snapshots expect it
            }

            var snapshot = new Snapshot(rows, [.. _history], _appliedSeq, _outputs.Seal());
            _dirty.Clear();
            _history.Clear();
            _checkpoint = _appliedSeq;
            _lastFlush = now;
            _writing = Task.Run(() => Write(snapshot), CancellationToken.None);
        }

        if (wait)
        {
            WaitForWrite();
        }
    }

    /// <summary>Waits for the write in flight; rethrows why it failed for good (conflict, lost output).</summary>
    private void WaitForWrite() => _writing.GetAwaiter().GetResult();

    private void Write(Snapshot snapshot)
    {
        snapshot.Outputs.WaitDelivered();
        while (true)
        {
            try
            {
                _writer.Save(_partition, snapshot.Profiles, snapshot.History, snapshot.Checkpoint);
                _source.Checkpointed(snapshot.Checkpoint);
                return;
            }
            catch (DbException e) when (!_stopping.IsCancellationRequested)
            {
                // The store is unavailable: the worker stops at its next write-behind, the source fills and the
                // partition pauses; nothing past the last checkpoint is lost, because the log still holds it.
                LogStoreUnavailable(e, _partition);
                _stopping.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            }
        }
    }

    private void Sweep(long now)
    {
        _lastSweep = now;
        foreach (var userId in _store.DueTimers(_partition, now, 1_000))
        {
            if (!_actors.ContainsKey(userId))
            {
                Activate(userId, create: false);
            }
        }

        var idle = (long)_options.IdleTimeout.TotalMilliseconds;
        var over = _actors.Count - _options.MaxActiveActorsPerPartition;
        if (over <= 0 && !_actors.Values.Any(a => now - a.LastUsed > idle))
        {
            return;
        }

        // Written before dropped: an actor loaded again must find its latest state (and version) in the store.
        Flush(wait: true);
        var leaving = _actors.Values.Where(a => now - a.LastUsed > idle).ToList();
        if (over > leaving.Count)
        {
            leaving.AddRange(_actors.Values.Except(leaving).OrderBy(a => a.LastUsed).Take(over - leaving.Count));
        }

        foreach (var actor in leaving)
        {
            _actors.Remove(actor.UserId);
        }
    }

    private void DrainOnShutdown()
    {
        try
        {
            while (_control.Reader.TryRead(out var work))
            {
                work();
            }

            Flush(wait: true);
        }
        catch (Exception e) when (e is DbException or DeliveryException)
        {
            // The log still holds everything past the checkpoint; the next start replays it.
            LogStoreUnavailable(e, _partition);
        }
    }

    private void MarkDirty(Actor actor)
    {
        if (!actor.Dirty)
        {
            actor.Dirty = true;
            _dirty.Add(actor);
        }
    }

    private long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // Queries, run on the worker through Invoke.

    public ProfileView? View(string userId)
    {
        var actor = Activate(userId, create: false);
        if (actor is null)
        {
            return null;
        }

        return ProfileView.Of(actor.Profile, _catalog, actor.NextTimer);
    }

    public ExplainNode? Explain(string userId, string segmentId, out bool member)
    {
        member = false;
        var actor = Activate(userId, create: false);
        var segment = _index.Find(segmentId);
        if (actor is null || segment is null)
        {
            return null;
        }

        member = actor.Profile.IsMember(segment.Slot);
        return RuleInterpreter.Explain(segment.Rule.Rule, actor.Profile, Now());
    }

    public List<HistoryEntry> History(string userId, long afterId, int limit)
    {
        Flush(wait: true);
        return _store.History(userId, afterId, limit);
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
        _store.Dispose();
        _writer.Dispose();
    }

    /// <summary>A write-behind in flight: what it writes, and the outputs it waits for first.</summary>
    private sealed record Snapshot(List<(StoredProfile, long)> Profiles, List<HistoryRow> History, long Checkpoint, IOutputBatch Outputs);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Profile store unavailable in partition {Partition}; pausing")]
    private partial void LogStoreUnavailable(Exception exception, int partition);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Error, Message = "Event {EventId} could not be applied in partition {Partition}; skipped")]
    private partial void LogEventFailed(Exception exception, string eventId, int partition);

    private sealed class BackfillJob(SegmentChange change)
    {
        public SegmentChange Change { get; } = change;

        public bool Started { get; set; }

        public string Cursor { get; set; } = string.Empty;
    }
}
