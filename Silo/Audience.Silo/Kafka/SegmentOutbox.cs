using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// Publishes committed segment changes from the <c>segment_outbox</c> table to <c>segment-updates</c> (key: the
/// segment id) and deletes each row only after the broker acknowledged it. Rows are claimed with
/// <c>FOR UPDATE SKIP LOCKED</c>, so several Api processes share the work; a crash before the delete publishes the
/// row again, which receivers tolerate (they re-read the definition and compare versions).
/// </summary>
public sealed partial class SegmentOutbox(PostgresDatabase database, PostgresSegmentStore store, KafkaOptions kafka, Hosting.Resilience resilience,
    ILogger<SegmentOutbox> logger) : BackgroundService
{
    private readonly Processing.WakeSignal _signal = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        store.Committed += Wake;
        using var producer = new ProducerBuilder<string, byte[]>(kafka.Producer("audience-outbox")).Build();
        // A batch that fails (Kafka or PostgreSQL away) is published again, waiting longer each time; its rows stay meanwhile.
        var publishing = resilience.Retry(Hosting.Resilience.SegmentOutbox, Hosting.Resilience.Connection,
            static e => e is KafkaException or System.Data.Common.DbException, args =>
            {
                LogFailed(args.Outcome.Exception!);
                return ValueTask.CompletedTask;
            });
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var published = await publishing.ExecuteAsync(static async (state, cancellationToken) =>
                    await state.Outbox.PublishBatch(state.Producer, cancellationToken).ConfigureAwait(false), (Outbox: this, Producer: producer), stoppingToken)
                    .ConfigureAwait(false);
                if (published == 0)
                {
                    await _signal.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (stoppingToken.IsCancellationRequested)
        {
            if (e is not OperationCanceledException)
            {
                LogFailed(e); // the last try, cut short by the stop; its rows are published by the next Api
            }
        }

        store.Committed -= Wake;
    }

    /// <summary>Publishes up to 100 outbox rows; returns how many.</summary>
    public async Task<int> PublishBatch(IProducer<string, byte[]> producer, CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var rows = new List<(long Id, SegmentUpdateMessage Message)>();
        await using (var select = PostgresDatabase.Command(connection, transaction,
            "SELECT id, segment_id, version, action, at FROM segment_outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED"))
        await using (var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add((reader.GetInt64(0), new SegmentUpdateMessage(reader.GetString(1), reader.GetInt64(2), reader.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)))));
            }
        }

        if (rows.Count == 0)
        {
            return 0;
        }

        foreach (var (_, message) in rows)
        {
            // One at a time, in order, so that the versions of a segment arrive in the order they were made.
            await producer.ProduceAsync(kafka.Topics.SegmentUpdates, new Message<string, byte[]>
            {
                Key = message.SegmentId,
                Value = JsonSerializer.SerializeToUtf8Bytes(message, SiloJsonContext.Default.SegmentUpdateMessage),
            }, cancellationToken).ConfigureAwait(false);
        }

        await using (var delete = PostgresDatabase.Command(connection, transaction, "DELETE FROM segment_outbox WHERE id = ANY(@ids)", ("ids", rows.Select(r => r.Id).ToArray())))
        {
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return rows.Count;
    }

    private void Wake() => _signal.Wake();

    public override void Dispose()
    {
        _signal.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = LogEvents.SegmentOutboxFailed, Level = LogLevel.Warning, Message = "Publishing the segment outbox failed; retrying")]
    private partial void LogFailed(Exception exception);
}
