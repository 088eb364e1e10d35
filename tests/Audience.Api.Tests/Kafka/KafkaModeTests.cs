using System.Net;
using System.Text.Json;
using Audience.Testing;

namespace Audience.Api.Tests.Kafka;

/// <summary>
/// Kafka mode end to end: the Api in process on real HTTP, Silo processes, the Kafka mock cluster over TCP and a
/// real PostgreSQL database; kcat reads what the service put on the topics.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class KafkaModeTests : IDisposable
{
    private readonly MockKafka _kafka = new();
    private readonly TestDatabase _database = new();

    private Dictionary<string, string> Settings => new()
    {
        ["Kafka:BootstrapServers"] = _kafka.Bootstrap,
        ["Postgres:ConnectionString"] = _database.ConnectionString,
    };

    [Fact]
    public async Task Seed_004_demo_flow_in_Kafka_mode_puts_the_changes_on_user_segments()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        var created = await api.Http.PostJson("/api/segments", """
            {"name": "Demo VIP Users", "type": "DYNAMIC", "rules": {"conditions": [{"field": "totalSpent", "operator": "gt", "value": 1000}]}}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var segmentId = (await created.Json()).GetProperty("id").GetString()!;

        // A live subscriber on this Api sees the changes the Silo process put on user-segments.
        using var live = new StreamReader(await api.Http.GetStreamAsync($"/api/changes?segmentId={segmentId}"));
        Assert.Equal(": subscribed", await live.ReadLineAsync());
        await Task.Delay(1000); // the Api starts reading user-segments from its end

        var amounts = new Dictionary<string, int>();
        var random = new Random(4);
        for (var i = 1; i <= 10; i++)
        {
            var amount = random.Next(500, 2500);
            amounts[$"demo-user-{i}"] = amount;
            var response = await api.Http.PostJson("/api/events",
                $$$"""{"userId": "demo-user-{{{i}}}", "eventType": "purchase", "properties": {"amount": {{{amount}}}, "category": "electronics"}}""");
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        foreach (var (user, amount) in amounts)
        {
            await Http.Eventually(async () => (await api.Http.SegmentsOf(user)).Contains(segmentId) == amount > 1000,
                $"{user} ({amount}) is placed\n{silo.Log}", 60_000);
        }

        var vips = amounts.Where(a => a.Value > 1000).Select(a => a.Key).Order().ToList();
        var streamed = new List<string>();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (streamed.Count < vips.Count && await live.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    streamed.Add(JsonDocument.Parse(line[6..]).RootElement.GetProperty("userId").GetString()!);
                }
            }
        }

        Assert.Equal(vips, streamed.Order());
        var changes = _kafka.Read("user-segments");
        Assert.Equal(vips, changes.Select(c => c.Key).Order());
        foreach (var (key, value) in changes)
        {
            var change = JsonDocument.Parse(value).RootElement;
            Assert.Equal(key, change.GetProperty("userId").GetString());
            Assert.Equal(segmentId, change.GetProperty("segmentId").GetString());
            Assert.Equal("added", change.GetProperty("action").GetString());
            Assert.Equal("rule_evaluation", change.GetProperty("reason").GetString());
            Assert.True(change.GetProperty("metadata").GetProperty("evaluationLatency").GetDouble() >= 0);
            Assert.StartsWith($"{key}/{segmentId}/e", change.GetProperty("metadata").GetProperty("changeId").GetString(), StringComparison.Ordinal);
        }

        // Every purchase, enriched with the buyer's profile, for Druid; keyed by event id.
        var orders = _kafka.Read("orders-analytics");
        Assert.Equal(10, orders.Count);
        var order = JsonDocument.Parse(orders.Single(o => o.Value.Contains($"\"{vips[0]}\"", StringComparison.Ordinal)).Value).RootElement;
        Assert.Equal(amounts[vips[0]], order.GetProperty("lifetimeValue").GetDecimal());
        Assert.Equal(1, order.GetProperty("orderCount").GetInt64());
        Assert.Equal([segmentId], order.GetProperty("segments").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(order.GetProperty("eventId").GetString(), orders.Single(o => o.Value.Contains($"\"{vips[0]}\"", StringComparison.Ordinal)).Key);

        // Traces are off: no trace context is written on the messages.
        Assert.All(_kafka.ReadWithHeaders("user-events").Concat(_kafka.ReadWithHeaders("user-segments")), m => Assert.False(m.Headers.ContainsKey("traceparent")));

        // The segment change went through the outbox to segment-updates.
        var update = Assert.Single(_kafka.Read("segment-updates"));
        Assert.Equal(segmentId, update.Key);
        Assert.Equal(0, _database.Scalar("SELECT count(*) FROM segment_outbox"));
    }

    [Fact]
    public async Task Seed_004_campaign_phase_in_Kafka_mode_puts_one_notification_per_qualifying_user_on_notification_requests()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        // Readiness covers the broker, PostgreSQL, the profile store and the silos, each healthy once the silo is up.
        await Http.Eventually(async () =>
        {
            var ready = await (await api.Http.GetAsync("/health/ready")).Json();
            return ready.ValueKind == JsonValueKind.Object && ready.GetProperty("status").GetString() == "ready"
                && new[] { "kafka", "postgres", "profile-store", "silos" }.All(c => ready.GetProperty("checks").GetProperty(c).GetProperty("status").GetString() == "healthy");
        }, "every readiness check is healthy", 60_000);
        var segmentId = await api.Http.CreateSegment(new { name = "VIP", rule = "totalSpent > 1000" });
        var created = await api.Http.PostJson("/api/campaigns", $$"""
            {"name": "VIP welcome", "segmentId": "{{segmentId}}", "type": "email", "trigger": "on_enter",
             "content": {"template": "welcome_high_value", "subject": "Welcome"}, "status": "active"}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var campaignId = (await created.Json()).GetProperty("id").GetString()!;
        Assert.Equal(1, _database.Scalar($"SELECT count(*) FROM campaigns WHERE id = '{campaignId}' AND content->>'template' = 'welcome_high_value'"));
        // The Silo process finds campaigns changed by an Api in PostgreSQL every Silo:CampaignRefreshInterval (2 s).
        await Task.Delay(TimeSpan.FromSeconds(5));

        var amounts = new Dictionary<string, int>();
        for (var i = 1; i <= 10; i++)
        {
            amounts[$"campaign-user-{i}"] = 400 + (i * 150);
            await api.Http.Send($"campaign-user-{i}", "purchase", new { amount = amounts[$"campaign-user-{i}"] });
        }

        var vips = amounts.Where(a => a.Value > 1000).Select(a => a.Key).Order().ToList();
        await Http.Eventually(() => Task.FromResult(_kafka.Read("notification-requests").Count >= vips.Count), $"the VIPs are notified\n{silo.Log}", 60_000);
        var sent = _kafka.Read("notification-requests");
        Assert.Equal(vips, sent.Select(n => n.Key).Order());
        foreach (var (key, value) in sent)
        {
            var notification = JsonDocument.Parse(value).RootElement;
            Assert.Equal(key, notification.GetProperty("userId").GetString());
            Assert.Equal(campaignId, notification.GetProperty("campaignId").GetString());
            Assert.Equal("welcome_high_value", notification.GetProperty("template").GetString());
            Assert.Equal(amounts[key], notification.GetProperty("personalization").GetProperty("totalSpent").GetDecimal());
            Assert.StartsWith($"{campaignId}/{key}/{segmentId}/e", notification.GetProperty("notificationId").GetString(), StringComparison.Ordinal);
        }

        // The Api answers from PostgreSQL what the Silo recorded.
        var listed = await (await api.Http.GetAsync($"/api/campaigns/{campaignId}/notifications")).Json();
        Assert.Equal(vips, listed.GetProperty("notifications").EnumerateArray().Select(n => n.GetProperty("notification").GetProperty("userId").GetString()).Order());
        var stats = await (await api.Http.GetAsync($"/api/campaigns/{campaignId}/stats")).Json();
        Assert.Equal(vips.Count, stats.GetProperty("sent").GetInt64());
        Assert.Equal(HttpStatusCode.Conflict, (await api.Http.DeleteAsync($"/api/segments/{segmentId}")).StatusCode);
    }

    [Fact]
    public async Task A_poison_message_goes_to_the_dead_letter_topic_and_the_partition_keeps_flowing()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        var segmentId = await api.Http.CreateSegment(new { name = "buyers", rule = "orderCount >= 1" });
        _kafka.Produce("user-events", "poisoned", "this is not JSON");
        _kafka.Produce("user-events", "poisoned", """{"userId": "someone-else", "eventType": "purchase"}""");
        _kafka.Produce("user-events", "poisoned", """{"userId": "poisoned", "eventType": "purchase", "properties": {"amount": 5}}""");
        await Http.Eventually(async () => (await api.Http.SegmentsOf("poisoned")).Contains(segmentId), "the good event after the bad ones is applied\n" + silo.Log, 60_000);

        var dead = _kafka.Read("user-events-dlq");
        Assert.Equal(2, dead.Count);
        var first = JsonDocument.Parse(dead[0].Value).RootElement;
        Assert.Contains("not JSON", first.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("user-events", first.GetProperty("topic").GetString());
        Assert.Equal("this is not JSON", first.GetProperty("payload").GetString());
        Assert.True(first.TryGetProperty("offset", out _));
        Assert.Contains("key must be the event's userId", JsonDocument.Parse(dead[1].Value).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        var profile = await (await api.Http.GetAsync("/api/users/poisoned/profile")).Json();
        Assert.Equal(1, profile.GetProperty("eventCount").GetInt64());
    }

    [Fact]
    public async Task A_segment_created_after_the_events_fills_its_windows_from_the_archived_events()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        await api.Http.Send("late-buyer", "purchase", new { amount = 40, category = "toys" }, DateTimeOffset.UtcNow.AddDays(-2));
        await api.Http.Send("late-buyer", "purchase", new { amount = 60, category = "toys" }, DateTimeOffset.UtcNow.AddHours(-1));
        await api.Http.Send("late-browser", "page_view");
        await Http.Eventually(async () => await Spent(api, "late-buyer") == (2, 100), "the buyer's events are applied\n" + silo.Log, 60_000);
        await Http.Eventually(async () => (await api.Http.GetAsync("/api/users/late-browser/profile")).StatusCode == HttpStatusCode.OK, "the browser's event is applied");

        // Aggregates no segment used before: Kafka's retention cannot replay them, the store's archive does.
        var segmentId = await api.Http.CreateSegment(new { name = "toy buyers", rule = "sum(purchase.amount where category == \"toys\" within 7d) >= 100 and count(purchase within 7d) == 2" });
        await Http.Eventually(async () => (await api.Http.SegmentsOf("late-buyer")).Contains(segmentId), "the buyer enters without a new event\n" + silo.Log, 60_000);
        Assert.DoesNotContain(segmentId, await api.Http.SegmentsOf("late-browser"));
        await Http.Eventually(async () => (await (await api.Http.GetAsync($"/api/segments/{segmentId}/size")).Json()).GetProperty("size").GetInt64() == 1, "size is 1");
        // The backfill ran on the Silo; the Api reads its completion from the store.
        await Http.Eventually(async () => (await (await api.Http.GetAsync($"/api/segments/{segmentId}")).Json()).GetProperty("status").GetString() == "active",
            "the segment is active once every partition has applied it");
    }

    [Fact]
    public async Task An_erasure_is_applied_after_the_users_events_before_it_and_nothing_of_them_is_left_in_PostgreSQL()
    {
        using var api = new AudienceFactory(Settings);

        var erasureSeq = await KafkaErasure.RunAsync(_kafka, api, () => new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo"));

        // Read by a client of its own: the user's rows are those of the new profile, built after the erasure only.
        var user = KafkaErasure.Erased;
        Assert.True(_database.Scalar($"SELECT last_seq FROM profile_records WHERE user_id = '{user}'") > erasureSeq);
        Assert.Equal(0, _database.Scalar($"SELECT count(*) FROM event_archive WHERE user_id = '{user}' AND first_seq <= {erasureSeq}"));
        Assert.Equal(1, _database.Scalar($"SELECT count(*) FROM event_archive WHERE user_id = '{user}'"));
        Assert.Equal(0, _database.Scalar($"SELECT count(*) FROM history_chunks WHERE user_id = '{user}'"));
        foreach (var table in new[] { "memberships", "notifications" })
        {
            Assert.Equal(0, _database.Scalar($"SELECT count(*) FROM {table} WHERE user_id = '{user}'"));
            Assert.Equal(1, _database.Scalar($"SELECT count(*) FROM {table} WHERE user_id = '{KafkaErasure.Kept}'"));
        }
    }

    [Fact]
    public async Task A_resent_event_id_has_effect_once()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        foreach (var id in new[] { "order-1", "order-2", "order-1" })
        {
            var response = await api.Http.PostJson("/api/events",
                JsonSerializer.Serialize(new { eventId = id, userId = "resender", eventType = "purchase", properties = new { amount = 10 } }));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        await Send(api, "resender", 1, first: 5);
        await Http.Eventually(async () => await Spent(api, "resender") == (3, 25), "the resent event counts once\n" + silo.Log, 60_000);
        Assert.Equal(2, _kafka.Read("orders-analytics").Count(o => o.Key.StartsWith("order-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Without_a_broker_the_Api_answers_503_with_Retry_After_and_accepts_nothing()
    {
        var settings = Settings;
        settings["Kafka:BootstrapServers"] = "127.0.0.1:1";
        settings["Kafka:ProduceTimeoutMs"] = "1500";
        using var api = new AudienceFactory(settings);
        var response = await api.Http.PostJson("/api/events", """{"userId": "u", "eventType": "page_view"}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await api.Http.GetAsync("/health/ready")).StatusCode);

        // No silo either: a query is an outage to wait out too, with a time to try again.
        var query = await api.Http.GetAsync("/api/users/u/profile");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, query.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), query.Headers.RetryAfter?.Delta);
        Assert.Equal("application/problem+json", query.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_Kafka_outage_gives_503_and_after_it_nothing_acknowledged_is_missing()
    {
        var settings = Settings;
        settings["Kafka:ProduceTimeoutMs"] = "2000";
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(settings);
        await Send(api, "before", 20);

        _kafka.SetBrokersUp(false);
        var during = await api.Http.PostJson("/api/events", """{"userId": "during", "eventType": "purchase", "properties": {"amount": 1}}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.NotNull(during.Headers.RetryAfter);

        _kafka.SetBrokersUp(true);
        await Http.Eventually(async () => (await api.Http.PostJson("/api/events", """{"userId": "probe", "eventType": "page_view"}""")).StatusCode == HttpStatusCode.Accepted,
            "the Api accepts events again", 60_000);
        await Send(api, "after", 20);
        foreach (var user in new[] { "before", "after" })
        {
            await Http.Eventually(async () => await Spent(api, user) == (20, 20 * 21 / 2), $"{user} has all its acknowledged events\n{silo.Log}", 60_000);
        }
    }

    [Fact]
    public async Task Silos_too_far_behind_make_the_Api_refuse_events_until_they_catch_up()
    {
        var settings = Settings;
        settings["Kafka:MaxLag"] = "30";
        using var api = new AudienceFactory(settings);

        // No silo reads yet: the lag grows with every event until it passes the bound on some partition (the bound
        // is per partition, and the events spread over the topic's four).
        var accepted = 0;
        HttpResponseMessage refused;
        while (true)
        {
            var response = await api.Http.PostJson("/api/events", JsonSerializer.Serialize(new { userId = $"lagging-{accepted}", eventType = "purchase", properties = new { amount = 1 } }));
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                refused = response;
                break;
            }

            accepted++;
            Assert.True(accepted <= 4 * 31, "the Api never refused events");
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("Kafka:MaxLag", (await refused.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.InRange(accepted, 31, 4 * 31);

        // A silo starts and catches up: the Api takes events again, and every event it acknowledged is applied.
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        await Http.Eventually(
            async () => (await api.Http.PostJson("/api/events", """{"userId": "after-lag", "eventType": "page_view"}""")).StatusCode == HttpStatusCode.Accepted,
            "the Api accepts events again\n" + silo.Log, 60_000);
        for (var i = 0; i < accepted; i++)
        {
            var user = $"lagging-{i}";
            await Http.Eventually(async () => await Spent(api, user) == (1, 1), $"{user} is applied\n{silo.Log}", 60_000);
        }
    }

    [Fact]
    public async Task PostgreSQL_restarted_mid_stream_pauses_the_Silo_and_loses_nothing()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        await Send(api, "steady", 20);
        await Http.Eventually(async () => await Spent(api, "steady") == (20, 210), "the first events are applied\n" + silo.Log, 60_000);
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                await Send(api, "steady", 2, first: 21 + (2 * i));
                await Task.Delay(200);
            }
        });
        Assert.True(TestDatabase.Restart(), "set AUDIENCE_TEST_POSTGRES_RESTART to a command that restarts the test server");
        await sending;
        await Http.Eventually(async () => await Spent(api, "steady") == (40, 40 * 41 / 2), "every event is applied once\n" + silo.Log, 90_000);
        Assert.False(silo.HasExited);
    }

    [Fact]
    public async Task The_Silo_process_serves_health_and_metrics_and_reaches_PostgreSQL_over_TLS()
    {
        // TLS to PostgreSQL is the connection string's (Npgsql's) settings, passed as they are; the test server has
        // Debian's self-signed certificate, so the client trusts it without checking.
        var postgres = _database.ConnectionString + ";SSL Mode=Require;Trust Server Certificate=true;Application Name=audience-tls";
        using var silo = new SiloProcess(_kafka.Bootstrap, postgres, "silo");
        using var api = new AudienceFactory(new Dictionary<string, string> { ["Kafka:BootstrapServers"] = _kafka.Bootstrap, ["Postgres:ConnectionString"] = postgres });
        await Http.Eventually(async () =>
        {
            try
            {
                return (await silo.Http.GetAsync("/health/ready")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "the Silo process is ready\n" + silo.Log, 60_000);
        var ready = await (await silo.Http.GetAsync("/health/ready")).Json();
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        Assert.Equal(["kafka", "postgres", "profile-store", "silo"], ready.GetProperty("checks").EnumerateObject().Select(c => c.Name).Order());
        Assert.Equal(HttpStatusCode.OK, (await silo.Http.GetAsync("/health/live")).StatusCode);

        await Send(api, "scraped", 3);
        await Http.Eventually(async () => await Spent(api, "scraped") == (3, 6), "the events are applied\n" + silo.Log, 60_000);
        var metrics = await silo.Http.GetStringAsync("/metrics");
        var applied = metrics.Split('\n').Where(l => l.StartsWith("audience_events_applied_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(3, applied);
        Assert.Contains("audience_grains_active", metrics, StringComparison.Ordinal);
        Assert.Contains("audience_partitions_owned", metrics, StringComparison.Ordinal);

        // Every connection the service opened is encrypted.
        const string Connections = "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'audience-tls'";
        Assert.True(_database.Scalar(Connections + " AND s.ssl") > 0);
        Assert.Equal(0, _database.Scalar(Connections + " AND NOT s.ssl"));
    }

    [Fact]
    public async Task A_request_s_trace_continues_through_user_events_to_the_silo_and_its_outputs()
    {
        var traced = new Dictionary<string, string> { ["Telemetry:Traces"] = "true" };
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo", traced);
        using var api = new AudienceFactory(new Dictionary<string, string>(Settings) { ["Telemetry:Traces"] = "true" });
        var segment = await api.Http.PostJson("/api/segments", """{"id": "traced-buyers", "name": "Traced", "rule": "totalSpent > 5"}""");
        Assert.Equal(HttpStatusCode.Created, segment.StatusCode);

        const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/events")
        {
            Content = new StringContent("""{"userId": "traced-user", "eventType": "purchase", "properties": {"amount": 10}}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{TraceId}-00f067aa0ba902b7-01");
        Assert.Equal(HttpStatusCode.Accepted, (await api.Http.SendAsync(request)).StatusCode);
        await Http.Eventually(async () => (await api.Http.SegmentsOf("traced-user")).Contains("traced-buyers"), "the user enters\n" + silo.Log, 60_000);

        // The same trace on the event, on the change it caused and on the enriched order, each span a new one.
        var sent = Assert.Single(_kafka.ReadWithHeaders("user-events"), m => m.Key == "traced-user");
        var change = Assert.Single(_kafka.ReadWithHeaders("user-segments"), m => m.Key == "traced-user");
        var order = Assert.Single(_kafka.ReadWithHeaders("orders-analytics"), m => m.Value.Contains("traced-user", StringComparison.Ordinal));
        var parents = new[] { sent, change, order }.Select(m => m.Headers.GetValueOrDefault("traceparent")).ToList();
        Assert.All(parents, p => Assert.Matches($"^00-{TraceId}-[0-9a-f]{{16}}-01$", p));
        Assert.NotEqual(parents[0], parents[1]);
        Assert.Equal(parents[1], parents[2]); // both from the one span applying the event
    }

    [Fact]
    public async Task Its_database_away_opens_the_Silos_store_circuit_then_every_event_is_applied_once()
    {
        using var silo = new SiloProcess(_kafka.Bootstrap, _database.ConnectionString, "silo");
        using var api = new AudienceFactory(Settings);
        await Send(api, "steady", 20);
        await Http.Eventually(async () => await Spent(api, "steady") == (20, 210), "the first events are applied\n" + silo.Log, 60_000);

        // This test's database alone refuses connections (the server goes on serving the other tests); events still go to Kafka.
        _database.SetAvailable(false);
        try
        {
            await Send(api, "steady", 20, first: 21);
            await Http.Eventually(() => Task.FromResult(silo.Log.Contains("The circuit profile-store opened", StringComparison.Ordinal)),
                "the Silo's store circuit opens\n" + silo.Log, 60_000);

            // The Api still takes events (they need Kafka alone): degraded, not unready, so a load balancer keeps it.
            var ready = await api.Http.GetAsync("/health/ready");
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            var report = await ready.Json();
            Assert.Equal("degraded", report.GetProperty("status").GetString());
            Assert.Equal("degraded", report.GetProperty("checks").GetProperty("postgres").GetProperty("status").GetString());
        }
        finally
        {
            _database.SetAvailable(true);
        }

        await Http.Eventually(async () => await Spent(api, "steady") == (40, 40 * 41 / 2), "every event is applied once\n" + silo.Log, 90_000);
        await Http.Eventually(() => Task.FromResult(silo.Log.Contains("The circuit profile-store closed", StringComparison.Ordinal)),
            "the Silo's store circuit closes\n" + silo.Log, 30_000);
        Assert.False(silo.HasExited);
    }

    /// <summary>Sends purchases of 1, 2, ... (from <paramref name="first"/>) for a user; each must be acknowledged.</summary>
    private static async Task Send(AudienceFactory api, string user, int count, int first = 1)
    {
        for (var amount = first; amount < first + count; amount++)
        {
            var response = await api.Http.PostJson("/api/events", JsonSerializer.Serialize(new { userId = user, eventType = "purchase", properties = new { amount } }));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }
    }

    private static async Task<(long Count, decimal Spent)?> Spent(AudienceFactory api, string user)
    {
        try
        {
            var response = await api.Http.GetAsync($"/api/users/{user}/profile");
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return null;
            }

            var json = await response.Json();
            return (json.GetProperty("eventCount").GetInt64(), json.GetProperty("totalSpent").GetDecimal());
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    [Fact]
    public async Task A_segment_committed_just_before_a_crash_still_reaches_segment_updates()
    {
        // What a process that died right after the commit leaves behind: the definition and its outbox row.
        using (var postgres = new Audience.Silo.Storage.PostgresDatabase(_database.ConnectionString))
        {
            postgres.Migrate();
            new Audience.Silo.Segments.PostgresSegmentStore(postgres).Save(
                new Audience.Silo.Segments.SegmentRecord("orphan", "Orphan", null, "DYNAMIC", "totalSpent > 1", 1, 1, 1), "created");
        }

        Assert.Empty(_kafka.Read("segment-updates"));
        using var api = new AudienceFactory(Settings);
        await Http.Eventually(() => Task.FromResult(_kafka.Read("segment-updates").Any(u => u.Key == "orphan")), "the outbox is published", 30_000);
        Assert.Equal(0, _database.Scalar("SELECT count(*) FROM segment_outbox"));
        Assert.Equal(HttpStatusCode.OK, (await api.Http.GetAsync("/api/segments/orphan")).StatusCode);
    }

    [Fact]
    public void A_Silo_without_Kafka_or_with_a_bad_setting_stops_and_names_the_key()
    {
        using (var silo = new SiloProcess("", _database.ConnectionString, "silo"))
        {
            Assert.True(silo.WaitForExit(60_000), "the Silo did not stop:\n" + silo.Log);
            Assert.Equal(2, silo.ExitCode);
            Assert.Contains("Kafka:BootstrapServers", silo.Log, StringComparison.Ordinal);
        }

        using var bad = new SiloProcess(_kafka.Bootstrap, "", "silo");
        Assert.True(bad.WaitForExit(60_000), "the Silo did not stop:\n" + bad.Log);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("Postgres:ConnectionString", bad.Log, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _kafka.Dispose();
        _database.Dispose();
    }
}
