using System.Text;
using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Confluent.Kafka;

namespace Audience.Silo.Kafka;

/// <summary>
/// The Silo's outputs in Kafka mode, on one idempotent producer per silo: membership changes to
/// <c>user-segments</c> keyed by user id (in order per user; header <c>change-id</c> and <c>metadata.changeId</c>
/// identify duplicates), enriched purchases to <c>orders-analytics</c> keyed by event id, notifications campaigns
/// sent to <c>notification-requests</c> keyed by user id (header <c>change-id</c> and <c>notificationId</c>: the
/// dedupe id), and dead letters to <c>user-events-dlq</c>. Each call completes when the broker has acknowledged all it
/// sent; notifications are then recorded in the campaign store (once per dedupe id), so a crash in between sends a
/// copy again, with the same dedupe id, and records it once.
/// </summary>
public sealed class KafkaOutputs : ISiloOutputs, IDisposable
{
    private readonly IProducer<string, byte[]> _producer;
    private readonly KafkaTopics _topics;
    private readonly Campaigns.ICampaignStore _campaigns;
    private int _disposed;

    public KafkaOutputs(KafkaOptions kafka, Campaigns.ICampaignStore campaigns)
    {
        _campaigns = campaigns;
        var config = kafka.Producer("audience-silo");
        config.MessageTimeoutMs = 300_000; // outputs wait out a broker outage; the partition waits with them
        _producer = new ProducerBuilder<string, byte[]>(config).Build();
        _topics = kafka.Topics;
    }

    public bool WantsOrders => true;

    public async Task DeliverAsync(IReadOnlyList<MembershipChangeMessage> changes, IReadOnlyList<OrderAnalyticsMessage> orders,
        IReadOnlyList<Campaigns.CampaignFiring> notifications)
    {
        if (changes.Count == 0 && orders.Count == 0 && notifications.Count == 0)
        {
            return;
        }

        // Started in order, so the producer keeps a user's changes in order; awaited together.
        var deliveries = new List<Task>(changes.Count + orders.Count);
        foreach (var change in changes)
        {
            deliveries.Add(Produce(_topics.UserSegments, change.UserId,
                JsonSerializer.SerializeToUtf8Bytes(change, SiloJsonContext.Default.MembershipChangeMessage), change.Metadata.ChangeId));
        }

        foreach (var order in orders)
        {
            deliveries.Add(Produce(_topics.OrdersAnalytics, order.EventId,
                JsonSerializer.SerializeToUtf8Bytes(order, SiloJsonContext.Default.OrderAnalyticsMessage), order.EventId));
        }

        foreach (var notification in notifications.Where(n => !n.Capped))
        {
            var request = notification.Request;
            deliveries.Add(Produce(_topics.NotificationRequests, request.UserId,
                JsonSerializer.SerializeToUtf8Bytes(request, SiloJsonContext.Default.NotificationRequest), request.NotificationId));
        }

        await Task.WhenAll(deliveries).ConfigureAwait(false);
        if (notifications.Count > 0)
        {
            await _campaigns.RecordAsync(notifications).ConfigureAwait(false);
        }
    }

    public Task DeadLetterAsync(DeadLetterMessage message) =>
        Produce(_topics.DeadLetter, message.Key ?? string.Empty, JsonSerializer.SerializeToUtf8Bytes(message, SiloJsonContext.Default.DeadLetterMessage),
            $"{message.Topic}/{message.Partition}/{message.Offset}");

    private Task<DeliveryResult<string, byte[]>> Produce(string topic, string key, byte[] value, string? dedupeId)
    {
        var message = new Message<string, byte[]> { Key = key, Value = value };
        if (dedupeId is not null)
        {
            message.Headers = [new Header("change-id", Encoding.UTF8.GetBytes(dedupeId))];
        }

        // The span of the grain call that produced it (the events' trace, continued from user-events), when traced.
        if (Hosting.Telemetry.TraceHeader() is { } trace)
        {
            (message.Headers ??= []).Add(trace);
        }

        return _producer.ProduceAsync(topic, message);
    }

    public void Dispose()
    {
        // Registered as itself and as the outputs, so the container disposes it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
    }
}
