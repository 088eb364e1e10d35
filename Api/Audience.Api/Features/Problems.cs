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

/// <summary>Reads a JSON request body into a document, turning every way it can be wrong into a 4xx.</summary>
internal static class JsonBody
{
    public static async Task<(System.Text.Json.JsonDocument? Document, IResult? Problem)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentType is { } type && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) && !type.Contains("+json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, TypedResults.Problem($"Send JSON with Content-Type: application/json, not {type}.", statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type"));
        }

        try
        {
            var document = await System.Text.Json.JsonDocument.ParseAsync(request.Body,
                new System.Text.Json.JsonDocumentOptions { MaxDepth = 32 }, cancellationToken).ConfigureAwait(false);
            return (document, null);
        }
        catch (System.Text.Json.JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}" : string.Empty;
            return (null, Problems.BadRequest($"The body is not valid JSON{where}.", "Malformed JSON"));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problems.TooLarge($"The body is larger than the limit of {request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes."));
        }
    }
}
