using System.Text.Json;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// Kafka mode's source for <c>GET /api/changes</c>: reads every partition of <c>user-segments</c> from its end,
/// outside any group (so there is no group to join, and it starts within milliseconds), and hands each change to
/// the in-process <see cref="ChangeFeed"/>. Reads only while someone is subscribed.
/// </summary>
public sealed partial class ChangeFeedPump(KafkaOptions kafka, ChangeFeed feed, ILogger<ChangeFeedPump> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Pump(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Pump(CancellationToken stopping)
    {
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(kafka.Consumer("audience-api-changes-" + Guid.NewGuid().ToString("N"))).Build();
        var assigned = false;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (feed.Subscribers == 0)
                {
                    // Nobody listens: stay off the topic, and start from its end when someone does.
                    if (assigned)
                    {
                        consumer.Unassign();
                        assigned = false;
                    }

                    stopping.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(50));
                    continue;
                }

                if (!assigned)
                {
                    using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
                    var topic = admin.GetMetadata(kafka.Topics.UserSegments, TimeSpan.FromSeconds(5)).Topics.Single();
                    consumer.Assign(topic.Partitions.Select(p => new TopicPartitionOffset(topic.Topic, p.PartitionId, Offset.End)));
                    assigned = true;
                }

                if (consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message?.Value is { } value
                    && JsonSerializer.Deserialize(value, SiloJsonContext.Default.MembershipChangeMessage) is { } change)
                {
                    feed.Publish([change]);
                }
            }
            catch (Exception e) when (e is KafkaException or JsonException)
            {
                // No retry pipeline: a live tail has little to try again. The consumer is past a change it could not read,
                // and an assignment that failed is made again in the next round only while someone still listens, which a
                // pipeline holding this thread would not see. The pause keeps a lasting fault from spinning the thread.
                LogFailed(e);
                stopping.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            }
        }

        consumer.Close();
    }

    [LoggerMessage(EventId = LogEvents.ChangeFeedFailed, Level = LogLevel.Warning, Message = "Reading user-segments for live subscribers failed")]
    private partial void LogFailed(Exception exception);
}
