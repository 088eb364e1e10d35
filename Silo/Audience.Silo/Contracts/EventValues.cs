using System.Text.Json;
using Audience.Rules;
using Audience.Rules.Profiles;

namespace Audience.Silo.Contracts;

/// <summary>Turns an event's JSON properties into the values rules read.</summary>
public static class EventValues
{
    public static RuleEvent ToRuleEvent(UserEvent e) =>
        new(e.EventType, e.Timestamp.ToUnixTimeMilliseconds(), e.Properties is { } p ? ToObject(p.Utf8.Span) : null);

    /// <summary>Reads a JSON object that <see cref="EventParser"/> validated into rule values.</summary>
    public static IReadOnlyDictionary<string, Value> ToObject(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = 64 });
        reader.Read();
        return ReadObject(ref reader);
    }

    private static Dictionary<string, Value> ReadObject(ref Utf8JsonReader reader)
    {
        var properties = new Dictionary<string, Value>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString()!;
            reader.Read();
            properties[name] = ReadValue(ref reader);
        }

        return properties;
    }

    private static Value ReadValue(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return Value.FromString(reader.GetString()!);
            case JsonTokenType.Number:
                return reader.TryGetDecimal(out var d) ? Value.FromNumber(d) : Value.Null;
            case JsonTokenType.True:
                return Value.True;
            case JsonTokenType.False:
                return Value.False;
            case JsonTokenType.StartObject:
                return Value.FromObject(ReadObject(ref reader));
            case JsonTokenType.StartArray:
                var items = new List<Value>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    items.Add(ReadValue(ref reader));
                }

                return Value.FromList([.. items]);
            default:
                return Value.Null;
        }
    }

    public static IReadOnlyDictionary<string, Value> ToObject(JsonElement element)
    {
        var properties = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            properties[property.Name] = ToValue(property.Value);
        }

        return properties;
    }

    public static Value ToValue(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => Value.FromString(element.GetString()!),
        JsonValueKind.Number => element.TryGetDecimal(out var d) ? Value.FromNumber(d) : Value.Null,
        JsonValueKind.True => Value.True,
        JsonValueKind.False => Value.False,
        JsonValueKind.Object => Value.FromObject(ToObject(element)),
        JsonValueKind.Array => Value.FromList([.. element.EnumerateArray().Select(ToValue)]),
        _ => Value.Null,
    };

    public static void Write(Utf8JsonWriter writer, Value value)
    {
        switch (value.Kind)
        {
            case ValueKind.Bool:
                writer.WriteBooleanValue(value.AsBool);
                break;
            case ValueKind.Number:
                writer.WriteNumberValue(value.AsNumber);
                break;
            case ValueKind.String:
                writer.WriteStringValue(value.AsString);
                break;
            case ValueKind.Time when value.TryGetTime(out var ms):
                writer.WriteStringValue(TimeText.Format(ms));
                break;
            case ValueKind.List:
                writer.WriteStartArray();
                foreach (var item in value.AsList)
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            case ValueKind.Object:
                writer.WriteStartObject();
                foreach (var (name, item) in value.AsObject)
                {
                    writer.WritePropertyName(name);
                    Write(writer, item);
                }

                writer.WriteEndObject();
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }

    /// <summary>A stable partition for a user id (FNV-1a over its UTF-8 bytes); the same in every process.</summary>
    public static int PartitionOf(string userId, int partitions)
    {
        var hash = 2166136261u;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(userId))
        {
            hash = (hash ^ b) * 16777619u;
        }

        return (int)(hash % (uint)partitions);
    }
}
