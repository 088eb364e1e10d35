using System.Text.Json.Serialization;
using Audience.Api.Access;
using Audience.Silo.Hosting;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Audience.Api.Features;

/// <summary>
/// The OpenAPI document at <c>/openapi/v1.json</c>: what the endpoints' typed results, request types and summaries
/// describe, with what the framework cannot see from them: the API key scheme and the scopes each operation needs,
/// the <c>Location</c> and <c>Retry-After</c> headers, and the health-check and metrics endpoints. The snapshot test
/// (tests/Audience.Api.Tests/OpenApiSnapshotTests.cs) fails on any change to it until the snapshot is accepted.
/// </summary>
internal static class ApiDocument
{
    private const string KeyScheme = "ApiKey";

    public static IServiceCollection AddAudienceOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(options =>
        {
            options.AddDocumentTransformer(DescribeAsync);
            options.AddDocumentTransformer(DescribeReadinessAsync);
            options.AddOperationTransformer(DescribeOperation);
            options.AddSchemaTransformer(LeaveOutOmittedNulls);
            options.AddSchemaTransformer(NumbersAsNumbers);
        });

    private static Task DescribeAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "Audience API";
        document.Info.Description = "Real-time audience segmentation: events in, segments and campaigns authored, memberships and notifications out. "
            + "Every error is a ProblemDetails (application/problem+json).";
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[KeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            Name = ApiKeys.Header,
            In = ParameterLocation.Header,
            Description = "A key configured by its SHA-256 (Security:ApiKeys), with the scopes ingest, read or admin (admin holds every scope). "
                + "With no key configured, the API answers only connections from the same machine, with every scope.",
        };

        var metrics = new OpenApiOperation
        {
            OperationId = "Metrics",
            Summary = "Prometheus text: the audience_* series, Orleans', ASP.NET Core's and the runtime's (docs/operations.md#metrics).",
            Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
            Responses = new OpenApiResponses
            {
                ["200"] = new OpenApiResponse
                {
                    Description = "The metrics in Prometheus' text format.",
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["text/plain"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String } },
                    },
                },
            },
        };
        var path = new OpenApiPathItem();
        path.AddOperation(HttpMethod.Get, metrics);
        document.Paths.Add("/metrics", path);
        return Task.CompletedTask;
    }

    /// <summary>
    /// The scopes the operation's policies ask for (admin holds them all); each answer's description (the framework
    /// gives only the status's name) and headers; the answers in the order of their statuses.
    /// </summary>
    private static Task DescribeOperation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var scopes = metadata.OfType<IAuthorizeData>().Select(a => a.Policy).OfType<string>().Distinct().ToList();
        if (scopes.Count > 0)
        {
            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(KeyScheme, context.Document)] = scopes });
        }

        if (operation.Responses is not { } responses)
        {
            return Task.CompletedTask;
        }

        var ordered = responses.OrderBy(r => r.Key, StringComparer.Ordinal).ToList();
        responses.Clear();
        foreach (var (status, response) in ordered)
        {
            responses.Add(status, response);
            if (response is not OpenApiResponse answer)
            {
                continue;
            }

            // One status may be described by several sources (the access layer, a group, the handler's results).
            var descriptions = metadata.OfType<IProducesResponseTypeMetadata>()
                .Where(m => m.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture) == status && m.Description is not null)
                .Select(m => m.Description!).Distinct().ToList();
            if (descriptions.Count > 0)
            {
                answer.Description = string.Join(" Or: ", descriptions);
            }

            switch (status)
            {
                case "201":
                    Header(answer, "Location", "The path of what was created.", JsonSchemaType.String);
                    break;
                case "429":
                    Header(answer, "Retry-After", "Seconds to wait before trying again.", JsonSchemaType.Integer);
                    break;
                case "503":
                    Header(answer, "Retry-After", "Seconds to wait before trying again, when the service knows.", JsonSchemaType.Integer);
                    break;
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// A property the answer leaves out when it is null (<c>JsonIgnoreCondition.WhenWritingNull</c>) is not required,
    /// whatever its place in the record's constructor.
    /// </summary>
    private static Task LeaveOutOmittedNulls(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.JsonPropertyInfo is null && schema.Required is { Count: > 0 } required)
        {
            foreach (var property in context.JsonTypeInfo.Properties)
            {
                if (property.AttributeProvider?.GetCustomAttributes(typeof(JsonIgnoreAttribute), inherit: true)
                    .OfType<JsonIgnoreAttribute>().Any(i => i.Condition == JsonIgnoreCondition.WhenWritingNull) == true)
                {
                    required.Remove(property.Name);
                }
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// A number is a number: ASP.NET Core's JSON options would read one from a string too (web defaults), which the
    /// framework describes as "integer or string, with this pattern"; but the API writes numbers, and reads its bodies
    /// itself, taking numbers only.
    /// </summary>
    private static Task NumbersAsNumbers(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (schema.Type is { } type && (type & (JsonSchemaType.Integer | JsonSchemaType.Number)) != 0 && (type & JsonSchemaType.String) != 0)
        {
            schema.Type = type & ~JsonSchemaType.String;
            schema.Pattern = null;
        }

        return Task.CompletedTask;
    }

    private static void Header(OpenApiResponse response, string name, string description, JsonSchemaType type)
    {
        response.Headers ??= new Dictionary<string, IOpenApiHeader>();
        response.Headers[name] = new OpenApiHeader { Description = description, Schema = new OpenApiSchema { Type = type } };
    }

    /// <summary>
    /// Describes <c>/health/ready</c> in the OpenAPI document: a health-check endpoint, not a route handler, it is not
    /// described by the framework.
    /// </summary>
    private static async Task DescribeReadinessAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        var schema = await context.GetOrCreateSchemaAsync(typeof(ReadinessResponse), null, cancellationToken).ConfigureAwait(false);
        document.AddComponent(nameof(ReadinessResponse), schema);
        OpenApiResponse Answer(string description) => new()
        {
            Description = description,
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new() { Schema = new OpenApiSchemaReference(nameof(ReadinessResponse), document) },
            },
        };

        var operation = new OpenApiOperation
        {
            OperationId = "Readiness",
            Summary = "Whether this process can serve: each check of docs/operations.md#health, answered from state kept up to date elsewhere.",
            Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
            Responses = new OpenApiResponses
            {
                ["200"] = Answer("Ready, or degraded (Kafka mode without a silo: events are taken, queries answer 503)."),
                ["503"] = Answer("Not ready: a check is unhealthy; its description says why."),
            },
        };
        var path = new OpenApiPathItem();
        path.AddOperation(HttpMethod.Get, operation);
        document.Paths.Add("/health/ready", path);
    }
}
