using Audience.Silo.Contracts;

namespace Audience.Silo.Storage;

/// <summary>
/// Where the Api hands accepted events: the embedded <see cref="EventLog"/>, or <c>user-events</c> in Kafka mode
/// (<see cref="Kafka.KafkaEventSink"/>). The returned task completes once the events are durable; it fails with
/// <see cref="EventLogUnavailableException"/> when they may not be, and then none of them is acknowledged.
/// </summary>
public interface IEventSink
{
    Task<AppendResult[]> AppendAsync(IReadOnlyList<UserEvent> events, CancellationToken cancellationToken = default);

    /// <summary>
    /// Appends an erasure of a user to the user's partition, after the user's events appended before it; completes once
    /// it is durable, and fails with <see cref="EventLogUnavailableException"/> when it may not be.
    /// </summary>
    Task AppendErasureAsync(UserErasure erasure, CancellationToken cancellationToken = default);
}
