using System.Diagnostics;
using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Storage;
using Confluent.Kafka;

namespace Audience.Silo.Kafka;

/// <summary>
/// The Api's way into Kafka mode: each event is produced to <c>user-events</c>, keyed by user id (so one user's
/// events stay in order in one partition), in seed 004's JSON format, by an idempotent acks=all producer that
/// batches what requests produce together (<c>linger.ms</c> 2). The request is acknowledged only when the broker has
/// acknowledged every event in it. Past <c>Kafka:MaxLag</c> (<see cref="ConsumerLag"/>) it refuses events until the
/// silos catch up.
/// </summary>
public sealed class KafkaEventSink : IEventSink, IDisposable
{
    private readonly IProducer<string, byte[]> _producer;
    private readonly string _topic;
    private readonly ConsumerLag _lag;
    private int _disposed;

    public KafkaEventSink(KafkaOptions options, ConsumerLag lag)
    {
        _topic = options.Topics.UserEvents;
        _lag = lag;
        _producer = new ProducerBuilder<string, byte[]>(options.Producer("audience-api")).Build();
    }

    public async Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default)
    {
        if (_lag.Behind is { } behind)
        {
            throw new EventLogUnavailableException(behind, null);
        }

        // One acknowledgement per request, not a task per event: the producer's delivery reports count down to it.
        var acknowledged = new RequestAcknowledgement(events.Count, _lag);
        // Traced: each message carries this span's context to the silo that applies it (null, and no header, when off).
        using var span = Telemetry.Source.StartActivity("send " + _topic, ActivityKind.Producer);
        span?.SetTag("messaging.system", "kafka");
        span?.SetTag("messaging.destination.name", _topic);
        span?.SetTag("messaging.batch.message_count", events.Count);
        Headers? headers = span is not null && Telemetry.TraceHeader() is { } trace ? [trace] : null;
        try
        {
            foreach (var e in events)
            {
                _producer.Produce(_topic, new Message<string, byte[]>
                {
                    Key = e.UserId,
                    Value = JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent),
                    Headers = headers,
                }, acknowledged.OnDelivery);
            }

            await acknowledged.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            throw new EventLogUnavailableException($"Kafka did not acknowledge the events: {e.Error.Reason}", e);
        }

        var results = new AppendResult[events.Count];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = new AppendResult(events[i].EventId, Duplicate: false);
        }

        return results;
    }

    /// <summary>
    /// Produces an erasure of a user to <c>user-events</c>, keyed by the user id like the user's events (so it lands in
    /// their partition, after those produced before it) and marked by the header <c>message-type: erasure</c>; completes
    /// once the broker acknowledged it. Not refused past <c>Kafka:MaxLag</c>: it is one small message, applied in turn.
    /// </summary>
    public async Task AppendErasureAsync(UserErasure erasure, CancellationToken cancellationToken = default)
    {
        try
        {
            var delivered = await _producer.ProduceAsync(_topic, new Message<string, byte[]>
            {
                Key = erasure.UserId,
                Value = JsonSerializer.SerializeToUtf8Bytes(erasure, SiloJsonContext.Default.UserErasure),
                Headers = Telemetry.TraceHeader() is { } trace
                    ? [new Header(UserErasure.Header, System.Text.Encoding.UTF8.GetBytes(UserErasure.HeaderValue)), trace]
                    : [new Header(UserErasure.Header, System.Text.Encoding.UTF8.GetBytes(UserErasure.HeaderValue))],
            }, cancellationToken).ConfigureAwait(false);
            _lag.Produced(delivered.Partition.Value, delivered.Offset.Value);
        }
        catch (KafkaException e)
        {
            throw new EventLogUnavailableException($"Kafka did not acknowledge the erasure: {e.Error.Reason}", e);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _producer.Flush(TimeSpan.FromSeconds(10));
            _producer.Dispose();
        }
    }

    /// <summary>Completes once the broker acknowledged every event of one request, or fails at the first that it did not.</summary>
    private sealed class RequestAcknowledgement(int events, ConsumerLag lag)
    {
        private readonly TaskCompletionSource _done = NewCompletion(events);
        private int _remaining = events;

        public Task Task => _done.Task;

        public void OnDelivery(DeliveryReport<string, byte[]> report)
        {
            if (report.Error.IsError)
            {
                _done.TrySetException(new KafkaException(report.Error));
            }
            else
            {
                lag.Produced(report.Partition.Value, report.Offset.Value);
                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    _done.TrySetResult();
                }
            }
        }

        private static TaskCompletionSource NewCompletion(int events)
        {
            // Delivery reports come on librdkafka's thread: continuations run elsewhere.
            var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (events == 0)
            {
                completion.SetResult();
            }

            return completion;
        }
    }
}
