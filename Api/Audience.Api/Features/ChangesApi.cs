using System.Reflection;
using Audience.Api.Access;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;

namespace Audience.Api.Features;

/// <summary>
/// <c>GET /api/changes</c>: membership changes as Server-Sent Events, in seed 004's user-segments format; and the
/// streaming of any live feed (notifications use it too).
/// </summary>
public static class ChangesApi
{
    public static RouteHandlerBuilder MapChangesApi(this IEndpointRouteBuilder routes) =>
        routes.MapGet("/api/changes", Stream).WithTags("Changes").WithName("StreamChanges")
            .WithSummary("Server-Sent Events: one 'membership' event per entry or exit; ?segmentId= filters.")
            .WithDescription(LiveFeedStream<MembershipChangeMessage>.Description("membership", "changes"))
            .RequireScope(AccessScopes.Read);

    private static Results<LiveFeedStream<MembershipChangeMessage>, NotFoundProblem> Stream(ChangeFeed feed, SegmentService segments, string? segmentId = null) =>
        segmentId is not null && segments.Get(segmentId) is null
            ? Problems.NotFound($"There is no segment with the id '{segmentId}'.")
            : new LiveFeedStream<MembershipChangeMessage>(feed, segmentId, "changes");
}

/// <summary>
/// Streams a feed's messages (those of one key, or all) as Server-Sent Events until the client leaves; a reader that
/// falls behind the feed's buffer is told how many it missed. At most <c>Security:MaxStreamSubscribers</c> streams are
/// open at once: past that, 503 with <c>Retry-After</c>.
/// </summary>
/// <remarks>
/// Not .NET 10's <c>TypedResults.ServerSentEvents</c>, which would lose what clients rely on: it writes no SSE
/// comments (the <c>: subscribed</c> a client waits for before it sends events, and <c>: missed N changes</c>), and it
/// formats each message again for every subscriber and flushes after each one, where a feed encodes a message once for
/// all subscribers (<see cref="FeedItem.Frame"/>) and a subscriber writes what it has read with one flush (hundreds of
/// subscribers under load). This result is typed the same way for the OpenAPI document: 200 <c>text/event-stream</c>
/// whose events carry a <typeparamref name="T"/> as JSON, or 503.
/// </remarks>
public sealed class LiveFeedStream<T> : IResult, IEndpointMetadataProvider
{
    private const int MaxPerWrite = 256;
    private const int SendBufferBytes = 64 * 1024;

    private readonly LiveFeed<T> _feed;
    private readonly string? _key;
    private readonly string _noun;

    /// <param name="feed">The feed to stream.</param>
    /// <param name="key">The key of the messages to send (a segment's or a campaign's id), or null for all.</param>
    /// <param name="noun">What the messages are, for the comment that says how many a slow reader missed.</param>
    internal LiveFeedStream(LiveFeed<T> feed, string? key, string noun)
    {
        _feed = feed;
        _key = key;
        _noun = noun;
    }

    /// <summary>The operation's description in the OpenAPI document.</summary>
    internal static string Description(string eventName, string noun) =>
        $"text/event-stream: starts with the comment ': subscribed', then one '{eventName}' event per message, its data the JSON below "
        + $"(null fields left out); a reader that falls more than {LiveFeed<T>.Capacity} messages behind skips ahead and gets the comment "
        + $"': missed N {noun}'. 503 with Retry-After past Security:MaxStreamSubscribers open streams.";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var subscribers = httpContext.RequestServices.GetRequiredService<StreamSubscribers>();
        if (!subscribers.TryEnter())
        {
            await Problems.Unavailable(
                    $"{subscribers.Max} live streams (/api/changes and /api/notifications together) are open, the most this process serves (Security:MaxStreamSubscribers).",
                    retryAfterSeconds: 5)
                .ExecuteAsync(httpContext);
            return;
        }

        try
        {
            await StreamAsync(httpContext);
        }
        finally
        {
            subscribers.Leave();
        }
    }

    private async Task StreamAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        // A subscriber that stops reading should block its stream soon, not after the kernel buffered megabytes
        // for it: a fixed send buffer turns off the kernel's growing of it.
        if (context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionSocketFeature>()?.Socket is { } socket)
        {
            socket.SendBufferSize = SendBufferBytes;
        }

        using var subscription = _feed.Subscribe(_key);
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
                    await response.WriteAsync($": missed {subscription.Missed - missed} {_noun}\n\n", aborted);
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
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder)
    {
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(T), ["text/event-stream"])
        {
            Description = "A stream of Server-Sent Events, each event's data one message as below.",
        });
        ProblemResult.Describe(builder, StatusCodes.Status503ServiceUnavailable, "Too many live streams are open (Security:MaxStreamSubscribers); Retry-After says when to try again.");
    }
}
