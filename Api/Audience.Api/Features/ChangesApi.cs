using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Audience.Silo.Segments;

namespace Audience.Api.Features;

/// <summary>
/// <c>GET /api/changes</c>: membership changes as Server-Sent Events, in seed 004's user-segments format; and the
/// streaming of any live feed (notifications use it too).
/// </summary>
public static class ChangesApi
{
    private const int MaxPerWrite = 256;
    private const int SendBufferBytes = 64 * 1024;

    public static RouteHandlerBuilder MapChangesApi(this IEndpointRouteBuilder routes) =>
        routes.MapGet("/api/changes", Stream).WithTags("Changes").WithName("StreamChanges")
            .WithSummary("Server-Sent Events: one 'membership' event per entry or exit; ?segmentId= filters.")
            .RequireAuthorization(AccessScopes.Read);

    private static Task<IResult> Stream(HttpContext context, ChangeFeed feed, SegmentService segments, string? segmentId = null) =>
        segmentId is not null && segments.Get(segmentId) is null
            ? Task.FromResult(Problems.NotFound($"There is no segment with the id '{segmentId}'."))
            : StreamFeed(context, feed, segmentId, "changes");

    /// <summary>
    /// Streams a feed's messages (those of <paramref name="key"/>, or all) as Server-Sent Events until the client leaves;
    /// a reader that falls behind the feed's buffer is told how many <paramref name="noun"/> it missed.
    /// </summary>
    internal static async Task<IResult> StreamFeed<T>(HttpContext context, LiveFeed<T> feed, string? key, string noun)
    {
        var subscribers = context.RequestServices.GetRequiredService<StreamSubscribers>();
        if (!subscribers.TryEnter())
        {
            return Problems.Unavailable(
                $"{subscribers.Max} live streams (/api/changes and /api/notifications together) are open, the most this process serves (Security:MaxStreamSubscribers).",
                retryAfterSeconds: 5);
        }

        try
        {
            return await StreamOpen(context, feed, key, noun);
        }
        finally
        {
            subscribers.Leave();
        }
    }

    private static async Task<IResult> StreamOpen<T>(HttpContext context, LiveFeed<T> feed, string? key, string noun)
    {
        var aborted = context.RequestAborted;
        // A subscriber that stops reading should block its stream soon, not after the kernel buffered megabytes
        // for it: a fixed send buffer turns off the kernel's growing of it.
        if (context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionSocketFeature>()?.Socket is { } socket)
        {
            socket.SendBufferSize = SendBufferBytes;
        }

        using var subscription = feed.Subscribe(key);
        var response = context.Response;
        response.Headers.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.WriteAsync(": subscribed\n\n", aborted);
        await response.Body.FlushAsync(aborted);
        var changes = new List<FeedItem>(MaxPerWrite);
        var missed = 0L;
        try
        {
            while (true)
            {
                changes.Clear();
                await subscription.ReadAsync(changes, MaxPerWrite, aborted);
                if (subscription.Missed != missed)
                {
                    // This reader fell behind the feed's buffer; say so, so a client knows to resynchronise.
                    await response.WriteAsync($": missed {subscription.Missed - missed} {noun}\n\n", aborted);
                    missed = subscription.Missed;
                }

                foreach (var item in changes)
                {
                    await response.Body.WriteAsync(item.Frame, aborted);
                }

                await response.Body.FlushAsync(aborted);
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away.
        }

        return Results.Empty;
    }
}
