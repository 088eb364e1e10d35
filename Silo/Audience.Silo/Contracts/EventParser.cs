using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Audience.Rules;

namespace Audience.Silo.Contracts;

/// <summary>
/// What one event may hold. Bounded so that a single event can neither fill the log nor make rule evaluation
/// expensive (string operations in rules cost in proportion to the strings they read). Documented in the README.
/// </summary>
public static class EventLimits
{
    /// <summary>An event's JSON as sent, in bytes; also the body limit of <c>POST /api/events</c>.</summary>
    public const int MaxEventBytes = 32 * 1024;

    /// <summary>A string value inside <c>properties</c> or <c>context</c>, in UTF-8 bytes.</summary>
    public const int MaxStringBytes = 8 * 1024;

    /// <summary>A property name, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 256;

    /// <summary>Levels of objects and arrays inside <c>properties</c> or <c>context</c>, themselves included.</summary>
    public const int MaxDepth = 8;

    public const int MaxUserIdLength = 256;

    public const int MaxEventTypeLength = 128;

    public const int MaxEventIdLength = 128;

    /// <summary>How far in the future an event's timestamp may be (client clocks drift).</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);
}

/// <summary>A batch as read: an error for the whole body, or one outcome per item in order.</summary>
public sealed record BatchRead(string? Error, bool TooLarge, IReadOnlyList<(UserEvent? Event, string? Error)> Items);

/// <summary>
/// Reads and validates events in seed 004's <c>user-events</c> format straight from UTF-8 JSON, without building a
/// document: the Api for each request, the Silo for each log entry or Kafka message (another producer may have
/// written it). Every string must be valid Unicode (no lone surrogates, valid UTF-8), no object may name a key
/// twice, numbers in <c>properties</c> must fit a decimal, and the <see cref="EventLimits"/> hold; each error names
/// the field and what is expected. In a batch, an item that breaks a rule is reported and the others are kept; only
/// malformed JSON rejects the whole body, since nothing after it can be read.
/// </summary>
public sealed class EventParser
{
    // What a parser's buffers start at, and what it keeps between requests.
    private const int NamesSize = 1024;
    private const int KeysSize = 64;
    private const int ScratchSize = EventLimits.MaxStringBytes + 64;

    [ThreadStatic]
    private static EventParser? _cached;

    // Deeper than any valid event, so that an item nested too deeply is reported as such, not as malformed JSON.
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64 };

    // Unescaped names of the keys of the objects open now, for duplicate detection and for naming a field in an error.
    private byte[] _names = new byte[NamesSize];
    private int _namesLength;
    private (int Offset, int Length)[] _keys = new (int, int)[KeysSize];
    private int _keyCount;
    private readonly List<object> _path = [];
    private byte[] _scratch = new byte[ScratchSize];

    /// <summary>Reads one event; false with the reason when it is malformed JSON or not a valid event.</summary>
    public static bool TryRead(ReadOnlyMemory<byte> json, DateTimeOffset now, out UserEvent? e, out string? error, string? defaultEventId = null)
    {
        var parser = Rent();
        try
        {
            var reader = new Utf8JsonReader(json.Span, ReaderOptions);
            if (!reader.Read())
            {
                (e, error) = (null, "The body is empty.");
                return false;
            }

            var ok = parser.ReadEvent(ref reader, json, now, defaultEventId, out e, out error);
            if (reader.Read())
            {
                (e, error) = (null, $"The body holds more than one JSON value; the second starts at byte {reader.TokenStartIndex + 1}.");
                return false;
            }

            return ok;
        }
        catch (JsonException ex)
        {
            (e, error) = (null, Malformed(ex));
            return false;
        }
        finally
        {
            Return(parser);
        }
    }

    /// <summary>Reads a batch: a JSON array of at most <paramref name="maxItems"/> events.</summary>
    public static BatchRead ReadBatch(ReadOnlyMemory<byte> json, DateTimeOffset now, int maxItems)
    {
        var parser = Rent();
        try
        {
            var reader = new Utf8JsonReader(json.Span, ReaderOptions);
            if (!reader.Read())
            {
                return new BatchRead("The body is empty.", false, []);
            }

            if (reader.TokenType != JsonTokenType.StartArray)
            {
                return new BatchRead($"A batch is a JSON array of events, not {Describe(reader.TokenType)}.", false, []);
            }

            var items = new List<(UserEvent?, string?)>();
            var count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                count++;
                if (count > maxItems)
                {
                    reader.Skip();
                    continue;
                }

                items.Add(parser.ReadEvent(ref reader, json, now, null, out var e, out var error) ? (e, null) : (null, error));
            }

            if (reader.Read())
            {
                return new BatchRead($"The body holds more than one JSON value; the second starts at byte {reader.TokenStartIndex + 1}.", false, []);
            }

            return count > maxItems
                ? new BatchRead($"A batch may hold at most {maxItems} events; this one has {count}.", true, [])
                : count == 0 ? new BatchRead("The batch is empty.", false, []) : new BatchRead(null, false, items);
        }
        catch (JsonException ex)
        {
            return new BatchRead(Malformed(ex), false, []);
        }
        finally
        {
            Return(parser);
        }
    }

    /// <summary>
    /// Checks that a JSON value holds only valid Unicode text (names and strings) and no object names a key twice;
    /// returns the path of the first offence and what is wrong, or null. For request bodies other than events.
    /// </summary>
    public static string? FindInvalidText(ReadOnlySpan<byte> json, bool rejectDuplicates)
    {
        var parser = Rent();
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read())
            {
                return null;
            }

            return parser.CheckValue(ref reader, depth: 0, maxDepth: int.MaxValue, checkNumbers: false, maxString: int.MaxValue, rejectDuplicates);
        }
        catch (JsonException)
        {
            return null; // malformed JSON is the caller's parser's to report, with its position
        }
        finally
        {
            Return(parser);
        }
    }

    private static EventParser Rent()
    {
        var parser = _cached ?? new EventParser();
        _cached = null;
        parser._namesLength = 0;
        parser._keyCount = 0;
        parser._path.Clear();
        return parser;
    }

    /// <summary>
    /// Keeps the parser for this thread's next request, without what an unusual one grew (a long escaped string before
    /// its limit was checked, many keys): a cached buffer lives as long as its thread.
    /// </summary>
    private static void Return(EventParser parser)
    {
        if (parser._scratch.Length > ScratchSize)
        {
            parser._scratch = new byte[ScratchSize];
        }

        if (parser._names.Length > 4 * NamesSize)
        {
            parser._names = new byte[NamesSize];
        }

        if (parser._keys.Length > 4 * KeysSize)
        {
            parser._keys = new (int, int)[KeysSize];
        }

        _cached = parser;
    }

    private static string Malformed(JsonException e)
    {
        // The reader's message ends with its own rendering of the position, which ours replaces.
        var reason = e.Message;
        var cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        reason = (cut > 0 ? reason[..cut] : reason).TrimEnd();
        return e.LineNumber is { } line
            ? $"The body is not valid JSON at line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}: {reason}"
            : $"The body is not valid JSON: {reason}";
    }

    private bool ReadEvent(ref Utf8JsonReader r, ReadOnlyMemory<byte> json, DateTimeOffset now, string? defaultEventId, out UserEvent? e, out string? error)
    {
        e = null;
        if (r.TokenType != JsonTokenType.StartObject)
        {
            error = $"An event is a JSON object, not {Describe(r.TokenType)}.";
            r.Skip();
            return false;
        }

        var depth = r.CurrentDepth;
        var start = (int)r.TokenStartIndex;
        string? userId = null, eventType = null, eventId = null;
        long? timestamp = null;
        RawJson? properties = null, context = null;
        AmountSeen amount = default;
        _namesLength = 0;
        _keyCount = 0;
        _path.Clear();
        error = null;
        while (error is null && r.Read() && r.TokenType != JsonTokenType.EndObject)
        {
            if (!TryAddKey(ref r, firstKey: 0, out var name, out error))
            {
                break;
            }

            r.Read();
            switch (name)
            {
                case "userId":
                    userId = ReadId(ref r, name, EventLimits.MaxUserIdLength, required: true, out error);
                    break;
                case "eventType":
                    eventType = ReadId(ref r, name, EventLimits.MaxEventTypeLength, required: true, out error);
                    break;
                case "eventId":
                    eventId = ReadId(ref r, name, EventLimits.MaxEventIdLength, required: false, out error);
                    break;
                case "timestamp":
                    timestamp = ReadTimestamp(ref r, now, out error);
                    break;
                case "properties":
                    properties = ReadObject(ref r, json, name, checkNumbers: true, ref amount, out error);
                    break;
                case "context":
                    context = ReadObject(ref r, json, name, checkNumbers: false, ref amount, out error);
                    break;
                default:
                    // Fields of a later version of the format are kept out, but they must be valid text too.
                    _path.Add(name);
                    error = CheckValue(ref r, 1, EventLimits.MaxDepth, checkNumbers: false, EventLimits.MaxStringBytes, rejectDuplicates: true);
                    _path.Clear();
                    break;
            }
        }

        if (error is not null)
        {
            while (!(r.TokenType == JsonTokenType.EndObject && r.CurrentDepth == depth))
            {
                r.Read();
            }

            return false;
        }

        var size = r.BytesConsumed - start;
        if (size > EventLimits.MaxEventBytes)
        {
            error = $"The event is {size} bytes of JSON; an event may be at most {EventLimits.MaxEventBytes} bytes.";
            return false;
        }

        error = userId is null ? "'userId' is required."
            : eventType is null ? "'eventType' is required."
            : eventType == Rules.Profiles.RuleEvent.Purchase && amount.Error is { } amountError ? amountError
            : null;
        if (error is not null)
        {
            return false;
        }

        e = new UserEvent(eventId ?? defaultEventId ?? NewEventId(), userId!, eventType!,
            timestamp is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : now, properties, context);
        return true;
    }

    private static bool HasControl(string value)
    {
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                return true;
            }
        }

        return false;
    }

    public static string NewEventId() => "evt_" + Guid.CreateVersion7().ToString("N");

    /// <summary>
    /// Checks a user id given outside an event (a route, an erasure message) by the rules of an event's <c>userId</c>:
    /// 1 to 256 printable characters, not only white space, valid Unicode. Returns the error as an event's would say it, or null.
    /// </summary>
    public static string? CheckUserId(string? userId)
    {
        const string Name = "userId";
        for (var i = 0; userId is not null && i < userId.Length; i++)
        {
            if (char.IsHighSurrogate(userId[i]) && i + 1 < userId.Length && char.IsLowSurrogate(userId[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(userId[i]))
            {
                return $"'{Name}' is not valid Unicode text.";
            }
        }

        if (string.IsNullOrEmpty(userId) || userId.Length > EventLimits.MaxUserIdLength || HasControl(userId))
        {
            return $"'{Name}' must be 1 to {EventLimits.MaxUserIdLength} printable characters.";
        }

        return string.IsNullOrWhiteSpace(userId) ? $"'{Name}' must hold a character other than white space." : null;
    }

    private string? ReadId(ref Utf8JsonReader r, string name, int maxLength, bool required, out string? error)
    {
        error = null;
        if (r.TokenType == JsonTokenType.Null)
        {
            error = required ? $"'{name}' is required." : null;
            return null;
        }

        if (r.TokenType != JsonTokenType.String)
        {
            error = $"'{name}' must be a string, not {Describe(r.TokenType)}.";
            return null;
        }

        if (!IsValidText(ref r, out var length))
        {
            error = $"'{name}' is not valid Unicode text.";
            return null;
        }

        // A character takes at most 3 UTF-8 bytes per UTF-16 unit: longer text is too long before it is decoded.
        var value = length <= maxLength * 3 ? r.GetString()! : null;
        if (value is null || value.Length == 0 || value.Length > maxLength || HasControl(value))
        {
            error = $"'{name}' must be 1 to {maxLength} printable characters.";
            return null;
        }

        if (string.IsNullOrWhiteSpace(value))
        {
            error = $"'{name}' must hold a character other than white space.";
            return null;
        }

        return value;
    }

    private long? ReadTimestamp(ref Utf8JsonReader r, DateTimeOffset now, out string? error)
    {
        error = null;
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.String || !IsValidText(ref r, out var length) || length > 64 || !TimeText.TryParse(r.GetString()!, out var ms))
        {
            error = "'timestamp' must be an ISO-8601 time such as \"2024-01-15T10:30:00Z\".";
            return null;
        }

        if (DateTimeOffset.FromUnixTimeMilliseconds(ms) > now + EventLimits.MaxClockSkew)
        {
            error = $"'timestamp' is more than {EventLimits.MaxClockSkew.TotalMinutes} minutes in the future.";
            return null;
        }

        return ms;
    }

    private RawJson? ReadObject(ref Utf8JsonReader r, ReadOnlyMemory<byte> json, string name, bool checkNumbers, ref AmountSeen amount, out string? error)
    {
        error = null;
        if (r.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (r.TokenType != JsonTokenType.StartObject)
        {
            error = $"'{name}' must be an object, not {Describe(r.TokenType)}.";
            return null;
        }

        var start = (int)r.TokenStartIndex;
        _path.Add(name);
        error = CheckObject(ref r, 1, EventLimits.MaxDepth, checkNumbers, EventLimits.MaxStringBytes, rejectDuplicates: true, checkNumbers ? AmountProbe.Watch : AmountProbe.None, ref amount);
        _path.Clear();
        return error is null ? new RawJson(json[start..(int)r.BytesConsumed].ToArray()) : null;
    }

    /// <summary>Checks the value the reader is on, and moves the reader to its last token.</summary>
    private string? CheckValue(ref Utf8JsonReader r, int depth, int maxDepth, bool checkNumbers, int maxString, bool rejectDuplicates)
    {
        AmountSeen none = default;
        switch (r.TokenType)
        {
            case JsonTokenType.StartObject:
                return CheckObject(ref r, depth, maxDepth, checkNumbers, maxString, rejectDuplicates, AmountProbe.None, ref none);
            case JsonTokenType.StartArray:
                if (depth > maxDepth)
                {
                    return $"'{Path()}' is nested too deeply; at most {maxDepth} levels of objects and arrays are allowed.";
                }

                var index = 0;
                while (r.Read() && r.TokenType != JsonTokenType.EndArray)
                {
                    _path.Add(index++);
                    var error = CheckValue(ref r, depth + 1, maxDepth, checkNumbers, maxString, rejectDuplicates);
                    _path.RemoveAt(_path.Count - 1);
                    if (error is not null)
                    {
                        return error;
                    }
                }

                return null;
            case JsonTokenType.String:
                if (!IsValidText(ref r, out var length))
                {
                    return $"'{Path()}' is not valid Unicode text.";
                }

                return length > maxString ? $"'{Path()}' is {length} bytes long; a string may be at most {maxString} bytes." : null;
            case JsonTokenType.Number:
                return checkNumbers && !r.TryGetDecimal(out _)
                    ? $"'{Path()}' is a number out of range; numbers must fit in a decimal (about ±7.9e28)."
                    : null;
            default:
                return null;
        }
    }

    private string? CheckObject(ref Utf8JsonReader r, int depth, int maxDepth, bool checkNumbers, int maxString, bool rejectDuplicates, AmountProbe probe, ref AmountSeen amount)
    {
        if (depth > maxDepth)
        {
            return $"'{Path()}' is nested too deeply; at most {maxDepth} levels of objects and arrays are allowed.";
        }

        var keysBefore = _keyCount;
        var namesBefore = _namesLength;
        try
        {
            while (r.Read() && r.TokenType != JsonTokenType.EndObject)
            {
                if (!TryAddKey(ref r, rejectDuplicates ? keysBefore : -1, out var name, out var error))
                {
                    return error;
                }

                r.Read();
                _path.Add(name);
                if (probe == AmountProbe.Watch && name == "amount")
                {
                    amount = AmountSeen.Of(ref r);
                }

                error = CheckValue(ref r, depth + 1, maxDepth, checkNumbers, maxString, rejectDuplicates);
                _path.RemoveAt(_path.Count - 1);
                if (error is not null)
                {
                    return error;
                }
            }

            return null;
        }
        finally
        {
            _keyCount = keysBefore;
            _namesLength = namesBefore;
        }
    }

    /// <summary>
    /// Validates the property name the reader is on and, unless <paramref name="firstKey"/> is -1, checks it against
    /// the keys of the same object seen so far (from <paramref name="firstKey"/> on) and remembers it. Returns the
    /// name as a string, for the path and the switch on fields.
    /// </summary>
    private bool TryAddKey(ref Utf8JsonReader r, int firstKey, out string name, out string? error)
    {
        name = string.Empty;
        if (!IsValidText(ref r, out var length))
        {
            error = _path.Count == 0 ? "A field name of the event is not valid Unicode text." : $"A key in '{Path()}' is not valid Unicode text.";
            return false;
        }

        if (length > EventLimits.MaxNameBytes)
        {
            error = $"A key in '{(_path.Count == 0 ? "the event" : Path())}' is {length} bytes long; a key may be at most {EventLimits.MaxNameBytes} bytes.";
            return false;
        }

        var utf8 = Unescaped(ref r, length);
        name = Encoding.UTF8.GetString(utf8);
        if (firstKey >= 0)
        {
            for (var i = firstKey; i < _keyCount; i++)
            {
                var (offset, keyLength) = _keys[i];
                if (utf8.SequenceEqual(_names.AsSpan(offset, keyLength)))
                {
                    error = _path.Count == 0 ? $"'{name}' appears twice in the event." : $"'{Path()}.{name}' appears twice.";
                    return false;
                }
            }

            if (_namesLength + utf8.Length > _names.Length)
            {
                Array.Resize(ref _names, Math.Max(_names.Length * 2, _namesLength + utf8.Length));
            }

            if (_keyCount == _keys.Length)
            {
                Array.Resize(ref _keys, _keys.Length * 2);
            }

            utf8.CopyTo(_names.AsSpan(_namesLength));
            _keys[_keyCount++] = (_namesLength, utf8.Length);
            _namesLength += utf8.Length;
        }

        error = null;
        return true;
    }

    /// <summary>The current string or name, unescaped, in the scratch buffer (valid until the next call).</summary>
    private ReadOnlySpan<byte> Unescaped(ref Utf8JsonReader r, int length)
    {
        if (!r.ValueIsEscaped)
        {
            return r.ValueSpan;
        }

        EnsureScratch(length);
        var written = r.CopyString(_scratch);
        return _scratch.AsSpan(0, written);
    }

    /// <summary>
    /// Whether the string or name the reader is on is valid Unicode once unescaped (JSON escapes can spell a lone
    /// surrogate, and the reader does not check raw UTF-8); <paramref name="utf8Length"/> is its unescaped length.
    /// </summary>
    private bool IsValidText(ref Utf8JsonReader r, out int utf8Length)
    {
        if (!r.ValueIsEscaped)
        {
            utf8Length = r.ValueSpan.Length;
            return Utf8.IsValid(r.ValueSpan);
        }

        // An escape makes the text no longer than it is escaped.
        EnsureScratch(r.ValueSpan.Length);
        try
        {
            utf8Length = r.CopyString(_scratch);
        }
        catch (InvalidOperationException)
        {
            utf8Length = r.ValueSpan.Length;
            return false;
        }

        return Utf8.IsValid(_scratch.AsSpan(0, utf8Length));
    }

    private void EnsureScratch(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new byte[Math.Max(length, _scratch.Length * 2)];
        }
    }

    private string Path()
    {
        var builder = new StringBuilder();
        foreach (var part in _path)
        {
            if (part is int index)
            {
                builder.Append('[').Append(index).Append(']');
            }
            else
            {
                if (builder.Length > 0)
                {
                    builder.Append('.');
                }

                builder.Append((string)part);
            }
        }

        return builder.ToString();
    }

    public static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        _ => "null",
    };

    private enum AmountProbe : byte
    {
        None,
        Watch,
    }

    /// <summary>What <c>properties.amount</c> held, so that a purchase's amount is checked whatever the field order.</summary>
    private readonly record struct AmountSeen(string? Error)
    {
        public static AmountSeen Of(ref Utf8JsonReader r) =>
            r.TokenType == JsonTokenType.Null
            || (r.TokenType == JsonTokenType.Number && r.TryGetDecimal(out var value) && Math.Abs(value) <= Value.MaxSummable)
                ? default
                : new AmountSeen($"'properties.amount' of a purchase must be a number of at most {Value.MaxSummable:0} in magnitude.");
    }
}

/// <summary>
/// A JSON object kept as the UTF-8 text it arrived as, once <see cref="EventParser"/> has validated it: an event's
/// <c>properties</c> or <c>context</c>. Written out as it is; read into rule values where rules need them.
/// </summary>
[System.Text.Json.Serialization.JsonConverter(typeof(RawJsonConverter))]
[GenerateSerializer]
[Immutable]
public sealed class RawJson(byte[] utf8)
{
    [Id(0)]
    private readonly byte[] _utf8 = utf8;

    public ReadOnlyMemory<byte> Utf8 => _utf8;

    public override string ToString() => Encoding.UTF8.GetString(Utf8.Span);

    /// <summary>For tests and tools: checks <paramref name="json"/> like an event's properties.</summary>
    public static RawJson Parse(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        if (EventParser.FindInvalidText(bytes, rejectDuplicates: true) is { } error)
        {
            throw new ArgumentException(error, nameof(json));
        }

        using var document = JsonDocument.Parse(bytes);
        return document.RootElement.ValueKind == JsonValueKind.Object
            ? new RawJson(bytes)
            : throw new ArgumentException("Not a JSON object.", nameof(json));
    }
}

/// <summary>Writes <see cref="RawJson"/> as the JSON it holds; reads any object into one.</summary>
public sealed class RawJsonConverter : System.Text.Json.Serialization.JsonConverter<RawJson>
{
    public override RawJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var document = JsonDocument.ParseValue(ref reader);
        var bytes = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(document.RootElement).ToArray();
        if (document.RootElement.ValueKind != JsonValueKind.Object || EventParser.FindInvalidText(bytes, rejectDuplicates: true) is not null)
        {
            throw new JsonException("Expected a JSON object of valid Unicode text with unique keys.");
        }

        return new RawJson(bytes);
    }

    public override void Write(Utf8JsonWriter writer, RawJson value, JsonSerializerOptions options) =>
        writer.WriteRawValue(value.Utf8.Span, skipInputValidation: true);
}
