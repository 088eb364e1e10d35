using System.Data.Common;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Audience.Silo.Hosting;

/// <summary>
/// How long a pipeline waits between tries: exponentially longer from <paramref name="First"/>, with jitter, and at most
/// <paramref name="Max"/>; <paramref name="MaxRetries"/> tries after the first (<see cref="int.MaxValue"/>: until it
/// succeeds or its caller stops).
/// </summary>
public sealed record Backoff(TimeSpan First, TimeSpan Max, int MaxRetries = int.MaxValue);

/// <summary>Some of a round's grain calls failed (the others succeeded): the round's pipeline tries those again.</summary>
public sealed class CallsFailedException(int calls, Exception first) : Exception($"{calls} grain calls failed: {first.Message}", first)
{
    public int Calls { get; } = calls;
}

/// <summary>
/// The service's retry and circuit-breaker pipelines (Polly), where it waits out a failure: each retries only what its
/// predicate names (never a cancellation: a pipeline stops when its caller does), waits exponentially longer with jitter,
/// and counts each retry on <c>audience_retries_total{pipeline}</c>. The profile store's circuit breaker is one per
/// process, shared by every partition reader, its state on <c>audience_circuit_state{pipeline}</c>. Pipelines are built
/// once (per reader, per service), not per call. Waits run on the process's <see cref="TimeProvider"/> (the system clock,
/// like Orleans' timers), not on the profiles' clock (<see cref="AudienceServices.Clock"/>), which a test may stop.
/// docs/operations.md lists every pipeline.
/// </summary>
public sealed partial class Resilience
{
    /// <summary>The profile store's circuit breaker.</summary>
    public const string ProfileStore = "profile-store";

    /// <summary>A partition reader's own store calls: claiming the partition, moving its checkpoint, reading its backfills.</summary>
    public const string PartitionStore = "partition-store";

    /// <summary>A partition reader's write rounds: the grains that applied events write them.</summary>
    public const string PartitionWrite = "partition-write";

    /// <summary>A partition reader's batches: each user's events to the user's grain.</summary>
    public const string PartitionDeliver = "partition-deliver";

    /// <summary>A partition read again from its checkpoint after a grain lost events it had applied.</summary>
    public const string PartitionReadAgain = "partition-read-again";

    /// <summary>A partition reader's dead letters.</summary>
    public const string PartitionDeadLetters = "partition-dead-letters";

    /// <summary>A silo asks Kafka for the partition count of <c>user-events</c> at start.</summary>
    public const string KafkaPartitions = "kafka-partitions";

    /// <summary>A process asks Kafka where <c>segment-updates</c> starts, when Kafka was away as it started.</summary>
    public const string SegmentUpdatesStart = "segment-updates-start";

    /// <summary>The Api publishes the segment outbox.</summary>
    public const string SegmentOutbox = "segment-outbox";

    /// <summary>The Api (Kafka mode) connects to the silos' cluster.</summary>
    public const string ClusterConnect = "cluster-connect";

    /// <summary>A campaign broadcast's page of members.</summary>
    public const string CampaignBroadcast = "campaign-broadcast";

    /// <summary>Partition readers: short outages of the store, Kafka or a silo are the common case, and the partition waits.</summary>
    public static readonly Backoff Reader = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));

    /// <summary>What a process waits for in the background: Kafka's metadata, the outbox's broker and database, the silos.</summary>
    public static readonly Backoff Connection = new(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(5));

    /// <summary>A broadcast page: its failed members twice more, then those still failing are skipped.</summary>
    public static readonly Backoff Broadcast = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1), MaxRetries: 2);

    /// <summary>The profile store's breaker opens once this share of its calls in <see cref="StoreSamplingDuration"/> failed...</summary>
    public const double StoreFailureRatio = 0.5;

    /// <summary>... and at least this many calls were made in it ...</summary>
    public const int StoreMinimumThroughput = 4;

    public static readonly TimeSpan StoreSamplingDuration = TimeSpan.FromSeconds(10);

    /// <summary>... and stays open this long; then one call goes through (half-open), and closes it or opens it again.</summary>
    public static readonly TimeSpan StoreBreakDuration = TimeSpan.FromSeconds(5);

    private readonly AudienceMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<Resilience> _logger;
    private readonly Lazy<ResiliencePipeline> _broadcast;

    public Resilience(AudienceMetrics metrics, TimeProvider time, ILogger<Resilience> logger)
    {
        _metrics = metrics;
        _time = time;
        _logger = logger;
        var state = new CircuitBreakerStateProvider();
        StoreCircuit = new ResiliencePipelineBuilder { Name = ProfileStore, TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && (IsStoreFailure(e) || e is CallsFailedException)),
                FailureRatio = StoreFailureRatio,
                MinimumThroughput = StoreMinimumThroughput,
                SamplingDuration = StoreSamplingDuration,
                BreakDuration = StoreBreakDuration,
                StateProvider = state,
                OnOpened = args =>
                {
                    LogCircuitOpened(args.Outcome.Exception, ProfileStore, args.BreakDuration);
                    return ValueTask.CompletedTask;
                },
                OnHalfOpened = _ =>
                {
                    LogCircuitHalfOpened(ProfileStore);
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    LogCircuitClosed(ProfileStore);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        metrics.Circuit(ProfileStore, () => (int)state.CircuitState);
        _broadcast = new(() => Retry(CampaignBroadcast, Broadcast, static e => e is CallsFailedException));
    }

    /// <summary>
    /// The profile store's circuit breaker, one per process: it counts the store calls and write rounds of every partition
    /// reader, and the due-time sweeps. Once the store keeps failing (<see cref="StoreFailureRatio"/> of the calls of
    /// <see cref="StoreSamplingDuration"/>) it opens: calls fail at once with <see cref="BrokenCircuitException"/>, and the
    /// readers' pipelines wait until it lets one through again, instead of each trying the store on its own backoff.
    /// </summary>
    public ResiliencePipeline StoreCircuit { get; }

    /// <summary>A broadcast page's grain calls (<see cref="CallsFailedException"/>): <see cref="Broadcast"/>.</summary>
    public ResiliencePipeline CampaignBroadcasts => _broadcast.Value;

    /// <summary>For tests: the jitter's random numbers, in [0, 1).</summary>
    internal Func<double>? Randomizer { get; init; }

    /// <summary>A failure of the profile store that passes: it is away, or a call timed out.</summary>
    public static bool IsStoreFailure(Exception e) => e is StoreUnavailableException or DbException or TimeoutException;

    /// <summary>
    /// A retry pipeline named <paramref name="pipeline"/>: tries again what <paramref name="retries"/> names, waiting as
    /// <paramref name="backoff"/> says; <paramref name="onRetry"/> logs each failure it waits out. Through
    /// <paramref name="circuit"/> when given: a try the open circuit refuses is tried again once it lets one through.
    /// </summary>
    public ResiliencePipeline Retry(string pipeline, Backoff backoff, Func<Exception, bool> retries,
        Func<OnRetryArguments<object>, ValueTask>? onRetry = null, ResiliencePipeline? circuit = null)
    {
        _metrics.Retried(pipeline, 0); // the series is there from the start: a dashboard shows 0, not nothing
        var options = new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e
                && !(e is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested)
                && (retries(e) || (circuit is not null && e is BrokenCircuitException))),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = backoff.First,
            MaxDelay = backoff.Max,
            MaxRetryAttempts = backoff.MaxRetries,
            // An open circuit is waited out until it lets a call through, rather than asked again on the backoff.
            DelayGenerator = static args => ValueTask.FromResult(
                args.Outcome.Exception is BrokenCircuitException { RetryAfter: { } after } && after > TimeSpan.Zero ? after : (TimeSpan?)null),
            OnRetry = args =>
            {
                _metrics.Retried(pipeline);
                return onRetry?.Invoke(args) ?? ValueTask.CompletedTask;
            },
        };
        if (Randomizer is { } randomizer)
        {
            options.Randomizer = randomizer;
        }

        var builder = new ResiliencePipelineBuilder { Name = pipeline, TimeProvider = _time }.AddRetry(options);
        if (circuit is not null)
        {
            builder.AddPipeline(circuit);
        }

        return builder.Build();
    }

    /// <summary>
    /// Runs one operation through <paramref name="pipeline"/> with a pooled context; <paramref name="operation"/> names it
    /// for the logs of its retries (<see cref="ResilienceContext.OperationKey"/>). A grain's code continues on its own
    /// scheduler (<paramref name="continueOnCapturedContext"/>).
    /// </summary>
    public static async Task<TResult> RunAsync<TResult, TState>(ResiliencePipeline pipeline, string operation,
        Func<TState, CancellationToken, Task<TResult>> attempt, TState state, CancellationToken cancellationToken, bool continueOnCapturedContext = false)
    {
        var context = ResilienceContextPool.Shared.Get(operation, continueOnCapturedContext, cancellationToken);
        try
        {
            return await pipeline.ExecuteAsync(static async (context, s) => await s.attempt(s.state, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext),
                context, (attempt, state)).ConfigureAwait(continueOnCapturedContext);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <inheritdoc cref="RunAsync{TResult, TState}"/>
    public static async Task RunAsync<TState>(ResiliencePipeline pipeline, string operation,
        Func<TState, CancellationToken, Task> attempt, TState state, CancellationToken cancellationToken, bool continueOnCapturedContext = false)
    {
        var context = ResilienceContextPool.Shared.Get(operation, continueOnCapturedContext, cancellationToken);
        try
        {
            await pipeline.ExecuteAsync(static async (context, s) => await s.attempt(s.state, context.CancellationToken).ConfigureAwait(context.ContinueOnCapturedContext),
                context, (attempt, state)).ConfigureAwait(continueOnCapturedContext);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    [LoggerMessage(EventId = LogEvents.CircuitOpened, Level = LogLevel.Warning, Message = "The circuit {Pipeline} opened for {BreakDuration}: the store keeps failing, calls wait")]
    private partial void LogCircuitOpened(Exception? exception, string pipeline, TimeSpan breakDuration);

    [LoggerMessage(EventId = LogEvents.CircuitHalfOpened, Level = LogLevel.Information, Message = "The circuit {Pipeline} lets one call through to see whether the store is back")]
    private partial void LogCircuitHalfOpened(string pipeline);

    [LoggerMessage(EventId = LogEvents.CircuitClosed, Level = LogLevel.Information, Message = "The circuit {Pipeline} closed: the store answers again")]
    private partial void LogCircuitClosed(string pipeline);
}
