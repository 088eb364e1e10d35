using System.ComponentModel;
using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Audience.Api.Features;

/// <summary>Event ingestion: <c>POST /api/events</c> and <c>POST /api/events/batch</c>.</summary>
public static class EventsApi
{
    /// <summary>Most events in one batch request.</summary>
    public const int MaxBatch = 1_000;

    public static RouteGroupBuilder MapEventsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/events").WithTags("Events")
            .RequireScope(AccessScopes.Ingest).RateLimitedPerKey();
        // The body is read by the handler (Utf8JsonReader, pooled buffers), not bound: EventRequest only describes it.
        group.MapPost("/", PostEvent).WithName("PostEvent")
            .Accepts<EventRequest>("application/json")
            .WithSummary("Accept one event; 202 once it is durable.")
            .WithDescription("'status' is 'accepted', or 'duplicate' when its eventId was taken before (it is applied once). At most 32 KiB.");
        group.MapPost("/batch", PostBatch).WithName("PostEventBatch")
            .Accepts<EventRequest[]>("application/json")
            .WithSummary($"Accept up to {MaxBatch} events; per item, accepted, duplicate or rejected with the reason.")
            .WithDescription("The valid items are kept and the others reported in 'results' with their index and error; 400 only when none is valid "
                + "(with the same 'results') or the JSON cannot be read. At most 1,000 events and 4 MiB.");
        return group;
    }

    /// <summary>The largest batch body: the most events, each at its largest.</summary>
    public const int MaxBatchBytes = 4 * 1024 * 1024;

    private static async Task<Results<Accepted<EventAccepted>, BodyProblem, UnavailableProblem>> PostEvent(HttpRequest request, IEventSink log, AudienceMetrics metrics, [FromKeyedServices(AudienceServices.Clock)] TimeProvider time, CancellationToken cancellationToken)
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
                return Problems.InvalidBody(error!, "The event is not valid");
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

    private static async Task<Results<Accepted<BatchAccepted>, BodyProblem, UnavailableProblem>> PostBatch(HttpRequest request, IEventSink log, AudienceMetrics metrics, [FromKeyedServices(AudienceServices.Clock)] TimeProvider time, CancellationToken cancellationToken)
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
            return batch.TooLarge ? Problems.TooLarge(error) : Problems.InvalidBody(error, "The batch is not valid");
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
            return Problems.InvalidBody("No event in the batch is valid; see results.", "The batch is not valid",
                new Dictionary<string, object?> { ["results"] = results });
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

    /// <summary>
    /// An event as sent; it documents the body, which <see cref="EventParser"/> reads itself (the hot path). Texts are
    /// valid Unicode, no object names a key twice, strings in properties and context are at most 8 KiB, keys 256 bytes,
    /// nesting 8 levels.
    /// </summary>
    public sealed record EventRequest
    {
        [Description("Generated (evt_...) when absent; an id sent again is accepted once and applied once.")]
        public string? EventId { get; init; }

        [Description("1 to 256 printable characters.")]
        public required string UserId { get; init; }

        [Description("1 to 128 printable characters; 'purchase' feeds totalSpent and orderCount, 'identify' sets traits.")]
        public required string EventType { get; init; }

        [Description("ISO 8601, at most 5 minutes ahead; the receive time when absent.")]
        public DateTimeOffset? Timestamp { get; init; }

        [Description("Numbers must fit a decimal; a purchase's 'amount' is at most 10^15 in magnitude.")]
        public IReadOnlyDictionary<string, JsonElement>? Properties { get; init; }

        public IReadOnlyDictionary<string, JsonElement>? Context { get; init; }
    }

    public sealed record EventAccepted(string EventId, [property: Description("accepted or duplicate")] string Status);

    public sealed record BatchItem(int Index, string? EventId, [property: Description("accepted, duplicate or rejected")] string Status, string? Error);

    public sealed record BatchAccepted(int Accepted, int Duplicates, int Rejected, BatchItem[] Results);
}
