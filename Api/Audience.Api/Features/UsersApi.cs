using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo.Grains;
using Audience.Silo.Processing;
using Audience.Silo.Segments;

namespace Audience.Api.Features;

/// <summary>A user's profile, segments and membership history under <c>/api/users/{userId}</c>.</summary>
public static class UsersApi
{
    public static RouteGroupBuilder MapUsersApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/users/{userId}").WithTags("Users").RequireAuthorization(AccessScopes.Read);
        group.MapGet("/profile", Profile).WithName("GetProfile");
        group.MapGet("/segments", Segments).WithName("GetUserSegments");
        group.MapGet("/history", History).WithName("GetUserHistory");
        group.MapUserErasure();
        return group;
    }

    private static async Task<IResult> Profile(string userId, ProfileQueries queries, SegmentService segments)
    {
        var view = await queries.GetProfileAsync(userId);
        if (view is null)
        {
            return Problems.NotFound($"There is no user with the id '{userId}'.");
        }

        return TypedResults.Ok(new
        {
            userId = view.UserId,
            eventCount = view.EventCount,
            totalSpent = view.TotalSpent,
            orderCount = view.OrderCount,
            firstSeen = Time(view.FirstSeen),
            lastSeen = Time(view.LastSeen),
            traits = JsonDocument.Parse(view.TraitsJson).RootElement.Clone(),
            segments = Memberships(view, segments),
            nextEvaluation = Time(view.NextDue),
        });
    }

    private static async Task<IResult> Segments(string userId, ProfileQueries queries, SegmentService segments)
    {
        var view = await queries.GetProfileAsync(userId);
        return view is null
            ? Problems.NotFound($"There is no user with the id '{userId}'.")
            : TypedResults.Ok(new { userId, segments = Memberships(view, segments) });
    }

    private static async Task<IResult> History(string userId, ProfileQueries queries, long after = 0, int limit = 100)
    {
        if (limit is < 1 or > 1000)
        {
            return Problems.BadRequest("'limit' must be from 1 to 1000.");
        }

        if (after < 0)
        {
            return Problems.BadRequest("'after' must be 0 or the 'next' of an earlier page.");
        }

        var rows = await queries.GetHistoryAsync(userId, after, limit);
        return TypedResults.Ok(new
        {
            userId,
            changes = rows.Select(r => new
            {
                id = r.Seq,
                segmentId = r.SegmentId,
                action = r.Entered ? "added" : "removed",
                reason = r.Reason,
                timestamp = DateTimeOffset.FromUnixTimeMilliseconds(r.At),
                evaluationLatency = r.LatencyMs,
                eventId = r.EventId,
            }),
            next = rows.Length == limit ? rows[^1].Seq : (long?)null,
        });
    }

    private static object[] Memberships(ProfileView view, SegmentService segments) =>
        [.. view.Memberships
            .Where(m => segments.Record(m.SegmentId) is not null)
            .Select(m => new { segmentId = m.SegmentId, name = segments.Record(m.SegmentId)!.Name, since = DateTimeOffset.FromUnixTimeMilliseconds(m.Since) })];

    private static DateTimeOffset? Time(long? ms) => ms is { } value ? DateTimeOffset.FromUnixTimeMilliseconds(value) : null;
}
