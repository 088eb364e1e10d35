using System.ComponentModel;
using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo.Grains;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Audience.Api.Features;

/// <summary>A user's profile, segments and membership history under <c>/api/users/{userId}</c>.</summary>
public static class UsersApi
{
    public static RouteGroupBuilder MapUsersApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/users/{userId}").WithTags("Users").RequireScope(AccessScopes.Read)
            .ProducesUnavailable().DecodeSlashesIn("userId");
        group.MapGet("/profile", Profile).WithName("GetProfile")
            .WithSummary("The user's statistics, traits, segments and next timed evaluation.");
        group.MapGet("/segments", Segments).WithName("GetUserSegments")
            .WithSummary("The segments the user is a member of, and since when.");
        group.MapGet("/history", History).WithName("GetUserHistory")
            .WithSummary("Every entry and exit, oldest first, with reason, time, latency and the event that caused it; 'next' is the 'after' of the next page.");
        group.MapUserErasure();
        return group;
    }

    private static async Task<Results<Ok<ProfileResponse>, NotFoundProblem>> Profile(string userId, ProfileQueries queries, SegmentService segments)
    {
        var view = await queries.GetProfileAsync(userId);
        if (view is null)
        {
            return Problems.NotFound($"There is no user with the id '{userId}'.");
        }

        return TypedResults.Ok(new ProfileResponse(
            view.UserId,
            view.EventCount,
            view.TotalSpent,
            view.OrderCount,
            Time(view.FirstSeen),
            Time(view.LastSeen),
            JsonDocument.Parse(view.TraitsJson).RootElement.Clone(),
            Memberships(view, segments),
            Time(view.NextDue)));
    }

    private static async Task<Results<Ok<UserSegmentsResponse>, NotFoundProblem>> Segments(string userId, ProfileQueries queries, SegmentService segments)
    {
        var view = await queries.GetProfileAsync(userId);
        return view is null
            ? Problems.NotFound($"There is no user with the id '{userId}'.")
            : TypedResults.Ok(new UserSegmentsResponse(userId, Memberships(view, segments)));
    }

    private static async Task<Results<Ok<HistoryResponse>, BadRequestProblem>> History(string userId, ProfileQueries queries, long after = 0, int limit = 100)
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
        return TypedResults.Ok(new HistoryResponse(
            userId,
            [.. rows.Select(r => new HistoryChange(r.Seq, r.SegmentId, r.Entered ? "added" : "removed", r.Reason,
                DateTimeOffset.FromUnixTimeMilliseconds(r.At), r.LatencyMs, r.EventId))],
            rows.Length == limit ? rows[^1].Seq : null));
    }

    private static UserSegment[] Memberships(ProfileView view, SegmentService segments) =>
        [.. view.Memberships
            .Where(m => segments.Record(m.SegmentId) is not null)
            .Select(m => new UserSegment(m.SegmentId, segments.Record(m.SegmentId)!.Name, DateTimeOffset.FromUnixTimeMilliseconds(m.Since)))];

    private static DateTimeOffset? Time(long? ms) => ms is { } value ? DateTimeOffset.FromUnixTimeMilliseconds(value) : null;

    public sealed record UserSegment(string SegmentId, string Name, DateTimeOffset Since);

    /// <summary>A profile; <c>nextEvaluation</c> is its next timed evaluation (a window sliding), null when none is due.</summary>
    public sealed record ProfileResponse(
        string UserId,
        long EventCount,
        decimal TotalSpent,
        long OrderCount,
        DateTimeOffset? FirstSeen,
        DateTimeOffset? LastSeen,
        JsonElement Traits,
        UserSegment[] Segments,
        DateTimeOffset? NextEvaluation);

    public sealed record UserSegmentsResponse(string UserId, UserSegment[] Segments);

    /// <summary>An entry or exit; <c>evaluationLatency</c> in milliseconds from the event's acknowledgement to the decision.</summary>
    public sealed record HistoryChange(
        long Id,
        string SegmentId,
        [property: Description("added or removed")] string Action,
        [property: Description("rule_evaluation, expired or manual")] string Reason,
        DateTimeOffset Timestamp,
        double EvaluationLatency,
        string? EventId);

    /// <summary>A page of history; <c>next</c> is the <c>after</c> of the next page, null on the last.</summary>
    public sealed record HistoryResponse(string UserId, HistoryChange[] Changes, long? Next);
}
