using Audience.Silo.Hosting;
using Audience.Silo.Kafka;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;

namespace Audience.Silo.Tests;

/// <summary>
/// TLS and SASL for Kafka: the settings reach every client librdkafka builds, librdkafka (the one the service ships)
/// takes them, bad combinations stop start-up naming the key, and secrets stay out of anything printed.
/// (The mock cluster speaks plaintext only, so no broker here checks a password.)
/// </summary>
public sealed class KafkaConnectionTests
{
    private static readonly Dictionary<string, string?> Secure = new()
    {
        ["Kafka:BootstrapServers"] = "broker-1:9093",
        ["Kafka:SecurityProtocol"] = "SaslSsl",
        ["Kafka:SaslMechanism"] = "ScramSha512",
        ["Kafka:SaslUsername"] = "audience",
        ["Kafka:SaslPassword"] = "s3cret-password",
        ["Kafka:SslEndpointIdentificationAlgorithm"] = "Https",
        ["Postgres:ConnectionString"] = "Host=db;Username=audience;Password=pg-password",
    };

    private static AudienceMode Read(IDictionary<string, string?> settings) =>
        AudienceMode.Read(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), siloProcess: true);

    [Fact]
    public void Every_client_connects_with_the_configured_protocol_and_credentials()
    {
        var kafka = Read(Secure).Kafka!;
        ClientConfig[] configs = [kafka.Producer("p"), kafka.Consumer("g"), kafka.Admin("a")];
        foreach (var config in configs)
        {
            Assert.Equal("broker-1:9093", config.BootstrapServers);
            Assert.Equal(SecurityProtocol.SaslSsl, config.SecurityProtocol);
            Assert.Equal(SaslMechanism.ScramSha512, config.SaslMechanism);
            Assert.Equal("audience", config.SaslUsername);
            Assert.Equal("s3cret-password", config.SaslPassword);
        }

        // librdkafka accepts them: the service's build of it has TLS and SASL/SCRAM.
        using var producer = new ProducerBuilder<string, string>(kafka.Producer("p")).Build();
        Assert.NotNull(producer.Name);
    }

    [Fact]
    public void Secrets_are_not_printed()
    {
        var text = Read(Secure).ToString();
        Assert.Contains("SaslUsername = audience", text, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-password", text, StringComparison.Ordinal);
        Assert.DoesNotContain("pg-password", text, StringComparison.Ordinal);
        Assert.Contains("Username=audience", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Kafka:SecurityProtocol", "Tls", "Kafka")]
    [InlineData("Kafka:SaslPassword", null, "Kafka:SaslUsername")]
    [InlineData("Kafka:SaslMechanism", "Gssapi", "Kafka:SaslMechanism")]
    [InlineData("Kafka:SecurityProtocol", "Ssl", "Kafka:SecurityProtocol")]
    [InlineData("Kafka:SslCaLocation", "/nonexistent/ca.pem", "Kafka:SslCaLocation")]
    public void A_bad_setting_stops_start_up_naming_its_key(string key, string? value, string named)
    {
        var settings = new Dictionary<string, string?>(Secure) { [key] = value };
        var error = Assert.Throws<ConfigurationException>(() => Read(settings));
        Assert.Equal(named, error.Key);
        Assert.DoesNotContain("s3cret-password", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plaintext_stays_the_default()
    {
        var kafka = Read(new Dictionary<string, string?> { ["Kafka:BootstrapServers"] = "b:9092", ["Postgres:ConnectionString"] = "Host=db" }).Kafka!;
        Assert.Null(kafka.Producer("p").SecurityProtocol);
    }
}
