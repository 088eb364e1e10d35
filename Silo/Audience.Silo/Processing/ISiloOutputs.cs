using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Silo emits: membership changes (to live subscribers, or to <c>user-segments</c>), enriched orders
/// (to <c>orders-analytics</c>), and events it cannot apply (to <c>user-events-dlq</c>). A partition worker calls
/// <see cref="WaitDelivered"/> before it writes its state, so that nothing a checkpoint covers is left undelivered.
/// </summary>
public interface ISiloOutputs
{
    /// <summary>Whether orders are wanted, so the worker builds them only then.</summary>
    bool WantsOrders { get; }

    void MembershipChanged(MembershipChangeMessage change);

    void Order(OrderAnalyticsMessage order);

    void DeadLetter(DeadLetterMessage message);

    /// <summary>Blocks until everything emitted so far is delivered; throws if something could not be.</summary>
    void WaitDelivered();
}

/// <summary>The embedded outputs: membership changes go to the in-process feed behind <c>GET /api/changes</c>.</summary>
public sealed class FeedOutputs(ChangeFeed feed) : ISiloOutputs
{
    public bool WantsOrders => false;

    public void MembershipChanged(MembershipChangeMessage change) => feed.Publish(change);

    public void Order(OrderAnalyticsMessage order)
    {
    }

    public void DeadLetter(DeadLetterMessage message)
    {
        // Events are validated before the embedded log takes them; the worker logs the rare failure.
    }

    public void WaitDelivered()
    {
    }
}
