using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;

namespace Audience.Api.Tests;

/// <summary>The whole service on embedded defaults, on real Kestrel over HTTP, with its own data directory.</summary>
public sealed class AudienceFactory : WebApplicationFactory<Program>
{
    private readonly IReadOnlyDictionary<string, string> _settings;
    private readonly Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? _services;

    public AudienceFactory()
        : this(new Dictionary<string, string>())
    {
    }

    /// <param name="settings">Configuration on top of the embedded defaults, such as Kafka mode's keys.</param>
    /// <param name="services">Registrations on top of the service's own (the last registration of a service wins).</param>
    internal AudienceFactory(IReadOnlyDictionary<string, string> settings, Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null)
    {
        _settings = settings;
        _services = services;
        DataDirectory = Path.Combine(Path.GetTempPath(), "audience-tests", Guid.NewGuid().ToString("N"));
        UseKestrel(0);
        StartServer();
        Http = CreateClient();
    }

    public string DataDirectory { get; }

    public HttpClient Http { get; }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("DataDirectory", DataDirectory);
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (_services is not null)
        {
            builder.ConfigureTestServices(_services);
        }
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            Http.Dispose();
            try
            {
                Directory.Delete(DataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A file still held open by the OS; the temp folder is cleaned elsewhere.
            }
        }
    }
}

/// <summary>HTTP helpers shared by the API tests.</summary>
internal static class Http
{
    public static async Task<JsonElement> Json(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return string.IsNullOrEmpty(text) ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    public static Task<HttpResponseMessage> PostJson(this HttpClient http, string path, string json) =>
        http.PostAsync(path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

    public static Task<HttpResponseMessage> PutJson(this HttpClient http, string path, string json) =>
        http.PutAsync(path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

    public static async Task<string> CreateSegment(this HttpClient http, object body)
    {
        var response = await http.PostAsJsonAsync("/api/segments", body);
        var json = await response.Json();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, json.ToString());
        return json.GetProperty("id").GetString()!;
    }

    public static async Task Send(this HttpClient http, string userId, string eventType, object? properties = null, DateTimeOffset? at = null, string? eventId = null)
    {
        var response = await http.PostAsJsonAsync("/api/events", new { eventId, userId, eventType, timestamp = at, properties });
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The events the user's profile counts; 0 while the user has no profile yet.</summary>
    public static async Task<long> EventCountOf(this HttpClient http, string userId)
    {
        var response = await http.GetAsync($"/api/users/{userId}/profile");
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return 0;
        }

        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} for {userId}'s profile: {await response.Content.ReadAsStringAsync()}");
        return (await response.Json()).GetProperty("eventCount").GetInt64();
    }

    public static async Task<string[]> SegmentsOf(this HttpClient http, string userId)
    {
        var response = await http.GetAsync($"/api/users/{userId}/segments");
        for (var tries = 0; response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable && tries < 600; tries++)
        {
            // The Api is still connecting to the Silo cluster (Kafka mode).
            await Task.Delay(100);
            response = await http.GetAsync($"/api/users/{userId}/segments");
        }

        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return [];
        }

        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} for {userId}'s segments: {await response.Content.ReadAsStringAsync()}");
        return [.. (await response.Json()).GetProperty("segments").EnumerateArray().Select(s => s.GetProperty("segmentId").GetString()!)];
    }

    /// <summary>Polls until the condition holds; events are processed asynchronously after the 202.</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, int timeoutMs = 15_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting until " + what);
            await Task.Delay(20);
        }
    }
}
