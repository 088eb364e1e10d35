using System.Text.Json;
using System.Text.Json.Serialization;

namespace Audience.Silo.Contracts;

/// <summary>A behavioural event, in seed 004's <c>user-events</c> format.</summary>
[GenerateSerializer]
[Immutable]
public sealed record UserEvent(
    [property: Id(0)] string EventId,
    [property: Id(1)] string UserId,
    [property: Id(2)] string EventType,
    [property: Id(3)] DateTimeOffset Timestamp,
    [property: Id(4)] RawJson? Properties,
    [property: Id(5)] RawJson? Context);

/// <summary>A membership change, in seed 004's <c>user-segments</c> format.</summary>
public sealed record MembershipChangeMessage(
    string UserId,
    string SegmentId,
    string Action,
    string Reason,
    DateTimeOffset Timestamp,
    MembershipChangeMetadata Metadata);

/// <summary>What accompanies a change: the rule's version and text, what triggered it, and how long it took.</summary>
public sealed record MembershipChangeMetadata(
    long SegmentVersion,
    string Rule,
    string Trigger,
    string? EventId,
    double EvaluationLatency,
    string? ChangeId = null);

/// <summary>
/// A purchase enriched with the buyer's profile at the moment of the order, for <c>orders-analytics</c> (Druid).
/// <see cref="EventId"/> is the key a consumer drops duplicates by.
/// </summary>
public sealed record OrderAnalyticsMessage(
    string EventId,
    string UserId,
    DateTimeOffset Timestamp,
    decimal? Amount,
    RawJson? Properties,
    IReadOnlyList<string> Segments,
    decimal LifetimeValue,
    long OrderCount,
    DateTimeOffset? FirstSeen,
    double EvaluationLatency);

/// <summary>A message the Silo could not apply, for <c>user-events-dlq</c>: the error and where it came from.</summary>
public sealed record DeadLetterMessage(
    string Error,
    string Topic,
    int Partition,
    long Offset,
    string? Key,
    string Payload,
    DateTimeOffset At);

/// <summary>
/// A notification a campaign asks for, in seed 004's <c>notification-requests</c> format, with the campaign's trigger
/// and the segment that fired it. <see cref="NotificationId"/> is the dedupe id: the campaign's id and the membership
/// change's (or the broadcast's) id, the same for a copy sent again after a crash.
/// </summary>
public sealed record NotificationRequest(
    string NotificationId,
    string CampaignId,
    string UserId,
    string Type,
    string Template,
    string? Subject,
    System.Text.Json.Nodes.JsonObject Personalization,
    string Trigger,
    string SegmentId,
    DateTimeOffset Timestamp);

/// <summary>A segment change announced on <c>segment-updates</c>; receivers read the definition from PostgreSQL.</summary>
public sealed record SegmentUpdateMessage(string SegmentId, long Version, string Action, DateTimeOffset At);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UserEvent))]
[JsonSerializable(typeof(MembershipChangeMessage))]
[JsonSerializable(typeof(OrderAnalyticsMessage))]
[JsonSerializable(typeof(DeadLetterMessage))]
[JsonSerializable(typeof(SegmentUpdateMessage))]
[JsonSerializable(typeof(NotificationRequest))]
[JsonSerializable(typeof(UserErasure))]
public sealed partial class SiloJsonContext : JsonSerializerContext;
