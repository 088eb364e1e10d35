using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Audience.Api.Access;
using Audience.Silo.Hosting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Audience.Api.Tests;

/// <summary>The service with API keys configured: one per scope, and a rate-limited one.</summary>
public sealed class KeyedAudience : IDisposable
{
    public const string IngestKey = "ingest-key-5f0c1d";
    public const string ReadKey = "read-key-9a3e77";
    public const string AdminKey = "admin-key-c41b02";
    public const string LimitedKey = "limited-key-77e0aa";

    public KeyedAudience()
    {
        var settings = KeySettings();
        settings["Security:Cors:Origins:0"] = "https://app.example.com";
        // Everything ASP.NET Core logs, authentication's debug lines included, goes to Logs.
        settings["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
        Factory = new AudienceFactory(settings, services => services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(Logs));
    }

    public AudienceFactory Factory { get; }

    public CapturedLogs Logs { get; } = new();

    /// <summary>The four keys: one per scope, and one for ingestion limited to 2 requests per second.</summary>
    public static Dictionary<string, string> KeySettings()
    {
        var settings = new Dictionary<string, string>();
        Add(settings, 0, "ingester", IngestKey, ["ingest"]);
        Add(settings, 1, "reader", ReadKey, ["read"]);
        Add(settings, 2, "operator", AdminKey, ["admin"]);
        Add(settings, 3, "limited", LimitedKey, ["ingest"]);
        settings["Security:ApiKeys:3:RequestsPerSecond"] = "2";
        return settings;
    }

    public static string Sha256(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    public HttpClient Client(string? key)
    {
        var http = Factory.CreateClient();
        if (key is not null)
        {
            http.DefaultRequestHeaders.Add("X-API-Key", key);
        }

        return http;
    }

    public void Dispose() => Factory.Dispose();

    private static void Add(Dictionary<string, string> settings, int index, string name, string key, string[] scopes)
    {
        var at = $"Security:ApiKeys:{index}:";
        settings[at + "Name"] = name;
        settings[at + "Sha256"] = Sha256(key);
        for (var i = 0; i < scopes.Length; i++)
        {
            settings[at + "Scopes:" + i] = scopes[i];
        }
    }
}

/// <summary>Every log line, with its properties and exception, as text.</summary>
public sealed class CapturedLogs : Microsoft.Extensions.Logging.ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs logs, string category) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            logs._lines.Enqueue($"{category} scope: {Describe(state)}");
            return null;
        }

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            logs._lines.Enqueue($"{category} {eventId.Id}: {formatter(state, exception)} {Describe(state)} {exception}");

        private static string Describe(object? state) =>
            state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join("; ", pairs.Select(p => $"{p.Key}={p.Value}")) : $"{state}";
    }
}

public sealed class KeysTests(KeyedAudience audience) : IClassFixture<KeyedAudience>
{
    private const string Event = """{"userId":"u-keys","eventType":"page_view"}""";

    [Fact]
    public async Task Request_WithoutKey_Is401WithAHint()
    {
        using var http = audience.Client(null);

        using var response = await http.GetAsync("/api/segments");

        await AssertProblem(response, HttpStatusCode.Unauthorized, "X-API-Key");
        Assert.Equal("ApiKey header=\"X-API-Key\"", response.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task Request_WithUnknownKey_Is401()
    {
        using var http = audience.Client("not-a-key-we-know");

        using var response = await http.PostJson("/api/events", Event);

        var problem = await AssertProblem(response, HttpStatusCode.Unauthorized, "not known");
        Assert.DoesNotContain("not-a-key-we-know", problem, StringComparison.Ordinal);
        Assert.NotEmpty(response.Headers.WwwAuthenticate);
    }

    [Fact]
    public async Task IngestKey_ReadingAProfile_Is403NamingRead()
    {
        using var http = audience.Client(KeyedAudience.IngestKey);

        using var posted = await http.PostJson("/api/events", Event);
        using var response = await http.GetAsync("/api/users/u-keys/profile");

        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        await AssertProblem(response, HttpStatusCode.Forbidden, "'read'");
    }

    [Fact]
    public async Task ReadKey_CreatingASegment_Is403NamingAdmin()
    {
        using var http = audience.Client(KeyedAudience.ReadKey);

        using var listed = await http.GetAsync("/api/segments");
        using var created = await http.PostAsJsonAsync("/api/segments", new { name = "by reader", rule = "count(page_view within 7d) >= 1" });
        using var previewed = await http.PostAsJsonAsync("/api/segments/preview", new { rule = "count(page_view within 7d) >= 1" });
        using var ingested = await http.PostJson("/api/events", Event);
        using var erased = await http.DeleteAsync("/api/users/u-keys");

        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        await AssertProblem(created, HttpStatusCode.Forbidden, "'admin'");
        await AssertProblem(previewed, HttpStatusCode.Forbidden, "'admin'");
        await AssertProblem(erased, HttpStatusCode.Forbidden, "'admin'");
        await AssertProblem(ingested, HttpStatusCode.Forbidden, "'ingest'");
    }

    [Fact]
    public async Task AdminKey_CanDoEverything()
    {
        using var http = audience.Client(KeyedAudience.AdminKey);

        var segmentId = await http.CreateSegment(new { name = "admin viewers", rule = "count(page_view within 7d) >= 1" });
        await http.Send("u-admin", "page_view");
        using var batch = await http.PostJson("/api/events/batch", """[{"userId":"u-admin","eventType":"page_view"}]""");
        using var preview = await http.PostAsJsonAsync("/api/segments/preview", new { rule = "count(page_view within 7d) >= 1" });
        using var campaigns = await http.GetAsync("/api/campaigns");
        using var stream = await http.GetAsync("/api/changes", HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.Accepted, batch.StatusCode);
        Assert.Equal(HttpStatusCode.OK, preview.StatusCode);
        Assert.Equal(HttpStatusCode.OK, campaigns.StatusCode);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        await Http.Eventually(async () => (await http.SegmentsOf("u-admin")).Contains(segmentId), "u-admin joins the segment");
        using var deleted = await http.DeleteAsync($"/api/segments/{segmentId}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var erased = await http.DeleteAsync("/api/users/u-admin");
        Assert.Equal(HttpStatusCode.Accepted, erased.StatusCode);
    }

    [Fact]
    public async Task Key_OverItsRateLimit_Gets429WithRetryAfter()
    {
        using var http = audience.Client(KeyedAudience.LimitedKey);

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => http.PostJson("/api/events", Event)));

        var limited = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(limited);
        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.Accepted);
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.TooManyRequests, r.StatusCode.ToString()));
        Assert.True(limited[0].Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), limited[0].Headers.RetryAfter?.ToString());
        await AssertProblem(limited[0], HttpStatusCode.TooManyRequests, "'limited'");
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task OtherKeys_AreNotLimitedByAnotherKeysRate()
    {
        using var http = audience.Client(KeyedAudience.IngestKey);

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => http.PostJson("/api/events", Event)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public void EveryApiRoute_NeedsAScope_AndEveryChangeNeedsIngestOrAdmin()
    {
        var routes = ApiRoutes(audience.Factory);

        Assert.True(routes.Count >= 20, $"{routes.Count} routes");
        Assert.All(routes, r => Assert.True(r.Policies.Length > 0, $"{r.Method} {r.Path} needs no scope"));
        Assert.All(routes.Where(r => r.Method != "GET"), r => Assert.True(
            r.Policies.Contains(AccessScopes.Admin) || r.Policies.SequenceEqual([AccessScopes.Ingest]), $"{r.Method} {r.Path}: {string.Join(", ", r.Policies)}"));
    }

    [Fact]
    public async Task EveryApiRoute_WithAnAbsentOrRandomKey_Is401()
    {
        var random = new Random(14);
        using var none = audience.Client(null);
        foreach (var route in ApiRoutes(audience.Factory))
        {
            var path = System.Text.RegularExpressions.Regex.Replace(route.Path, "{[^}]+}", "x");
            var key = Convert.ToHexString(RandomNumberGenerator.GetBytes(random.Next(1, 40)));
            foreach (var withKey in new[] { false, true })
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), path)
                {
                    Content = route.Method == "GET" ? null : new StringContent(Event, Encoding.UTF8, "application/json"),
                };
                if (withKey)
                {
                    request.Headers.Add("X-API-Key", key);
                }

                using var response = await none.SendAsync(request);

                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{route.Method} {path}: {(int)response.StatusCode}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }
        }
    }

    [Fact]
    public async Task Keys_AreNeverLogged()
    {
        var keys = new[] { KeyedAudience.IngestKey, KeyedAudience.ReadKey, KeyedAudience.AdminKey, "a-wrong-key-3e8d" };
        foreach (var key in keys)
        {
            using var http = audience.Client(key);
            using var posted = await http.PostJson("/api/events", Event);
            using var read = await http.GetAsync("/api/segments");
        }

        Assert.Contains(audience.Logs.Lines, l => l.Contains("not known", StringComparison.Ordinal));
        Assert.All(audience.Logs.Lines, line => Assert.DoesNotContain(keys, key => line.Contains(key, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Cors_ConfiguredOrigin_IsAnsweredBeforeAnyKey_AndOthersAreNot()
    {
        using var http = audience.Client(null);

        using var allowed = await http.SendAsync(Preflight("https://app.example.com"));
        using var other = await http.SendAsync(Preflight("https://evil.example.net"));

        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal("https://app.example.com", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("X-API-Key", string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Headers")), StringComparison.OrdinalIgnoreCase);
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));

        static HttpRequestMessage Preflight(string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, "/api/events");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            request.Headers.Add("Access-Control-Request-Headers", "x-api-key,content-type");
            return request;
        }
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    [InlineData("/openapi/v1.json")]
    [InlineData("/swagger")]
    public async Task OpenEndpoints_NeedNoKey(string path)
    {
        using var http = audience.Client(null);

        using var response = await http.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("203.0.113.7", false)]
    [InlineData("::ffff:10.1.2.3", false)]
    [InlineData("fe80::1", false)]
    public async Task WithoutKeys_OnlyLoopbackIsLetIn(string remote, bool admitted)
    {
        var context = NewContext(new SecurityOptions(), IPAddress.Parse(remote));

        var result = await context.AuthenticateAsync();

        Assert.Equal(admitted, result.Succeeded);
        if (!admitted)
        {
            await context.ChallengeAsync();
            Assert.Equal(StatusCodes.Status403Forbidden, context.Response.StatusCode);
            Assert.StartsWith("application/problem+json", context.Response.ContentType, StringComparison.Ordinal);
            context.Response.Body.Position = 0;
            Assert.Contains("Security:ApiKeys", await new StreamReader(context.Response.Body).ReadToEndAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WithKeys_LoopbackAloneGrantsNothing()
    {
        var options = SecurityOptions.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Security:ApiKeys:0:Name"] = "only",
            ["Security:ApiKeys:0:Sha256"] = KeyedAudience.Sha256("k"),
            ["Security:ApiKeys:0:Scopes:0"] = "read",
        }).Build());
        var context = NewContext(options, IPAddress.Loopback);

        var result = await context.AuthenticateAsync();

        Assert.False(result.Succeeded);
    }

    [Theory]
    [InlineData("Security:ApiKeys:0:Sha256", "ABC")]
    [InlineData("Security:ApiKeys:0:Scopes:0", "write")]
    [InlineData("Security:ApiKeys:0:RequestsPerSecond", "0")]
    [InlineData("Security:MaxStreamSubscribers", "0")]
    public void Settings_ThatAreWrong_StopStartUpNamingTheKey(string key, string value)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Security:ApiKeys:0:Name"] = "k",
            ["Security:ApiKeys:0:Sha256"] = KeyedAudience.Sha256("k"),
            ["Security:ApiKeys:0:Scopes:0"] = "read",
            [key] = value,
        };

        var error = Assert.Throws<ConfigurationException>(() => SecurityOptions.Read(new ConfigurationBuilder().AddInMemoryCollection(settings).Build()));

        Assert.StartsWith(key.Split(":Scopes")[0], error.Key, StringComparison.Ordinal);
    }

    private static List<(string Method, string Path, string[] Policies)> ApiRoutes(AudienceFactory factory) =>
    [
        .. factory.Services.GetRequiredService<Microsoft.AspNetCore.Routing.EndpointDataSource>().Endpoints
            .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api", StringComparison.Ordinal) == true)
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                .Select(m => (m, e.RoutePattern.RawText!, e.Metadata.GetOrderedMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>()
                    .Select(a => a.Policy ?? "(default)").ToArray()))),
    ];

    private static DefaultHttpContext NewContext(SecurityOptions options, IPAddress remote)
    {
        var services = new ServiceCollection().AddLogging().AddProblemDetails().AddAudienceAccess(options).BuildServiceProvider();
        var context = new DefaultHttpContext { RequestServices = services };
        context.Connection.RemoteIpAddress = remote;
        context.Request.Path = "/api/segments";
        context.Response.Body = new MemoryStream();
        return context;
    }

    private static async Task<string> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string detailContains)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detailContains, text, StringComparison.Ordinal);
        return text;
    }
}

/// <summary>The bound on open Server-Sent Events streams (loopback mode, no keys).</summary>
public sealed class StreamBoundTests
{
    [Fact]
    public async Task Streams_OverTheBound_Get503_WhileOtherRequestsAreAnswered()
    {
        using var factory = new AudienceFactory(new Dictionary<string, string> { ["Security:MaxStreamSubscribers"] = "3" });
        var http = factory.Http;
        var open = new List<HttpResponseMessage>();
        foreach (var path in new[] { "/api/changes", "/api/notifications", "/api/changes" })
        {
            var stream = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            open.Add(stream);
        }

        using var refused = await http.GetAsync("/api/notifications", HttpCompletionOption.ResponseHeadersRead);
        using var ready = await http.GetAsync("/health/ready");
        using var segmentsRequest = new HttpRequestMessage(HttpMethod.Get, "/api/segments");
        segmentsRequest.Headers.Add("Origin", "https://app.example.com");
        using var segments = await http.SendAsync(segmentsRequest);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("Security:MaxStreamSubscribers", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.OK, segments.StatusCode);
        Assert.False(segments.Headers.Contains("Access-Control-Allow-Origin"), "no CORS headers unless origins are configured");

        // A stream that closes gives its place back.
        open[0].Dispose();
        await Http.Eventually(async () =>
        {
            var again = await http.GetAsync("/api/changes", HttpCompletionOption.ResponseHeadersRead);
            open.Add(again);
            return again.StatusCode == HttpStatusCode.OK;
        }, "a place frees up");
        foreach (var stream in open)
        {
            stream.Dispose();
        }
    }
}
