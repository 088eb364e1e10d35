using Audience.Api.Features;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddOptions<SiloOptions>()
    .Bind(builder.Configuration.GetSection("Silo"))
    .ValidateDataAnnotations()
    .ValidateOnStart();
builder.Services.AddSingleton(sp =>
{
    var options = sp.GetRequiredService<IOptions<SiloOptions>>().Value;
    var dataDirectory = builder.Configuration["DataDirectory"];
    return string.IsNullOrWhiteSpace(dataDirectory) ? options : options with { DataDirectory = dataDirectory };
});
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(sp => new Database(sp.GetRequiredService<SiloOptions>().DataDirectory));
builder.Services.AddSingleton(sp => new EventLog(sp.GetRequiredService<Database>(), sp.GetRequiredService<SiloOptions>().Partitions,
    sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<EventLog>>()));
builder.Services.AddSingleton<RuleCatalog>();
builder.Services.AddSingleton<SegmentIndex>();
builder.Services.AddSingleton<SegmentStore>();
builder.Services.AddSingleton(sp => new SegmentService(sp.GetRequiredService<SegmentStore>(), sp.GetRequiredService<SegmentIndex>(),
    sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<SiloOptions>().Partitions));
builder.Services.AddSingleton<ChangeFeed>();
builder.Services.AddSingleton<MembershipQueries>();
builder.Services.AddSingleton<SiloHost>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<SiloHost>());

builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler(options =>
{
    // A body larger than the server's limit surfaces as BadHttpRequestException: answer with its own status.
    options.StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError;
});
builder.Services.AddOpenApi();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 4 * 1024 * 1024);

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.MapOpenApi();
app.UseSwaggerUI(ui =>
{
    ui.SwaggerEndpoint("/openapi/v1.json", "Audience API");
    ui.RoutePrefix = "swagger";
});

app.MapGet("/health/live", () => TypedResults.Ok(new { status = "live" })).WithTags("Health");
app.MapGet("/health/ready", (SiloHost silo, SegmentService segments) => silo.IsRunning
        ? Results.Ok(new { status = "ready", segments = segments.List().Count, activeUsers = silo.ActiveActors })
        : Results.Problem("The Silo is starting.", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready"))
    .WithTags("Health");
app.MapEventsApi();
app.MapSegmentsApi();
app.MapUsersApi();
app.MapChangesApi();

app.Run();

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
