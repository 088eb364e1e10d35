using System.Reflection;
using Audience.Rules.Syntax;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;

namespace Audience.Api.Features;

/// <summary>
/// ProblemDetails for every error the API returns, so clients see one shape. The errors of handlers are typed by their
/// status (<see cref="NotFoundProblem"/>, ...), so that a handler's <c>Results&lt;...&gt;</c> names each status it may
/// answer and the OpenAPI document describes it; every one is written by <see cref="ProblemHttpResult"/>, through the
/// ProblemDetails service (<c>application/problem+json</c>, with the <c>traceId</c>).
/// </summary>
internal static class Problems
{
    /// <summary>A problem with the query string or the route.</summary>
    public static BadRequestProblem BadRequest(string detail, string title = "The request is not valid") =>
        new(Problem(detail, StatusCodes.Status400BadRequest, title));

    /// <summary>A problem with the request body: malformed, or a field that is not valid.</summary>
    public static BodyProblem InvalidBody(string detail, string title = "The request is not valid", IDictionary<string, object?>? extensions = null) =>
        new(Problem(detail, StatusCodes.Status400BadRequest, title, extensions));

    public static NotFoundProblem NotFound(string detail) =>
        new(Problem(detail, StatusCodes.Status404NotFound, "Not found"));

    public static ConflictProblem Conflict(string detail) =>
        new(Problem(detail, StatusCodes.Status409Conflict, "Conflict"));

    public static BodyProblem TooLarge(string detail) =>
        new(Problem(detail, StatusCodes.Status413PayloadTooLarge, "The request is too large"));

    public static BodyProblem UnsupportedMediaType(string detail) =>
        new(Problem(detail, StatusCodes.Status415UnsupportedMediaType, "Unsupported media type"));

    public static IResult Unauthorized(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "An API key is needed");

    public static IResult Forbidden(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status403Forbidden, title: "Forbidden");

    public static IResult TooManyRequests(string detail, int retryAfterSeconds) =>
        new RetryAfterResult(TypedResults.Problem(detail, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests"), retryAfterSeconds);

    /// <summary>503: an outage to wait out; with <c>Retry-After</c> when <paramref name="retryAfterSeconds"/> is given.</summary>
    public static UnavailableProblem Unavailable(string detail, int? retryAfterSeconds, string title = "Try again later") =>
        new(Problem(detail, StatusCodes.Status503ServiceUnavailable, title), retryAfterSeconds);

    /// <summary>422 with every rule error, each with its line, column, code and message.</summary>
    public static UnprocessableProblem InvalidRule(IReadOnlyList<RuleDiagnostic> errors) =>
        new(Problem(
            string.Join("; ", errors.Select(e => e.ToString())),
            StatusCodes.Status422UnprocessableEntity,
            "The rule is not valid",
            new Dictionary<string, object?> { ["errors"] = errors.Select(e => new RuleError(e.Line, e.Column, e.Code, e.Message)).ToArray() }));

    /// <summary>422 with the reasons a body that reads well cannot be taken, as a list of texts.</summary>
    public static UnprocessableProblem Unprocessable(IReadOnlyList<string> errors, string title) =>
        new(Problem(string.Join(" ", errors), StatusCodes.Status422UnprocessableEntity, title,
            new Dictionary<string, object?> { ["errors"] = errors.ToArray() }));

    /// <summary>
    /// Describes the 503 the exception handler (Program.cs) answers for a store or the silo cluster that does not
    /// answer, on endpoints that reach them.
    /// </summary>
    public static TBuilder ProducesUnavailable<TBuilder>(this TBuilder endpoint)
        where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status503ServiceUnavailable, typeof(ProblemDetails), ["application/problem+json"])
        {
            Description = "A store or the silo cluster does not answer (starting, or an outage); try again.",
        });

    private static ProblemHttpResult Problem(string detail, int status, string title, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: status, title: title, extensions: extensions);

    /// <summary>One error of a rule, in a 422's <c>errors</c>.</summary>
    public sealed record RuleError(int Line, int Column, string Code, string Message);

    private sealed class RetryAfterResult(IResult inner, int seconds) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return inner.ExecuteAsync(httpContext);
        }
    }
}

/// <summary>
/// A ProblemDetails answer whose possible statuses are given by its type, for <c>Results&lt;...&gt;</c>: each subclass
/// describes its statuses in the endpoint's metadata, as <c>application/problem+json</c> with the ProblemDetails schema.
/// </summary>
public abstract class ProblemResult : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<ProblemDetails>, IContentTypeHttpResult
{
    private readonly ProblemHttpResult _problem;

    private protected ProblemResult(ProblemHttpResult problem) => _problem = problem;

    public ProblemDetails Value => _problem.ProblemDetails;

    object? IValueHttpResult.Value => Value;

    public int? StatusCode => _problem.StatusCode;

    public string ContentType => _problem.ContentType;

    public virtual Task ExecuteAsync(HttpContext httpContext) => _problem.ExecuteAsync(httpContext);

    /// <summary>Describes a ProblemDetails answer of <paramref name="status"/>, saying when it is given.</summary>
    internal static void Describe(EndpointBuilder builder, int status, string description) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), ["application/problem+json"]) { Description = description });
}

/// <summary>400: a query string parameter is not valid.</summary>
public sealed class BadRequestProblem : ProblemResult, IEndpointMetadataProvider
{
    internal BadRequestProblem(ProblemHttpResult problem)
        : base(problem)
    {
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        Describe(builder, StatusCodes.Status400BadRequest, "A parameter is not valid.");
}

/// <summary>400, 413 or 415: the request body is malformed or not valid, too large, or not JSON.</summary>
public sealed class BodyProblem : ProblemResult, IEndpointMetadataProvider
{
    internal BodyProblem(ProblemHttpResult problem)
        : base(problem)
    {
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder)
    {
        Describe(builder, StatusCodes.Status400BadRequest, "The body is malformed or not valid; the detail names the field.");
        Describe(builder, StatusCodes.Status413PayloadTooLarge, "The body is larger than the endpoint's limit.");
        Describe(builder, StatusCodes.Status415UnsupportedMediaType, "The body is not sent as JSON (Content-Type: application/json).");
    }
}

/// <summary>404: what the route names does not exist.</summary>
public sealed class NotFoundProblem : ProblemResult, IEndpointMetadataProvider
{
    internal NotFoundProblem(ProblemHttpResult problem)
        : base(problem)
    {
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        Describe(builder, StatusCodes.Status404NotFound, "Not found; the detail says what.");
}

/// <summary>409: the request conflicts with what exists (an id taken, a segment still used).</summary>
public sealed class ConflictProblem : ProblemResult, IEndpointMetadataProvider
{
    internal ConflictProblem(ProblemHttpResult problem)
        : base(problem)
    {
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        Describe(builder, StatusCodes.Status409Conflict, "Conflicts with what exists: an id taken, or still used by others.");
}

/// <summary>422: the body reads well but cannot be taken: a rule's errors (each with line and column) or a campaign's.</summary>
public sealed class UnprocessableProblem : ProblemResult, IEndpointMetadataProvider
{
    internal UnprocessableProblem(ProblemHttpResult problem)
        : base(problem)
    {
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        Describe(builder, StatusCodes.Status422UnprocessableEntity,
            "Not valid: 'errors' lists each rule error as {line, column, code, message}, or each campaign error as a text.");
}

/// <summary>503: an outage to wait out, with <c>Retry-After</c> when the service knows how long.</summary>
public sealed class UnavailableProblem : ProblemResult, IEndpointMetadataProvider
{
    private readonly int? _retryAfterSeconds;

    internal UnavailableProblem(ProblemHttpResult problem, int? retryAfterSeconds)
        : base(problem) => _retryAfterSeconds = retryAfterSeconds;

    public override Task ExecuteAsync(HttpContext httpContext)
    {
        if (_retryAfterSeconds is { } seconds)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return base.ExecuteAsync(httpContext);
    }

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        Describe(builder, StatusCodes.Status503ServiceUnavailable, "Unavailable for now; the detail says why. Try again, after Retry-After when given.");
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
    public static async Task<(RequestBody Body, BodyProblem? Problem)> ReadBytesAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
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
    public static async Task<(System.Text.Json.JsonDocument? Document, BodyProblem? Problem)> ReadAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
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
                    return (null, Problems.InvalidBody(invalid, "The request is not valid"));
                }

                return (document, null);
            }
            catch (System.Text.Json.JsonException e)
            {
                var where = e.LineNumber is { } line ? $" at line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}" : string.Empty;
                return (null, Problems.InvalidBody($"The body is not valid JSON{where}.", "Malformed JSON"));
            }
        }
    }

    private static BodyProblem? UnsupportedType(HttpRequest request)
    {
        var type = request.ContentType;
        if (type is not null && Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var media)
            && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        return Problems.UnsupportedMediaType(type is null
            ? "Send JSON with Content-Type: application/json; a request without a content type is not accepted."
            : $"Send JSON with Content-Type: application/json, not {type}.");
    }

    private static BodyProblem TooLarge(long maxBytes) =>
        Problems.TooLarge($"The body is larger than the limit of {maxBytes} bytes.");
}
