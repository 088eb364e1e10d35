using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// Kafka mode's source for <c>GET /api/changes</c>: reads <c>user-segments</c> from its end, outside any group, and
/// hands each change to the in-process <see cref="ChangeFeed"/>. Runs only while someone is subscribed.
/// </summary>
public sealed partial class ChangeFeedPump(KafkaOptions kafka, ChangeFeed feed, ILogger<ChangeFeedPump> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Pump(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Pump(CancellationToken stopping)
    {
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = kafka.BootstrapServers,
            GroupId = "audience-api-changes-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Latest,
        }).Build();
        var subscribed = false;
        while (!stopping.IsCancellationRequested)
        {
            if (feed.Subscribers == 0)
            {
                // Nobody listens: stay off the topic, and start from its end when someone does.
                if (subscribed)
                {
                    consumer.Unsubscribe();
                    subscribed = false;
                }

                stopping.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(100));
                continue;
            }

            if (!subscribed)
            {
                consumer.Subscribe(kafka.Topics.UserSegments);
                subscribed = true;
            }

            try
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message?.Value is { } value
                    && JsonSerializer.Deserialize(value, SiloJsonContext.Default.MembershipChangeMessage) is { } change)
                {
                    feed.Publish(change);
                }
            }
            catch (Exception e) when (e is KafkaException or JsonException)
            {
                LogFailed(e);
            }
        }

        consumer.Close();
    }

    [LoggerMessage(EventId = 3301, Level = LogLevel.Warning, Message = "Reading user-segments for live subscribers failed")]
    private partial void LogFailed(Exception exception);
}
