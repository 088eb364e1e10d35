using System.Text.Json;
using Audience.Rules;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Audience.Silo.Segments;

namespace Audience.Api.Features;

/// <summary>A user's profile, segments and membership history under <c>/api/users/{userId}</c>.</summary>
public static class UsersApi
{
    public static RouteGroupBuilder MapUsersApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/users/{userId}").WithTags("Users");
        group.MapGet("/profile", Profile).WithName("GetProfile");
        group.MapGet("/segments", Segments).WithName("GetUserSegments");
        group.MapGet("/history", History).WithName("GetUserHistory");
        return group;
    }

    private static async Task<IResult> Profile(string userId, IProfileQueries silo, SegmentService segments)
    {
        var view = await silo.GetProfileAsync(userId);
        if (view is null)
        {
            return Problems.NotFound($"There is no user with the id '{userId}'.");
        }

        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in view.Traits)
            {
                writer.WritePropertyName(name);
                EventValues.Write(writer, value);
            }

            writer.WriteEndObject();
        }

        var traits = JsonDocument.Parse(stream.ToArray()).RootElement.Clone();
        return TypedResults.Ok(new
        {
            userId = view.UserId,
            eventCount = view.EventCount,
            totalSpent = view.TotalSpent,
            orderCount = view.OrderCount,
            firstSeen = Time(view.FirstSeen),
            lastSeen = Time(view.LastSeen),
            traits,
            segments = Memberships(view, segments),
            nextEvaluation = Time(view.NextTimer),
        });
    }

    private static async Task<IResult> Segments(string userId, IProfileQueries silo, SegmentService segments)
    {
        var view = await silo.GetProfileAsync(userId);
        return view is null
            ? Problems.NotFound($"There is no user with the id '{userId}'.")
            : TypedResults.Ok(new { userId, segments = Memberships(view, segments) });
    }

    private static async Task<IResult> History(string userId, IProfileQueries silo, long after = 0, int limit = 100)
    {
        if (limit is < 1 or > 1000)
        {
            return Problems.BadRequest("'limit' must be from 1 to 1000.");
        }

        var rows = await silo.GetHistoryAsync(userId, after, limit);
        return TypedResults.Ok(new
        {
            userId,
            changes = rows.Select(r => new
            {
                id = r.Id,
                segmentId = r.SegmentId,
                action = r.Action,
                reason = r.Reason,
                timestamp = DateTimeOffset.FromUnixTimeMilliseconds(r.At),
                evaluationLatency = r.LatencyMs,
                eventId = r.EventId,
            }),
            next = rows.Count == limit ? rows[^1].Id : (long?)null,
        });
    }

    private static object[] Memberships(Silo.Processing.ProfileView view, SegmentService segments) =>
        [.. view.Memberships
            .Where(m => segments.Record(m.SegmentId) is not null)
            .Select(m => new { segmentId = m.SegmentId, name = segments.Record(m.SegmentId)!.Name, since = DateTimeOffset.FromUnixTimeMilliseconds(m.Since) })];

    private static DateTimeOffset? Time(long? ms) => ms is { } value ? DateTimeOffset.FromUnixTimeMilliseconds(value) : null;
}
