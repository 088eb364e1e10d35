using System.Text.Json;
using Audience.Rules;
using Audience.Silo;
using Audience.Silo.Contracts;
using Audience.Silo.Storage;

namespace Audience.Api.Features;

/// <summary>Event ingestion: <c>POST /api/events</c> and <c>POST /api/events/batch</c>.</summary>
public static class EventsApi
{
    /// <summary>Most events in one batch request.</summary>
    public const int MaxBatch = 1_000;

    public static RouteGroupBuilder MapEventsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/events").WithTags("Events");
        group.MapPost("/", PostEvent).WithName("PostEvent")
            .Accepts<JsonElement>("application/json")
            .WithSummary("Accept one event; 202 once it is durable.");
        group.MapPost("/batch", PostBatch).WithName("PostEventBatch")
            .Accepts<JsonElement>("application/json")
            .WithSummary($"Accept up to {MaxBatch} events; per item, accepted, duplicate or rejected with the reason.");
        return group;
    }

    private static async Task<IResult> PostEvent(HttpRequest request, IEventSink log, TimeProvider time, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        using (document)
        {
            if (!EventReader.TryRead(document!.RootElement, time.GetUtcNow(), out var e, out var error))
            {
                return Problems.BadRequest(error!, "The event is not valid");
            }

            try
            {
                var result = (await log.AppendAsync([e!], cancellationToken))[0];
                return TypedResults.Accepted((string?)null, new EventAccepted(result.EventId, result.Duplicate ? "duplicate" : "accepted"));
            }
            catch (EventLogUnavailableException)
            {
                return Problems.Unavailable("The event log cannot store events right now; nothing was accepted.", 1);
            }
        }
    }

    private static async Task<IResult> PostBatch(HttpRequest request, IEventSink log, TimeProvider time, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        using (document)
        {
            var root = document!.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
            {
                return Problems.BadRequest($"A batch is a JSON array of events, not {EventReader.Describe(root)}.", "The batch is not valid");
            }

            var count = root.GetArrayLength();
            if (count == 0)
            {
                return Problems.BadRequest("The batch is empty.", "The batch is not valid");
            }

            if (count > MaxBatch)
            {
                return Problems.TooLarge($"A batch may hold at most {MaxBatch} events; this one has {count}.");
            }

            var now = time.GetUtcNow();
            var results = new BatchItem[count];
            var valid = new List<UserEvent>(count);
            var positions = new List<int>(count);
            var index = 0;
            foreach (var item in root.EnumerateArray())
            {
                if (EventReader.TryRead(item, now, out var e, out var error))
                {
                    valid.Add(e!);
                    positions.Add(index);
                }
                else
                {
                    results[index] = new BatchItem(index, null, "rejected", error);
                }

                index++;
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
            }
            catch (EventLogUnavailableException)
            {
                return Problems.Unavailable("The event log cannot store events right now; nothing was accepted.", 1);
            }

            return TypedResults.Accepted((string?)null, new BatchAccepted(
                results.Count(r => r.Status == "accepted"), results.Count(r => r.Status == "duplicate"), results.Count(r => r.Status == "rejected"), results));
        }
    }

    public sealed record EventAccepted(string EventId, string Status);

    public sealed record BatchItem(int Index, string? EventId, string Status, string? Error);

    public sealed record BatchAccepted(int Accepted, int Duplicates, int Rejected, BatchItem[] Results);
}
