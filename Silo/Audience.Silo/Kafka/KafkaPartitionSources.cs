using System.Collections.Concurrent;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// The partitions of <c>user-events</c> that this silo's readers read, through one consumer per silo. Orleans, not
/// Kafka's group protocol, decides which silo reads a partition (its reader grain's placement), so the consumer
/// assigns partitions itself, from the checkpoint kept in the profile store, and commits nothing to Kafka. All
/// consumer calls stay on one thread: it parses each message (one that cannot be read becomes a dead letter),
/// queues it for its partition's reader, and pauses a partition whose reader has more than
/// <see cref="KafkaOptions.MaxQueuedPerPartition"/> waiting, so the silo's memory stays bounded. What bounds the lag
/// itself (the mock cluster keeps only about 5 MiB per partition) is the Api's <see cref="ConsumerLag"/>.
/// </summary>
public sealed partial class KafkaPartitionSources : IPartitionSources, IDisposable
{
    private static readonly TimeSpan MaintainInterval = TimeSpan.FromMilliseconds(100);

    private readonly KafkaOptions _kafka;
    private readonly TimeProvider _time;
    private readonly Hosting.Resilience _resilience;
    private readonly ILogger<KafkaPartitionSources> _logger;
    private readonly ConcurrentDictionary<int, Source> _sources = new();
    private readonly ConcurrentQueue<Action<IConsumer<string?, byte[]>>> _commands = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Lazy<Thread> _thread;
    private int _disposed;

    public KafkaPartitionSources(KafkaOptions kafka, [Microsoft.Extensions.DependencyInjection.FromKeyedServices(Hosting.AudienceServices.Clock)] TimeProvider time,
        Hosting.Resilience resilience, ILogger<KafkaPartitionSources> logger)
    {
        _kafka = kafka;
        _time = time;
        _resilience = resilience;
        _logger = logger;
        _thread = new Lazy<Thread>(() =>
        {
            var thread = new Thread(Consume) { IsBackground = true, Name = "audience-kafka-consumer" };
            thread.Start();
            return thread;
        });
    }

    public async Task<int> CountAsync(CancellationToken cancellationToken)
    {
        var config = _kafka.Consumer(_kafka.GroupId);
        using var admin = new AdminClientBuilder(config).Build();
        // Asked until the broker names the partitions (it may be away, or the topic not made yet), waiting longer each time.
        var asking = _resilience.Retry(Hosting.Resilience.KafkaPartitions, Hosting.Resilience.Connection, static e => e is KafkaException, args =>
        {
            LogKafkaError(((KafkaException)args.Outcome.Exception!).Error.Reason);
            return ValueTask.CompletedTask;
        });
        try
        {
            return await asking.ExecuteAsync(static (state, _) => ValueTask.FromResult(state.Sources.Partitions(state.Admin)), (Sources: this, Admin: admin),
                cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("Stopped while Kafka did not name the partitions.", e, cancellationToken);
        }
    }

    private int Partitions(IAdminClient admin)
    {
        var topic = admin.GetMetadata(_kafka.Topics.UserEvents, TimeSpan.FromSeconds(5)).Topics.Single();
        if (topic.Error.IsError || topic.Partitions.Count == 0)
        {
            throw new KafkaException(new Error(topic.Error.Code, $"{_kafka.Topics.UserEvents}: {topic.Error.Reason}"));
        }

        return topic.Partitions.Count;
    }

    public Task<IPartitionSource> OpenAsync(int partition, long afterSeq, CancellationToken cancellationToken)
    {
        var source = new Source(this, partition);
        var tp = new TopicPartition(_kafka.Topics.UserEvents, partition);
        // A message's sequence number is its offset + 1, so the next one to read after seq is at offset seq. The
        // source takes messages from the assignment on: one fetched before it (under an earlier assignment of the
        // partition, being read again from its checkpoint) would come out of order.
        _commands.Enqueue(consumer =>
        {
            _sources[partition] = source;
            consumer.IncrementalAssign([new TopicPartitionOffset(tp, new Offset(afterSeq))]);
        });
        _ = _thread.Value;
        return Task.FromResult<IPartitionSource>(source);
    }

    private void Close(Source source)
    {
        // On the consumer thread, after the source's own assignment: the partition is unassigned if it is still this
        // source's (a newer source of the partition keeps it).
        _commands.Enqueue(consumer =>
        {
            if (_sources.TryRemove(new KeyValuePair<int, Source>(source.Partition, source)))
            {
                consumer.IncrementalUnassign([new TopicPartition(_kafka.Topics.UserEvents, source.Partition)]);
            }
        });
    }

    private void Consume()
    {
        var config = _kafka.Consumer(_kafka.GroupId);
        config.ClientId = "audience-silo";
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        using var consumer = new ConsumerBuilder<string?, byte[]>(config)
            .SetErrorHandler((_, error) => LogKafkaError(error.Reason))
            .Build();
        var paused = new HashSet<int>();
        var lastMaintain = 0L;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                while (_commands.TryDequeue(out var command))
                {
                    command(consumer);
                }

                var result = consumer.Consume(TimeSpan.FromMilliseconds(50));
                if (result?.Message is not null && _sources.TryGetValue(result.Partition.Value, out var source))
                {
                    source.Add(Read(result));
                }

                if (_time.GetElapsedTime(lastMaintain) >= MaintainInterval)
                {
                    Backpressure(consumer, paused);
                    lastMaintain = _time.GetTimestamp();
                }
            }
            catch (KafkaException e)
            {
                // A consume, pause or assignment failed while the broker is away; the loop goes on and tries again.
                LogKafkaError(e.Error.Reason);
            }
            catch (InvalidOperationException e)
            {
                LogKafkaError(e.Message);
            }
        }

        consumer.Close();
    }

    private void Backpressure(IConsumer<string?, byte[]> consumer, HashSet<int> paused)
    {
        foreach (var source in _sources.Values)
        {
            var tp = new TopicPartition(_kafka.Topics.UserEvents, source.Partition);
            if (!paused.Contains(source.Partition) && source.Queued > _kafka.MaxQueuedPerPartition)
            {
                consumer.Pause([tp]);
                paused.Add(source.Partition);
            }
            else if (paused.Contains(source.Partition) && source.Queued < _kafka.MaxQueuedPerPartition / 2)
            {
                consumer.Resume([tp]);
                paused.Remove(source.Partition);
            }
        }

        paused.RemoveWhere(p => !_sources.ContainsKey(p));
    }

    /// <summary>Parses and validates a message; one that cannot be applied becomes a dead letter, and the partition moves past it.</summary>
    private PartitionEntry Read(ConsumeResult<string?, byte[]> result)
    {
        var seq = result.Offset.Value + 1;
        var received = result.Message.Timestamp.Type == TimestampType.NotAvailable
            ? _time.GetUtcNow()
            : new DateTimeOffset(result.Message.Timestamp.UtcDateTime, TimeSpan.Zero);
        string? error;
        if (IsErasure(result.Message.Headers))
        {
            return ReadErasure(result, seq, received);
        }

        if (!EventParser.TryRead(result.Message.Value ?? [], received, out var e, out error,
                defaultEventId: $"evt_{result.Topic}_{result.Partition.Value}_{result.Offset.Value}"))
        {
            e = null;
        }
        else if (result.Message.Key != e!.UserId)
        {
            error = $"The message key must be the event's userId ('{e.UserId}'), so that a user's events stay in one partition.";
            e = null;
        }

        if (e is not null)
        {
            return new PartitionEntry(seq, received.ToUnixTimeMilliseconds(), e, TraceParent: Hosting.Telemetry.TraceParent(result.Message.Headers));
        }

        return new PartitionEntry(seq, received.ToUnixTimeMilliseconds(), null, new DeadLetterMessage(error!, result.Topic, result.Partition.Value,
            result.Offset.Value, result.Message.Key, System.Text.Encoding.UTF8.GetString(result.Message.Value ?? []), _time.GetUtcNow()));
    }

    /// <summary>An erasure of a user (header <c>message-type: erasure</c>); one that is not valid becomes a dead letter.</summary>
    private PartitionEntry ReadErasure(ConsumeResult<string?, byte[]> result, long seq, DateTimeOffset received)
    {
        if (UserErasure.TryRead(result.Message.Value ?? [], out var erasure, out var error))
        {
            if (result.Message.Key == erasure!.UserId)
            {
                return new PartitionEntry(seq, received.ToUnixTimeMilliseconds(), null, Erasure: erasure);
            }

            error = $"The message key must be the erasure's userId ('{erasure.UserId}'), so that it follows the user's events in their partition.";
        }

        return new PartitionEntry(seq, received.ToUnixTimeMilliseconds(), null, new DeadLetterMessage(error!, result.Topic, result.Partition.Value,
            result.Offset.Value, result.Message.Key, System.Text.Encoding.UTF8.GetString(result.Message.Value ?? []), _time.GetUtcNow()));
    }

    private static bool IsErasure(Headers? headers) =>
        headers is not null && headers.TryGetLastBytes(UserErasure.Header, out var value)
        && value.AsSpan().SequenceEqual(System.Text.Encoding.UTF8.GetBytes(UserErasure.HeaderValue));

    public void Dispose()
    {
        // Registered as itself and as the partition sources, so the container disposes it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stop.Cancel();
        if (_thread.IsValueCreated)
        {
            _thread.Value.Join(TimeSpan.FromSeconds(10));
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = LogEvents.KafkaSourceError, Level = LogLevel.Warning, Message = "Kafka: {Reason}")]
    private partial void LogKafkaError(string reason);

    /// <summary>One partition's queue, filled by the consumer thread and drained by the partition's reader.</summary>
    private sealed class Source(KafkaPartitionSources owner, int partition) : IPartitionSource
    {
        private readonly ConcurrentQueue<PartitionEntry> _queue = new();
        private readonly WakeSignal _signal = new();

        public string Topic => owner._kafka.Topics.UserEvents;

        public int Partition => partition;

        public int Queued => _queue.Count;

        public void Add(PartitionEntry entry)
        {
            _queue.Enqueue(entry);
            _signal.Wake();
        }

        public async Task<IReadOnlyList<PartitionEntry>> ReadAsync(long afterSeq, int max, TimeSpan wait, CancellationToken cancellationToken)
        {
            if (_queue.IsEmpty && wait > TimeSpan.Zero)
            {
                await _signal.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
            }

            var entries = new List<PartitionEntry>(Math.Min(max, _queue.Count));
            while (entries.Count < max && _queue.TryDequeue(out var entry))
            {
                if (entry.Seq > afterSeq)
                {
                    entries.Add(entry);
                }
            }

            return entries;
        }

        public ValueTask DisposeAsync()
        {
            owner.Close(this);
            _signal.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
