using Audience.Silo.Contracts;
using Audience.Silo.Grains;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// Erasures in the partition: an erasure is a barrier. What the batch holds before it is delivered, and every grain
/// that applied events since the checkpoint writes them and the checkpoint moves to just before the erasure; then the
/// user's grain erases the user; then the checkpoint moves past the erasure, before anything after it is delivered.
/// So no write round can still hold the user's old profile when it is deleted, no backfill page or due-time sweep runs
/// in between (they run in this loop, between batches), and a crash at any point reads the partition again from a
/// checkpoint at or after the place just before the erasure: the user's events before it are never applied again,
/// and the erasure itself is applied again if it was not passed.
/// </summary>
public sealed partial class PartitionReader
{
    /// <summary>Delivers a batch; the erasures in it split it (see above), in the order of the partition.</summary>
    private async Task DeliverInOrder(string topic, IReadOnlyList<PartitionEntry> entries, long position, CancellationToken stopping)
    {
        var from = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            if (entries[i].Erasure is not { } erasure)
            {
                continue;
            }

            if (i > from)
            {
                await Deliver(topic, Slice(entries, from, i), stopping).ConfigureAwait(false);
            }

            var before = i > 0 ? entries[i - 1].Seq : position;
            if (before > Checkpoint)
            {
                await WriteAndCheckpoint(before, stopping).ConfigureAwait(false);
            }

            await Erase(topic, erasure, entries[i].Seq, stopping).ConfigureAwait(false);
            await MoveCheckpoint(entries[i].Seq, stopping).ConfigureAwait(false);
            from = i + 1;
        }

        if (from < entries.Count)
        {
            await Deliver(topic, from == 0 ? entries : Slice(entries, from, entries.Count), stopping).ConfigureAwait(false);
        }
    }

    private static List<PartitionEntry> Slice(IReadOnlyList<PartitionEntry> entries, int from, int to)
    {
        var slice = new List<PartitionEntry>(to - from);
        for (var i = from; i < to; i++)
        {
            slice.Add(entries[i]);
        }

        return slice;
    }

    /// <summary>
    /// Has the user's grain apply an erasure, retried by the deliveries' pipeline (<see cref="Hosting.Resilience.PartitionDeliver"/>)
    /// while it fails: an outage is waited out, however long; a failure of any other kind (a bug) sends the erasure to
    /// the dead letters after a few tries, logged as an error, so that it cannot stop the partition. It is then to be
    /// asked for again.
    /// </summary>
    private Task Erase(string topic, UserErasure erasure, long seq, CancellationToken stopping) =>
        Hosting.Resilience.RunAsync(_deliveries, "applying an erasure",
            static (state, stopping) => state.Reader.EraseOnce(state.Topic, state.Erasure, state.Seq, state.Tries, stopping),
            (Reader: this, Topic: topic, Erasure: erasure, Seq: seq, Tries: new System.Runtime.CompilerServices.StrongBox<int>()), stopping);

    private async Task EraseOnce(string topic, UserErasure erasure, long seq, System.Runtime.CompilerServices.StrongBox<int> tries, CancellationToken stopping)
    {
        tries.Value++;
        var request = new ErasureRequest(_partition, seq, erasure.ErasureId, erasure.RequestedAt.ToUnixTimeMilliseconds());
        try
        {
            await _users.Get(erasure.UserId).Erase(request).ConfigureAwait(false);
        }
        catch (Exception e) when (!stopping.IsCancellationRequested && e is not PartitionFencedException)
        {
            if (tries.Value >= MaxAttemptsForNonTransientFailures && !IsTransient(e))
            {
                LogErasureFailed(e, _partition, seq, erasure.ErasureId);
                _silo.Metrics.DeadLetter();
                var payload = System.Text.Json.JsonSerializer.Serialize(erasure, SiloJsonContext.Default.UserErasure);
                var message = new DeadLetterMessage($"The erasure could not be applied: {e.Message}", topic, _partition, seq - 1, erasure.UserId, payload,
                    _silo.Time.GetUtcNow());
                await Hosting.Resilience.RunAsync(_deadLetters, "sending a dead letter", static (state, _) => state.Outputs.DeadLetterAsync(state.Message),
                    (_silo.Outputs, Message: message), stopping).ConfigureAwait(false);
                return;
            }

            LogRetrying(e, _partition, "an erasure");
            // Still the owner? A fenced reader stops instead of retrying what the new owner now does.
            await MoveCheckpoint(Checkpoint, stopping).ConfigureAwait(false);
            throw new Hosting.CallsFailedException(1, e);
        }
    }

    [LoggerMessage(EventId = LogEvents.ReaderErasureFailed, Level = LogLevel.Error,
        Message = "Partition {Partition}: the erasure {ErasureId} at {Seq} could not be applied and went to the dead letters; ask for it again")]
    private partial void LogErasureFailed(Exception exception, int partition, long seq, string erasureId);
}
