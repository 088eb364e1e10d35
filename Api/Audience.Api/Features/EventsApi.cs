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

    /// <summary>How far in the future an event's timestamp may be (client clocks drift).</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);

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

    private static async Task<IResult> PostEvent(HttpRequest request, EventLog log, TimeProvider time, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        using (document)
        {
            if (!TryRead(document!.RootElement, time.GetUtcNow(), out var e, out var error))
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

    private static async Task<IResult> PostBatch(HttpRequest request, EventLog log, TimeProvider time, CancellationToken cancellationToken)
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
                return Problems.BadRequest($"A batch is a JSON array of events, not {Describe(root)}.", "The batch is not valid");
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
                if (TryRead(item, now, out var e, out var error))
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

    /// <summary>Validates one event in seed 004's format; the error names the field and what is expected.</summary>
    internal static bool TryRead(JsonElement element, DateTimeOffset now, out UserEvent? e, out string? error)
    {
        e = null;
        if (element.ValueKind != JsonValueKind.Object)
        {
            error = $"An event is a JSON object, not {Describe(element)}.";
            return false;
        }

        if (!TryString(element, "userId", required: true, 256, out var userId, out error)
            || !TryString(element, "eventType", required: true, 128, out var eventType, out error)
            || !TryString(element, "eventId", required: false, 128, out var eventId, out error))
        {
            return false;
        }

        var timestamp = now;
        if (element.TryGetProperty("timestamp", out var ts) && ts.ValueKind != JsonValueKind.Null)
        {
            if (ts.ValueKind != JsonValueKind.String || !TimeText.TryParse(ts.GetString()!, out var ms))
            {
                error = "'timestamp' must be an ISO-8601 time such as \"2024-01-15T10:30:00Z\".";
                return false;
            }

            timestamp = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            if (timestamp > now + MaxClockSkew)
            {
                error = $"'timestamp' is more than {MaxClockSkew.TotalMinutes} minutes in the future.";
                return false;
            }
        }

        JsonElement? properties = null;
        if (element.TryGetProperty("properties", out var props) && props.ValueKind != JsonValueKind.Null)
        {
            if (props.ValueKind != JsonValueKind.Object)
            {
                error = $"'properties' must be an object, not {Describe(props)}.";
                return false;
            }

            if (FindBadNumber(props, "properties") is { } bad)
            {
                error = $"'{bad}' is a number out of range; numbers must fit in a decimal (about ±7.9e28).";
                return false;
            }

            if (eventType == "purchase" && props.TryGetProperty("amount", out var amount) && amount.ValueKind != JsonValueKind.Null
                && (amount.ValueKind != JsonValueKind.Number || !amount.TryGetDecimal(out var value) || Math.Abs(value) > Value.MaxSummable))
            {
                error = $"'properties.amount' of a purchase must be a number of at most {Value.MaxSummable:0} in magnitude.";
                return false;
            }

            properties = props.Clone();
        }

        JsonElement? context = null;
        if (element.TryGetProperty("context", out var ctx) && ctx.ValueKind != JsonValueKind.Null)
        {
            if (ctx.ValueKind != JsonValueKind.Object)
            {
                error = $"'context' must be an object, not {Describe(ctx)}.";
                return false;
            }

            context = ctx.Clone();
        }

        e = new UserEvent(eventId ?? "evt_" + Guid.CreateVersion7().ToString("N"), userId!, eventType!, timestamp, properties, context);
        error = null;
        return true;
    }

    private static bool TryString(JsonElement element, string name, bool required, int maxLength, out string? value, out string? error)
    {
        value = null;
        error = null;
        if (!element.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            error = required ? $"'{name}' is required." : null;
            return !required;
        }

        if (property.ValueKind != JsonValueKind.String)
        {
            error = $"'{name}' must be a string, not {Describe(property)}.";
            return false;
        }

        value = property.GetString()!;
        if (value.Length == 0 || value.Length > maxLength || value.Any(char.IsControl))
        {
            error = $"'{name}' must be 1 to {maxLength} printable characters.";
            return false;
        }

        return true;
    }

    private static string? FindBadNumber(JsonElement element, string path) => element.ValueKind switch
    {
        JsonValueKind.Number => element.TryGetDecimal(out _) ? null : path,
        JsonValueKind.Object => element.EnumerateObject().Select(p => FindBadNumber(p.Value, path + "." + p.Name)).FirstOrDefault(p => p is not null),
        JsonValueKind.Array => element.EnumerateArray().Select((v, i) => FindBadNumber(v, $"{path}[{i}]")).FirstOrDefault(p => p is not null),
        _ => null,
    };

    internal static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    public sealed record EventAccepted(string EventId, string Status);

    public sealed record BatchItem(int Index, string? EventId, string Status, string? Error);

    public sealed record BatchAccepted(int Accepted, int Duplicates, int Rejected, BatchItem[] Results);
}
