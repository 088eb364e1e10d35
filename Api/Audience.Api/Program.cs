using Audience.Api.Access;
using Audience.Api.Features;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo;
using Audience.Silo.Hosting;
using Audience.Silo.Kafka;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

var builder = WebApplication.CreateBuilder(AudienceServices.HostArguments(args));
builder.Configuration.AddLoggingDefaults();

if (AudienceMode.ReadOrReport(builder.Configuration, siloProcess: false, Console.Error) is not { } mode)
{
    return 2;
}

if (SecurityOptions.ReadOrReport(builder.Configuration, Console.Error) is not { } security)
{
    return 2;
}

builder.AddAudienceAccess(security);
builder.Services.AddAudienceCore(builder.Configuration, mode);
if (mode.IsKafka)
{
    // Kafka mode: events go to user-events; the silos are other processes, reached as an Orleans client.
    builder.Services.AddSingleton<ConsumerLag>();
    builder.Services.AddHostedService(sp => sp.GetRequiredService<ConsumerLag>());
    builder.Services.AddSingleton<KafkaEventSink>();
    builder.Services.AddSingleton<IEventSink>(sp => sp.GetRequiredService<KafkaEventSink>());
    builder.Services.AddHostedService<SegmentOutbox>();
    builder.Services.AddHostedService<ChangeFeedPump>();
    builder.Services.AddSingleton<RemoteCluster>();
    builder.Services.AddSingleton<IClusterAccess>(sp => sp.GetRequiredService<RemoteCluster>());
    builder.Services.AddHostedService(sp => sp.GetRequiredService<RemoteCluster>());
}
else
{
    // Embedded: this process is also the silo, on localhost clustering, reading the in-process log.
    builder.Services.AddSingleton<IEventSink>(sp => sp.GetRequiredService<EventLog>());
    builder.UseOrleans(silo => silo.AddAudienceSilo(mode));
}

builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = context =>
{
    // A 503 is an outage to wait out: say when to try again where the answer does not already (the exception handler's,
    // for a store or the cluster that does not answer).
    if (context.HttpContext.Response.StatusCode == StatusCodes.Status503ServiceUnavailable
        && !context.HttpContext.Response.Headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.RetryAfter))
    {
        context.HttpContext.Response.Headers.RetryAfter = "1";
    }
});
builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default));
builder.Services.AddExceptionHandler(options =>
{
    // A body larger than the server's limit surfaces as BadHttpRequestException: answer with its own status.
    // A store that does not answer is an outage to wait out (503), not a bug.
    options.StatusCodeSelector = e => e switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        System.Data.Common.DbException or StoreUnavailableException => StatusCodes.Status503ServiceUnavailable,
        // The cluster is starting, a silo just died, or a grain call timed out: a retry is likely to succeed.
        ClusterUnavailableException or Orleans.Runtime.SiloUnavailableException or Orleans.Runtime.OrleansMessageRejectionException
            or TimeoutException => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };
});
builder.Services.AddAudienceOpenApi();
builder.Services.AddReadiness(mode, siloProcess: false);
builder.Services.AddAudienceTelemetry(builder.Configuration, "audience-api");
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 4 * 1024 * 1024);

var app = builder.Build();
await app.Services.PrepareStorageAsync();

if (mode.IsKafka)
{
    app.Services.GetRequiredService<AudienceMetrics>().Lag = app.Services.GetRequiredService<ConsumerLag>().Lags;
}

app.UseExceptionHandler();
app.UseStatusCodePages();
app.MapOpenApi();
app.MapPrometheusScrapingEndpoint().WithTags("Health");
app.UseSwaggerUI(ui =>
{
    ui.SwaggerEndpoint("/openapi/v1.json", "Audience API");
    ui.RoutePrefix = "swagger";
});
// Keys, scopes and rate limits for /api; /health/*, /openapi/* and /swagger ask for none (their endpoints carry no
// policy, and Swagger UI answers before this).
app.UseAudienceAccess();

// Embedded: a faulted event log (its disk failed) takes no events until the process restarts, so the process stops
// itself (exit code 1) for its supervisor to restart it, and is not live meanwhile.
var eventLog = mode.IsKafka ? null : app.Services.GetRequiredService<EventLog>();
_ = eventLog?.Faulted.ContinueWith(_ => app.Lifetime.StopApplication(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

app.MapGet("/health/live", Results<Ok<LiveResponse>, UnavailableProblem> () => eventLog?.Fault is { } fault
        ? Problems.Unavailable($"The event log cannot store events: {fault}", retryAfterSeconds: null, title: "Not live")
        : TypedResults.Ok(new LiveResponse("live")))
    .WithTags("Health").WithName("Liveness")
    .WithSummary("Whether the process can take events: 503 only when the embedded event log cannot store them (its disk failed).");
app.MapReadiness(mode);
app.MapEventsApi();
app.MapSegmentsApi();
app.MapUsersApi();
app.MapChangesApi();
app.MapCampaignsApi();

app.Run();
return eventLog?.Fault is null ? 0 : 1;

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
