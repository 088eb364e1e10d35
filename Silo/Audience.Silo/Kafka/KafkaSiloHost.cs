using Audience.Rules.Indexing;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Kafka;

/// <summary>
/// The Silo in Kafka mode. One consumer in the shared group reads <c>user-events</c>; each partition assigned to
/// this instance gets a <see cref="PartitionWorker"/> (the single writer of the actors of the users whose key
/// hashes there) fed through a <see cref="KafkaPartitionSource"/>. All consumer calls stay on one thread: it
/// routes messages, commits each partition's durable offset (profiles saved and outputs delivered before it),
/// pauses partitions whose worker falls behind, and restarts a partition from its committed offset when its
/// worker lost ownership or an output. On revocation it stops the partition's worker, which writes everything
/// behind, and commits, before the group hands the partition to another instance.
/// </summary>
public sealed partial class KafkaSiloHost : BackgroundService
{
    private static readonly TimeSpan MaintainInterval = TimeSpan.FromMilliseconds(200);

    private readonly KafkaOptions _kafka;
    private readonly SiloOptions _options;
    private readonly IProfileStoreFactory _stores;
    private readonly SegmentIndex _index;
    private readonly TimeProvider _time;
    private readonly ILogger<KafkaSiloHost> _logger;
    private readonly Dictionary<int, Slot> _slots = [];
    private readonly Lock _slotsGate = new();
    private IProducer<string, byte[]>? _producer;

    public KafkaSiloHost(KafkaOptions kafka, SiloOptions options, IProfileStoreFactory stores, SegmentService segments,
        TimeProvider time, ILogger<KafkaSiloHost> logger)
    {
        _kafka = kafka;
        _options = options;
        _stores = stores;
        _index = segments.Index;
        _time = time;
        _logger = logger;
        segments.Changed += change =>
        {
            lock (_slotsGate)
            {
                foreach (var slot in _slots.Values)
                {
                    slot.Worker.Enqueue(change);
                }
            }
        };
    }

    /// <summary>The partitions this instance owns now.</summary>
    public IReadOnlyList<int> Partitions
    {
        get
        {
            lock (_slotsGate)
            {
                return [.. _slots.Keys.Order()];
            }
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Consume(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Consume(CancellationToken stopping)
    {
        var producerConfig = _kafka.Producer("audience-silo");
        producerConfig.MessageTimeoutMs = 300_000; // outputs wait out a broker outage; the worker waits with them
        using var producer = new ProducerBuilder<string, byte[]>(producerConfig).Build();
        _producer = producer;
        var config = _kafka.Consumer(_kafka.GroupId);
        config.ClientId = "audience-silo";
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        config.SessionTimeoutMs = _kafka.SessionTimeoutMs;
        config.PartitionAssignmentStrategy = PartitionAssignmentStrategy.RoundRobin;
        using var consumer = new ConsumerBuilder<string?, byte[]>(config)
            .SetPartitionsAssignedHandler((c, partitions) => Assign(partitions))
            .SetPartitionsRevokedHandler((c, partitions) => Release(c, [.. partitions.Select(p => p.TopicPartition)], commit: true))
            .SetPartitionsLostHandler((c, partitions) => Release(c, [.. partitions.Select(p => p.TopicPartition)], commit: false))
            .SetErrorHandler((_, error) => LogKafkaError(error.Reason))
            .Build();
        consumer.Subscribe(_kafka.Topics.UserEvents);
        var lastMaintain = 0L;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                    if (result?.Message is not null)
                    {
                        Route(result);
                    }
                }
                catch (ConsumeException e)
                {
                    LogKafkaError(e.Error.Reason);
                }

                if (_time.GetTimestamp() - lastMaintain > MaintainInterval.TotalSeconds * _time.TimestampFrequency)
                {
                    try
                    {
                        Maintain(consumer);
                    }
                    catch (KafkaException e)
                    {
                        // A commit, seek or offset lookup failed while the broker is away; the next round retries.
                        LogKafkaError(e.Error.Reason);
                    }

                    lastMaintain = _time.GetTimestamp();
                }
            }
        }
        finally
        {
            // Close leaves the group: the revocation handler stops every worker, which writes behind, then commits.
            try
            {
                consumer.Close();
            }
            catch (KafkaException e)
            {
                LogKafkaError(e.Error.Reason);
                Release(consumer, [.. Partitions.Select(p => new TopicPartition(_kafka.Topics.UserEvents, p))], commit: false);
            }
        }
    }

    private void Assign(List<TopicPartition> partitions)
    {
        foreach (var tp in partitions)
        {
            Start(tp.Partition.Value);
        }

        LogAssigned(partitions);
    }

    private Slot Start(int partition)
    {
        var source = new KafkaPartitionSource(_kafka.Topics.UserEvents, partition);
        var outputs = new KafkaOutputs(_producer!, _kafka.Topics);
        var worker = new PartitionWorker(source, _stores.Open(), _stores.Open(), _options, _index, outputs, _time, _logger);
        var stop = new CancellationTokenSource();
        var slot = new Slot(source, outputs, worker, stop, Task.Run(() => worker.RunAsync(stop.Token), CancellationToken.None));
        lock (_slotsGate)
        {
            _slots[partition] = slot;
        }

        return slot;
    }

    /// <summary>Stops the workers of partitions this instance gives up, and commits what they made durable.</summary>
    private void Release(IConsumer<string?, byte[]> consumer, List<TopicPartition> partitions, bool commit)
    {
        var released = new List<(TopicPartition Partition, Slot Slot)>();
        foreach (var tp in partitions)
        {
            Slot? slot;
            lock (_slotsGate)
            {
                if (!_slots.Remove(tp.Partition.Value, out slot))
                {
                    continue;
                }
            }

            slot.Stop.Cancel();
            try
            {
                slot.Run.Wait(TimeSpan.FromSeconds(60));
            }
            catch (AggregateException e)
            {
                // A worker that lost its profiles or an output made nothing more durable; the next owner replays.
                LogWorkerEnded(e.InnerException!, tp.Partition.Value);
            }

            released.Add((tp, slot));
        }

        if (commit)
        {
            CommitDurable(consumer, released);
        }

        foreach (var (_, slot) in released)
        {
            slot.Dispose();
        }

        LogReleased(partitions, commit);
    }

    /// <summary>
    /// Commits each partition's durable offset that is past its last commit. A failed commit is retried in the
    /// next round, or, for a released partition, its next owner replays from the previous commit (profiles skip
    /// what they already applied).
    /// </summary>
    private void CommitDurable(IConsumer<string?, byte[]> consumer, List<(TopicPartition Partition, Slot Slot)> slots)
    {
        var due = slots.Select(s => (s.Slot, Offset: new TopicPartitionOffset(s.Partition, s.Slot.Source.DurableOffset)))
            .Where(d => d.Offset.Offset.Value > d.Slot.Committed)
            .ToList();
        if (due.Count == 0)
        {
            return;
        }

        try
        {
            consumer.Commit([.. due.Select(d => d.Offset)]);
            foreach (var (slot, offset) in due)
            {
                slot.Committed = offset.Offset.Value;
            }
        }
        catch (KafkaException e)
        {
            LogKafkaError(e.Error.Reason);
        }
    }

    private void Route(ConsumeResult<string?, byte[]> result)
    {
        Slot? slot;
        lock (_slotsGate)
        {
            _slots.TryGetValue(result.Partition.Value, out slot);
        }

        if (slot is null)
        {
            return;
        }

        var seq = result.Offset.Value + 1;
        var received = result.Message.Timestamp.Type == TimestampType.NotAvailable
            ? _time.GetUtcNow()
            : new DateTimeOffset(result.Message.Timestamp.UtcDateTime, TimeSpan.Zero);
        var error = Read(result, received, out var e);
        if (error is not null)
        {
            slot.Outputs.DeadLetter(new DeadLetterMessage(error, result.Topic, result.Partition.Value, result.Offset.Value, result.Message.Key,
                System.Text.Encoding.UTF8.GetString(result.Message.Value ?? []), _time.GetUtcNow()));
            LogDeadLetter(result.Partition.Value, result.Offset.Value, error);
        }

        slot.Source.Add(new LoggedEvent(seq, received.ToUnixTimeMilliseconds(), e));
    }

    /// <summary>Parses and validates a message; returns why it cannot be applied, or null.</summary>
    private static string? Read(ConsumeResult<string?, byte[]> result, DateTimeOffset received, out UserEvent? e)
    {
        if (!EventParser.TryRead(result.Message.Value ?? [], received, out e, out var error,
                defaultEventId: $"evt_{result.Topic}_{result.Partition.Value}_{result.Offset.Value}"))
        {
            return error;
        }

        if (result.Message.Key != e!.UserId)
        {
            var userId = e.UserId;
            e = null;
            return $"The message key must be the event's userId ('{userId}'), so that a user's events stay in one partition.";
        }

        return null;
    }

    private void Maintain(IConsumer<string?, byte[]> consumer)
    {
        List<(int Partition, Slot Slot)> slots;
        lock (_slotsGate)
        {
            slots = [.. _slots.Select(s => (s.Key, s.Value))];
        }

        var running = new List<(TopicPartition Partition, Slot Slot)>();
        foreach (var (partition, slot) in slots)
        {
            var tp = new TopicPartition(_kafka.Topics.UserEvents, partition);
            if (slot.Run.IsCompleted)
            {
                Restart(consumer, tp, slot);
                continue;
            }

            running.Add((tp, slot));

            var queued = slot.Source.Queued;
            if (!slot.Paused && queued > _kafka.MaxQueuedPerPartition)
            {
                consumer.Pause([tp]);
                slot.Paused = true;
            }
            else if (slot.Paused && queued < _kafka.MaxQueuedPerPartition / 2)
            {
                consumer.Resume([tp]);
                slot.Paused = false;
            }
        }

        CommitDurable(consumer, running);
    }

    /// <summary>
    /// A worker ended on its own: another writer took its profiles, or an output was lost. Drop what it held and
    /// start again from the committed offset; profiles reload from the store and skip what they already applied.
    /// </summary>
    private void Restart(IConsumer<string?, byte[]> consumer, TopicPartition tp, Slot slot)
    {
        if (slot.Run.Exception?.InnerException is { } error)
        {
            LogWorkerEnded(error, tp.Partition.Value);
        }

        lock (_slotsGate)
        {
            _slots.Remove(tp.Partition.Value);
        }

        slot.Dispose();
        var committed = slot.Committed >= 0 ? slot.Committed : consumer.Committed([tp], TimeSpan.FromSeconds(10))[0].Offset.Value;
        var from = committed >= 0 ? new Offset(committed) : Offset.Beginning;
        if (slot.Paused)
        {
            consumer.Resume([tp]);
        }

        consumer.Seek(new TopicPartitionOffset(tp, from));
        Start(tp.Partition.Value).Committed = slot.Committed;
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Assigned partitions {Partitions}")]
    private partial void LogAssigned(List<TopicPartition> partitions);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Released partitions {Partitions} (committed: {Committed})")]
    private partial void LogReleased(List<TopicPartition> partitions, bool committed);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Kafka: {Reason}")]
    private partial void LogKafkaError(string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Partition {Partition} restarts from its committed offset")]
    private partial void LogWorkerEnded(Exception exception, int partition);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Message {Partition}@{Offset} sent to the dead-letter topic: {Error}")]
    private partial void LogDeadLetter(int partition, long offset, string error);

    private sealed class Slot(KafkaPartitionSource source, KafkaOutputs outputs, PartitionWorker worker, CancellationTokenSource stop, Task run) : IDisposable
    {
        public KafkaPartitionSource Source { get; } = source;

        public KafkaOutputs Outputs { get; } = outputs;

        public PartitionWorker Worker { get; } = worker;

        public CancellationTokenSource Stop { get; } = stop;

        public Task Run { get; } = run;

        /// <summary>The last offset this instance committed for the partition, or -1.</summary>
        public long Committed { get; set; } = -1;

        public bool Paused { get; set; }

        public void Dispose()
        {
            Stop.Dispose();
            Worker.Dispose();
            Source.Dispose();
        }
    }
}
