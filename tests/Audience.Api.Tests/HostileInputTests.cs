using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Audience.Api.Tests;

/// <summary>
/// Inputs a hostile or broken client sends: text that is not valid Unicode, repeated keys, missing content types,
/// oversized fields. Each gets a 4xx naming what is wrong, changes nothing, and leaves ingestion working.
/// </summary>
public sealed class HostileInputTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    private readonly HttpClient _http = factory.Http;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, byte[] body, string? contentType = "application/json")
    {
        using var content = new ByteArrayContent(body);
        if (contentType is not null)
        {
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var response = await _http.PostAsync(path, content, cancel.Token);
        return (response.StatusCode, await response.Json());
    }

    private Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json, string? contentType = "application/json") =>
        Post(path, Encoding.UTF8.GetBytes(json), contentType);

    /// <summary>A normal event still gets its 202, promptly: nothing before it broke ingestion.</summary>
    private async Task AssertIngestionWorks()
    {
        var (status, body) = await Post("/api/events", $$"""{"userId": "{{Unique("normal")}}", "eventType": "page_view"}""");
        Assert.True(status == HttpStatusCode.Accepted, body.ToString());
        var ready = await _http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Theory]
    [InlineData("""{"userId": "lone-1", "eventType": "x", "properties": {"p": "\ud800"}}""", "'properties.p' is not valid Unicode text")]
    [InlineData("""{"userId": "lone-2", "eventType": "x", "context": {"k": "a\udc00b"}}""", "'context.k' is not valid Unicode text")]
    [InlineData("""{"userId": "lone-3", "eventType": "x", "properties": {"list": [1, {"deep": "\ud83d"}]}}""", "'properties.list[1].deep' is not valid Unicode text")]
    [InlineData("""{"userId": "lone-4", "eventType": "x", "properties": {"\ud800": 1}}""", "A key in 'properties' is not valid Unicode text")]
    [InlineData("""{"userId": "\ud800", "eventType": "x"}""", "'userId' is not valid Unicode text")]
    [InlineData("""{"userId": "lone-5", "eventType": "\udfff"}""", "'eventType' is not valid Unicode text")]
    [InlineData("""{"userId": "lone-6", "eventType": "x", "eventId": "e\ud800"}""", "'eventId' is not valid Unicode text")]
    [InlineData("""{"userId": "dup-1", "userId": "dup-2", "eventType": "x"}""", "'userId' appears twice in the event")]
    [InlineData("""{"userId": " ", "eventType": "x"}""", "'userId' must hold a character other than white space")]
    [InlineData("""{"userId": "blank-type", "eventType": "\u00a0\t"}""", "'eventType' must be 1 to 128 printable characters")]
    [InlineData("""{"userId": "dup-3", "eventType": "purchase", "properties": {"amount": 5, "amount": 7}}""", "'properties.amount' appears twice")]
    [InlineData("""{"userId": "dup-4", "eventType": "x", "context": {"a": {"b": 1, "b": 2}}}""", "'context.a.b' appears twice")]
    [InlineData("""{"userId": "dup-5", "eventType": "x", "extra": {"\u0062": 1, "b": 2}}""", "'extra.b' appears twice")]
    public async Task Event_WithBadText_Gets400NamingTheField_AndIngestionGoesOn(string json, string detail)
    {
        var (status, body) = await Post("/api/events", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(detail, body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertIngestionWorks();
        foreach (var user in new[] { "lone-1", "lone-2", "lone-3", "lone-4", "lone-5", "lone-6", "dup-1", "dup-2", "dup-3", "dup-4", "dup-5" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/users/{user}/profile")).StatusCode);
        }
    }

    [Fact]
    public async Task Event_WithInvalidUtf8Bytes_Gets400()
    {
        // {"userId": "\xff\xfe", "eventType": "x"}
        byte[] json = [.. "{\"userId\": \""u8, 0xff, 0xfe, .. "\", \"eventType\": \"x\"}"u8];
        var (status, problem) = await Post("/api/events", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'userId' is not valid Unicode text", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        byte[] inProperty = [.. "{\"userId\": \"utf8-1\", \"eventType\": \"x\", \"properties\": {\"p\": \"a"u8, 0xc3, 0x28, .. "\"}}"u8];
        (status, problem) = await Post("/api/events", inProperty);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'properties.p' is not valid Unicode text", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/users/utf8-1/profile")).StatusCode);
        await AssertIngestionWorks();
    }

    [Fact]
    public async Task Batch_WithBadItems_RejectsThoseItems_AndKeepsTheGoodOnes()
    {
        var good = Unique("good");
        var bigString = new string('a', 9 * 1024);
        var bigEvent = "{" + string.Join(", ", Enumerable.Range(0, 6).Select(i => $"\"p{i}\": \"{new string('b', 6000)}\"")) + "}";
        var deep = """{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}""";
        var batch = $$$"""
            [
              {"userId": "{{{good}}}", "eventType": "x"},
              {"userId": "c", "eventType": "x", "context": {"k": "\udc00"}},
              {"userId": "\ud800", "eventType": "x"},
              {"userId": "d", "userId": "e", "eventType": "x"},
              {"userId": "f", "eventType": "x", "properties": {"s": "{{{bigString}}}"}},
              {"userId": "g", "eventType": "x", "properties": {{{bigEvent}}}},
              {"userId": "h", "eventType": "x", "properties": {{{deep}}}},
              {"userId": "{{{good}}}", "eventType": "y"}
            ]
            """;
        var (status, body) = await Post("/api/events/batch", batch);
        Assert.True(status == HttpStatusCode.Accepted, body.ToString());
        Assert.Equal(2, body.GetProperty("accepted").GetInt32());
        Assert.Equal(6, body.GetProperty("rejected").GetInt32());
        var results = body.GetProperty("results");
        string Error(int i) => results[i].GetProperty("error").GetString()!;
        Assert.Equal("accepted", results[0].GetProperty("status").GetString());
        Assert.Contains("'context.k' is not valid Unicode text", Error(1), StringComparison.Ordinal);
        Assert.Contains("'userId' is not valid Unicode text", Error(2), StringComparison.Ordinal);
        Assert.Contains("'userId' appears twice", Error(3), StringComparison.Ordinal);
        Assert.Contains("'properties.s' is 9216 bytes long; a string may be at most 8192 bytes", Error(4), StringComparison.Ordinal);
        Assert.Contains("an event may be at most 32768 bytes", Error(5), StringComparison.Ordinal);
        Assert.Contains("'properties.a.b.c.d.e.f.g.h' is nested too deeply", Error(6), StringComparison.Ordinal);
        Assert.Equal("accepted", results[7].GetProperty("status").GetString());
        await Http.Eventually(async () => (await _http.GetAsync($"/api/users/{good}/profile")).StatusCode == HttpStatusCode.OK, "the good events are applied");
        await Http.Eventually(async () => await _http.EventCountOf(good) == 2,
            "both good events are applied");
        foreach (var user in new[] { "c", "d", "e", "f", "g", "h" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/users/{user}/profile")).StatusCode);
        }

        await AssertIngestionWorks();
    }

    [Fact]
    public async Task Event_OverItsSizeLimit_Gets413_AndAFieldOverItsLimit_Gets400()
    {
        var huge = $$$"""{"userId": "size-1", "eventType": "x", "properties": {"s": "{{{new string('a', 40 * 1024)}}}"}}""";
        var (status, body) = await Post("/api/events", huge);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("32768 bytes", body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var longString = $$$"""{"userId": "size-2", "eventType": "x", "properties": {"s": "{{{new string('a', 8193)}}}"}}""";
        (status, body) = await Post("/api/events", longString);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'properties.s' is 8193 bytes long", body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var longKey = $$$"""{"userId": "size-3", "eventType": "x", "properties": {"{{{new string('k', 300)}}}": 1}}""";
        (status, body) = await Post("/api/events", longKey);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("a key may be at most 256 bytes", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertIngestionWorks();
    }

    [Theory]
    [InlineData(null, HttpStatusCode.UnsupportedMediaType)]
    [InlineData("text/plain", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("application/x-www-form-urlencoded", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("application/jsonp", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("application/json", HttpStatusCode.Accepted)]
    [InlineData("application/json; charset=utf-8", HttpStatusCode.Accepted)]
    [InlineData("APPLICATION/JSON", HttpStatusCode.Accepted)]
    [InlineData("application/vnd.audience.event+json", HttpStatusCode.Accepted)]
    public async Task ContentType_OnlyJsonIsTaken(string? contentType, HttpStatusCode expected)
    {
        var (status, body) = await Post("/api/events", $$"""{"userId": "{{Unique("ct")}}", "eventType": "x"}""", contentType);
        Assert.True(expected == status, body.ToString());
        (status, _) = await Post("/api/segments", """{"name": "ct", "rule": "eventCount > 1000000"}""", contentType);
        Assert.Equal(expected == HttpStatusCode.Accepted ? HttpStatusCode.Created : expected, status);
    }

    [Theory]
    [InlineData("""{"id": "\ud800", "name": "x", "rule": "totalSpent > 1"}""", HttpStatusCode.BadRequest, "'id' is not valid Unicode text")]
    [InlineData("""{"name": "x\udc00", "rule": "totalSpent > 1"}""", HttpStatusCode.BadRequest, "'name' is not valid Unicode text")]
    [InlineData("""{"name": "x", "rule": "traits.a == \"\ud800\""}""", HttpStatusCode.BadRequest, "'rule' is not valid Unicode text")]
    [InlineData("""{"name": "x", "name": "y", "rule": "totalSpent > 1"}""", HttpStatusCode.BadRequest, "'name' appears twice in the segment")]
    [InlineData("""{"name": "x", "rules": {"conditions": [{"field": "totalSpent", "field": "orderCount", "operator": "gt", "value": 1}]}}""",
        HttpStatusCode.UnprocessableEntity, "the key 'field' appears twice in one object")]
    public async Task Segment_WithBadText_Gets4xx_AndNothingIsStored(string json, HttpStatusCode expected, string detail)
    {
        var before = (await (await _http.GetAsync("/api/segments")).Json()).GetArrayLength();
        var (status, body) = await Post("/api/segments", json);
        Assert.Equal(expected, status);
        Assert.Contains(detail, body.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, (await (await _http.GetAsync("/api/segments")).Json()).GetArrayLength());
        await AssertIngestionWorks();
    }

    [Theory]
    [InlineData("/api/users/%20/profile")]
    [InlineData("/api/users/%20%20/segments")]
    [InlineData("/api/segments/nope/explain/%20")]
    public async Task UserIdOfWhiteSpace_IsNoUser(string path)
    {
        var response = await _http.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Segment_WithATooCostlyRule_Gets422NamingItsCostliestPart_AndIsNotStored()
    {
        // The rule from the hostile-testing report: 16 windowed counts, each filtered by 9 contains on 85-character text.
        var windows = new[] { "1m", "5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "2d", "3d", "7d", "14d", "30d", "60d", "90d" };
        string Filter(int w) => string.Join(" and ", Enumerable.Range(0, 9).Select(c => $"p{c} contains \"{new string((char)('a' + ((w + c) % 26)), 85)}\""));
        var rule = string.Join(" or\n", windows.Select((window, w) => $"count(purchase where {Filter(w)} within {window}) >= 1"));
        var id = Unique("costly");

        var (status, body) = await Post("/api/segments", JsonSerializer.Serialize(new { id, name = "costly", rule }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        var error = body.GetProperty("errors")[0];
        Assert.Equal("too-costly", error.GetProperty("code").GetString());
        Assert.Contains("contains", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/segments/{id}")).StatusCode);
        await AssertIngestionWorks();
    }

    [Fact]
    public async Task Subscribers_ThatNeverRead_CostOnlyTheirOwnPlace()
    {
        var segmentId = await _http.CreateSegment(new { name = "viewers", rule = "count(page_view within 1d) >= 1" });
        var path = $"/api/changes?segmentId={segmentId}";

        // 100 subscribers that never read past the first line: their sockets' buffers fill, and stay full.
        var stalled = new List<(HttpClient Client, HttpResponseMessage Response)>();
        for (var i = 0; i < 100; i++)
        {
            var client = factory.CreateClient();
            var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            stalled.Add((client, response));
        }

        using var reading = await _http.GetStreamAsync(path);
        using var reader = new StreamReader(reading);
        Assert.Equal(": subscribed", await reader.ReadLineAsync());

        // 20 batches of 500 new users each entering the segment: every batch is acknowledged, and the subscriber that
        // reads sees every change, however many the stalled ones left unread.
        var users = new HashSet<string>();
        for (var b = 0; b < 20; b++)
        {
            var items = Enumerable.Range(0, 500).Select(_ => new { userId = Unique("viewer"), eventType = "page_view" }).ToList();
            users.UnionWith(items.Select(e => e.userId));
            var (status, body) = await Post("/api/events/batch", JsonSerializer.Serialize(items));
            Assert.True(status == HttpStatusCode.Accepted, body.ToString());
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (users.Count > 0)
        {
            var line = await reader.ReadLineAsync(cancel.Token);
            if (line?.StartsWith("data:", StringComparison.Ordinal) == true)
            {
                users.Remove(JsonDocument.Parse(line[5..]).RootElement.GetProperty("userId").GetString()!);
            }
        }

        foreach (var (client, response) in stalled)
        {
            response.Dispose();
            client.Dispose();
        }

        await AssertIngestionWorks();
    }

    [Fact]
    public async Task A_disk_that_fails_answers_503_and_stops_the_service()
    {
        // The event log on a device whose writes fail, as a full or vanished disk's do.
        using var failing = new AudienceFactory(new Dictionary<string, string>(), services => services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<Audience.Silo.SiloOptions>();
            return new Audience.Silo.Storage.EventLog(Path.Combine(options.DataDirectory, "log"), options.Partitions, options.DeduplicationWindow,
                TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<Audience.Silo.Storage.EventLog>.Instance,
                new Audience.Testing.FailingDevice());
        }));
        var stopping = failing.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping;

        var response = await failing.Http.PostJson("/api/events", """{"userId": "u", "eventType": "page_view"}""");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Contains("could not store", (await response.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.NotNull(failing.Services.GetRequiredService<Audience.Silo.Storage.EventLog>().Fault);
        await Http.Eventually(() => Task.FromResult(stopping.IsCancellationRequested), "the service stops itself");
    }

    [Fact]
    public async Task DuplicateRuleKey_IsReportedWithItsPosition()
    {
        var (status, body) = await Post("/api/segments", """
            {"name": "x", "rules": {"conditions": [
              {"field": "totalSpent", "operator": "gt", "operator": "lt", "value": 1}]}}
            """);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        var error = body.GetProperty("errors")[0];
        Assert.Equal((2, 45), (error.GetProperty("line").GetInt32(), error.GetProperty("column").GetInt32()));
    }
}
