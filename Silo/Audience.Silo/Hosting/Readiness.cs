using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using Audience.Silo.Kafka;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Confluent.Kafka;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Hosting;

/// <summary>
/// Readiness (<c>/health/ready</c>) as health checks, each answering from state kept up to date elsewhere, so a probe
/// costs no blocking call: the event log and the silo (embedded), the broker (a background probe every few seconds),
/// the silo cluster (the Api in Kafka mode: degraded, not unready, while no silo is up, since events are still taken),
/// this silo's partition readers (a Silo process), PostgreSQL (a query, through AspNetCore.HealthChecks.NpgSql) and
/// the profile store (its checkpoints, with a timeout). The Api and the Silo process serve the same endpoints.
/// Liveness (<c>/health/live</c>) stays apart and cheap.
/// </summary>
public static class Readiness
{
    public const string Tag = "ready";

    public static IServiceCollection AddReadiness(this IServiceCollection services, AudienceMode mode, bool siloProcess)
    {
        // An Api in Kafka mode takes events with Kafka alone: PostgreSQL or the profile store away only stops queries and
        // authoring, so they make it degraded, not unready (a load balancer keeps sending it events).
        var storesFail = mode.IsKafka && !siloProcess ? HealthStatus.Degraded : HealthStatus.Unhealthy;
        var checks = services.AddHealthChecks()
            .AddCheck<ProfileStoreCheck>("profile-store", failureStatus: storesFail, tags: [Tag]);
        if (mode.IsKafka)
        {
            services.AddSingleton<BrokerProbe>();
            services.AddHostedService(sp => sp.GetRequiredService<BrokerProbe>());
            checks.AddCheck<BrokerProbe>("kafka", tags: [Tag])
                .AddNpgSql(mode.PostgresConnectionString!, name: "postgres", failureStatus: storesFail, tags: [Tag], timeout: TimeSpan.FromSeconds(2));
            if (siloProcess)
            {
                checks.AddCheck<SiloCheck>("silo", tags: [Tag]);
            }
            else
            {
                checks.AddCheck<ClusterCheck>("silos", tags: [Tag]);
            }
        }
        else
        {
            checks.AddCheck<EmbeddedSiloCheck>("silo", tags: [Tag]);
        }

        return services;
    }

    /// <summary><c>/health/ready</c>: 200 when ready or degraded, 503 when a check is unhealthy.</summary>
    public static IEndpointConventionBuilder MapReadiness(this IEndpointRouteBuilder routes, AudienceMode mode) =>
        routes.MapHealthChecks("/health/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(Tag),
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
            ResponseWriter = (context, report) => Write(context, report, mode),
        }).WithTags("Health");

    /// <summary><c>{status: ready|degraded|not ready, mode, segments, checks: {name: {status, description}}}</c>.</summary>
    private static Task Write(HttpContext context, HealthReport report, AudienceMode mode)
    {
        var services = context.RequestServices;
        var body = new ReadinessResponse(
            report.Status switch { HealthStatus.Healthy => "ready", HealthStatus.Degraded => "degraded", _ => "not ready" },
            mode.IsKafka ? "kafka" : "embedded",
            services.GetRequiredService<SegmentService>().List().Count,
            report.Entries.ToDictionary(e => e.Key, e => new CheckResponse(e.Value.Status.ToString().ToLowerInvariant(), e.Value.Description)))
        {
            ActiveUsers = services.GetService<ActiveUsers>()?.Count, // where this process is a silo
        };
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, HealthJsonContext.Default.ReadinessResponse));
    }
}

/// <summary><c>/health/ready</c>'s answer; <c>activeUsers</c> (user grains active) where the process is a silo.</summary>
public sealed record ReadinessResponse(
    [property: Description("ready, degraded or not ready")] string Status,
    [property: Description("embedded or kafka")] string Mode,
    int Segments,
    IReadOnlyDictionary<string, CheckResponse> Checks)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ActiveUsers { get; init; }
}

/// <summary>One check's outcome: healthy, degraded or unhealthy, and why.</summary>
public sealed record CheckResponse(string Status, string? Description);

/// <summary><c>/health/live</c>'s answer while the process can take events.</summary>
public sealed record LiveResponse(string Status);

/// <summary>The health answers' JSON, generated (the Api's own context lists them too, for its document).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ReadinessResponse))]
[JsonSerializable(typeof(LiveResponse))]
public sealed partial class HealthJsonContext : JsonSerializerContext;

/// <summary>Embedded: the event log takes events and the silo's readers run.</summary>
public sealed class EmbeddedSiloCheck(EventLog log, PartitionSupervisor supervisor) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(log.Fault is { } fault
            ? HealthCheckResult.Unhealthy($"The event log cannot store events: {fault}")
            : supervisor.Ready ? HealthCheckResult.Healthy("The silo reads every partition.") : HealthCheckResult.Unhealthy("The Silo is starting."));
}

/// <summary>Kafka mode: whether this Api is connected to the silos' cluster (queries need it; events do not).</summary>
public sealed class ClusterCheck(RemoteCluster cluster) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(cluster.Connected
            ? HealthCheckResult.Healthy("Connected to the silos.")
            : HealthCheckResult.Degraded("No silo is reachable yet: events are taken, queries answer 503."));
}

/// <summary>A Silo process: its silo has joined the cluster and a round of pings reached every partition's reader.</summary>
public sealed class SiloCheck(PartitionSupervisor supervisor) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(supervisor.Ready
            ? HealthCheckResult.Healthy("Every partition has a reader.")
            : HealthCheckResult.Unhealthy("The silo is starting: not every partition has a reader yet."));
}

/// <summary>The profile store answers (its partitions' checkpoints, a small read) within two seconds.</summary>
public sealed class ProfileStoreCheck(IProfileStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await store.CheckpointsAsync(timeout.Token).WaitAsync(timeout.Token).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"The {store.Kind} profile store answers.");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The {store.Kind} profile store does not answer: {e.Message}");
        }
    }
}

/// <summary>
/// Kafka mode: asks the broker for metadata every few seconds in the background (librdkafka's metadata call blocks), so
/// that a readiness probe only reads the last answer; unhealthy until the first one. Its own admin client, with the
/// same connection settings (TLS, SASL) as the process's producers and consumers.
/// </summary>
public sealed partial class BrokerProbe(KafkaOptions options, ILogger<BrokerProbe> logger) : BackgroundService, IHealthCheck
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(3);
    private volatile string? _problem = "The broker has not answered yet.";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_problem is { } problem ? HealthCheckResult.Unhealthy(problem) : HealthCheckResult.Healthy("Kafka answers."));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var admin = new AdminClientBuilder(options.Admin("audience-probe")).Build();
        using var timer = new PeriodicTimer(Interval);
        do
        {
            // On a pool thread: the call blocks for up to its timeout when the broker is away.
            var reachable = await Task.Run(() => CanReach(admin, options.Topics.UserEvents), stoppingToken).ConfigureAwait(false);
            var problem = reachable ? null : "Kafka does not answer.";
            if (problem != _problem)
            {
                LogChanged(problem ?? "Kafka answers again.");
            }

            _problem = problem;
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private static bool CanReach(IAdminClient admin, string topic)
    {
        try
        {
            return admin.GetMetadata(topic, TimeSpan.FromSeconds(2)).Brokers.Count > 0;
        }
        catch (KafkaException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = LogEvents.ReadinessChanged, Level = LogLevel.Information, Message = "Readiness: {State}")]
    private partial void LogChanged(string state);
}
