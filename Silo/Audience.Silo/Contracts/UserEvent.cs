using System.Text.Json;
using System.Text.Json.Serialization;

namespace Audience.Silo.Contracts;

/// <summary>A behavioural event, in seed 004's <c>user-events</c> format.</summary>
public sealed record UserEvent(
    string EventId,
    string UserId,
    string EventType,
    DateTimeOffset Timestamp,
    JsonElement? Properties,
    JsonElement? Context);

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
    double EvaluationLatency);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UserEvent))]
[JsonSerializable(typeof(MembershipChangeMessage))]
public sealed partial class SiloJsonContext : JsonSerializerContext;
