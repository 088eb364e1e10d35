using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Audience.Api.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Audience.Api.Tests;

/// <summary>
/// The API's contract: the OpenAPI document at /openapi/v1.json, compared with the committed snapshot
/// (OpenApi/openapi.v1.json) so that a change to it is seen and meant; and checks that keep it typed, so a handler that
/// goes back to an untyped answer fails here.
/// </summary>
public sealed class OpenApiSnapshotTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    /// <summary>Set to 1 to rewrite the snapshot with the document the service serves now.</summary>
    private const string AcceptVariable = "AUDIENCE_ACCEPT_OPENAPI";

    [Fact]
    public async Task OpenApiDocument_ComparedWithTheSnapshot_IsUnchanged()
    {
        var actual = Normalize(await factory.Http.GetStringAsync("/openapi/v1.json"));
        var path = SnapshotPath();
        if (Environment.GetEnvironmentVariable(AcceptVariable) == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, actual);
            return;
        }

        var how = $"If the change is intended, accept it: {AcceptVariable}=1 dotnet test tests/Audience.Api.Tests --filter OpenApiSnapshotTests, "
            + "then review and commit tests/Audience.Api.Tests/OpenApi/openapi.v1.json.";
        Assert.True(File.Exists(path), $"There is no OpenAPI snapshot at {path}. {how}");
        var expected = (await File.ReadAllTextAsync(path)).ReplaceLineEndings("\n");
        if (expected != actual)
        {
            Assert.Fail($"The OpenAPI document differs from the snapshot ('-' the snapshot, '+' the service now):\n{LineDiff.Describe(expected, actual)}\n{how}");
        }
    }

    [Fact]
    public async Task OpenApiDocument_EveryOperation_DescribesItsBodiesAndErrors()
    {
        using var document = JsonDocument.Parse(await factory.Http.GetStringAsync("/openapi/v1.json"));
        var problems = new List<string>();
        var operations = 0;
        foreach (var path in document.RootElement.GetProperty("paths").EnumerateObject())
        {
            foreach (var operation in path.Value.EnumerateObject())
            {
                operations++;
                var name = $"{operation.Name.ToUpperInvariant()} {path.Name}";
                var responses = operation.Value.GetProperty("responses").EnumerateObject().ToList();
                if (!responses.Any(r => r.Name.StartsWith('2')))
                {
                    problems.Add($"{name}: no 2xx answer");
                }

                foreach (var response in responses)
                {
                    var status = int.Parse(response.Name, System.Globalization.CultureInfo.InvariantCulture);
                    var schemas = response.Value.TryGetProperty("content", out var content)
                        ? content.EnumerateObject().ToDictionary(c => c.Name, c => c.Value.TryGetProperty("schema", out var s) ? s : default)
                        : [];
                    if (status == StatusCodes.Status204NoContent)
                    {
                        if (schemas.Count > 0)
                        {
                            problems.Add($"{name}: 204 with a body");
                        }
                    }
                    else if (status < 300)
                    {
                        if (schemas.Count == 0 || schemas.Values.Any(s => s.ValueKind != JsonValueKind.Object || !s.EnumerateObject().Any()))
                        {
                            problems.Add($"{name}: {status} without a body's schema");
                        }
                    }
                    // /health/ready answers its report, the same as on 200, when it is not ready: a probe reads the
                    // status, an operator the report.
                    else if (path.Name != "/health/ready"
                        && (schemas.Count != 1 || !schemas.TryGetValue("application/problem+json", out var problem)
                            || problem.ValueKind != JsonValueKind.Object || !problem.TryGetProperty("$ref", out var reference)
                            || reference.GetString() != "#/components/schemas/ProblemDetails"))
                    {
                        problems.Add($"{name}: {status} is not described as a ProblemDetails (application/problem+json)");
                    }
                }

                if (operation.Name is "post" or "put" && path.Name.StartsWith("/api/", StringComparison.Ordinal)
                    && !(operation.Value.TryGetProperty("requestBody", out var body)
                        && body.GetProperty("content").TryGetProperty("application/json", out var json)
                        && json.GetProperty("schema") is var schema
                        && (schema.TryGetProperty("$ref", out _) || (schema.TryGetProperty("items", out var items) && items.TryGetProperty("$ref", out _)))))
                {
                    problems.Add($"{name}: its body is not described by a type");
                }

                if (path.Name.StartsWith("/api/", StringComparison.Ordinal)
                    && !(responses.Any(r => r.Name == "401") && responses.Any(r => r.Name == "403")))
                {
                    problems.Add($"{name}: the access layer's 401 and 403 are not described");
                }
            }
        }

        Assert.True(operations >= 25, $"only {operations} operations in the document");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void JsonContext_EveryBodyTheEndpointsDeclare_IsSourceGenerated()
    {
        // Ahead of the reflection-based resolver, which stays behind it for what the framework writes of its own.
        var chain = factory.Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions.TypeInfoResolverChain.ToList();
        var generated = chain.FindIndex(r => r is ApiJsonContext);
        var reflection = chain.FindIndex(r => r is System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver);
        Assert.True(generated >= 0 && (reflection < 0 || generated < reflection), "resolvers: " + string.Join(", ", chain.Select(r => r.GetType().Name)));

        var types = new HashSet<Type>();
        foreach (var endpoint in factory.Services.GetRequiredService<EndpointDataSource>().Endpoints)
        {
            types.UnionWith(endpoint.Metadata.OfType<IProducesResponseTypeMetadata>().Select(m => m.Type).OfType<Type>());
            types.UnionWith(endpoint.Metadata.OfType<IAcceptsMetadata>().Select(m => m.RequestType).OfType<Type>());
        }

        // ProblemDetails is written by ASP.NET Core's own ProblemDetails writer.
        types.Remove(typeof(ProblemDetails));
        types.Remove(typeof(void));
        Assert.Contains(typeof(SegmentsApi.SegmentResponse), types);
        var missing = types.Where(t => ApiJsonContext.Default.GetTypeInfo(t) is null).Select(t => t.FullName).ToList();
        Assert.True(missing.Count == 0, "not in ApiJsonContext: " + string.Join(", ", missing));
    }

    private static string SnapshotPath([CallerFilePath] string source = "") =>
        Path.Combine(Path.GetDirectoryName(source)!, "OpenApi", "openapi.v1.json");

    /// <summary>
    /// Stable text: indented, paths and components sorted by name (their order follows the order endpoints and types
    /// are met, which says nothing about the contract), without <c>servers</c> (the test host's address).
    /// </summary>
    private static string Normalize(string json)
    {
        var root = JsonNode.Parse(json)!.AsObject();
        root.Remove("servers");
        Sort(root, "paths");
        if (root["components"] is JsonObject components)
        {
            foreach (var name in components.Select(c => c.Key).ToList())
            {
                Sort(components, name);
            }
        }

        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        return root.ToJsonString(options).ReplaceLineEndings("\n") + "\n";
    }

    private static void Sort(JsonObject parent, string name)
    {
        if (parent[name] is not JsonObject map)
        {
            return;
        }

        var entries = map.OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        map.Clear();
        var sorted = new JsonObject();
        foreach (var (key, value) in entries)
        {
            sorted[key] = value;
        }

        parent[name] = sorted;
    }

    /// <summary>A line diff, as '-' and '+' lines with a few of context, for a failure message.</summary>
    private static class LineDiff
    {
        private const int Context = 3;
        private const int MaxLines = 150;

        public static string Describe(string expected, string actual)
        {
            var a = expected.Split('\n');
            var b = actual.Split('\n');
            var prefix = 0;
            while (prefix < a.Length && prefix < b.Length && a[prefix] == b[prefix])
            {
                prefix++;
            }

            var suffix = 0;
            while (suffix < a.Length - prefix && suffix < b.Length - prefix && a[^(suffix + 1)] == b[^(suffix + 1)])
            {
                suffix++;
            }

            // A longest common subsequence of the lines between the common prefix and suffix.
            var n = a.Length - prefix - suffix;
            var m = b.Length - prefix - suffix;
            var lcs = new int[n + 1, m + 1];
            for (var i = n - 1; i >= 0; i--)
            {
                for (var j = m - 1; j >= 0; j--)
                {
                    lcs[i, j] = a[prefix + i] == b[prefix + j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
                }
            }

            var lines = new List<(char Kind, int Line, string Text)>();
            for (var k = Math.Max(0, prefix - Context); k < prefix; k++)
            {
                lines.Add((' ', k + 1, a[k]));
            }

            var (x, y) = (0, 0);
            while (x < n || y < m)
            {
                if (x < n && y < m && a[prefix + x] == b[prefix + y])
                {
                    lines.Add((' ', prefix + x + 1, a[prefix + x]));
                    (x, y) = (x + 1, y + 1);
                }
                else if (y < m && (x == n || lcs[x, y + 1] >= lcs[x + 1, y]))
                {
                    lines.Add(('+', prefix + y + 1, b[prefix + y]));
                    y++;
                }
                else
                {
                    lines.Add(('-', prefix + x + 1, a[prefix + x]));
                    x++;
                }
            }

            for (var k = a.Length - suffix; k < Math.Min(a.Length, a.Length - suffix + Context); k++)
            {
                lines.Add((' ', k + 1, a[k]));
            }

            // Changed lines with their context; long runs of unchanged lines between changes are cut.
            var keep = new bool[lines.Count];
            for (var i = 0; i < lines.Count; i++)
            {
                if (lines[i].Kind != ' ')
                {
                    for (var j = Math.Max(0, i - Context); j <= Math.Min(lines.Count - 1, i + Context); j++)
                    {
                        keep[j] = true;
                    }
                }
            }

            var text = new StringBuilder();
            var written = 0;
            for (var i = 0; i < lines.Count && written < MaxLines; i++)
            {
                if (!keep[i])
                {
                    if (i > 0 && keep[i - 1])
                    {
                        text.AppendLine("  ...");
                    }

                    continue;
                }

                text.Append(lines[i].Kind).Append(' ').Append(lines[i].Line.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(5))
                    .Append(": ").AppendLine(lines[i].Text);
                written++;
            }

            if (written == MaxLines)
            {
                text.AppendLine($"  ... ({lines.Count(l => l.Kind != ' ')} changed lines in all)");
            }

            return text.ToString();
        }
    }
}
