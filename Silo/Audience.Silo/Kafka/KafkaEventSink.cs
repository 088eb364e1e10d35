using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Storage;
using Confluent.Kafka;

namespace Audience.Silo.Kafka;

/// <summary>
/// The Api's way into Kafka mode: each event is produced to <c>user-events</c>, keyed by user id (so one user's
/// events stay in order in one partition), in seed 004's JSON format, by an idempotent acks=all producer. The
/// request is acknowledged only when the broker has acknowledged every event in it.
/// </summary>
public sealed class KafkaEventSink : IEventSink, IDisposable
{
    private readonly IProducer<string, byte[]> _producer;
    private readonly string _topic;
    private int _disposed;

    public KafkaEventSink(KafkaOptions options)
    {
        _topic = options.Topics.UserEvents;
        _producer = new ProducerBuilder<string, byte[]>(options.Producer("audience-api")).Build();
    }

    public async Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default)
    {
        var deliveries = new Task<DeliveryResult<string, byte[]>>[events.Count];
        try
        {
            for (var i = 0; i < events.Count; i++)
            {
                var e = events[i];
                deliveries[i] = _producer.ProduceAsync(_topic, new Message<string, byte[]>
                {
                    Key = e.UserId,
                    Value = JsonSerializer.SerializeToUtf8Bytes(e, SiloJsonContext.Default.UserEvent),
                }, CancellationToken.None);
            }

            await Task.WhenAll(deliveries).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            throw new EventLogUnavailableException($"Kafka did not acknowledge the events: {e.Error.Reason}", e);
        }

        return [.. events.Select(e => new AppendResult(e.EventId, Duplicate: false))];
    }

    /// <summary>Whether the broker answers a metadata request: readiness of the Api in Kafka mode.</summary>
    public bool CanReachBroker(TimeSpan timeout)
    {
        try
        {
            using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
            return admin.GetMetadata(_topic, timeout).Brokers.Count > 0;
        }
        catch (KafkaException)
        {
            return false;
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
}
