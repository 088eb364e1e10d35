using System.Text.Json;

namespace Audience.Silo.Contracts;

/// <summary>
/// A request to erase everything kept about a user (the right to erasure). It travels in the user's partition of the
/// event stream, like an event of the user: on <c>user-events</c> keyed by the user id with the header
/// <c>message-type: erasure</c>, or an entry of the embedded log marked as one. So the partition's reader applies it
/// after every event of the user that came before it and before every one that came after.
/// </summary>
public sealed record UserErasure(string ErasureId, string UserId, DateTimeOffset RequestedAt)
{
    /// <summary>The Kafka header that marks an erasure on <c>user-events</c>, and its value.</summary>
    public const string Header = "message-type";

    public const string HeaderValue = "erasure";

    public static string NewId() => "era_" + Guid.CreateVersion7().ToString("N");

    /// <summary>Reads an erasure message (<c>{erasureId, userId, requestedAt}</c>); false with the reason when it is not a valid one.</summary>
    public static bool TryRead(ReadOnlySpan<byte> json, out UserErasure? erasure, out string? error)
    {
        try
        {
            erasure = JsonSerializer.Deserialize(json, SiloJsonContext.Default.UserErasure);
        }
        catch (JsonException e)
        {
            (erasure, error) = (null, $"An erasure must be a JSON object {{erasureId, userId, requestedAt}}: {e.Message}");
            return false;
        }

        error = erasure is null ? "An erasure must be a JSON object {erasureId, userId, requestedAt}."
            : EventParser.CheckUserId(erasure.UserId)
            ?? (string.IsNullOrEmpty(erasure.ErasureId) || erasure.ErasureId.Length > EventLimits.MaxEventIdLength
                ? $"'erasureId' must be 1 to {EventLimits.MaxEventIdLength} characters." : null);
        if (error is not null)
        {
            erasure = null;
            return false;
        }

        return true;
    }
}
