using System.ComponentModel.DataAnnotations;
using Confluent.Kafka;

namespace Audience.Silo.Kafka;

/// <summary>Configuration section <c>Kafka</c>; Kafka mode is on when <see cref="BootstrapServers"/> is set.</summary>
public sealed record KafkaOptions
{
    /// <summary>Comma-separated <c>host:port</c> list (<c>Kafka__BootstrapServers</c>).</summary>
    public string? BootstrapServers { get; init; }

    [Required]
    public KafkaTopics Topics { get; init; } = new();

    /// <summary>The group id of the silos' consumers (librdkafka needs one; they assign partitions themselves and commit nothing).</summary>
    [Required]
    public string GroupId { get; init; } = "audience-silo";

    /// <summary>How long the Api waits for the broker to acknowledge an event before it answers 503.</summary>
    [Range(1_000, 300_000)]
    public int ProduceTimeoutMs { get; init; } = 5_000;

    /// <summary>
    /// How many events a partition's checkpoint may trail what the Api produced to it before the Api refuses events
    /// (503 with Retry-After) until the silos catch up; 0 turns the bound off. See <see cref="ConsumerLag"/>.
    /// </summary>
    [Range(0, long.MaxValue)]
    public long MaxLag { get; init; } = 200_000;

    /// <summary>Events waiting per partition in a Silo before it pauses fetching that partition.</summary>
    [Range(100, 10_000_000)]
    public int MaxQueuedPerPartition { get; init; } = 20_000;

    /// <summary>
    /// Longest time a broker holds a fetch that has no data yet. Low, because a change should reach its segment in
    /// milliseconds; librdkafka's default (500 ms) would add up to that to every hop.
    /// </summary>
    [Range(1, 10_000)]
    public int FetchWaitMaxMs { get; init; } = 10;

    public bool Enabled => !string.IsNullOrWhiteSpace(BootstrapServers);

    /// <summary>A consumer that commits only when told, in <paramref name="groupId"/>.</summary>
    public ConsumerConfig Consumer(string groupId)
    {
        KafkaNative.Use();
        return new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
            FetchWaitMaxMs = FetchWaitMaxMs,
        };
    }

    public ProducerConfig Producer(string clientId)
    {
        KafkaNative.Use();
        return new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            ClientId = clientId,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 2,
            MessageTimeoutMs = ProduceTimeoutMs,
            QueueBufferingMaxMessages = 1_000_000,
        };
    }
}

/// <summary>Topic names (section <c>Kafka:Topics</c>).</summary>
public sealed record KafkaTopics
{
    [Required]
    public string UserEvents { get; init; } = "user-events";

    [Required]
    public string SegmentUpdates { get; init; } = "segment-updates";

    [Required]
    public string UserSegments { get; init; } = "user-segments";

    [Required]
    public string OrdersAnalytics { get; init; } = "orders-analytics";

    [Required]
    public string DeadLetter { get; init; } = "user-events-dlq";

    [Required]
    public string NotificationRequests { get; init; } = "notification-requests";
}
