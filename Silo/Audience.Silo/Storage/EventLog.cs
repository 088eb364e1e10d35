using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using FASTER.core;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Storage;

/// <summary>Whether an appended event was new, or a repeat of an event id already in the log.</summary>
public readonly record struct AppendResult(string EventId, bool Duplicate);

/// <summary>
/// The in-process, partitioned event log that stands in for Kafka in embedded mode: one FASTER log
/// (<c>{DataDirectory}/log</c>), append-only, with group commit. An append enqueues its events in memory and returns
/// once a commit covers them, so an acknowledged event survives a crash; one commit is written at a time, covering
/// whatever queued up while the one before was written, so commits grow with the load (one log for every partition:
/// a commit per partition would cost a synchronous write each). Readers see committed entries only.
/// <para>
/// An entry is the receive time (Unix ms, 8 bytes), the 64-bit hash of the event id (8 bytes), the partition (4 bytes),
/// what the entry holds (4 bytes: an event, or an erasure of a user, <see cref="AppendErasureAsync"/>) and its JSON.
/// Event ids are unique within the retention (<c>Silo:DeduplicationWindow</c>): the hashes of the retained events are
/// held in memory (about 40 bytes each), rebuilt from the log at start, and a repeated id is reported as a duplicate and
/// not stored again. A sequence number is the entry's address in the log (so it grows,
/// and 0 means "nothing yet"); a partition's reader reads the log and keeps its partition's entries.
/// </para>
/// </summary>
public sealed partial class EventLog : IEventSink, IAsyncDisposable
{
    /// <summary>An entry's header: receive time at 0, the event id's hash at 8, the partition at 16, its kind at 20; the JSON after it.</summary>
    internal const int HeaderSize = 24;

    internal const int PartitionOffset = 16;

    /// <summary>
    /// Where an entry says what it holds: <see cref="EventEntry"/> or <see cref="ErasureEntry"/>. Entries written before
    /// erasures existed held the partition in 8 bytes here, whose upper half is 0: an event.
    /// </summary>
    internal const int KindOffset = 20;

    internal const int EventEntry = 0;

    internal const int ErasureEntry = 1;

    /// <summary>How far apart (in receive time) the places are where the log may be cut when pruning.</summary>
    private static readonly long MarkIntervalMs = (long)TimeSpan.FromMinutes(1).TotalMilliseconds;

    private readonly FasterLogSettings _settings;
    private readonly FasterLog _log;
    private readonly int _partitions;
    private readonly Processing.WakeSignal _uncommitted = new();
    private readonly TimeProvider _time;
    private readonly ILogger<EventLog> _logger;
    private readonly Lock _appendLock = new();

    /// <summary>The retained events' id hashes and when each was received; guarded by <see cref="_appendLock"/>.</summary>
    private readonly Dictionary<ulong, long> _ids = [];

    /// <summary>Entry addresses at which a cut may go: one per minute of receive time, with how many entries precede it.</summary>
    private readonly Queue<(long ReceivedAt, long Address, long Ordinal)> _marks = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _committer;
    private long _ordinal;
    private long _lastMark;
    private readonly TaskCompletionSource _faulted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string? _fault;
    private bool _disposed;

    public EventLog(string directory, int partitions, TimeSpan retention, TimeProvider time, ILogger<EventLog> logger)
        : this(directory, partitions, retention, time, logger, device: null)
    {
    }

    /// <summary>A log on <paramref name="device"/> instead of the files in <paramref name="directory"/> (its commits stay there): for tests of a failing disk.</summary>
    internal EventLog(string directory, int partitions, TimeSpan retention, TimeProvider time, ILogger<EventLog> logger, IDevice? device)
    {
        _partitions = partitions;
        _time = time;
        _logger = logger;
        _settings = new FasterLogSettings(directory)
        {
            // 1 MB pages, up to 256 MB in memory (allocated as the log grows): what a burst of appends holds until the
            // disk has it, and the recent entries readers take without loading pages back from disk. A reader further
            // behind than that (catching up) goes through FASTER's page loads: with 32 MB the Silo ran 20% slower on a
            // 50 MB backlog (docs/performance.md, issue 12).
            PageSizeBits = 20,
            MemorySizeBits = 28,
            // 64 MB files: the granularity in which pruned events leave the disk.
            SegmentSizeBits = 26,
            // The commit record goes into the log itself instead of a file per commit: about 0.7 ms less per commit.
            FastCommitMode = true,
            LogChecksum = LogChecksumType.PerEntry,
            RemoveOutdatedCommits = true,
            TryRecoverLatest = true,
        };
        if (device is not null)
        {
            _settings.LogDevice.Dispose();
            _settings.LogDevice = device;
        }

        _log = new FasterLog(_settings);
        Rebuild(time.GetUtcNow().ToUnixTimeMilliseconds() - (long)retention.TotalMilliseconds);
        _committer = Task.Run(() => CommitLoop(_stopping.Token));
    }

    public int Partitions => _partitions;

    /// <summary>Why the log cannot take events now (a commit failed: the disk is full or gone), or null.</summary>
    public string? Fault => _fault;

    /// <summary>Completes when the log faults: from then on it takes no events until the process restarts.</summary>
    public Task Faulted => _faulted.Task;

    /// <summary>
    /// Appends events and returns once they are durable. Fails with <see cref="EventLogUnavailableException"/> when
    /// the log cannot take them; events of the request that were already enqueued may then be stored (a retry finds
    /// them as duplicates).
    /// </summary>
    public Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        // Encoded here, on the caller's thread, into this thread's buffer (the log copies entries as it enqueues them):
        // whatever is wrong with one request fails that request only.
        var (encoded, writer) = EncodingBuffer.Take();
        var entries = new Entry[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            var start = encoded.WrittenCount;
            encoded.GetSpan(HeaderSize);
            encoded.Advance(HeaderSize);
            writer.Reset(encoded);
            JsonSerializer.Serialize(writer, events[i], SiloJsonContext.Default.UserEvent);
            writer.Flush();
            entries[i] = new Entry(start, encoded.WrittenCount - start, EventValues.PartitionOf(events[i].UserId, _partitions), Hash(events[i].EventId), now);
        }

        try
        {
            var (results, until) = Enqueue(events, MemoryMarshal.AsMemory(encoded.WrittenMemory), entries);
            return until > 0 ? WaitForCommitAsync(results, until) : Task.FromResult(results);
        }
        catch (EventLogUnavailableException e)
        {
            return Task.FromException<AppendResult[]>(e);
        }
        finally
        {
            EncodingBuffer.Release(encoded, writer);
        }
    }

    /// <summary>
    /// Enqueues what is new, in memory, under the append lock; returns each event's result and the address a commit
    /// must reach for this request's events (and for the originals of its duplicates), 0 if none.
    /// </summary>
    private (AppendResult[] Results, long Until) Enqueue(IReadOnlyList<UserEvent> events, Memory<byte> encoded, Entry[] entries)
    {
        if (_fault is { } fault)
        {
            throw new EventLogUnavailableException($"The event log cannot store events right now ({fault}).", null);
        }

        var results = new AppendResult[events.Count];
        var until = 0L;
        lock (_appendLock)
        {
            if (_disposed)
            {
                throw new EventLogUnavailableException("The event log is shut down.", null);
            }

            for (var i = 0; i < entries.Length; i++)
            {
                var (start, length, partition, hash, receivedAt) = entries[i];
                if (!_ids.TryAdd(hash, receivedAt))
                {
                    // Stored already, or on its way: answer once whatever is enqueued is committed.
                    results[i] = new AppendResult(events[i].EventId, true);
                    until = Math.Max(until, _log.TailAddress);
                    continue;
                }

                var entry = encoded.Span.Slice(start, length);
                WriteHeader(entry, receivedAt, hash, partition, EventEntry);
                if (!_log.TryEnqueue(entry, out var address))
                {
                    // The log's memory is full of entries its disk has not taken yet: it is behind.
                    _ids.Remove(hash);
                    throw new EventLogUnavailableException("The event log is behind: its buffers are full of events not yet written.", null);
                }

                Appended(address, receivedAt);
                results[i] = new AppendResult(events[i].EventId, false);
                until = address + 1;
            }
        }

        return (results, until);
    }

    /// <summary>
    /// Appends an erasure of a user to the user's partition, after every event of the user appended before it, and
    /// returns once it is durable. The partition's reader applies it in that order (<see cref="Processing.PartitionReader"/>).
    /// </summary>
    public async Task AppendErasureAsync(UserErasure erasure, CancellationToken cancellationToken = default)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(erasure, SiloJsonContext.Default.UserErasure);
        var entry = new byte[HeaderSize + json.Length];
        json.CopyTo(entry.AsSpan(HeaderSize));
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        WriteHeader(entry, now, Hash(erasure.ErasureId), EventValues.PartitionOf(erasure.UserId, _partitions), ErasureEntry);
        if (_fault is { } fault)
        {
            throw new EventLogUnavailableException($"The event log cannot store the erasure right now ({fault}).", null);
        }

        long until;
        lock (_appendLock)
        {
            if (_disposed)
            {
                throw new EventLogUnavailableException("The event log is shut down.", null);
            }

            if (!_log.TryEnqueue(entry, out var address))
            {
                throw new EventLogUnavailableException("The event log is behind: its buffers are full of events not yet written.", null);
            }

            Appended(address, now);
            until = address + 1;
        }

        await WaitForCommitAsync([], until).ConfigureAwait(false);
    }

    private static void WriteHeader(Span<byte> entry, long receivedAt, ulong hash, int partition, int kind)
    {
        BinaryPrimitives.WriteInt64LittleEndian(entry, receivedAt);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], hash);
        BinaryPrimitives.WriteInt32LittleEndian(entry[PartitionOffset..], partition);
        BinaryPrimitives.WriteInt32LittleEndian(entry[KindOffset..], kind);
    }

    private async Task<AppendResult[]> WaitForCommitAsync(AppendResult[] results, long until)
    {
        try
        {
            if (until > _log.CommittedUntilAddress)
            {
                _uncommitted.Wake();
            }

            // Not cancelled with the request: the events are stored whether or not the client still waits, and a
            // cancellable wait costs FASTER a slower path on every append. A fault of the committer ends the wait.
            var waiting = _log.WaitForCommitAsync(until, token: CancellationToken.None).AsTask();
            if (!waiting.IsCompleted && await Task.WhenAny(waiting, _faulted.Task).ConfigureAwait(false) != waiting)
            {
                throw new EventLogUnavailableException($"The event log could not store the events ({_fault}).", null);
            }

            await waiting.ConfigureAwait(false);
        }
        catch (CommitFailureException e)
        {
            // FASTER stops taking entries after a device error; readiness says why until the process restarts.
            Faults(e.Message, e);
            throw new EventLogUnavailableException("The event log could not store the events.", e);
        }

        return results;
    }

    private void Faults(string reason, Exception exception)
    {
        if (_fault is null)
        {
            _fault = reason;
            LogCommitFailed(exception);
        }

        _faulted.TrySetResult();
    }

    /// <summary>
    /// Group commit: one commit at a time, covering everything enqueued until it starts; appends that come while it is
    /// written wait for the next.
    /// </summary>
    private async Task CommitLoop(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _uncommitted.WaitAsync(Timeout.InfiniteTimeSpan, stopping).ConfigureAwait(false);
                await _log.CommitAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A failed commit (a device error), or whatever else ends the committer, faults the log: the appenders
                // waiting on it fail instead of waiting forever.
                Faults(e is CommitFailureException ? e.Message : $"the committer stopped: {e.Message}", e);
                return;
            }
        }
    }

    /// <summary>A reader of one partition's committed entries, for one consumer at a time.</summary>
    public PartitionLogReader OpenReader(int partition) => new(_log, partition);

    /// <summary>
    /// Moves events from a database of an earlier version (events kept in an SQLite table) into this log, keeping
    /// their receive times and order; called before anything else appends. Whatever the log held is cut first: that
    /// can only be a move that a crash interrupted, which is then made again in full.
    /// </summary>
    internal async Task ImportAsync(IEnumerable<(long ReceivedAt, byte[] Json)> rows, CancellationToken cancellationToken = default)
    {
        lock (_appendLock)
        {
            _ids.Clear();
            _log.TruncateUntil(_log.TailAddress);
            _marks.Clear();
            _ordinal = 0;
        }

        foreach (var chunk in rows.Chunk(1_000))
        {
            var events = new List<UserEvent>(chunk.Length);
            var entries = new List<Entry>(chunk.Length);
            var encoded = new ArrayBufferWriter<byte>();
            foreach (var (receivedAt, json) in chunk)
            {
                if (!EventParser.TryRead(json, DateTimeOffset.FromUnixTimeMilliseconds(receivedAt), out var e, out _) || e is null)
                {
                    continue; // it could not be applied either: it went to the dead letters
                }

                events.Add(e);
                entries.Add(new Entry(encoded.WrittenCount, HeaderSize + json.Length, EventValues.PartitionOf(e.UserId, _partitions), Hash(e.EventId), receivedAt));
                encoded.GetSpan(HeaderSize);
                encoded.Advance(HeaderSize);
                encoded.Write(json);
            }

            var (results, until) = Enqueue(events, MemoryMarshal.AsMemory(encoded.WrittenMemory), [.. entries]);
            if (until > 0)
            {
                await WaitForCommitAsync(results, until).ConfigureAwait(false);
            }
        }

        await _log.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Cuts the events received before <paramref name="cutoffMs"/> that every partition's reader has checkpointed past
    /// (<paramref name="checkpoints"/>: partition and the last sequence number applied; nothing is cut while a
    /// partition has no reader), and forgets the ids received before it: the retention is also the window in which a
    /// repeated event id is recognised. Returns how many events went.
    /// </summary>
    public long Prune(long cutoffMs, IReadOnlyDictionary<int, long> checkpoints)
    {
        long pruned = 0;
        lock (_appendLock)
        {
            if (checkpoints.Count == _partitions)
            {
                var checkpoint = checkpoints.Values.Min();
                (long ReceivedAt, long Address, long Ordinal)? cut = null;
                var first = _marks.TryPeek(out var head) ? head.Ordinal : 0;
                // Cutting at a mark drops the entries before it: those from the mark before it (the head: where the
                // log begins now), all received before the earlier of the next mark and a mark interval after the head.
                while (_marks.Count > 1)
                {
                    var next = _marks.ElementAt(1);
                    if (Math.Min(next.ReceivedAt, head.ReceivedAt + MarkIntervalMs) > cutoffMs || next.Address > checkpoint)
                    {
                        break;
                    }

                    _marks.Dequeue();
                    head = next;
                    cut = next;
                }

                if (cut is { } at)
                {
                    _log.TruncateUntil(at.Address);
                    _uncommitted.Wake();
                    pruned = at.Ordinal - first;
                }
            }

            foreach (var (hash, receivedAt) in _ids)
            {
                if (receivedAt < cutoffMs)
                {
                    _ids.Remove(hash);
                }
            }
        }

        return pruned;
    }

    public async ValueTask DisposeAsync()
    {
        // Registered as itself and as the event sink, so the container disposes it twice.
        lock (_appendLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _committer.ConfigureAwait(false);
        _log.Dispose();
        _settings.Dispose();
        _uncommitted.Dispose();
        _stopping.Dispose();
    }

    /// <summary>Reads the committed entries once at start: the ids still retained, and the places to cut.</summary>
    private void Rebuild(long retainedSince)
    {
        // Only the headers are read: each entry is copied into a pooled buffer, not a new array.
        using var iterator = _log.Scan(_log.BeginAddress, _log.TailAddress);
        while (iterator.GetNext(MemoryPool<byte>.Shared, out var owner, out var length, out var address, out _))
        {
            using (owner)
            {
                if (length < HeaderSize)
                {
                    continue;
                }

                var header = owner.Memory.Span;
                var receivedAt = BinaryPrimitives.ReadInt64LittleEndian(header);
                if (receivedAt >= retainedSince && BinaryPrimitives.ReadInt32LittleEndian(header[KindOffset..]) == EventEntry)
                {
                    _ids.TryAdd(BinaryPrimitives.ReadUInt64LittleEndian(header[8..]), receivedAt);
                }

                Appended(address, receivedAt);
            }
        }
    }

    /// <summary>Called for every entry enqueued, in address order (under the append lock).</summary>
    private void Appended(long address, long receivedAt)
    {
        if (_marks.Count == 0 || receivedAt - _lastMark >= MarkIntervalMs)
        {
            _marks.Enqueue((receivedAt, address, _ordinal));
            _lastMark = receivedAt;
        }

        _ordinal++;
    }

    /// <summary>
    /// A buffer and JSON writer per thread for encoding a request's events; given back before the request waits for
    /// its commit, so a thread's buffer serves one request at a time. One grown past 1 MB (a large batch) is dropped.
    /// </summary>
    private static class EncodingBuffer
    {
        [ThreadStatic]
        private static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer)? _cached;

        public static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer) Take()
        {
            if (_cached is { } cached)
            {
                _cached = null;
                cached.Buffer.ResetWrittenCount();
                return cached;
            }

            var buffer = new ArrayBufferWriter<byte>(16 * 1024);
            return (buffer, new Utf8JsonWriter(buffer));
        }

        public static void Release(ArrayBufferWriter<byte> buffer, Utf8JsonWriter writer)
        {
            if (buffer.Capacity <= 1024 * 1024)
            {
                _cached = (buffer, writer);
            }
        }
    }

    /// <summary>An encoded event in a request's buffer: where, its partition, its id's hash, its receive time.</summary>
    private readonly record struct Entry(int Start, int Length, int Partition, ulong Hash, long ReceivedAt);

    /// <summary>XxHash3 over the id's UTF-16 code units: stable across processes and versions.</summary>
    private static ulong Hash(string eventId) => XxHash3.HashToUInt64(MemoryMarshal.AsBytes(eventId.AsSpan()));

    [LoggerMessage(EventId = LogEvents.EventLogCommitFailed, Level = LogLevel.Critical, Message = "The event log could not commit; it takes no events until the process restarts")]
    private partial void LogCommitFailed(Exception exception);
}

/// <summary>
/// Reads one partition of the <see cref="EventLog"/> in order, from any sequence number: the partition's entries
/// committed after it (the others' are passed over without being copied). Not thread-safe: one reader per consumer.
/// </summary>
public sealed class PartitionLogReader(FasterLog log, int partition) : IDisposable
{
    private FasterLogScanIterator? _iterator;

    /// <summary>Where the iterator is: the last entry it read, and the last of this partition's it returned.</summary>
    private long _position = -1;
    private long _returned = -1;

    /// <summary>Up to <paramref name="max"/> committed entries of the partition after <paramref name="afterSeq"/>, in order.</summary>
    public List<Processing.PartitionEntry> Read(long afterSeq, int max)
    {
        if (_iterator is null || (afterSeq != _position && afterSeq != _returned))
        {
            // The iterator is where the last read ended (between the two, only other partitions' entries); anywhere
            // else (a reader going back to its checkpoint), start over.
            _iterator?.Dispose();
            _iterator = log.Scan(Math.Max(afterSeq, log.BeginAddress), long.MaxValue);
        }

        var entries = new List<Processing.PartitionEntry>(Math.Min(max, 256));
        var last = afterSeq;
        while (entries.Count < max && _iterator.GetNext(MemoryPool<byte>.Shared, out var owner, out var length, out var address, out _))
        {
            using (owner)
            {
                last = Math.Max(last, address);
                var entry = owner.Memory[..length];
                if (address > afterSeq && length >= EventLog.HeaderSize && BinaryPrimitives.ReadInt32LittleEndian(entry.Span[EventLog.PartitionOffset..]) == partition)
                {
                    entries.Add(ToEntry(entry, address));
                }
            }
        }

        _position = last;
        _returned = entries.Count > 0 ? entries[^1].Seq : afterSeq;
        return entries;
    }

    private Processing.PartitionEntry ToEntry(ReadOnlyMemory<byte> entry, long seq)
    {
        var receivedAt = BinaryPrimitives.ReadInt64LittleEndian(entry.Span);
        var json = entry[EventLog.HeaderSize..];
        var at = DateTimeOffset.FromUnixTimeMilliseconds(receivedAt);
        var kind = BinaryPrimitives.ReadInt32LittleEndian(entry.Span[EventLog.KindOffset..]);
        if (kind != EventLog.EventEntry)
        {
            string? invalid = $"An entry of kind {kind} is not one this version reads.";
            if (kind == EventLog.ErasureEntry && UserErasure.TryRead(json.Span, out var erasure, out invalid))
            {
                return new Processing.PartitionEntry(seq, receivedAt, null, Erasure: erasure);
            }

            return new Processing.PartitionEntry(seq, receivedAt, null,
                new DeadLetterMessage(invalid!, "embedded-log", partition, seq, null, System.Text.Encoding.UTF8.GetString(json.Span), at));
        }

        // Events were checked on the way in; one that no longer reads (a format change) is passed over, not applied.
        return EventParser.TryRead(json, at, out var e, out var error)
            ? new Processing.PartitionEntry(seq, receivedAt, e)
            : new Processing.PartitionEntry(seq, receivedAt, null,
                new DeadLetterMessage(error!, "embedded-log", partition, seq, null, System.Text.Encoding.UTF8.GetString(json.Span), at));
    }

    /// <summary>
    /// Waits until the log has committed entries past where this reader is (or a page it had to load from disk is in),
    /// or the timeout passes.
    /// </summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_iterator is null)
        {
            return;
        }

        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _iterator.WaitAsync(timer.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The timeout: the caller reads again and goes on with its other work.
        }
    }

    public void Dispose() => _iterator?.Dispose();
}

/// <summary>The log cannot take events right now; the caller should answer 503 and let the client retry.</summary>
public sealed class EventLogUnavailableException(string message, Exception? inner) : Exception(message, inner);
