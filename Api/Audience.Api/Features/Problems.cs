using Audience.Rules.Syntax;

namespace Audience.Api.Features;

/// <summary>ProblemDetails for every error the API returns, so clients see one shape.</summary>
internal static class Problems
{
    public static IResult BadRequest(string detail, string title = "The request is not valid") =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: title);

    public static IResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static IResult Conflict(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict");

    public static IResult TooLarge(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status413PayloadTooLarge, title: "The request is too large");

    public static IResult Unauthorized(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "An API key is needed");

    public static IResult Forbidden(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status403Forbidden, title: "Forbidden");

    public static IResult TooManyRequests(string detail, int retryAfterSeconds) =>
        new RetryAfterResult(TypedResults.Problem(detail, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests"), retryAfterSeconds);

    public static IResult Unavailable(string detail, int retryAfterSeconds) =>
        new RetryAfterResult(TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Try again later"), retryAfterSeconds);

    /// <summary>422 with every rule error, each with its line, column, code and message.</summary>
    public static IResult InvalidRule(IReadOnlyList<RuleDiagnostic> errors) =>
        TypedResults.Problem(
            detail: string.Join("; ", errors.Select(e => e.ToString())),
            statusCode: StatusCodes.Status422UnprocessableEntity,
            title: "The rule is not valid",
            extensions: new Dictionary<string, object?>
            {
                ["errors"] = errors.Select(e => new { line = e.Line, column = e.Column, code = e.Code, message = e.Message }).ToArray(),
            });

    private sealed class RetryAfterResult(IResult inner, int seconds) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return inner.ExecuteAsync(httpContext);
        }
    }
}

/// <summary>A request body read into a pooled buffer; dispose it to give the buffer back.</summary>
internal readonly struct RequestBody(byte[] buffer, int length) : IDisposable
{
    /// <summary>
    /// Buffers for request bodies, apart from the shared pool: that one keeps an array per size in every thread that
    /// used one, which after a burst of large bodies holds megabytes per thread for good. This pool keeps at most 8
    /// arrays of each size up to 1 MiB (about 16 MiB in all); a larger body gets an array of its own, which the GC
    /// reclaims once the request is done.
    /// </summary>
    public static readonly System.Buffers.ArrayPool<byte> Pool = System.Buffers.ArrayPool<byte>.Create(1024 * 1024, 8);

    public ReadOnlyMemory<byte> Memory => buffer.AsMemory(0, length);

    public void Dispose() => Pool.Return(buffer);
}

/// <summary>Reads JSON request bodies, turning every way they can be wrong into a 4xx.</summary>
internal static class JsonBody
{
    /// <summary>
    /// Reads the whole body, at most <paramref name="maxBytes"/>, into a pooled buffer. Only JSON is taken
    /// (<c>application/json</c>, with parameters such as charset, or any <c>+json</c> type): a request without a
    /// content type is refused too, since a cross-site page may send such a request without asking first.
    /// </summary>
    public static async Task<(RequestBody Body, IResult? Problem)> ReadBytesAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (UnsupportedType(request) is { } unsupported)
        {
            return (default, unsupported);
        }

        if (request.ContentLength > maxBytes)
        {
            return (default, TooLarge(maxBytes));
        }

        var pool = RequestBody.Pool;
        var buffer = pool.Rent((int)Math.Clamp(request.ContentLength ?? 4096, 256, maxBytes + 1L));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = pool.Rent(Math.Min(buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    pool.Return(buffer);
                    buffer = larger;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return (new RequestBody(buffer, length), null);
                }

                length += read;
                if (length > maxBytes)
                {
                    pool.Return(buffer);
                    return (default, TooLarge(maxBytes));
                }
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            pool.Return(buffer);
            return (default, TooLarge(maxBytes));
        }
        catch
        {
            pool.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// Reads a JSON document, at most <paramref name="maxBytes"/>, whose every name and string is valid Unicode;
    /// keys repeated in one object are left to the caller, which knows where they matter.
    /// </summary>
    public static async Task<(System.Text.Json.JsonDocument? Document, IResult? Problem)> ReadAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        var (body, problem) = await ReadBytesAsync(request, maxBytes, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return (null, problem);
        }

        using (body)
        {
            try
            {
                var document = System.Text.Json.JsonDocument.Parse(body.Memory.ToArray(), new System.Text.Json.JsonDocumentOptions { MaxDepth = 64 });
                if (Silo.Contracts.EventParser.FindInvalidText(body.Memory.Span, rejectDuplicates: false) is { } invalid)
                {
                    document.Dispose();
                    return (null, Problems.BadRequest(invalid, "The request is not valid"));
                }

                return (document, null);
            }
            catch (System.Text.Json.JsonException e)
            {
                var where = e.LineNumber is { } line ? $" at line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}" : string.Empty;
                return (null, Problems.BadRequest($"The body is not valid JSON{where}.", "Malformed JSON"));
            }
        }
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult? UnsupportedType(HttpRequest request)
    {
        var type = request.ContentType;
        if (type is not null && Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var media)
            && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        return TypedResults.Problem(type is null
                ? "Send JSON with Content-Type: application/json; a request without a content type is not accepted."
                : $"Send JSON with Content-Type: application/json, not {type}.",
            statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type");
    }

    private static IResult TooLarge(long maxBytes) =>
        Problems.TooLarge($"The body is larger than the limit of {maxBytes} bytes.");
}
