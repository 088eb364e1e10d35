using Audience.Rules.Model;

namespace Audience.Rules.Syntax;

/// <summary>
/// Parses the text notation of a rule (grammar in docs/rules.md). On a syntax error it records the error,
/// skips to the next <c>and</c>, <c>or</c> or closing parenthesis and goes on, so one pass reports every
/// error it can find.
/// </summary>
public static class RuleParser
{
    public static ParseResult Parse(string text, RuleLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        limits ??= RuleLimits.Default;
        var errors = new List<RuleDiagnostic>();
        var map = new SourceMap();
        if (text.Length > limits.MaxTextLength)
        {
            errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                $"a rule may be at most {limits.MaxTextLength} characters long; this one has {text.Length}", SourceSpan.Start));
            return new ParseResult(new InvalidCondition(), map, errors);
        }

        var tokens = new Lexer(text, limits, errors).Tokenize();
        var parser = new TextParser(tokens, map, errors, limits);
        var rule = parser.ParseRule();
        return new ParseResult(rule, map, [.. errors.OrderBy(e => e.Span.Offset)]);
    }
}

internal sealed class TextParser(List<Token> tokens, SourceMap map, List<RuleDiagnostic> errors, RuleLimits limits)
{
    /// <summary>Words with a meaning of their own; an event property or field cannot be named after them.</summary>
    internal static readonly HashSet<string> ReservedWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "and", "or", "not", "in", "contains", "startsWith", "endsWith", "exists", "within", "where",
        "before", "after", "ago", "true", "false", "any", "null",
    };

    private static readonly string[] AggregateFunctions = ["count", "sum", "min", "max", "avg"];

    private int _pos;
    private int _depth;
    private bool _inFilter;

    private Token Current => tokens[_pos];

    private sealed class SyntaxError : Exception;

    private sealed class TooDeep : Exception;

    public Condition ParseRule()
    {
        Condition rule;
        try
        {
            if (Current.Kind == TokenKind.End)
            {
                throw Fail(Current, "the rule is empty; write a condition such as totalSpent > 1000");
            }

            rule = ParseOr();
            while (Current.Kind != TokenKind.End)
            {
                // Something follows a complete rule: report it and keep reading what comes after.
                var stray = Current;
                Error(stray, stray.Kind == TokenKind.RightParen
                    ? "this ')' has no matching '('"
                    : $"expected 'and' or 'or' before '{stray.Text}'");
                _pos++;
                Synchronize();
                if (IsKeyword("and") || IsKeyword("or"))
                {
                    _pos++;
                    ParseOr();
                }
            }
        }
        catch (TooDeep)
        {
            rule = new InvalidCondition();
        }
        catch (SyntaxError)
        {
            rule = new InvalidCondition();
        }

        return rule;
    }

    private Condition ParseOr()
    {
        var start = Current.Span;
        var first = ParseAnd();
        if (!IsKeyword("or"))
        {
            return first;
        }

        var items = new List<Condition> { first };
        while (IsKeyword("or"))
        {
            _pos++;
            items.Add(ParseAnd());
        }

        return map.Add(new AnyOf([.. items]), start);
    }

    private Condition ParseAnd()
    {
        var start = Current.Span;
        var first = ParseUnary();
        if (!IsKeyword("and"))
        {
            return first;
        }

        var items = new List<Condition> { first };
        while (IsKeyword("and"))
        {
            _pos++;
            items.Add(ParseUnary());
        }

        return map.Add(new AllOf([.. items]), start);
    }

    private Condition ParseUnary()
    {
        if (!IsKeyword("not"))
        {
            return ParsePrimaryRecovering();
        }

        var start = Current.Span;
        _pos++;
        Enter(start);
        var operand = ParseUnary();
        _depth--;
        return map.Add(new Not(operand), start);
    }

    private Condition ParsePrimaryRecovering()
    {
        var start = _pos;
        try
        {
            return ParsePrimary();
        }
        catch (SyntaxError)
        {
            if (_pos == start && Current.Kind != TokenKind.End && Current.Kind != TokenKind.RightParen)
            {
                _pos++;
            }

            Synchronize();
            return new InvalidCondition();
        }
    }

    /// <summary>Skips to a token where parsing can resume: and, or, a closing parenthesis, or the end.</summary>
    private void Synchronize()
    {
        var nesting = 0;
        while (Current.Kind != TokenKind.End)
        {
            if (nesting == 0 && (IsKeyword("and") || IsKeyword("or") || Current.Kind == TokenKind.RightParen))
            {
                return;
            }

            nesting += Current.Kind switch
            {
                TokenKind.LeftParen or TokenKind.LeftBracket => 1,
                TokenKind.RightParen or TokenKind.RightBracket => -1,
                _ => 0,
            };
            if (nesting < 0)
            {
                return;
            }

            _pos++;
        }
    }

    private Condition ParsePrimary()
    {
        var token = Current;
        if (token.Kind == TokenKind.LeftParen)
        {
            _pos++;
            Enter(token.Span);
            var inner = ParseOr();
            _depth--;
            Expect(TokenKind.RightParen, "expected ')' to close the '(' at " + Where(token));
            return inner;
        }

        if (token.Kind != TokenKind.Identifier || ReservedWords.Contains(token.Text))
        {
            throw Fail(token, token.Kind == TokenKind.End
                ? "the rule ends too early; a condition is missing"
                : $"expected a condition such as totalSpent > 1000, but found '{token.Text}'");
        }

        if (Peek(1).Kind == TokenKind.LeftParen)
        {
            if (string.Equals(token.Text, "inSegment", StringComparison.OrdinalIgnoreCase))
            {
                return ParseInSegment();
            }

            var operand = ParseAggregate();
            return ParsePredicateTail(operand, token.Span);
        }

        var field = ParseField();
        return ParsePredicateTail(field, token.Span);
    }

    private InSegment ParseInSegment()
    {
        var name = Current;
        if (_inFilter)
        {
            throw Fail(name, "inSegment(...) cannot be used inside a where filter, which reads the event's properties");
        }

        _pos += 2;
        var id = Current;
        if (id.Kind != TokenKind.String)
        {
            throw Fail(id, "inSegment needs the segment's id in quotes, as in inSegment(\"vip\")");
        }

        _pos++;
        Expect(TokenKind.RightParen, "expected ')' after the segment id");
        return map.Add(new InSegment((string)id.Value!), name.Span);
    }

    private AggregateRef ParseAggregate()
    {
        var name = Current;
        var functionIndex = Array.FindIndex(AggregateFunctions, f => string.Equals(f, name.Text, StringComparison.OrdinalIgnoreCase));
        if (functionIndex < 0)
        {
            throw Fail(name, DiagnosticCodes.UnknownFunction,
                $"unknown function '{name.Text}'; the functions are count, sum, min, max, avg and inSegment");
        }

        if (_inFilter)
        {
            throw Fail(name, "an aggregate cannot be used inside a where filter, which reads the event's properties");
        }

        _pos += 2;
        string? eventType;
        var typeToken = Current;
        if (typeToken.Kind == TokenKind.String)
        {
            eventType = (string)typeToken.Value!;
        }
        else if (typeToken.Kind == TokenKind.Identifier
            && (!ReservedWords.Contains(typeToken.Text) || typeToken.IsKeyword("any")))
        {
            eventType = typeToken.IsKeyword("any") ? null : typeToken.Text;
        }
        else
        {
            throw Fail(typeToken, $"expected an event type (such as purchase, or any) after '{name.Text}('");
        }

        _pos++;
        string? property = null;
        if (Current.Kind == TokenKind.Dot)
        {
            _pos++;
            property = ParsePath("a property name after the event type, as in purchase.amount");
        }

        Condition? filter = null;
        if (IsKeyword("where"))
        {
            var where = Current;
            _pos++;
            Enter(where.Span);
            var outer = _inFilter;
            _inFilter = true;
            filter = ParseOr();
            _inFilter = outer;
            _depth--;
        }

        if (!IsKeyword("within"))
        {
            throw Fail(Current, $"expected 'within' and a window, as in {name.Text.ToLowerInvariant()}(purchase within 7d)");
        }

        _pos++;
        var window = Current;
        if (window.Kind != TokenKind.Duration)
        {
            throw Fail(window, "expected a window length after 'within', such as 30m, 12h, 7d or 2w");
        }

        _pos++;
        Expect(TokenKind.RightParen, $"expected ')' to close {name.Text}(");
        return map.Add(new AggregateRef((AggregateFunction)functionIndex, eventType, property, filter, (Duration)window.Value!), name.Span);
    }

    private FieldRef ParseField()
    {
        var first = Current;
        if (_inFilter)
        {
            return map.Add(new FieldRef(FieldScope.EventProperty, ParsePath("a property name")), first.Span);
        }

        if (first.Text == "traits" && Peek(1).Kind == TokenKind.Dot)
        {
            _pos += 2;
            return map.Add(new FieldRef(FieldScope.Trait, ParsePath("a trait name after 'traits.', as in traits.country", allowReserved: true)), first.Span);
        }

        return map.Add(new FieldRef(FieldScope.Profile, ParsePath("a field name")), first.Span);
    }

    private string ParsePath(string what, bool allowReserved = false)
    {
        var parts = new List<string>();
        while (true)
        {
            var token = Current;
            if (token.Kind != TokenKind.Identifier || (!allowReserved && parts.Count == 0 && ReservedWords.Contains(token.Text)))
            {
                throw Fail(token, $"expected {what}");
            }

            parts.Add(token.Text);
            _pos++;
            if (Current.Kind != TokenKind.Dot)
            {
                return string.Join('.', parts);
            }

            _pos++;
        }
    }

    private Condition ParsePredicateTail(Operand operand, SourceSpan start)
    {
        var op = Current;
        ComparisonOperator? comparison = op.Kind switch
        {
            TokenKind.Equal => ComparisonOperator.Equal,
            TokenKind.NotEqual => ComparisonOperator.NotEqual,
            TokenKind.Less => ComparisonOperator.LessThan,
            TokenKind.LessEqual => ComparisonOperator.LessThanOrEqual,
            TokenKind.Greater => ComparisonOperator.GreaterThan,
            TokenKind.GreaterEqual => ComparisonOperator.GreaterThanOrEqual,
            _ => null,
        };
        if (comparison is { } symbol)
        {
            _pos++;
            return map.Add(new Comparison(operand, symbol, ParseLiteral()), start);
        }

        if (op.IsKeyword("exists"))
        {
            _pos++;
            return map.Add(new Exists(operand), start);
        }

        if (op.IsKeyword("in"))
        {
            _pos++;
            return map.Add(new Comparison(operand, ComparisonOperator.In, ParseList()), start);
        }

        if (op.IsKeyword("not") && Peek(1).IsKeyword("in"))
        {
            _pos += 2;
            return map.Add(new Comparison(operand, ComparisonOperator.NotIn, ParseList()), start);
        }

        foreach (var (word, kind) in StringOperators)
        {
            if (op.IsKeyword(word))
            {
                _pos++;
                return map.Add(new Comparison(operand, kind, ParseLiteral()), start);
            }
        }

        if (op.IsKeyword("within") && !_inFilter)
        {
            _pos++;
            var duration = Current;
            if (duration.Kind != TokenKind.Duration)
            {
                throw Fail(duration, "expected a duration after 'within', such as 7d");
            }

            _pos++;
            var ago = map.Add(new AgoLiteral((Duration)duration.Value!), duration.Span);
            return map.Add(new Comparison(operand, ComparisonOperator.GreaterThanOrEqual, ago), start);
        }

        if (op.IsKeyword("before") || op.IsKeyword("after"))
        {
            _pos++;
            var when = ParseLiteral();
            if (when is not (AgoLiteral or TimestampLiteral))
            {
                throw Fail(op, $"'{op.Text}' needs a time, such as 30d ago or 2024-01-15");
            }

            var kind = op.IsKeyword("before") ? ComparisonOperator.LessThan : ComparisonOperator.GreaterThan;
            return map.Add(new Comparison(operand, kind, when), start);
        }

        throw Fail(op, op.Kind == TokenKind.End
            ? "the rule ends before the comparison; add an operator and a value, such as > 1000"
            : $"expected an operator (==, !=, <, <=, >, >=, in, not in, contains, startsWith, endsWith, exists{(_inFilter ? string.Empty : ", within, before, after")}) but found '{op.Text}'");
    }

    private static readonly (string Word, ComparisonOperator Kind)[] StringOperators =
    [
        ("contains", ComparisonOperator.Contains),
        ("startsWith", ComparisonOperator.StartsWith),
        ("endsWith", ComparisonOperator.EndsWith),
    ];

    private Literal ParseLiteral()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Number:
                _pos++;
                return map.Add(new NumberLiteral((decimal)token.Value!), token.Span);
            case TokenKind.String:
                _pos++;
                return map.Add(new StringLiteral((string)token.Value!), token.Span);
            case TokenKind.Timestamp:
                _pos++;
                return map.Add(new TimestampLiteral((long)token.Value!), token.Span);
            case TokenKind.Duration:
                _pos++;
                if (!IsKeyword("ago"))
                {
                    throw Fail(token, $"a duration stands for a time only with 'ago': write {token.Text} ago");
                }

                _pos++;
                return map.Add(new AgoLiteral((Duration)token.Value!), token.Span);
            case TokenKind.Identifier when token.IsKeyword("true") || token.IsKeyword("false"):
                _pos++;
                return map.Add(new BoolLiteral(token.IsKeyword("true")), token.Span);
            case TokenKind.LeftBracket:
                throw Fail(token, "a list can only follow 'in' or 'not in'");
            default:
                throw Fail(token, token.Kind == TokenKind.End
                    ? "the rule ends where a value was expected"
                    : $"expected a value (a number, \"text\", true, false, a timestamp or a duration with ago) but found '{token.Text}'");
        }
    }

    private ListLiteral ParseList()
    {
        var open = Current;
        if (open.Kind != TokenKind.LeftBracket)
        {
            throw Fail(open, "expected a list in brackets, as in [\"DE\", \"AT\"]");
        }

        _pos++;
        var items = new List<Literal>();
        if (Current.Kind != TokenKind.RightBracket)
        {
            while (true)
            {
                var item = ParseLiteral();
                if (item is AgoLiteral)
                {
                    throw Fail(tokens[_pos - 2], "a list holds numbers, strings or booleans, not times");
                }

                items.Add(item);
                if (items.Count > limits.MaxListItems)
                {
                    throw Fail(open, DiagnosticCodes.TooLarge, $"a list may hold at most {limits.MaxListItems} items");
                }

                if (Current.Kind == TokenKind.Comma)
                {
                    _pos++;
                    continue;
                }

                break;
            }
        }

        Expect(TokenKind.RightBracket, "expected ',' or ']' in the list that starts at " + Where(open));
        return map.Add(new ListLiteral([.. items]), open.Span);
    }

    private void Enter(SourceSpan at)
    {
        if (++_depth > limits.MaxDepth)
        {
            errors.Add(new RuleDiagnostic(DiagnosticCodes.TooLarge,
                $"the rule is nested too deeply; at most {limits.MaxDepth} levels of parentheses, not and where are allowed", at));
            throw new TooDeep();
        }
    }

    private void Expect(TokenKind kind, string message)
    {
        if (Current.Kind != kind)
        {
            throw Fail(Current, message);
        }

        _pos++;
    }

    private bool IsKeyword(string keyword) => Current.IsKeyword(keyword);

    private Token Peek(int ahead) => tokens[Math.Min(_pos + ahead, tokens.Count - 1)];

    private static string Where(Token token) => $"line {token.Span.Line}, column {token.Span.Column}";

    private void Error(Token at, string message, string code = DiagnosticCodes.Syntax)
    {
        // The lexer has already reported an invalid token; one message per place is enough.
        if (at.Kind == TokenKind.Invalid || errors.Exists(e => e.Span.Offset == at.Span.Offset))
        {
            return;
        }

        errors.Add(new RuleDiagnostic(code, message, at.Span));
    }

    private SyntaxError Fail(Token at, string message) => Fail(at, DiagnosticCodes.Syntax, message);

    private SyntaxError Fail(Token at, string code, string message)
    {
        Error(at, message, code);
        return new SyntaxError();
    }
}
