using System.Text.Json;
using Audience.Rules;

namespace Audience.Silo.Contracts;

/// <summary>
/// Reads and validates an event in seed 004's <c>user-events</c> format: the Api for each request, and the Silo
/// for each Kafka message (another producer may have written it). Errors name the field and what is expected.
/// </summary>
public static class EventReader
{
    /// <summary>How far in the future an event's timestamp may be (client clocks drift).</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>Validates one event in seed 004's format; the error names the field and what is expected.</summary>
    public static bool TryRead(JsonElement element, DateTimeOffset now, out UserEvent? e, out string? error, string? defaultEventId = null)
    {
        e = null;
        if (element.ValueKind != JsonValueKind.Object)
        {
            error = $"An event is a JSON object, not {Describe(element)}.";
            return false;
        }

        if (!TryString(element, "userId", required: true, 256, out var userId, out error)
            || !TryString(element, "eventType", required: true, 128, out var eventType, out error)
            || !TryString(element, "eventId", required: false, 128, out var eventId, out error))
        {
            return false;
        }

        var timestamp = now;
        if (element.TryGetProperty("timestamp", out var ts) && ts.ValueKind != JsonValueKind.Null)
        {
            if (ts.ValueKind != JsonValueKind.String || !TimeText.TryParse(ts.GetString()!, out var ms))
            {
                error = "'timestamp' must be an ISO-8601 time such as \"2024-01-15T10:30:00Z\".";
                return false;
            }

            timestamp = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            if (timestamp > now + MaxClockSkew)
            {
                error = $"'timestamp' is more than {MaxClockSkew.TotalMinutes} minutes in the future.";
                return false;
            }
        }

        JsonElement? properties = null;
        if (element.TryGetProperty("properties", out var props) && props.ValueKind != JsonValueKind.Null)
        {
            if (props.ValueKind != JsonValueKind.Object)
            {
                error = $"'properties' must be an object, not {Describe(props)}.";
                return false;
            }

            if (FindBadNumber(props, "properties") is { } bad)
            {
                error = $"'{bad}' is a number out of range; numbers must fit in a decimal (about ±7.9e28).";
                return false;
            }

            if (eventType == "purchase" && props.TryGetProperty("amount", out var amount) && amount.ValueKind != JsonValueKind.Null
                && (amount.ValueKind != JsonValueKind.Number || !amount.TryGetDecimal(out var value) || Math.Abs(value) > Value.MaxSummable))
            {
                error = $"'properties.amount' of a purchase must be a number of at most {Value.MaxSummable:0} in magnitude.";
                return false;
            }

            properties = props.Clone();
        }

        JsonElement? context = null;
        if (element.TryGetProperty("context", out var ctx) && ctx.ValueKind != JsonValueKind.Null)
        {
            if (ctx.ValueKind != JsonValueKind.Object)
            {
                error = $"'context' must be an object, not {Describe(ctx)}.";
                return false;
            }

            context = ctx.Clone();
        }

        e = new UserEvent(eventId ?? defaultEventId ?? "evt_" + Guid.CreateVersion7().ToString("N"), userId!, eventType!, timestamp, properties, context);
        error = null;
        return true;
    }

    private static bool TryString(JsonElement element, string name, bool required, int maxLength, out string? value, out string? error)
    {
        value = null;
        error = null;
        if (!element.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            error = required ? $"'{name}' is required." : null;
            return !required;
        }

        if (property.ValueKind != JsonValueKind.String)
        {
            error = $"'{name}' must be a string, not {Describe(property)}.";
            return false;
        }

        value = property.GetString()!;
        if (value.Length == 0 || value.Length > maxLength || value.Any(char.IsControl))
        {
            error = $"'{name}' must be 1 to {maxLength} printable characters.";
            return false;
        }

        return true;
    }

    private static string? FindBadNumber(JsonElement element, string path) => element.ValueKind switch
    {
        JsonValueKind.Number => element.TryGetDecimal(out _) ? null : path,
        JsonValueKind.Object => element.EnumerateObject().Select(p => FindBadNumber(p.Value, path + "." + p.Name)).FirstOrDefault(p => p is not null),
        JsonValueKind.Array => element.EnumerateArray().Select((v, i) => FindBadNumber(v, $"{path}[{i}]")).FirstOrDefault(p => p is not null),
        _ => null,
    };

    public static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
