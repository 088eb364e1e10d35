using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Audience.Benchmarks;

/// <summary>
/// The physical limit for ingestion on this machine: Kestrel accepting the same JSON on the same routes and
/// doing nothing else (parse the body, answer 202 with an id). Audience's figures are reported as ratios to it.
/// </summary>
internal static class BareKestrel
{
    public static async Task RunAsync(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapPost("/api/events", async (HttpRequest request) =>
        {
            using var document = await JsonDocument.ParseAsync(request.Body);
            return Results.Accepted(null, new { eventId = "evt_" + Guid.CreateVersion7().ToString("N"), status = "accepted" });
        });
        app.MapPost("/api/events/batch", async (HttpRequest request) =>
        {
            using var document = await JsonDocument.ParseAsync(request.Body);
            return Results.Accepted(null, new { accepted = document.RootElement.GetArrayLength() });
        });
        await app.RunAsync();
    }
}
