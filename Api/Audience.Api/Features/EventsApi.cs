using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Storage;

namespace Audience.Api.Features;

/// <summary>Event ingestion: <c>POST /api/events</c> and <c>POST /api/events/batch</c>.</summary>
public static class EventsApi
{
    /// <summary>Most events in one batch request.</summary>
    public const int MaxBatch = 1_000;

    public static RouteGroupBuilder MapEventsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/events").WithTags("Events")
            .RequireAuthorization(AccessScopes.Ingest).RequireRateLimiting(AccessServices.PerKeyLimit);
        group.MapPost("/", PostEvent).WithName("PostEvent")
            .Accepts<JsonElement>("application/json")
            .WithSummary("Accept one event; 202 once it is durable.");
        group.MapPost("/batch", PostBatch).WithName("PostEventBatch")
            .Accepts<JsonElement>("application/json")
            .WithSummary($"Accept up to {MaxBatch} events; per item, accepted, duplicate or rejected with the reason.");
        return group;
    }

    /// <summary>The largest batch body: the most events, each at its largest.</summary>
    public const int MaxBatchBytes = 4 * 1024 * 1024;

    private static async Task<IResult> PostEvent(HttpRequest request, IEventSink log, AudienceMetrics metrics, [FromKeyedServices(AudienceServices.Clock)] TimeProvider time, CancellationToken cancellationToken)
    {
        var (body, problem) = await JsonBody.ReadBytesAsync(request, EventLimits.MaxEventBytes, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        UserEvent? e;
        using (body)
        {
            if (!EventParser.TryRead(body.Memory, time.GetUtcNow(), out e, out var error))
            {
                metrics.Rejected("invalid");
                return Problems.BadRequest(error!, "The event is not valid");
            }
        }

        try
        {
            var result = (await log.AppendAsync([e!], cancellationToken))[0];
            Count(metrics, result.Duplicate ? 0 : 1, result.Duplicate ? 1 : 0);
            return TypedResults.Accepted((string?)null, new EventAccepted(result.EventId, result.Duplicate ? "duplicate" : "accepted"));
        }
        catch (EventLogUnavailableException unavailable)
        {
            metrics.Rejected("unavailable");
            return Problems.Unavailable(unavailable.Message + " Nothing was accepted.", 1);
        }
    }

    private static void Count(AudienceMetrics metrics, int accepted, int duplicates)
    {
        metrics.Accepted(accepted);
        metrics.Duplicates(duplicates);
    }

    private static async Task<IResult> PostBatch(HttpRequest request, IEventSink log, AudienceMetrics metrics, [FromKeyedServices(AudienceServices.Clock)] TimeProvider time, CancellationToken cancellationToken)
    {
        var (body, problem) = await JsonBody.ReadBytesAsync(request, MaxBatchBytes, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        BatchRead batch;
        using (body)
        {
            batch = EventParser.ReadBatch(body.Memory, time.GetUtcNow(), MaxBatch);
        }

        if (batch.Error is { } error)
        {
            metrics.Rejected("invalid");
            return batch.TooLarge ? Problems.TooLarge(error) : Problems.BadRequest(error, "The batch is not valid");
        }

        var results = new BatchItem[batch.Items.Count];
        var valid = new List<UserEvent>(batch.Items.Count);
        var positions = new List<int>(batch.Items.Count);
        for (var index = 0; index < batch.Items.Count; index++)
        {
            var (e, itemError) = batch.Items[index];
            if (e is not null)
            {
                valid.Add(e);
                positions.Add(index);
            }
            else
            {
                results[index] = new BatchItem(index, null, "rejected", itemError);
            }
        }

        var rejected = batch.Items.Count - valid.Count;
        if (rejected > 0)
        {
            metrics.Rejected("invalid", rejected);
        }

        if (valid.Count == 0)
        {
            return TypedResults.Problem("No event in the batch is valid; see results.", statusCode: StatusCodes.Status400BadRequest,
                title: "The batch is not valid", extensions: new Dictionary<string, object?> { ["results"] = results });
        }

        try
        {
            var appended = await log.AppendAsync(valid, cancellationToken);
            for (var i = 0; i < appended.Length; i++)
            {
                results[positions[i]] = new BatchItem(positions[i], appended[i].EventId, appended[i].Duplicate ? "duplicate" : "accepted", null);
            }

            var duplicates = appended.Count(a => a.Duplicate);
            Count(metrics, appended.Length - duplicates, duplicates);
        }
        catch (EventLogUnavailableException unavailable)
        {
            metrics.Rejected("unavailable", valid.Count);
            return Problems.Unavailable(unavailable.Message + " Nothing was accepted.", 1);
        }

        return TypedResults.Accepted((string?)null, new BatchAccepted(
            results.Count(r => r.Status == "accepted"), results.Count(r => r.Status == "duplicate"), results.Count(r => r.Status == "rejected"), results));
    }

    public sealed record EventAccepted(string EventId, string Status);

    public sealed record BatchItem(int Index, string? EventId, string Status, string? Error);

    public sealed record BatchAccepted(int Accepted, int Duplicates, int Rejected, BatchItem[] Results);
}

/// <summary>
/// Source-generated JSON for the ingestion answers (the hot path); other answers use the default resolver behind it.
/// Web defaults, like ASP.NET Core's own options: camelCase names.
/// </summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(EventsApi.EventAccepted))]
[System.Text.Json.Serialization.JsonSerializable(typeof(EventsApi.BatchAccepted))]
public sealed partial class IngestionJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
