using Audience.Api.Access;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;
using Audience.Silo.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Audience.Api.Features;

/// <summary>
/// <c>DELETE /api/users/{userId}</c>: erases everything kept about a user (admin). The erasure goes into the user's
/// partition of the event stream, like an event of the user, and is acknowledged once it is durable there; the
/// partition applies it in order (docs/operations.md, "Erasing a user").
/// </summary>
public static class ErasureApi
{
    /// <summary>Adds the erasure to the <c>/api/users/{userId}</c> group.</summary>
    public static RouteHandlerBuilder MapUserErasure(this RouteGroupBuilder users) =>
        users.MapDelete("/", Erase).WithName("EraseUser")
            .WithSummary("Erase the user's profile, memberships (each announced as removed, reason erased), history, archived events and notifications; 202 once the erasure is durable in the user's partition.")
            .Authoring();

    private static async Task<Results<Accepted<ErasureAccepted>, BadRequestProblem, UnavailableProblem>> Erase(string userId, IEventSink log, [FromKeyedServices(AudienceServices.Clock)] TimeProvider time,
        CancellationToken cancellationToken)
    {
        if (EventParser.CheckUserId(userId) is { } error)
        {
            return Problems.BadRequest(error, "The user id is not valid");
        }

        var erasure = new UserErasure(UserErasure.NewId(), userId, time.GetUtcNow());
        try
        {
            await log.AppendErasureAsync(erasure, cancellationToken);
        }
        catch (EventLogUnavailableException unavailable)
        {
            return Problems.Unavailable(unavailable.Message + " It may or may not have been stored: send it again (erasing twice is harmless).", 1);
        }

        return TypedResults.Accepted((string?)null, new ErasureAccepted(userId, erasure.ErasureId));
    }

    /// <summary>The erasure is durable in the user's partition and will be applied after the user's events before it.</summary>
    public sealed record ErasureAccepted(string UserId, string ErasureId);
}
