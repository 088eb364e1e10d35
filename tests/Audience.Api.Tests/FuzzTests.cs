using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Audience.Api.Tests;

/// <summary>
/// Random requests over every endpoint, from a seeded generator (the seed is printed by a failure, so a run can be
/// repeated): broken and valid JSON, text that is not valid Unicode, repeated keys, deep nesting, odd content types,
/// odd paths and query strings. None may get a 5xx or hang, and afterwards the service is ready and takes a normal
/// event. New endpoints join by adding a generator to <see cref="Endpoints"/>, not a new fuzz test. Run twice: without
/// keys (loopback access), and with API keys configured, each request carrying no key, a wrong one, or one of the keys
/// of <see cref="KeyedAudience"/> (each scope, and a rate-limited one).
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class FuzzTests(AudienceFactory factory, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<AudienceFactory>
{
    private const int Requests = 3_200;

    private readonly HttpClient _http = factory.Http;

    private delegate HttpRequestMessage Endpoint(Fuzz fuzz);

    /// <summary>Every endpoint of the API, each as a generator of requests to it.</summary>
    private static readonly Endpoint[] Endpoints =
    [
        f => f.Post("/api/events", f.EventBody()),
        f => f.Post("/api/events/batch", f.BatchBody()),
        f => f.Post("/api/segments", f.SegmentBody()),
        f => f.Put($"/api/segments/{f.SegmentId()}", f.SegmentBody()),
        f => f.Delete($"/api/segments/{f.SegmentId()}"),
        f => f.Get("/api/segments"),
        f => f.Get($"/api/segments/{f.SegmentId()}"),
        f => f.Get($"/api/segments/{f.SegmentId()}/members{f.Query("after", "limit")}"),
        f => f.Get($"/api/segments/{f.SegmentId()}/size"),
        f => f.Get($"/api/segments/{f.SegmentId()}/explain/{f.PathText()}"),
        f => f.Get($"/api/users/{f.PathText()}/profile"),
        f => f.Get($"/api/users/{f.PathText()}/segments"),
        f => f.Get($"/api/users/{f.PathText()}/history{f.Query("after", "limit")}"),
        f => f.Delete($"/api/users/{f.PathText()}"),
        f => f.Get($"/api/changes?segmentId=missing-{f.PathText()}"),
        f => f.Post("/api/segments/preview", f.SegmentBody()),
        f => f.Post("/api/campaigns", f.CampaignBody()),
        f => f.Put($"/api/campaigns/{f.CampaignId()}", f.CampaignBody()),
        f => f.Delete($"/api/campaigns/{f.CampaignId()}"),
        f => f.Get("/api/campaigns"),
        f => f.Get($"/api/campaigns/{f.CampaignId()}"),
        f => f.Get($"/api/campaigns/{f.CampaignId()}/notifications{f.Query("after", "limit")}"),
        f => f.Get($"/api/campaigns/{f.CampaignId()}/stats"),
        f => f.Get($"/api/notifications?campaignId=missing-{f.PathText()}"),
        f => f.Get("/health/live"),
        f => f.Get("/health/ready"),
        f => f.Get("/openapi/v1.json"),
        f => f.Get("/metrics"),
    ];

    private static readonly string?[] Keys =
        [null, "not-a-key", KeyedAudience.IngestKey, KeyedAudience.ReadKey, KeyedAudience.AdminKey, KeyedAudience.LimitedKey];

    [Fact]
    public Task RandomRequests_NeverGet5xx_AndTheServiceStaysReady() => Run(_http, keyed: false);

    [Fact]
    public async Task RandomRequests_WithAndWithoutKeys_NeverGet5xx_AndTheServiceStaysReady()
    {
        using var keyed = new AudienceFactory(KeyedAudience.KeySettings());
        keyed.Http.DefaultRequestHeaders.Add("X-API-Key", KeyedAudience.AdminKey); // for the checks after the fuzz
        await Run(keyed.Http, keyed: true);
    }

    private async Task Run(HttpClient http, bool keyed)
    {
        var seed = Environment.GetEnvironmentVariable("AUDIENCE_FUZZ_SEED") is { } given ? int.Parse(given, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next();
        var fuzz = new Fuzz(new Random(seed));
        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        var statuses = new Dictionary<int, int>();
        var failures = new List<string>();
        var sent = 0;
        using var gate = new SemaphoreSlim(8);
        var tasks = new List<Task>();
        for (var i = 0; i < Requests; i++)
        {
            HttpRequestMessage request;
            lock (fuzz)
            {
                request = Endpoints[fuzz.Random.Next(Endpoints.Length)](fuzz);
                if (keyed)
                {
                    // Per request, replacing the client's own key: none, a wrong one, or one of each scope.
                    request.Headers.Remove("X-API-Key");
                    if (Keys[fuzz.Random.Next(Keys.Length)] is { } key)
                    {
                        request.Headers.Add("X-API-Key", key);
                    }
                }
            }

            await gate.WaitAsync();
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    var description = $"{request.Method} {request.RequestUri}";
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                    try
                    {
                        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                        lock (statuses)
                        {
                            statuses[(int)response.StatusCode] = statuses.GetValueOrDefault((int)response.StatusCode) + 1;
                            sent++;
                            if ((int)response.StatusCode >= 500)
                            {
                                failures.Add($"{(int)response.StatusCode} for {description}");
                            }
                        }
                    }
                    catch (OperationCanceledException)
                    {
                        lock (statuses)
                        {
                            failures.Add($"no answer in 20 s for {description}");
                        }
                    }
                    catch (HttpRequestException e)
                    {
                        // Kestrel may close a connection on a request it cannot parse (a path with bytes that are
                        // not UTF-8); that is a refusal, not a failure of the service.
                        lock (statuses)
                        {
                            statuses[0] = statuses.GetValueOrDefault(0) + 1;
                            _ = e;
                        }
                    }
                }
                finally
                {
                    request.Dispose();
                    gate.Release();
                }
            }));
        }

        await Task.WhenAll(tasks);
        var summary = string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"));
        output.WriteLine($"seed {seed}: {summary} (0: connection closed by the server)");
        Assert.True(failures.Count == 0, $"seed {seed}; {summary}; first failures: {string.Join("; ", failures.Take(10))}");
        Assert.True(sent >= Requests * 9 / 10, $"seed {seed}; only {sent} of {Requests} answered ({summary})");
        if (keyed)
        {
            // The keys were exercised: refused without a valid key, for a missing scope, and over the limited key's rate.
            Assert.True(statuses.ContainsKey(401) && statuses.ContainsKey(403) && statuses.ContainsKey(429), $"seed {seed}; {summary}");
        }

        // What the burst leaves on the managed heap (the service's and the test's) is bounded: nothing keeps the bodies.
        var memoryAfter = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"managed heap: {memoryBefore / 1_048_576} MB before, {memoryAfter / 1_048_576} MB after");
        Assert.True(memoryAfter - memoryBefore < 64 * 1_048_576, $"seed {seed}: the managed heap grew from {memoryBefore:N0} to {memoryAfter:N0} bytes");

        var ready = await http.GetAsync("/health/ready");
        Assert.True(ready.StatusCode == HttpStatusCode.OK, $"seed {seed}: not ready after the fuzz: {await ready.Content.ReadAsStringAsync()}");
        // One event for each partition of the log must still be applied: no reader may be stuck on a fuzzed event.
        var users = Enumerable.Range(0, 1_000).Select(i => $"after-fuzz-{seed}-{i}")
            .GroupBy(u => Audience.Silo.Contracts.EventValues.PartitionOf(u, 4)).Select(g => g.First()).ToList();
        Assert.Equal(4, users.Count);
        foreach (var user in users)
        {
            await http.Send(user, "purchase", new { amount = 10 });
        }

        foreach (var user in users)
        {
            await Http.Eventually(async () => (await http.GetAsync($"/api/users/{user}/profile")).StatusCode == HttpStatusCode.OK,
                $"an event after the fuzz is applied in partition {Audience.Silo.Contracts.EventValues.PartitionOf(user, 4)} (seed {seed})");
        }
    }

    /// <summary>The generator: valid shapes with random parts, and random damage to them.</summary>
    private sealed class Fuzz(Random random)
    {
        private static readonly string[] Texts =
        [
            "", "a", "user_1", "purchase", "identify", "page_view", "ünïcødé", "😀", "\\ud800", "\\udc00", "a\\ud800b", "\\ud83d\\ude00",
            "\\u0000", "\\n", "tab\\t", "\\\"quoted\\\"", "<script>", "' or 1=1 --", "${jndi:x}", "../../etc/passwd", "%00", "null",
        ];

        private static readonly string[] Rules =
        [
            "totalSpent > 1000", "count(purchase within 7d) >= 3", "traits.country in [\"DE\", \"AT\"]", "lastSeen before 30d ago",
            "sum(purchase.amount where category contains \"elec\" within 30d) > 5", "inSegment(\"fuzz-a\")", "eventCount >", "((((",
            "count(x within 100d) > 1", "traits.a == \"\\ud800\"", "not not not totalSpent > 1", "avg(purchase.amount within 1m) > 0",
        ];

        private static readonly string?[] ContentTypes =
        [
            "application/json", "application/json", "application/json", "application/json; charset=utf-8", "text/plain", null,
            "application/x-www-form-urlencoded", "application/problem+json", "multipart/form-data; boundary=x",
        ];

        private static readonly string[] CleanTexts = ["a", "user_1", "purchase", "ünïcødé", "😀", "\\ud83d\\ude00", "tab\\t", "' or 1=1 --", "electronics"];

        private bool _clean;

        public Random Random { get; } = random;

        private bool Chance(int percent) => Random.Next(100) < percent;

        private T Pick<T>(T[] items) => items[Random.Next(items.Length)];

        /// <summary>Random text; in a clean request (a valid event with odd but valid content) only valid text.</summary>
        public string Text() => _clean ? Pick(CleanTexts) : Chance(85) ? Pick(Texts) : RandomText(Random.Next(1, Chance(5) ? 10_000 : 40));

        private string RandomText(int length)
        {
            var builder = new StringBuilder(length);
            for (var i = 0; i < length; i++)
            {
                builder.Append(Random.Next(6) switch
                {
                    0 => $"\\u{Random.Next(0x10000):x4}",
                    1 => (char)Random.Next(0x20, 0x7f) is var c && c is not ('"' or '\\') ? c.ToString() : "_",
                    2 => "é",
                    3 => "\\ud800",
                    _ => ((char)('a' + Random.Next(26))).ToString(),
                });
            }

            return builder.ToString();
        }

        /// <summary>A random JSON value, sometimes nested deeply.</summary>
        public string Value(int depth = 0)
        {
            switch (Random.Next(depth > 12 ? 5 : 8))
            {
                case 0:
                    return $"\"{Text()}\"";
                case 1:
                    return Pick(["0", "-1", "1.5", "1e20", "1e300", "-0", "12345678901234567890123456789", "3.14159"]);
                case 2:
                    return Pick(["true", "false", "null"]);
                case 3:
                case 4:
                    return $"\"{Pick(Texts)}\"";
                case 5:
                    return "[" + string.Join(",", Enumerable.Range(0, Random.Next(4)).Select(_ => Value(depth + 1))) + "]";
                default:
                    return Object(depth + 1);
            }
        }

        private string Object(int depth)
        {
            var keys = Enumerable.Range(0, Random.Next(5)).Select(_ => Chance(80) ? Pick(["amount", "category", "a", "b", "plan", "country"]) : Text()).ToList();
            if (!_clean && Chance(10) && keys.Count > 0)
            {
                keys.Add(keys[0]); // a repeated key
            }

            return "{" + string.Join(",", keys.Select(k => $"\"{k}\":{Value(depth)}")) + "}";
        }

        public string EventBody()
        {
            _clean = Chance(40);
            try
            {
                return _clean ? CleanEvent() : DamagedEvent();
            }
            finally
            {
                _clean = false;
            }
        }

        private string CleanEvent() =>
            $"{{\"userId\":\"fuzz-{Random.Next(200)}\",\"eventType\":\"{Pick(["purchase", "identify", "page_view", "add_to_cart"])}\","
            + $"\"properties\":{{\"amount\":{Random.Next(1, 2000)},\"category\":\"{Text()}\",\"extra\":{Object(1)}}},\"context\":{Object(1)}}}";

        private string DamagedEvent()
        {
            var fields = new List<string>();
            void Maybe(int percent, string field)
            {
                if (Chance(percent))
                {
                    fields.Add(field);
                }
            }

            Maybe(92, $"\"userId\":{(Chance(80) ? $"\"fuzz-{Random.Next(200)}\"" : Chance(30) ? Pick(["\" \"", "\"\\t\"", "\"\\u00a0\""]) : Value())}");
            Maybe(92, $"\"eventType\":{(Chance(70) ? $"\"{Pick(["purchase", "identify", "page_view", "add_to_cart"])}\"" : Value())}");
            Maybe(20, $"\"eventId\":{(Chance(60) ? $"\"e-{Random.Next(1000)}\"" : Value())}");
            Maybe(30, $"\"timestamp\":{(Chance(60) ? $"\"{DateTimeOffset.UtcNow.AddMinutes(-Random.Next(-10, 100_000)):O}\"" : Value())}");
            Maybe(70, $"\"properties\":{(Chance(70) ? Object(1) : Value())}");
            Maybe(30, $"\"context\":{(Chance(70) ? Object(1) : Value())}");
            Maybe(5, $"\"{Text()}\":{Value()}");
            if (Chance(5) && fields.Count > 0)
            {
                fields.Add(fields[0]);
            }

            return Damage("{" + string.Join(",", fields.OrderBy(_ => Random.Next())) + "}");
        }

        public string BatchBody() =>
            Chance(10) ? Damage(Value()) : Damage("[" + string.Join(",", Enumerable.Range(0, Random.Next(Chance(2) ? 1_100 : 20)).Select(_ => EventBody())) + "]");

        public string SegmentBody()
        {
            var fields = new List<string>();
            if (Chance(40))
            {
                fields.Add($"\"id\":\"{(Chance(60) ? "fuzz-" + Pick(["a", "b", "c", "d"]) : Text())}\"");
            }

            if (Chance(90))
            {
                fields.Add($"\"name\":{(Chance(80) ? $"\"{Text()}\"" : Value())}");
            }

            if (Chance(70))
            {
                fields.Add($"\"rule\":{(Chance(80) ? $"\"{Pick(Rules).Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : Value())}");
            }

            if (Chance(30))
            {
                fields.Add($"\"rules\":{(Chance(50) ? "{\"conditions\":[{\"field\":\"totalSpent\",\"operator\":\"gt\",\"value\":" + Value() + "}]}" : Value())}");
            }

            return Damage("{" + string.Join(",", fields) + "}");
        }

        /// <summary>Sometimes truncates, splices bytes or doubles the body.</summary>
        private string Damage(string json) => Random.Next(20) switch
        {
            0 when json.Length > 2 => json[..Random.Next(json.Length)],
            1 => json + json,
            2 => json.Insert(Random.Next(json.Length + 1), Pick(["{", "}", "[", ",", ":", "\"", "\\"])),
            _ => json,
        };

        public string SegmentId() => Chance(70) ? "fuzz-" + Pick(["a", "b", "c", "d"]) : PathText();

        public string CampaignId() => Chance(70) ? "fuzz-campaign-" + Pick(["a", "b", "c"]) : PathText();

        /// <summary>A campaign, its fields sometimes missing, of the wrong kind, out of range or damaged.</summary>
        public string CampaignBody()
        {
            string Field(string name, string good) => Chance(85) ? $"\"{name}\":{(Chance(80) ? good : Value())}" : string.Empty;
            var fields = new[]
            {
                Chance(40) ? $"\"id\":\"{(Chance(60) ? CampaignId() : Text())}\"" : string.Empty,
                Field("name", $"\"{Text()}\""),
                Field("segmentId", $"\"{SegmentId()}\""),
                Field("type", $"\"{Pick(["email", "sms", "push", "fax"])}\""),
                Field("content", $"{{\"template\":\"{Pick(["welcome", "t.1", Text()])}\",\"subject\":\"{Text()}\",\"personalization\":[\"firstName\",\"{Text()}\"]}}"),
                Chance(50) ? Field("status", $"\"{Pick(["draft", "active", "paused", "completed", "running"])}\"") : string.Empty,
                Chance(50) ? Field("trigger", $"\"{Pick(["on_enter", "on_exit", "scheduled", "later"])}\"") : string.Empty,
                Chance(30) ? Field("condition", $"\"{Pick(Rules).Replace("\"", "\\\"", StringComparison.Ordinal)}\"") : string.Empty,
                Chance(30) ? Field("caps", $"[{{\"count\":{Pick(["1", "0", "1001", "-1"])},\"period\":\"{Pick(["7d", "24h", "0m", "91d", "x"])}\",\"scope\":\"{Pick(["campaign", "global", "all"])}\"}}]") : string.Empty,
                Chance(30) ? Field("priority", Pick(["0", "10", "-3", "1.5", "99999999999"])) : string.Empty,
                Chance(30) ? Field("scheduledAt", $"\"{Pick(["2026-12-01T09:00:00Z", "2020-01-01T00:00:00+02:00", "tomorrow", "9999-12-31T23:59:59Z"])}\"") : string.Empty,
            };
            return Damage("{" + string.Join(",", fields.Where(f => f.Length > 0)) + "}");
        }

        public string PathText() => Random.Next(6) switch
        {
            0 => Uri.EscapeDataString(Pick(["ünï", "😀", "a b", "a/b", "..", "%", "#", "?"])),
            1 => Pick(["%ED%A0%80", "%FF%FE", "%00", "%2F", "%C3%28", "%20", "%09", "%20%20"]),
            2 => new string('x', Random.Next(1, 3_000)),
            _ => "fuzz-" + Random.Next(200),
        };

        public string Query(params string[] names) =>
            "?" + string.Join("&", names.Where(_ => Chance(60)).Select(n => $"{n}={Pick(["0", "1", "-5", "1001", "abc", "99999999999999999999", "%ED%A0%80", PathText()])}"));

        public HttpRequestMessage Get(string path) => new(HttpMethod.Get, path);

        public HttpRequestMessage Delete(string path) => new(HttpMethod.Delete, path);

        public HttpRequestMessage Post(string path, string body) => WithBody(HttpMethod.Post, path, body);

        public HttpRequestMessage Put(string path, string body) => WithBody(HttpMethod.Put, path, body);

        private HttpRequestMessage WithBody(HttpMethod method, string path, string body)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            if (Chance(5) && bytes.Length > 0)
            {
                bytes[Random.Next(bytes.Length)] = (byte)Pick([0xff, 0xfe, 0xc3, 0x80, 0xed]); // not UTF-8
            }

            var content = new ByteArrayContent(bytes);
            if (Pick(ContentTypes) is { } type)
            {
                content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            }

            return new HttpRequestMessage(method, path) { Content = content };
        }
    }
}

/// <summary>
/// Tests that measure the process or the machine run while no other test class does: the fuzz test's bound on the
/// managed heap (the heap is the whole test process's, and services of tests running beside would grow it: a run
/// measured 298 MB before and 385 MB after, where the fuzz alone grows it by about 13 MB), and the load tool's smoke
/// run with its p99 threshold (a fresh clone's run missed it once while the other classes loaded the two cores).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "Alone in the process";
}
