using System.Text;
using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Confluent.Kafka;

namespace Audience.Silo.Kafka;

/// <summary>
/// One partition worker's outputs in Kafka mode, on the Silo's shared idempotent producer: membership changes to
/// <c>user-segments</c> keyed by user id (in order per user; header <c>change-id</c> and
/// <c>metadata.changeId</c> identify duplicates), enriched purchases to <c>orders-analytics</c> keyed by event id,
/// and dead letters to <c>user-events-dlq</c>. Counts what is in flight per sealed batch, so the worker's
/// write-behind waits for exactly what its checkpoint covers.
/// </summary>
public sealed class KafkaOutputs(IProducer<string, byte[]> producer, KafkaTopics topics) : ISiloOutputs
{
    private readonly Lock _gate = new();
    private Batch _current = new(producer);

    public bool WantsOrders => true;

    public void MembershipChanged(MembershipChangeMessage change) =>
        Produce(topics.UserSegments, change.UserId, JsonSerializer.SerializeToUtf8Bytes(change, SiloJsonContext.Default.MembershipChangeMessage),
            change.Metadata.ChangeId);

    public void Order(OrderAnalyticsMessage order) =>
        Produce(topics.OrdersAnalytics, order.EventId, JsonSerializer.SerializeToUtf8Bytes(order, SiloJsonContext.Default.OrderAnalyticsMessage), order.EventId);

    public void DeadLetter(DeadLetterMessage message) =>
        Produce(topics.DeadLetter, message.Key ?? string.Empty, JsonSerializer.SerializeToUtf8Bytes(message, SiloJsonContext.Default.DeadLetterMessage),
            $"{message.Topic}/{message.Partition}/{message.Offset}");

    private void Produce(string topic, string key, byte[] value, string? dedupeId)
    {
        var message = new Message<string, byte[]> { Key = key, Value = value };
        if (dedupeId is not null)
        {
            message.Headers = [new Header("change-id", Encoding.UTF8.GetBytes(dedupeId))];
        }

        // The worker and the consumer thread (dead letters) both emit; the gate keeps each message in the batch
        // that was current when it was handed to the producer.
        lock (_gate)
        {
            var batch = _current;
            batch.Add();
            while (true)
            {
                try
                {
                    producer.Produce(topic, message, batch.Delivered);
                    return;
                }
                catch (ProduceException<string, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    // The producer's queue is full while the broker catches up: wait for deliveries, then go on.
                    producer.Poll(TimeSpan.FromMilliseconds(100));
                }
                catch
                {
                    batch.Delivered(null);
                    throw;
                }
            }
        }
    }

    public IOutputBatch Seal()
    {
        lock (_gate)
        {
            var sealedBatch = _current;
            _current = new Batch(producer);
            return sealedBatch;
        }
    }

    private sealed class Batch(IProducer<string, byte[]> producer) : IOutputBatch
    {
        private long _pending;
        private volatile string? _failure;

        public void Add() => Interlocked.Increment(ref _pending);

        public void Delivered(DeliveryReport<string, byte[]>? report)
        {
            if (report is null || report.Error.IsError)
            {
                _failure = report is null ? "not produced" : $"{report.Topic}: {report.Error.Reason}";
            }

            Interlocked.Decrement(ref _pending);
        }

        public void WaitDelivered()
        {
            while (Interlocked.Read(ref _pending) > 0)
            {
                producer.Flush(TimeSpan.FromMilliseconds(50));
            }

            if (_failure is { } failure)
            {
                throw new DeliveryException($"An output was not delivered ({failure}); the partition restarts from its checkpoint.");
            }
        }
    }
}
