using System.Diagnostics;
using System.Text;
using Audience.Silo.Processing;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Audience.Silo.Hosting;

/// <summary>
/// Metrics and traces of every process (the Api, embedded or in Kafka mode, and the Silo): our meters, Orleans',
/// ASP.NET Core's and the runtime's in Prometheus' text at <c>/metrics</c>, and over OTLP when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Traces are recorded only when <c>Telemetry:Traces</c> is true (and then
/// exported over OTLP too): they follow an event from its HTTP request through Kafka (a W3C <c>traceparent</c> header
/// on <c>user-events</c>) to the silo that applies it and the messages it produces. Off, no span is made and no header
/// is written or read. Orleans' own spans are left out: every reader's call to a user grain would be a trace of its own.
/// </summary>
public static class Telemetry
{
    /// <summary>The source of the service's own spans: the produce of events, and a user grain applying them.</summary>
    public static readonly ActivitySource Source = new("Audience");

    /// <summary>The W3C trace context header, on Kafka messages as on HTTP requests.</summary>
    public const string TraceParentHeader = "traceparent";

    public static bool TracesEnabled(IConfiguration configuration)
    {
        var value = configuration["Telemetry:Traces"];
        if (value is not null && !bool.TryParse(value, out _))
        {
            throw new ConfigurationException("Telemetry:Traces", $"true or false, not '{value}'");
        }

        return string.Equals(value, "true", StringComparison.OrdinalIgnoreCase);
    }

    private static bool OtlpConfigured(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    /// <summary>Adds metrics (and traces, when <see cref="TracesEnabled"/>) to a process named <paramref name="service"/>.</summary>
    public static IServiceCollection AddAudienceTelemetry(this IServiceCollection services, IConfiguration configuration, string service)
    {
        var otlp = OtlpConfigured(configuration);
        var telemetry = services.AddOpenTelemetry()
            // OTEL_SERVICE_NAME, when set, names the process (the SDK reads it); else the process's own name.
            .ConfigureResource(resource =>
            {
                if (string.IsNullOrWhiteSpace(configuration["OTEL_SERVICE_NAME"]))
                {
                    resource.AddService(serviceName: service, serviceInstanceId: Environment.MachineName);
                }
            })
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(AudienceMetrics.MeterName, SiloMetrics.MeterName, "Microsoft.Orleans")
                    .AddAspNetCoreInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddPrometheusExporter();
                if (otlp)
                {
                    metrics.AddOtlpExporter();
                }
            });
        if (TracesEnabled(configuration))
        {
            telemetry.WithTracing(tracing =>
            {
                tracing.AddSource(Source.Name)
                    // Probes and scrapes come every few seconds and say nothing about a request's path.
                    .AddAspNetCoreInstrumentation(o => o.Filter = context =>
                        !context.Request.Path.StartsWithSegments("/health", StringComparison.Ordinal)
                        && !context.Request.Path.StartsWithSegments("/metrics", StringComparison.Ordinal));
                if (otlp)
                {
                    tracing.AddOtlpExporter();
                }
            });
        }

        return services;
    }

    /// <summary>
    /// The current span's context as a <c>traceparent</c> header, when traces are on and there is a span to continue.
    /// (ASP.NET Core makes an activity per request whether or not anyone records it: that one is not passed on.)
    /// </summary>
    public static Header? TraceHeader() =>
        Source.HasListeners() && Activity.Current is { IdFormat: ActivityIdFormat.W3C, Id: { } id }
            ? new Header(TraceParentHeader, Encoding.ASCII.GetBytes(id))
            : null;

    /// <summary>The <c>traceparent</c> a Kafka message carries, if any, read only when traces are on.</summary>
    public static string? TraceParent(Headers? headers) =>
        Source.HasListeners() && headers is not null && headers.TryGetLastBytes(TraceParentHeader, out var bytes) && bytes.Length is > 0 and <= 128
            ? Encoding.ASCII.GetString(bytes)
            : null;

    /// <summary>
    /// A consumer span for work on messages that carried trace contexts: a child of the first one's, linked to the
    /// others' traces. Null when no message carried a context; callers check <c>Source.HasListeners()</c> first, so
    /// that nothing is allocated when traces are off.
    /// </summary>
    public static Activity? StartConsumer(string name, IEnumerable<string?> traceParents, string topic, int partition)
    {
        ActivityContext parent = default;
        List<ActivityLink>? links = null;
        foreach (var traceParent in traceParents)
        {
            if (traceParent is null || !ActivityContext.TryParse(traceParent, null, isRemote: true, out var context))
            {
                continue;
            }

            if (parent == default)
            {
                parent = context;
            }
            else if (context.TraceId != parent.TraceId)
            {
                (links ??= []).Add(new ActivityLink(context));
            }
        }

        if (parent == default)
        {
            return null;
        }

        var activity = Source.StartActivity(name, ActivityKind.Consumer, parent, links: links);
        activity?.SetTag("messaging.system", "kafka");
        activity?.SetTag("messaging.destination.name", topic);
        activity?.SetTag("messaging.destination.partition.id", partition);
        return activity;
    }
}
