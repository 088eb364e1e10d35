using System.ComponentModel.DataAnnotations;
using System.Text;
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

    /// <summary>
    /// How every client of this process connects: <c>Plaintext</c> (the default), <c>Ssl</c>, <c>SaslPlaintext</c> or
    /// <c>SaslSsl</c> (librdkafka's <c>security.protocol</c>).
    /// </summary>
    public SecurityProtocol? SecurityProtocol { get; init; }

    /// <summary><c>Plain</c>, <c>ScramSha256</c> or <c>ScramSha512</c> (librdkafka's <c>sasl.mechanism</c>).</summary>
    public SaslMechanism? SaslMechanism { get; init; }

    public string? SaslUsername { get; init; }

    /// <summary>A secret: from a Kubernetes Secret or an environment variable, never logged.</summary>
    public string? SaslPassword { get; init; }

    /// <summary>A PEM file of the certificate authorities that signed the brokers' certificates (else the system's).</summary>
    public string? SslCaLocation { get; init; }

    /// <summary>The client's certificate and key (PEM files) where the brokers authenticate clients by TLS.</summary>
    public string? SslCertificateLocation { get; init; }

    public string? SslKeyLocation { get; init; }

    /// <summary>A secret, never logged.</summary>
    public string? SslKeyPassword { get; init; }

    /// <summary><c>Https</c> (the default: the broker's name must match its certificate) or <c>None</c>.</summary>
    public SslEndpointIdentificationAlgorithm? SslEndpointIdentificationAlgorithm { get; init; }

    public bool Enabled => !string.IsNullOrWhiteSpace(BootstrapServers);

    /// <summary>A consumer that commits only when told, in <paramref name="groupId"/>.</summary>
    public ConsumerConfig Consumer(string groupId) => Connect(new ConsumerConfig
    {
        GroupId = groupId,
        EnableAutoCommit = false,
        FetchWaitMaxMs = FetchWaitMaxMs,
    });

    public ProducerConfig Producer(string clientId) => Connect(new ProducerConfig
    {
        ClientId = clientId,
        Acks = Acks.All,
        EnableIdempotence = true,
        LingerMs = 2,
        MessageTimeoutMs = ProduceTimeoutMs,
        QueueBufferingMaxMessages = 1_000_000,
    });

    public AdminClientConfig Admin(string clientId) => Connect(new AdminClientConfig { ClientId = clientId });

    /// <summary>The brokers and how to reach them, the same for every client (the settings above, passed as they are).</summary>
    private T Connect<T>(T config)
        where T : ClientConfig
    {
        KafkaNative.Use();
        config.BootstrapServers = BootstrapServers;
        config.SecurityProtocol = SecurityProtocol;
        config.SaslMechanism = SaslMechanism;
        config.SaslUsername = SaslUsername;
        config.SaslPassword = SaslPassword;
        config.SslCaLocation = SslCaLocation;
        config.SslCertificateLocation = SslCertificateLocation;
        config.SslKeyLocation = SslKeyLocation;
        config.SslKeyPassword = SslKeyPassword;
        config.SslEndpointIdentificationAlgorithm = SslEndpointIdentificationAlgorithm;
        return config;
    }

    /// <summary>Checks the connection settings together; the message names the key to set.</summary>
    public void ValidateSecurity()
    {
        var sasl = SecurityProtocol is Confluent.Kafka.SecurityProtocol.SaslPlaintext or Confluent.Kafka.SecurityProtocol.SaslSsl;
        if (sasl && (string.IsNullOrEmpty(SaslUsername) || SaslPassword is null))
        {
            throw new Hosting.ConfigurationException("Kafka:SaslUsername", "set, with Kafka:SaslPassword, because Kafka:SecurityProtocol is " + SecurityProtocol);
        }

        if (sasl && SaslMechanism is not (Confluent.Kafka.SaslMechanism.Plain or Confluent.Kafka.SaslMechanism.ScramSha256 or Confluent.Kafka.SaslMechanism.ScramSha512))
        {
            throw new Hosting.ConfigurationException("Kafka:SaslMechanism", "Plain, ScramSha256 or ScramSha512, because Kafka:SecurityProtocol is " + SecurityProtocol);
        }

        if (!sasl && (SaslMechanism is not null || SaslUsername is not null || SaslPassword is not null))
        {
            throw new Hosting.ConfigurationException("Kafka:SecurityProtocol", "SaslPlaintext or SaslSsl when SASL settings are given");
        }

        foreach (var (key, path) in new[] { ("SslCaLocation", SslCaLocation), ("SslCertificateLocation", SslCertificateLocation), ("SslKeyLocation", SslKeyLocation) })
        {
            if (path is not null && !File.Exists(path))
            {
                throw new Hosting.ConfigurationException($"Kafka:{key}", $"a readable file; '{path}' does not exist");
            }
        }
    }

    /// <summary>Without the secrets: a record prints every property, and options end up in logs and exceptions.</summary>
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append($"BootstrapServers = {BootstrapServers}, Topics = {Topics}, GroupId = {GroupId}, SecurityProtocol = {SecurityProtocol}, ");
        builder.Append($"SaslMechanism = {SaslMechanism}, SaslUsername = {SaslUsername}, SaslPassword = {(SaslPassword is null ? "" : "***")}, ");
        builder.Append($"SslKeyPassword = {(SslKeyPassword is null ? "" : "***")}");
        return true;
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
