using System.Text;
using System.Text.Json;
using Audience.Rules.Syntax;

namespace Audience.Rules.Json;

internal enum JsonNodeKind : byte
{
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

/// <summary>A JSON value with the place it starts in the source, so that errors in a JSON rule can name a line and column.</summary>
internal sealed class PositionedNode
{
    public required JsonNodeKind Kind { get; init; }

    public required SourceSpan Span { get; init; }

    public string? Text { get; init; }

    public List<(string Name, SourceSpan NameSpan, PositionedNode Value)> Properties { get; } = [];

    public List<PositionedNode> Items { get; } = [];

    public string Describe() => Kind switch
    {
        JsonNodeKind.Object => "an object",
        JsonNodeKind.Array => "an array",
        JsonNodeKind.String => "a string",
        JsonNodeKind.Number => "a number",
        JsonNodeKind.True or JsonNodeKind.False => "a boolean",
        _ => "null",
    };
}

internal static class PositionedJson
{
    /// <summary>Parses JSON text; on malformed JSON returns null and the error with its position.</summary>
    public static PositionedNode? Parse(string json, int maxDepth, out RuleDiagnostic? error)
    {
        error = null;
        var bytes = Encoding.UTF8.GetBytes(json);
        var lineStarts = LineStarts(bytes);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            MaxDepth = Math.Max(maxDepth, 1) * 4 + 4,
        });
        try
        {
            if (!reader.Read())
            {
                error = new RuleDiagnostic(DiagnosticCodes.Syntax, "the rule document is empty", SourceSpan.Start);
                return null;
            }

            var root = ReadValue(ref reader, bytes, lineStarts);
            if (reader.Read())
            {
                error = new RuleDiagnostic(DiagnosticCodes.Syntax, "unexpected content after the end of the rule document",
                    SpanAt(bytes, lineStarts, (int)reader.TokenStartIndex, 1));
                return null;
            }

            return root;
        }
        catch (PositionedJsonException e)
        {
            error = e.Diagnostic;
            return null;
        }
        catch (JsonException e)
        {
            var line = (int)(e.LineNumber ?? 0) + 1;
            var column = (int)(e.BytePositionInLine ?? 0) + 1;
            var message = e.Message;
            var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            error = new RuleDiagnostic(DiagnosticCodes.Syntax, "invalid JSON: " + (cut > 0 ? message[..cut].TrimEnd() : message),
                new SourceSpan(line, column, 0, 0));
            return null;
        }
    }

    private static PositionedNode ReadValue(ref Utf8JsonReader reader, byte[] bytes, List<int> lineStarts)
    {
        var start = (int)reader.TokenStartIndex;
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                {
                    var node = new PositionedNode { Kind = JsonNodeKind.Object, Span = SpanAt(bytes, lineStarts, start, 1) };
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                    {
                        var nameSpan = SpanAt(bytes, lineStarts, (int)reader.TokenStartIndex, reader.ValueSpan.Length + 2);
                        var name = Text(ref reader, nameSpan);
                        if (node.Properties.Exists(p => p.Name == name))
                        {
                            throw new PositionedJsonException(new RuleDiagnostic(DiagnosticCodes.Syntax, $"the key '{name}' appears twice in one object", nameSpan));
                        }

                        reader.Read();
                        node.Properties.Add((name, nameSpan, ReadValue(ref reader, bytes, lineStarts)));
                    }

                    return node;
                }

            case JsonTokenType.StartArray:
                {
                    var node = new PositionedNode { Kind = JsonNodeKind.Array, Span = SpanAt(bytes, lineStarts, start, 1) };
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        node.Items.Add(ReadValue(ref reader, bytes, lineStarts));
                    }

                    return node;
                }

            case JsonTokenType.String:
                {
                    var span = SpanAt(bytes, lineStarts, start, reader.ValueSpan.Length + 2);
                    return new PositionedNode { Kind = JsonNodeKind.String, Span = span, Text = Text(ref reader, span) };
                }

            case JsonTokenType.Number:
                return new PositionedNode
                {
                    Kind = JsonNodeKind.Number,
                    Span = SpanAt(bytes, lineStarts, start, reader.ValueSpan.Length),
                    Text = Encoding.UTF8.GetString(reader.ValueSpan),
                };
            case JsonTokenType.True:
                return new PositionedNode { Kind = JsonNodeKind.True, Span = SpanAt(bytes, lineStarts, start, 4) };
            case JsonTokenType.False:
                return new PositionedNode { Kind = JsonNodeKind.False, Span = SpanAt(bytes, lineStarts, start, 5) };
            default:
                return new PositionedNode { Kind = JsonNodeKind.Null, Span = SpanAt(bytes, lineStarts, start, 4) };
        }
    }

    /// <summary>The string the reader is on; an escape that spells a lone surrogate is an error at its position.</summary>
    private static string Text(ref Utf8JsonReader reader, SourceSpan span)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new PositionedJsonException(new RuleDiagnostic(DiagnosticCodes.Syntax, "the text is not valid Unicode (a lone surrogate or invalid UTF-8)", span));
        }
    }

    private static List<int> LineStarts(byte[] bytes)
    {
        var starts = new List<int> { 0 };
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == (byte)'\n')
            {
                starts.Add(i + 1);
            }
        }

        return starts;
    }

    private static SourceSpan SpanAt(byte[] bytes, List<int> lineStarts, int byteOffset, int length)
    {
        var line = lineStarts.BinarySearch(byteOffset);
        if (line < 0)
        {
            line = ~line - 1;
        }

        var lineStart = lineStarts[line];
        var column = Encoding.UTF8.GetCharCount(bytes, lineStart, byteOffset - lineStart) + 1;
        var charOffset = Encoding.UTF8.GetCharCount(bytes, 0, byteOffset);
        return new SourceSpan(line + 1, column, charOffset, length);
    }
}

/// <summary>A structural error found while reading a JSON rule: a repeated key, or text that is not valid Unicode.</summary>
internal sealed class PositionedJsonException(RuleDiagnostic diagnostic) : Exception(diagnostic.Message)
{
    public RuleDiagnostic Diagnostic { get; } = diagnostic;
}
