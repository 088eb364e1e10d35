using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Silo emits: membership changes (to live subscribers, or to <c>user-segments</c>), enriched orders
/// (to <c>orders-analytics</c>), and events it cannot apply (to <c>user-events-dlq</c>). When a partition worker
/// writes its state behind, it seals what was emitted so far (<see cref="Seal"/>) and waits for that to be
/// delivered before the write, so that nothing a checkpoint covers is left undelivered; what it emits meanwhile
/// goes into the next batch.
/// </summary>
public interface ISiloOutputs
{
    /// <summary>Whether orders are wanted, so the worker builds them only then.</summary>
    bool WantsOrders { get; }

    void MembershipChanged(MembershipChangeMessage change);

    void Order(OrderAnalyticsMessage order);

    void DeadLetter(DeadLetterMessage message);

    /// <summary>Ends the current batch of outputs and returns it; later outputs go into a new one.</summary>
    IOutputBatch Seal();
}

/// <summary>Outputs emitted between two <see cref="ISiloOutputs.Seal"/> calls.</summary>
public interface IOutputBatch
{
    /// <summary>Blocks until the batch is delivered; <see cref="DeliveryException"/> if part of it could not be.</summary>
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

    /// <summary>The feed delivers as it publishes.</summary>
    public IOutputBatch Seal() => Delivered.Batch;

    private sealed class Delivered : IOutputBatch
    {
        public static readonly Delivered Batch = new();

        public void WaitDelivered()
        {
        }
    }
}
