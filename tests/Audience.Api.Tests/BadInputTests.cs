using System.Net;
using System.Text;

namespace Audience.Api.Tests;

public sealed class BadInputTests(AudienceFactory factory) : IClassFixture<AudienceFactory>
{
    private readonly HttpClient _http = factory.Http;

    public static TheoryData<string, string, string, HttpStatusCode, string> Cases => new()
    {
        { "POST", "/api/events", "{\"userId\": ", HttpStatusCode.BadRequest, "not valid JSON" },
        { "POST", "/api/events", "[]", HttpStatusCode.BadRequest, "An event is a JSON object" },
        { "POST", "/api/events", "{\"eventType\": \"purchase\"}", HttpStatusCode.BadRequest, "'userId' is required." },
        { "POST", "/api/events", "{\"userId\": 5, \"eventType\": \"purchase\"}", HttpStatusCode.BadRequest, "'userId' must be a string, not a number." },
        { "POST", "/api/events", "{\"userId\": \"bad-1\"}", HttpStatusCode.BadRequest, "'eventType' is required." },
        { "POST", "/api/events", "{\"userId\": \"\", \"eventType\": \"x\"}", HttpStatusCode.BadRequest, "'userId' must be 1 to 256" },
        { "POST", "/api/events", "{\"userId\": \"bad-2\", \"eventType\": \"x\", \"timestamp\": \"yesterday\"}", HttpStatusCode.BadRequest, "'timestamp' must be an ISO-8601 time" },
        { "POST", "/api/events", "{\"userId\": \"bad-3\", \"eventType\": \"x\", \"timestamp\": \"2999-01-01T00:00:00Z\"}", HttpStatusCode.BadRequest, "in the future" },
        { "POST", "/api/events", "{\"userId\": \"bad-4\", \"eventType\": \"x\", \"properties\": [1]}", HttpStatusCode.BadRequest, "'properties' must be an object" },
        { "POST", "/api/events", "{\"userId\": \"bad-5\", \"eventType\": \"purchase\", \"properties\": {\"amount\": \"12\"}}", HttpStatusCode.BadRequest, "'properties.amount' of a purchase must be a number" },
        { "POST", "/api/events", "{\"userId\": \"bad-6\", \"eventType\": \"purchase\", \"properties\": {\"amount\": 1e20}}", HttpStatusCode.BadRequest, "at most 1000000000000000" },
        { "POST", "/api/events", "{\"userId\": \"bad-7\", \"eventType\": \"x\", \"properties\": {\"n\": 1e300}}", HttpStatusCode.BadRequest, "'properties.n' is a number out of range" },
        { "POST", "/api/events", "{\"userId\": \"bad-8\", \"eventType\": \"x\", \"context\": \"web\"}", HttpStatusCode.BadRequest, "'context' must be an object" },
        { "POST", "/api/events/batch", "{\"userId\": \"bad-9\"}", HttpStatusCode.BadRequest, "A batch is a JSON array" },
        { "POST", "/api/events/batch", "[]", HttpStatusCode.BadRequest, "The batch is empty." },
        { "POST", "/api/events/batch", "[{\"userId\": \"bad-10\"}]", HttpStatusCode.BadRequest, "No event in the batch is valid" },
        { "POST", "/api/segments", "{\"rule\": \"totalSpent > 1\"}", HttpStatusCode.BadRequest, "'name' is required." },
        { "POST", "/api/segments", "{\"name\": \"x\"}", HttpStatusCode.BadRequest, "Give the rule once" },
        { "POST", "/api/segments", "{\"name\": \"x\", \"rule\": 5}", HttpStatusCode.BadRequest, "must be rule text or a condition object" },
        { "POST", "/api/segments", "{\"name\": \"x\", \"rule\": \"totalSpend > 1000\"}", HttpStatusCode.UnprocessableEntity, "did you mean totalSpent?" },
        { "POST", "/api/segments", "{\"name\": \"x\", \"rules\": {\"conditions\": [{\"field\": \"totalSpent\", \"operator\": \"bigger\", \"value\": 1}]}}", HttpStatusCode.UnprocessableEntity, "unknown operator 'bigger'" },
        { "POST", "/api/segments", "{\"name\": \"x\", \"rule\": \"inSegment(\\\"nope\\\")\"}", HttpStatusCode.UnprocessableEntity, "there is no segment with the id \\\"nope\\\"" },
        { "POST", "/api/segments", "{\"id\": \"has space\", \"name\": \"x\", \"rule\": \"totalSpent > 1\"}", HttpStatusCode.BadRequest, "A segment id is 1 to 64 characters" },
        { "GET", "/api/segments/nope", "", HttpStatusCode.NotFound, "There is no segment with the id 'nope'." },
        { "PUT", "/api/segments/nope", "{\"name\": \"x\", \"rule\": \"totalSpent > 1\"}", HttpStatusCode.NotFound, "There is no segment" },
        { "DELETE", "/api/segments/nope", "", HttpStatusCode.NotFound, "There is no segment" },
        { "GET", "/api/segments/nope/members", "", HttpStatusCode.NotFound, "There is no segment" },
        { "GET", "/api/segments/nope/size", "", HttpStatusCode.NotFound, "There is no segment" },
        { "GET", "/api/users/nobody/profile", "", HttpStatusCode.NotFound, "There is no user with the id 'nobody'." },
        { "GET", "/api/users/nobody/segments", "", HttpStatusCode.NotFound, "There is no user" },
        { "GET", "/api/users/nobody/history?limit=0", "", HttpStatusCode.BadRequest, "'limit' must be from 1 to 1000." },
        { "GET", "/api/changes?segmentId=nope", "", HttpStatusCode.NotFound, "There is no segment" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadInput_Gets4xxProblemDetails_AndChangesNothing(string method, string path, string body, HttpStatusCode status, string detail)
    {
        var segmentsBefore = await (await _http.GetAsync("/api/segments")).Json();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body.Length > 0)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, text, StringComparison.Ordinal);
        Assert.Equal(segmentsBefore.GetArrayLength(), (await (await _http.GetAsync("/api/segments")).Json()).GetArrayLength());
        foreach (var user in new[] { "bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "bad-7", "bad-8", "bad-9", "bad-10" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync($"/api/users/{user}/profile")).StatusCode);
        }
    }

    [Fact]
    public async Task InvalidRule_ListsEveryErrorWithLineAndColumn()
    {
        var response = await _http.PostJson("/api/segments", "{\"name\": \"x\", \"rule\": \"totalSpend > 1 and\\nlastSeen > 5\"}");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = (await response.Json()).GetProperty("errors");
        Assert.Equal(2, errors.GetArrayLength());
        Assert.Equal((1, 1, "unknown-field"), (errors[0].GetProperty("line").GetInt32(), errors[0].GetProperty("column").GetInt32(), errors[0].GetProperty("code").GetString()));
        Assert.Equal((2, 12, "type-mismatch"), (errors[1].GetProperty("line").GetInt32(), errors[1].GetProperty("column").GetInt32(), errors[1].GetProperty("code").GetString()));
    }

    [Fact]
    public async Task OversizedBatch_And_OversizedBody_Get413()
    {
        var batch = "[" + string.Join(",", Enumerable.Repeat("{\"userId\": \"big\", \"eventType\": \"x\"}", 1001)) + "]";
        var response = await _http.PostJson("/api/events/batch", batch);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("at most 1000 events", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var huge = "{\"userId\": \"big\", \"eventType\": \"x\", \"properties\": {\"blob\": \"" + new string('a', 5 * 1024 * 1024) + "\"}}";
        // Kestrel refuses the body from its Content-Length and closes the connection; with Expect: 100-continue
        // the client waits for that answer instead of uploading into a closed socket.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/events") { Content = new StringContent(huge, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        var tooBig = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/users/big/profile")).StatusCode);
    }

    [Fact]
    public async Task WrongContentType_Gets415()
    {
        var response = await _http.PostAsync("/api/events", new StringContent("userId=x", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task DeletingAReferencedSegment_Gets409()
    {
        var baseId = await _http.CreateSegment(new { name = "base", rule = "totalSpent > 1" });
        await _http.CreateSegment(new { name = "derived", rule = $"inSegment(\"{baseId}\")" });
        var response = await _http.DeleteAsync($"/api/segments/{baseId}");
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync($"/api/segments/{baseId}")).StatusCode);
    }

    [Fact]
    public async Task Cycle_Gets422()
    {
        var a = await _http.CreateSegment(new { name = "a", rule = "totalSpent > 1" });
        var b = await _http.CreateSegment(new { name = "b", rule = $"inSegment(\"{a}\")" });
        var response = await _http.PutJson($"/api/segments/{a}", $"{{\"name\": \"a\", \"rule\": \"inSegment(\\\"{b}\\\")\"}}");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("makes a cycle", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
