using System.Threading.Channels;
using Audience.Silo.Contracts;
using Audience.Silo.Grains;
using Audience.Silo.Hosting;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Audience.Silo.Processing;

/// <summary>The partition was claimed by another owner: this reader must stop, and its effects are the new owner's to repeat.</summary>
public sealed class PartitionFencedException(int partition) : Exception($"Partition {partition} was claimed by another owner.");

/// <summary>
/// Reads one partition, in order, for as long as its <see cref="PartitionGrain"/> is active on this silo. Each step
/// takes a batch of entries and calls each user's grain once with all of the user's events in it (the grains run in
/// parallel, each applying and delivering its own). Profiles are written behind: once per
/// <see cref="SiloOptions.CheckpointInterval"/> under load, at once when the partition is idle, the reader has every
/// grain that applied events since the checkpoint write them (concurrent writes become one store transaction), and
/// only then moves the checkpoint: so a crash replays from the checkpoint, and grains skip what they had applied.
/// A grain that lost what it applied (an activation that ended without writing) is found out at its next call,
/// and the partition is read again from the checkpoint.
/// Between batches it calls the grains of users whose due time has come (time-based exits, for grains active or
/// not) and advances segment backfills a page at a time, over stored records in bulk, so authoring never stalls
/// ingestion. A failing grain or store call is retried with backoff (the <see cref="Resilience"/> pipelines named
/// <c>partition-*</c>, the store's through its circuit breaker); the partition waits, nothing is skipped.
/// </summary>
public sealed partial class PartitionReader
{
    /// <summary>Stored records a backfill takes per step between batches of events, while events flow: a short stall.</summary>
    public const int BackfillPage = 200;

    /// <summary>Stored records a backfill takes per step when the last read found no events waiting.</summary>
    public const int IdleBackfillPage = 1000;
    private const int MaxAttemptsForNonTransientFailures = 5;
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan FinalWriteTimeout = TimeSpan.FromSeconds(10);

    private readonly int _partition;
    private readonly IPartitionSources _sources;
    private readonly SiloContext _silo;
    private readonly UserGrains _users;
    private readonly SiloAddress _self;
    private readonly ActiveUsers _active;
    private readonly SiloMetrics _metrics;
    private readonly Resilience _resilience;
    private readonly ResiliencePipeline _storeCalls;
    private readonly ResiliencePipeline _writeRounds;
    private readonly ResiliencePipeline _deliveries;
    private readonly ResiliencePipeline _readsAgain;
    private readonly ResiliencePipeline _deadLetters;
    private readonly ILogger _logger;
    private readonly Channel<SegmentChange> _segmentChanges = Channel.CreateUnbounded<SegmentChange>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Queue<BackfillJob> _backfills = new();

    /// <summary>Users whose grains applied events since the checkpoint and have not written them: the last such event's seq.</summary>
    private readonly Dictionary<string, long> _unwritten = new(StringComparer.Ordinal);
    private PartitionLease _lease;

    public PartitionReader(int partition, IPartitionSources sources, SiloContext silo, UserGrains users, SiloAddress self,
        ActiveUsers active, SiloMetrics metrics, Resilience resilience, ILogger logger)
    {
        _partition = partition;
        _sources = sources;
        _silo = silo;
        _users = users;
        _self = self;
        _active = active;
        _metrics = metrics;
        _resilience = resilience;
        _logger = logger;
        // Built once per reader, so that their logs name the partition; the store's circuit breaker is the process's.
        _storeCalls = resilience.Retry(Resilience.PartitionStore, Resilience.Reader, Resilience.IsStoreFailure, LogRetry, resilience.StoreCircuit);
        _writeRounds = resilience.Retry(Resilience.PartitionWrite, Resilience.Reader, static e => e is CallsFailedException || Resilience.IsStoreFailure(e),
            LogRetry, resilience.StoreCircuit);
        _deliveries = resilience.Retry(Resilience.PartitionDeliver, Resilience.Reader, static e => e is CallsFailedException, LogRetry);
        _readsAgain = resilience.Retry(Resilience.PartitionReadAgain, Resilience.Reader, static e => e is ProfileStateLostException, args =>
        {
            // A grain lost events it had applied and not written (its activation ended, and its last write failed):
            // every other grain still holds what it applied, and skips it when it comes again.
            LogReadingAgain(_partition, Checkpoint, ((ProfileStateLostException)args.Outcome.Exception!).UserId);
            ForgetUnwritten();
            return ValueTask.CompletedTask;
        });
        _deadLetters = resilience.Retry(Resilience.PartitionDeadLetters, Resilience.Reader,
            static e => e is StoreUnavailableException or System.Data.Common.DbException or Confluent.Kafka.KafkaException or TimeoutException, LogRetry);
    }

    public int Partition => _partition;

    /// <summary>The sequence number everything up to which is applied and written.</summary>
    public long Checkpoint => Interlocked.Read(ref _checkpoint);

    private long _checkpoint;

    /// <summary>A segment was saved or deleted: apply it to this partition's stored profiles.</summary>
    public void Enqueue(SegmentChange change) => _segmentChanges.Writer.TryWrite(change);

    public async Task RunAsync(CancellationToken stopping)
    {
        _lease = await Retry(() => _silo.Store.ClaimPartitionAsync(_partition, stopping), "claiming the partition", stopping).ConfigureAwait(false);
        Interlocked.Exchange(ref _checkpoint, _lease.Checkpoint);
        LogStarted(_partition, _lease.Epoch, _lease.Checkpoint);
        await ResumeBackfills(stopping).ConfigureAwait(false);
        // Until stopped; read again from the checkpoint whenever a grain lost what it applied (_readsAgain).
        await _readsAgain.ExecuteAsync(static async (reader, stopping) => await reader.ReadFromCheckpoint(stopping).ConfigureAwait(false), this, stopping)
            .ConfigureAwait(false);
    }

    /// <summary>Reads the partition from its checkpoint until stopped; a stop writes what was applied first.</summary>
    private async Task ReadFromCheckpoint(CancellationToken stopping)
    {
        await using var source = await _sources.OpenAsync(_partition, Checkpoint, stopping).ConfigureAwait(false);
        var position = Checkpoint;
        // The sweep's pace is the system clock's (like any wait); what is due is judged by the profiles' clock.
        var nextSweep = 0L;
        var lastWrite = Environment.TickCount64;
        while (!stopping.IsCancellationRequested)
        {
            var wait = _backfills.Count > 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Clamp(nextSweep - Environment.TickCount64, 0, SweepInterval.TotalMilliseconds));
            IReadOnlyList<PartitionEntry> entries;
            try
            {
                entries = await source.ReadAsync(position, _silo.Options.ReadBatchSize, wait, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }

            if (entries.Count > 0)
            {
                await DeliverInOrder(source.Topic, entries, position, stopping).ConfigureAwait(false);
                position = entries[^1].Seq;
            }

            // Written behind: under load once per interval (or sooner, with many users waiting), at once when idle.
            if (position > Checkpoint && (entries.Count == 0 || _unwritten.Count >= _silo.Options.MaxUnwrittenUsers
                || Environment.TickCount64 - lastWrite >= (long)_silo.Options.CheckpointInterval.TotalMilliseconds))
            {
                await WriteAndCheckpoint(position, stopping).ConfigureAwait(false);
                lastWrite = Environment.TickCount64;
            }

            if (Environment.TickCount64 >= nextSweep)
            {
                await SweepDue(_silo.Now(), stopping).ConfigureAwait(false);
                nextSweep = Environment.TickCount64 + (long)SweepInterval.TotalMilliseconds;
            }

            while (_segmentChanges.Reader.TryRead(out var change))
            {
                _backfills.Enqueue(new BackfillJob(change));
            }

            if (_backfills.Count > 0)
            {
                try
                {
                    await StepBackfill(entries.Count == 0 ? IdleBackfillPage : BackfillPage, stopping).ConfigureAwait(false);
                }
                catch (Exception e) when (!stopping.IsCancellationRequested && e is not PartitionFencedException)
                {
                    // The page is done again next time round; what it already wrote is idempotent.
                    LogRetrying(e, _partition, "a backfill page");
                    await Task.Delay(TimeSpan.FromMilliseconds(500), stopping).ConfigureAwait(false);
                }
            }
        }

        if (position > Checkpoint)
        {
            // Stopping (a move, a shutdown): what was applied is written and the checkpoint moved, so the next owner
            // reads little again. Bounded, and best effort: without it the next owner reads more, and loses nothing.
            using var timeout = new CancellationTokenSource(FinalWriteTimeout);
            try
            {
                await WriteAndCheckpoint(position, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                LogFinalWriteFailed(e, _partition, Checkpoint);
            }
        }
    }

    /// <summary>
    /// Has every grain that applied events since the checkpoint write them, then moves the checkpoint to
    /// <paramref name="position"/>: so everything up to the checkpoint is in the store. Failed writes are retried
    /// (<see cref="Resilience.PartitionWrite"/>, through the store's circuit breaker).
    /// </summary>
    private async Task WriteAndCheckpoint(long position, CancellationToken cancellation)
    {
        if (_unwritten.Count > 0)
        {
            await Resilience.RunAsync(_writeRounds, "writing profiles", static (state, cancellation) => state.Reader.WriteRound(state.Round, cancellation),
                (Reader: this, Round: new Round<long>(_unwritten.ToList())), cancellation).ConfigureAwait(false);
        }

        ForgetUnwritten();
        await MoveCheckpoint(position, cancellation).ConfigureAwait(false);
    }

    /// <summary>One try of a write round: the grains still to write write what they applied; those that fail are left for the next.</summary>
    private async Task WriteRound(Round<long> round, CancellationToken cancellation)
    {
        if (round.Tries++ > 0)
        {
            // A write fails when the store is away, or when another silo owns the user now: both pass, or fence this
            // reader, which then stops instead of trying again. The partition waits; its checkpoint stays where every
            // profile is written. A call of its own, not MoveCheckpoint: its failure fails this try, which the round's
            // pipeline and the store's circuit breaker count and wait out.
            if (!await _silo.Store.CheckpointAsync(_partition, _lease.Epoch, Checkpoint, cancellation).ConfigureAwait(false))
            {
                throw new PartitionFencedException(_partition);
            }
        }

        var pending = round.Pending;
        var calls = pending.Select(u => Write(u.Key, u.Value)).ToArray();
        try
        {
            await Task.WhenAll(calls).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellation.IsCancellationRequested)
        {
            // Sorted out call by call below.
        }

        _metrics.Wrote(_partition, calls.Length);
        var failed = new List<KeyValuePair<string, long>>();
        for (var i = 0; i < calls.Length; i++)
        {
            if (!calls[i].IsCompletedSuccessfully)
            {
                failed.Add(pending[i]);
            }
            else if (!calls[i].Result)
            {
                throw new ProfileStateLostException(pending[i].Key);
            }
        }

        if (failed.Count > 0)
        {
            var error = calls.First(c => !c.IsCompletedSuccessfully).Exception!.GetBaseException();
            LogWriteFailed(error, _partition, failed.Count);
            round.Pending = failed;
            throw new CallsFailedException(failed.Count, error);
        }
    }

    private void ForgetUnwritten()
    {
        _silo.Metrics.WriteBehind(-_unwritten.Count);
        _unwritten.Clear();
    }

    private Task<bool> Write(string userId, long appliedThrough)
    {
        try
        {
            return _users.Get(userId).Write(_partition, appliedThrough);
        }
        catch (Exception e)
        {
            return Task.FromException<bool>(e);
        }
    }

    /// <summary>Delivers a batch: dead letters first, then each user's events in one grain call, retrying the calls that fail.</summary>
    private async Task Deliver(string topic, IReadOnlyList<PartitionEntry> entries, CancellationToken stopping)
    {
        var byUser = new Dictionary<string, List<LoggedEvent>>(StringComparer.Ordinal);
        var events = 0;
        foreach (var entry in entries)
        {
            if (entry.DeadLetter is { } deadLetter)
            {
                LogDeadLetter(_partition, entry.Seq, deadLetter.Error);
                _silo.Metrics.DeadLetter();
                await SendDeadLetter(deadLetter, stopping).ConfigureAwait(false);
                continue;
            }

            if (entry.Event is not { } e)
            {
                continue;
            }

            if (!byUser.TryGetValue(e.UserId, out var list))
            {
                byUser[e.UserId] = list = [];
            }

            list.Add(new LoggedEvent(entry.Seq, entry.ReceivedAt, e, entry.TraceParent));
            events++;
        }

        if (byUser.Count > 0)
        {
            await Resilience.RunAsync(_deliveries, "delivering events", static (state, stopping) => state.Reader.DeliverRound(state.Topic, state.Round, stopping),
                (Reader: this, Topic: topic, Round: new Round<List<LoggedEvent>>(byUser.ToList())), stopping).ConfigureAwait(false);
        }

        _metrics.Delivered(_partition, events, byUser.Count);
    }

    /// <summary>
    /// One try of a batch's delivery (<see cref="Resilience.PartitionDeliver"/>): each user still to reach gets one grain
    /// call; those that fail are left for the next try.
    /// </summary>
    private async Task DeliverRound(string topic, Round<List<LoggedEvent>> round, CancellationToken stopping)
    {
        round.Tries++;
        var pending = round.Pending;
        var calls = pending.Select(u => Apply(u.Key, new EventBatch(_partition, topic, _self, [.. u.Value], _unwritten.GetValueOrDefault(u.Key)))).ToArray();
        try
        {
            await Task.WhenAll(calls).ConfigureAwait(false);
            Applied(pending, calls);
            return;
        }
        catch (Exception) when (!stopping.IsCancellationRequested)
        {
            // Sorted out call by call below.
        }

        Applied(pending, calls);
        var failed = pending.Where((_, i) => !calls[i].IsCompletedSuccessfully).ToList();
        var errors = failed.Select(u => calls[pending.IndexOf(u)].Exception!.GetBaseException()).ToList();
        LogApplyFailed(errors[0], _partition, failed.Count);

        // An outage (the store, Kafka, a silo) is waited out, however long; a failure of any other kind is
        // the user's own (a bug), and after a few tries that user's events go to the dead letters, so that one
        // user cannot stop the partition.
        var giveUp = round.Tries >= MaxAttemptsForNonTransientFailures;
        round.Pending = [];
        Exception? retried = null;
        for (var i = 0; i < failed.Count; i++)
        {
            if (giveUp && !IsTransient(errors[i]))
            {
                await DeadLetterUser(topic, failed[i].Value, errors[i], stopping).ConfigureAwait(false);
            }
            else
            {
                round.Pending.Add(failed[i]);
                retried ??= errors[i];
            }
        }

        if (retried is not null)
        {
            // Still the owner? A fenced reader stops instead of retrying what the new owner now does.
            await MoveCheckpoint(Checkpoint, stopping).ConfigureAwait(false);
            throw new CallsFailedException(round.Pending.Count, retried);
        }
    }

    /// <summary>Notes, for the calls that succeeded, the user's last event the grain now holds unwritten.</summary>
    private void Applied(List<KeyValuePair<string, List<LoggedEvent>>> users, Task<bool>[] calls)
    {
        for (var i = 0; i < calls.Length; i++)
        {
            if (!calls[i].IsCompletedSuccessfully)
            {
                continue;
            }

            if (!calls[i].Result)
            {
                throw new ProfileStateLostException(users[i].Key);
            }

            if (_unwritten.TryAdd(users[i].Key, users[i].Value[^1].Seq))
            {
                _silo.Metrics.WriteBehind(1);
            }
            else
            {
                _unwritten[users[i].Key] = users[i].Value[^1].Seq;
            }
        }
    }

    private async Task MoveCheckpoint(long seq, CancellationToken stopping)
    {
        var owned = await Retry(() => _silo.Store.CheckpointAsync(_partition, _lease.Epoch, seq, stopping), "moving the checkpoint", stopping).ConfigureAwait(false);
        if (!owned)
        {
            throw new PartitionFencedException(_partition);
        }

        Interlocked.Exchange(ref _checkpoint, seq);
    }

    /// <summary>Calls the user's grain; a failure to even address it (an id Orleans refuses) fails this call only.</summary>
    private Task<bool> Apply(string userId, EventBatch batch)
    {
        try
        {
            return _users.Get(userId).Apply(batch);
        }
        catch (Exception e)
        {
            return Task.FromException<bool>(e);
        }
    }

    /// <summary>Failures that pass: an outage of the store, of Kafka or of a silo, or a write that lost a race.</summary>
    private static bool IsTransient(Exception e) => e is StoreUnavailableException or System.Data.Common.DbException or TimeoutException
        or OperationCanceledException or Confluent.Kafka.KafkaException or Orleans.Storage.InconsistentStateException
        or Orleans.Runtime.OrleansMessageRejectionException or Orleans.Runtime.SiloUnavailableException;

    private async Task DeadLetterUser(string topic, List<LoggedEvent> events, Exception error, CancellationToken stopping)
    {
        foreach (var logged in events)
        {
            var e = logged.Event;
            var message = new DeadLetterMessage($"The event could not be applied: {error.Message}", topic, _partition, logged.Seq - 1, e.UserId,
                System.Text.Json.JsonSerializer.Serialize(e, SiloJsonContext.Default.UserEvent), _silo.Time.GetUtcNow());
            LogDeadLetter(_partition, logged.Seq, message.Error);
            _silo.Metrics.DeadLetter();
            await SendDeadLetter(message, stopping).ConfigureAwait(false);
        }
    }

    /// <summary>Sends a dead letter until Kafka takes it (<see cref="Resilience.PartitionDeadLetters"/>): the partition waits, nothing is skipped.</summary>
    private Task SendDeadLetter(DeadLetterMessage message, CancellationToken stopping) =>
        Resilience.RunAsync(_deadLetters, "sending a dead letter", static (state, _) => state.Outputs.DeadLetterAsync(state.Message),
            (_silo.Outputs, Message: message), stopping);

    /// <summary>Calls the grains of users whose due time has come; one that fails is called again at the next sweep.</summary>
    private async Task SweepDue(long now, CancellationToken stopping)
    {
        IReadOnlyList<string> due;
        try
        {
            // Through the store's circuit breaker: while it is open, the sweep does not add to the store's load.
            due = await _resilience.StoreCircuit.ExecuteAsync(static async (state, stopping) =>
                await state.Store.DueAsync(state.Partition, state.Now, 1_000, stopping).ConfigureAwait(false), (_silo.Store, Partition: _partition, Now: now), stopping)
                .ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            // The store is away (said when the circuit opened): the first sweep after it is back finds what came due.
            return;
        }
        catch (Exception e) when (e is StoreUnavailableException or System.Data.Common.DbException)
        {
            LogSweepFailed(e, _partition);
            return;
        }

        if (due.Count == 0)
        {
            return;
        }

        try
        {
            await Task.WhenAll(due.Select(userId => _users.Get(userId).Tick())).ConfigureAwait(false);
        }
        catch (Exception e) when (!stopping.IsCancellationRequested)
        {
            LogSweepFailed(e, _partition);
        }
    }

    /// <summary>
    /// Queues the backfills this partition has not completed: those cut short by a crash, a stop or a move, and
    /// segments saved just before one. A completed backfill is recorded per partition and segment version.
    /// </summary>
    private async Task ResumeBackfills(CancellationToken stopping)
    {
        var done = await Retry(() => _silo.Store.BackfilledVersionsAsync(_partition, stopping), "reading backfills", stopping).ConfigureAwait(false);
        var index = _silo.Index;
        var missing = index.Segments.Where(s => !done.TryGetValue(s.Id, out var version) || version != s.Version)
            .Select(s => new SegmentChange(s.Id, s.Version, Deleted: false, new BackfillProgress(1)))
            .Concat(done.Where(d => index.Find(d.Key) is null).Select(d => new SegmentChange(d.Key, d.Value + 1, Deleted: true, new BackfillProgress(1))))
            .ToList();
        if (missing.Count == 0)
        {
            return;
        }

        if (await _silo.Store.CountUsersAsync(_partition, stopping).ConfigureAwait(false) == 0)
        {
            // No stored profile to apply them to (a new partition, or segments made before any event): done.
            await _silo.Store.MarkBackfilledAsync(_partition, [.. missing.Select(c => (c.SegmentId, c.Deleted ? null : (long?)c.Version))], stopping).ConfigureAwait(false);
            return;
        }

        foreach (var change in missing)
        {
            _backfills.Enqueue(new BackfillJob(change));
        }
    }

    /// <summary>
    /// One page of the oldest backfill (larger when no events wait, so a backfill yields to them): users whose grain is
    /// active here are asked to apply the segment themselves; the others are evaluated from their stored records, their
    /// outputs delivered, and their records written in one batch, each with its generation check (a user activated
    /// meanwhile wins, and is then asked too).
    /// </summary>
    private async Task StepBackfill(int pageSize, CancellationToken stopping)
    {
        var job = _backfills.Peek();
        var store = _silo.Store;
        if (!job.Started)
        {
            job.Started = true;
            job.Change.Progress.Total += await store.CountUsersAsync(_partition, stopping).ConfigureAwait(false);
        }

        var request = new SegmentChangeRequest(job.Change.SegmentId, job.Change.Version, job.Change.Deleted);
        var page = await store.ScanAsync(_partition, job.Cursor, pageSize, stopping).ConfigureAwait(false);
        var now = _silo.Now();
        var grainCalls = new List<Task>();
        var sessions = new List<ProfileSession>();
        foreach (var record in page)
        {
            if (_active.Contains(record.UserId))
            {
                grainCalls.Add(_users.Get(record.UserId).ApplySegment(request));
                continue;
            }

            var session = await ProfileSession.OpenAsync(record.UserId, record, _silo, stopping).ConfigureAwait(false);
            session.ApplySegment(request, now);
            if (session.Dirty)
            {
                sessions.Add(session);
            }
        }

        if (sessions.Count > 0)
        {
            var campaigns = await _silo.Campaigns.RulesAsync().ConfigureAwait(false);
            sessions.ForEach(s => s.FireCampaigns(campaigns, now));
            List<MembershipChangeMessage> changes = [.. sessions.SelectMany(s => s.Messages)];
            List<Campaigns.CampaignFiring> firings = [.. sessions.SelectMany(s => s.Firings)];
            await _silo.Outputs.DeliverAsync(changes, [], firings).ConfigureAwait(false);
            _silo.Metrics.Delivered(changes, firings);
            var writes = sessions.Select(s => s.TakeWrite(_partition, now)).ToList();
            var generations = await store.WriteAsync(writes, stopping).ConfigureAwait(false);
            for (var i = 0; i < writes.Count; i++)
            {
                if (generations[i] == 0)
                {
                    grainCalls.Add(_users.Get(writes[i].Record.UserId).ApplySegment(request));
                }
            }
        }

        await Task.WhenAll(grainCalls).ConfigureAwait(false);
        job.Change.Progress.Add(page.Count);
        _silo.Metrics.Backfilled(page.Count);
        if (page.Count < pageSize)
        {
            _backfills.Dequeue();
            await store.MarkBackfilledAsync(_partition, [(job.Change.SegmentId, job.Change.Deleted ? null : job.Change.Version)], stopping).ConfigureAwait(false);
            job.Change.Progress.PartitionDone();
            LogBackfilled(job.Change.SegmentId, job.Change.Version, _partition);
        }
        else
        {
            job.Cursor = page[^1].UserId;
        }
    }

    /// <summary>
    /// Runs a store call until it succeeds, pausing while the store is unavailable (<see cref="Resilience.PartitionStore"/>,
    /// through the store's circuit breaker).
    /// </summary>
    private Task<T> Retry<T>(Func<Task<T>> call, string what, CancellationToken stopping) =>
        Resilience.RunAsync(_storeCalls, what, static (call, _) => call(), call, stopping);

    /// <summary>Logs a failure a pipeline waits out; a round's failed grain calls were logged by the round, with their count.</summary>
    private ValueTask LogRetry(OnRetryArguments<object> args)
    {
        if (args.Outcome.Exception is { } e and not CallsFailedException)
        {
            LogRetrying(e, _partition, args.Context.OperationKey ?? "a call");
        }

        return ValueTask.CompletedTask;
    }

    [LoggerMessage(EventId = LogEvents.ReaderStarted, Level = LogLevel.Information, Message = "Partition {Partition} starts reading after {Checkpoint} (epoch {Epoch})")]
    private partial void LogStarted(int partition, long epoch, long checkpoint);

    [LoggerMessage(EventId = LogEvents.ReaderApplyFailed, Level = LogLevel.Warning, Message = "Partition {Partition}: {Users} users' events could not be applied; retrying")]
    private partial void LogApplyFailed(Exception exception, int partition, int users);

    [LoggerMessage(EventId = LogEvents.ReaderSweepFailed, Level = LogLevel.Warning, Message = "Partition {Partition}: the due-time sweep failed; it runs again shortly")]
    private partial void LogSweepFailed(Exception exception, int partition);

    [LoggerMessage(EventId = LogEvents.ReaderRetrying, Level = LogLevel.Warning, Message = "Partition {Partition}: {What} failed; retrying")]
    private partial void LogRetrying(Exception exception, int partition, string what);

    [LoggerMessage(EventId = LogEvents.ReaderDeadLetter, Level = LogLevel.Warning, Message = "Partition {Partition}: entry {Seq} sent to the dead letters: {Error}")]
    private partial void LogDeadLetter(int partition, long seq, string error);

    [LoggerMessage(EventId = LogEvents.ReaderBackfilled, Level = LogLevel.Information, Message = "Segment {SegmentId} version {Version} applied to the stored profiles of partition {Partition}")]
    private partial void LogBackfilled(string segmentId, long version, int partition);

    [LoggerMessage(EventId = LogEvents.ReaderWriteFailed, Level = LogLevel.Warning, Message = "Partition {Partition}: {Users} users' profiles could not be written; retrying")]
    private partial void LogWriteFailed(Exception exception, int partition, int users);

    [LoggerMessage(EventId = LogEvents.ReaderReadingAgain, Level = LogLevel.Warning, Message = "Partition {Partition} reads again from {Checkpoint}: the grain of user {UserId} lost events it had applied")]
    private partial void LogReadingAgain(int partition, long checkpoint, string userId);

    [LoggerMessage(EventId = LogEvents.ReaderFinalWriteFailed, Level = LogLevel.Warning, Message = "Partition {Partition}: stopping without writing what was applied; the next owner reads again from {Checkpoint}")]
    private partial void LogFinalWriteFailed(Exception exception, int partition, long checkpoint);

    /// <summary>A user's grain no longer holds events it applied: the partition is read again from its checkpoint.</summary>
    private sealed class ProfileStateLostException(string userId) : Exception($"The grain of user {userId} lost events it had applied.")
    {
        public string UserId { get; } = userId;
    }

    /// <summary>A round of grain calls, one per user, tried until none is left (<see cref="Resilience"/>'s pipelines).</summary>
    private sealed class Round<T>(List<KeyValuePair<string, T>> pending)
    {
        public List<KeyValuePair<string, T>> Pending { get; set; } = pending;

        public int Tries { get; set; }
    }

    private sealed class BackfillJob(SegmentChange change)
    {
        public SegmentChange Change { get; } = change;

        public bool Started { get; set; }

        public string Cursor { get; set; } = string.Empty;
    }
}
