using System.Globalization;
using System.Text;
using Audience.Rules.Model;

namespace Audience.Rules.Syntax;

internal enum TokenKind : byte
{
    End,
    Identifier,
    Number,
    String,
    Duration,
    Timestamp,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Dot,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Invalid,
}

internal readonly record struct Token(TokenKind Kind, string Text, SourceSpan Span, object? Value = null)
{
    public bool IsKeyword(string keyword) =>
        Kind == TokenKind.Identifier && string.Equals(Text, keyword, StringComparison.OrdinalIgnoreCase);
}

/// <summary>Turns rule text into tokens. Keywords are identifiers, matched case-insensitively by the parser.</summary>
internal sealed class Lexer(string text, RuleLimits limits, List<RuleDiagnostic> errors)
{
    private int _pos;
    private int _line = 1;
    private int _lineStart;

    public List<Token> Tokenize()
    {
        var tokens = new List<Token>();
        while (true)
        {
            var token = Next();
            tokens.Add(token);
            if (token.Kind == TokenKind.End)
            {
                return tokens;
            }
        }
    }

    private Token Next()
    {
        SkipWhitespace();
        var start = _pos;
        var span = new SourceSpan(_line, _pos - _lineStart + 1, _pos, 0);
        if (_pos >= text.Length)
        {
            return new Token(TokenKind.End, string.Empty, span);
        }

        var c = text[_pos];
        switch (c)
        {
            case '(': _pos++; return Make(TokenKind.LeftParen, start, span);
            case ')': _pos++; return Make(TokenKind.RightParen, start, span);
            case '[': _pos++; return Make(TokenKind.LeftBracket, start, span);
            case ']': _pos++; return Make(TokenKind.RightBracket, start, span);
            case ',': _pos++; return Make(TokenKind.Comma, start, span);
            case '.': _pos++; return Make(TokenKind.Dot, start, span);
            case '=':
                _pos += Peek(1) == '=' ? 2 : 1;
                return Make(TokenKind.Equal, start, span);
            case '!' when Peek(1) == '=':
                _pos += 2;
                return Make(TokenKind.NotEqual, start, span);
            case '<':
                if (Peek(1) == '=') { _pos += 2; return Make(TokenKind.LessEqual, start, span); }
                if (Peek(1) == '>') { _pos += 2; return Make(TokenKind.NotEqual, start, span); }
                _pos++;
                return Make(TokenKind.Less, start, span);
            case '>':
                if (Peek(1) == '=') { _pos += 2; return Make(TokenKind.GreaterEqual, start, span); }
                _pos++;
                return Make(TokenKind.Greater, start, span);
            case '"' or '\'':
                return ReadString(c, start, span);
        }

        if (char.IsAsciiDigit(c) || (c == '-' && char.IsAsciiDigit(Peek(1))))
        {
            return ReadNumberLike(start, span);
        }

        if (IsIdentifierStart(c))
        {
            while (_pos < text.Length && IsIdentifierPart(text[_pos]))
            {
                _pos++;
            }

            return Make(TokenKind.Identifier, start, span);
        }

        _pos++;
        var invalid = Make(TokenKind.Invalid, start, span);
        errors.Add(new RuleDiagnostic(DiagnosticCodes.Syntax, $"unexpected character '{c}'", invalid.Span));
        return invalid;
    }

    private Token ReadNumberLike(int start, SourceSpan span)
    {
        // A timestamp starts with four digits and a dash: 2024-01-15 or 2024-01-15T10:30:00Z.
        if (_pos + 4 < text.Length && text[_pos] != '-' && IsDigits(_pos, 4) && text[_pos + 4] == '-')
        {
            while (_pos < text.Length && (char.IsAsciiLetterOrDigit(text[_pos]) || text[_pos] is '-' or ':' or '.' or '+'))
            {
                _pos++;
            }

            var raw = text[start.._pos];
            if (TimeText.TryParse(raw, out var ms))
            {
                return Make(TokenKind.Timestamp, start, span, ms);
            }

            var bad = Make(TokenKind.Invalid, start, span);
            errors.Add(new RuleDiagnostic(DiagnosticCodes.InvalidLiteral,
                $"'{raw}' is not a valid timestamp; write it as ISO-8601, for example 2024-01-15 or 2024-01-15T10:30:00Z",
                bad.Span));
            return bad;
        }

        if (text[_pos] == '-')
        {
            _pos++;
        }

        while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
        {
            _pos++;
        }

        // A duration is a whole number followed directly by its unit: 30m, 12h, 7d, 2w.
        if (_pos < text.Length && Duration.TryUnit(text[_pos], out _) && !IsIdentifierPart(Peek(1)) && text[start] != '-')
        {
            _pos++;
            var raw = text[start.._pos];
            if (Duration.TryParse(raw, out var duration))
            {
                return Make(TokenKind.Duration, start, span, duration);
            }

            var bad = Make(TokenKind.Invalid, start, span);
            errors.Add(new RuleDiagnostic(DiagnosticCodes.InvalidLiteral, $"the duration '{raw}' is longer than ten years", bad.Span));
            return bad;
        }

        if (Peek(0) == '.' && char.IsAsciiDigit(Peek(1)))
        {
            _pos++;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
            {
                _pos++;
            }
        }

        if (Peek(0) is 'e' or 'E' && (char.IsAsciiDigit(Peek(1)) || (Peek(1) is '+' or '-' && char.IsAsciiDigit(Peek(2)))))
        {
            _pos += 2;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
            {
                _pos++;
            }
        }

        if (_pos < text.Length && IsIdentifierPart(text[_pos]))
        {
            while (_pos < text.Length && IsIdentifierPart(text[_pos]))
            {
                _pos++;
            }

            var bad = Make(TokenKind.Invalid, start, span);
            errors.Add(new RuleDiagnostic(DiagnosticCodes.InvalidLiteral,
                $"'{bad.Text}' is neither a number nor a duration; durations are a whole number and one of m, h, d, w (for example 7d)",
                bad.Span));
            return bad;
        }

        var number = text[start.._pos];
        if (decimal.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            return Make(TokenKind.Number, start, span, value);
        }

        var invalid = Make(TokenKind.Invalid, start, span);
        errors.Add(new RuleDiagnostic(DiagnosticCodes.InvalidLiteral, $"the number {number} is out of range", invalid.Span));
        return invalid;
    }

    private Token ReadString(char quote, int start, SourceSpan span)
    {
        _pos++;
        var builder = new StringBuilder();
        while (_pos < text.Length && text[_pos] != quote)
        {
            var c = text[_pos++];
            if (c == '\n')
            {
                break;
            }

            if (c != '\\')
            {
                builder.Append(c);
                continue;
            }

            var escaped = _pos < text.Length ? text[_pos++] : '\0';
            switch (escaped)
            {
                case '"' or '\'' or '\\' or '/': builder.Append(escaped); break;
                case 'n': builder.Append('\n'); break;
                case 't': builder.Append('\t'); break;
                case 'r': builder.Append('\r'); break;
                case 'u' when _pos + 4 <= text.Length
                    && ushort.TryParse(text.AsSpan(_pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code):
                    builder.Append((char)code);
                    _pos += 4;
                    break;
                default:
                    errors.Add(new RuleDiagnostic(DiagnosticCodes.Syntax,
                        $"unknown escape '\\{escaped}' in a string; use \\\", \\\\, \\n, \\t or \\uXXXX",
                        new SourceSpan(span.Line, _pos - 1 - _lineStart, _pos - 2, 2)));
                    break;
            }
        }

        if (_pos >= text.Length || text[_pos] != quote)
        {
            var open = Make(TokenKind.Invalid, start, span);
            errors.Add(new RuleDiagnostic(DiagnosticCodes.Syntax, $"this string is not closed; add the closing {quote}", open.Span));
            return open;
        }

        _pos++;
        var token = Make(TokenKind.String, start, span, builder.ToString());
        if (builder.Length > limits.MaxStringLength)
        {
            errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                $"a string may hold at most {limits.MaxStringLength} characters; this one has {builder.Length}", token.Span));
        }

        return token;
    }

    private Token Make(TokenKind kind, int start, SourceSpan span, object? value = null) =>
        new(kind, text[start.._pos], span with { Length = _pos - start }, value);

    private void SkipWhitespace()
    {
        while (_pos < text.Length)
        {
            var c = text[_pos];
            if (c == '\n')
            {
                _line++;
                _lineStart = _pos + 1;
            }
            else if (c == '#')
            {
                // A comment runs to the end of the line.
                while (_pos < text.Length && text[_pos] != '\n')
                {
                    _pos++;
                }

                continue;
            }
            else if (!char.IsWhiteSpace(c))
            {
                return;
            }

            _pos++;
        }
    }

    private char Peek(int ahead) => _pos + ahead < text.Length ? text[_pos + ahead] : '\0';

    private bool IsDigits(int from, int count)
    {
        for (var i = from; i < from + count; i++)
        {
            if (!char.IsAsciiDigit(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    internal static bool IsIdentifierStart(char c) => char.IsAsciiLetter(c) || c == '_';

    internal static bool IsIdentifierPart(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';
}
