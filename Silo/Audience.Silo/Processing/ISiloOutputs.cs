using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Silo emits: membership changes (to live subscribers, or to <c>user-segments</c>), enriched orders (to
/// <c>orders-analytics</c>), the notifications campaigns fired (recorded in the campaign store, and sent to live
/// subscribers or to <c>notification-requests</c>), and events it cannot apply (to <c>user-events-dlq</c>). A user grain delivers what one
/// call produced before it writes the profile that records it, and a partition reader delivers its dead letters
/// before its checkpoint passes them: so a crash repeats outputs (each with its dedupe id) but never loses one.
/// </summary>
public interface ISiloOutputs
{
    /// <summary>Whether orders are wanted, so grains build them only then.</summary>
    bool WantsOrders { get; }

    /// <summary>Completes once every message is delivered; fails if one could not be (the caller retries).</summary>
    Task DeliverAsync(IReadOnlyList<MembershipChangeMessage> changes, IReadOnlyList<OrderAnalyticsMessage> orders,
        IReadOnlyList<Campaigns.CampaignFiring> notifications);

    Task DeadLetterAsync(DeadLetterMessage message);
}

/// <summary>
/// The embedded outputs: membership changes go to the in-process feed behind <c>GET /api/changes</c>; notifications
/// are recorded once per dedupe id in the embedded store, and those recorded now go to the feed behind
/// <c>GET /api/notifications</c>.
/// </summary>
public sealed class FeedOutputs(ChangeFeed feed, NotificationFeed notificationFeed, Campaigns.ICampaignStore campaigns) : ISiloOutputs
{
    public bool WantsOrders => false;

    public async Task DeliverAsync(IReadOnlyList<MembershipChangeMessage> changes, IReadOnlyList<OrderAnalyticsMessage> orders,
        IReadOnlyList<Campaigns.CampaignFiring> notifications)
    {
        feed.Publish(changes);
        if (notifications.Count > 0)
        {
            var recorded = await campaigns.RecordAsync(notifications).ConfigureAwait(false);
            notificationFeed.Publish([.. recorded.Where(n => !n.Capped).Select(n => n.Request)]);
        }
    }

    /// <summary>Events are validated before the embedded log takes them; the reader logs the rare one that no longer reads.</summary>
    public Task DeadLetterAsync(DeadLetterMessage message) => Task.CompletedTask;
}
