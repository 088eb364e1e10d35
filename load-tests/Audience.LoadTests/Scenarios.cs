using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Audience.LoadTesting;
using Confluent.Kafka;

namespace Audience.LoadTests;

/// <summary>
/// The built-in scenarios are written against the library's public API like any user's: each class holds the
/// scenario's state (clients, listeners) and <see cref="BuiltIn.Create"/> turns it into a <see cref="Scenario"/>
/// whose set-up is <c>SetUpAsync</c>, whose step is <c>ExecuteAsync</c> and whose clean-up disposes the class.
/// </summary>
internal static class BuiltIn
{
    public static Scenario Create(string name, string description, Func<CancellationToken, Task> setUp,
        Func<long, CancellationToken, Task<Response>> execute, IAsyncDisposable owner) =>
        Scenario.Create(name, context => execute(context.InvocationNumber, context.CancellationToken))
            .WithDescription(description)
            .WithInit(context => setUp(context.CancellationToken))
            .WithClean(_ => owner.DisposeAsync().AsTask());
}

/// <summary>The HTTP client every scenario uses: many connections, no client-side request queueing limits.</summary>
internal static class Http
{
    public static HttpClient Create(string target, TimeSpan timeout) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = 512,
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),
    })
    {
        BaseAddress = new Uri(target),
        Timeout = timeout,
    };

    /// <summary>Creates the traffic's segments (a 409 means a previous run made it: fine).</summary>
    public static async Task CreateSegmentsAsync(HttpClient http, int count, CancellationToken cancellationToken)
    {
        foreach (var (id, rule) in Traffic.Segments(count))
        {
            var response = await http.PostAsJsonAsync("/api/segments", new { id, name = id, rule }, cancellationToken);
            if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.Conflict))
            {
                throw new InvalidOperationException($"creating segment {id} ({rule}): {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
            }
        }
    }
}

/// <summary><c>ingest</c> (one event per POST) and <c>ingest-batch</c> (<c>--batch-size</c> events per POST).</summary>
internal sealed class IngestScenario(LoadOptions options, Traffic traffic, bool batch) : IAsyncDisposable
{
    private readonly HttpClient _http = Http.Create(options.Target, options.Timeout);

    public Scenario Build() => BuiltIn.Create(batch ? "ingest-batch" : "ingest", Describe(), SetUpAsync, ExecuteAsync, this);

    public string Describe() => batch ? $"POST /api/events/batch, {options.BatchSize} events each" : "POST /api/events, one event each";

    public Task SetUpAsync(CancellationToken cancellationToken) => Http.CreateSegmentsAsync(_http, options.Segments, cancellationToken);

    public async Task<Response> ExecuteAsync(long index, CancellationToken cancellationToken)
    {
        // A failed request throws: the runner counts it by kind (timeout, connection refused, ...).
        using var response = batch
            ? await _http.PostAsJsonAsync("/api/events/batch", Enumerable.Range(0, options.BatchSize).Select(_ => traffic.Event(traffic.User())).ToList(), cancellationToken)
            : await _http.PostAsJsonAsync("/api/events", traffic.Event(traffic.User()), cancellationToken);
        return response.StatusCode == HttpStatusCode.Accepted
            ? Response.Ok(batch ? options.BatchSize : 1)
            : Response.Fail($"http {(int)response.StatusCode}");
    }

    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// <c>qualify</c>: end to end. Each operation is a new user's purchase that puts them in the segment
/// <c>lt-qualify</c> (<c>totalSpent >= 100</c>); it ends when the entry is observed, on the Api's SSE stream
/// (embedded), or on <c>user-segments</c> (with <c>--bootstrap</c>, Kafka mode). Latency: intended send → observed.
/// </summary>
internal sealed class QualifyScenario(LoadOptions options) : IAsyncDisposable
{
    private const string SegmentId = "lt-qualify";
    private readonly HttpClient _http = Http.Create(options.Target, options.Timeout);
    private readonly HttpClient _stream = new() { BaseAddress = new Uri(options.Target), Timeout = Timeout.InfiniteTimeSpan };
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly string _run = Guid.NewGuid().ToString("N")[..8];
    private Task _listener = Task.CompletedTask;

    public Scenario Build() => BuiltIn.Create("qualify", Describe(), SetUpAsync, ExecuteAsync, this);

    public string Describe() => $"a new user's purchase until its entry into '{SegmentId}' is seen on " +
        (options.Bootstrap is null ? "GET /api/changes (SSE)" : $"user-segments at {options.Bootstrap}");

    public async Task SetUpAsync(CancellationToken cancellationToken)
    {
        await Http.CreateSegmentsAsync(_http, options.Segments, cancellationToken);
        var response = await _http.PostAsJsonAsync("/api/segments", new { id = SegmentId, name = "load test: qualify", rule = "totalSpent >= 100" }, cancellationToken);
        if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.Conflict))
        {
            throw new InvalidOperationException($"creating {SegmentId}: {(int)response.StatusCode}");
        }

        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _listener = options.Bootstrap is null
            ? Task.Run(() => ListenSse(ready), CancellationToken.None)
            : Task.Factory.StartNew(() => ListenKafka(ready), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
    }

    public async Task<Response> ExecuteAsync(long index, CancellationToken cancellationToken)
    {
        var user = $"lt-q-{_run}-{index}";
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[user] = seen;
        try
        {
            using var response = await _http.PostAsJsonAsync("/api/events",
                new { userId = user, eventType = "purchase", properties = new { amount = 100, category = "electronics" } }, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                return Response.Fail($"http {(int)response.StatusCode}");
            }

            await seen.Task.WaitAsync(options.Timeout, cancellationToken);
            return Response.Ok(1);
        }
        catch (TimeoutException)
        {
            return Response.Fail("not qualified in time");
        }
        finally
        {
            _waiting.TryRemove(user, out _);
        }
    }

    private void Seen(string json)
    {
        using var change = JsonDocument.Parse(json);
        var root = change.RootElement;
        if (root.GetProperty("segmentId").GetString() == SegmentId && root.GetProperty("action").GetString() == "added"
            && _waiting.TryGetValue(root.GetProperty("userId").GetString()!, out var waiting))
        {
            waiting.TrySetResult();
        }
    }

    private async Task ListenSse(TaskCompletionSource ready)
    {
        using var reader = new StreamReader(await _stream.GetStreamAsync($"/api/changes?segmentId={SegmentId}", _stop.Token));
        while (await reader.ReadLineAsync(_stop.Token) is { } line)
        {
            if (line.StartsWith(": subscribed", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                Seen(line[6..]);
            }
        }
    }

    private void ListenKafka(TaskCompletionSource ready)
    {
        using var consumer = new ConsumerBuilder<Ignore, string>(new ConsumerConfig
        {
            BootstrapServers = options.Bootstrap,
            GroupId = "audience-loadtest-" + _run,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 10,
        }).Build();
        using (var admin = new DependentAdminClientBuilder(consumer.Handle).Build())
        {
            var topic = admin.GetMetadata("user-segments", TimeSpan.FromSeconds(10)).Topics.Single();
            consumer.Assign(topic.Partitions.Select(p => new TopicPartitionOffset(topic.Topic, p.PartitionId, Offset.End)));
        }

        ready.TrySetResult();
        while (!_stop.IsCancellationRequested)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100))?.Message?.Value is { } value)
            {
                Seen(value);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _listener;
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }

        _stop.Dispose();
        _http.Dispose();
        _stream.Dispose();
    }
}

/// <summary><c>kafka-ingest</c>: events produced straight to <c>user-events</c> (the target is the bootstrap servers).</summary>
internal sealed class KafkaIngestScenario(LoadOptions options, Traffic traffic) : IAsyncDisposable
{
    private readonly IProducer<string, byte[]> _producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
    {
        BootstrapServers = options.Target,
        Acks = Acks.All,
        EnableIdempotence = true,
        LingerMs = 2,
        MessageTimeoutMs = (int)options.Timeout.TotalMilliseconds,
    }).Build();

    public Scenario Build() => BuiltIn.Create("kafka-ingest", Describe(), SetUpAsync, ExecuteAsync, this);

    public string Describe() => $"produce to {options.Topic} at {options.Target} (idempotent, acks=all), key = user id";

    public Task SetUpAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<Response> ExecuteAsync(long index, CancellationToken cancellationToken)
    {
        var user = traffic.User();
        try
        {
            await _producer.ProduceAsync(options.Topic, new Message<string, byte[]> { Key = user, Value = JsonSerializer.SerializeToUtf8Bytes(traffic.Event(user)) }, cancellationToken);
            return Response.Ok(1);
        }
        catch (ProduceException<string, byte[]> e)
        {
            return Response.Fail(e.Error.Code.ToString());
        }
    }

    public ValueTask DisposeAsync()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// <c>authoring</c>: while events flow at <c>--rate</c> (single POSTs, not measured), a segment is created or edited
/// every <c>--authoring-interval</c>; each operation ends when its backfill over the stored profiles completes
/// (status <c>active</c> on <c>GET /api/segments/{id}</c>).
/// </summary>
internal sealed class AuthoringScenario(LoadOptions options, Traffic traffic) : IAsyncDisposable
{
    private readonly HttpClient _http = Http.Create(options.Target, options.Timeout);
    private readonly IngestScenario _events = new(options, traffic, batch: false);
    private readonly CancellationTokenSource _stop = new();
    private Task _background = Task.CompletedTask;
    private long _backgroundSent;

    public long BackgroundEvents => Interlocked.Read(ref _backgroundSent);

    public Scenario Build() => BuiltIn.Create("authoring", Describe(), SetUpAsync, ExecuteAsync, this);

    public string Describe() => $"a segment created or edited every {options.AuthoringInterval.TotalSeconds:0.##} s while events flow at {options.Rate:N0}/s; until its backfill completes";

    public async Task SetUpAsync(CancellationToken cancellationToken)
    {
        await _events.SetUpAsync(cancellationToken);
        _background = Task.Run(async () =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (long i = 0; !_stop.IsCancellationRequested; i++)
            {
                var due = (i / options.Rate) - clock.Elapsed.TotalSeconds;
                if (due > 0.002)
                {
                    await Task.Delay(TimeSpan.FromSeconds(due), _stop.Token).ConfigureAwait(false);
                }

                _ = Send(i);
            }
        }, CancellationToken.None);
    }

    private async Task Send(long i)
    {
        if (!(await _events.ExecuteAsync(i, _stop.Token)).IsError)
        {
            Interlocked.Increment(ref _backgroundSent);
        }
    }

    public async Task<Response> ExecuteAsync(long index, CancellationToken cancellationToken)
    {
        // Even operations create a segment, odd ones edit the one made just before.
        var id = $"lt-authored-{Environment.ProcessId}-{index / 2}";
        var rule = $"totalSpent > {traffic.Random.Next(50, 2000)} or count(page_view within 1h) >= {traffic.Random.Next(2, 30)}";
        using var response = index % 2 == 0
            ? await _http.PostAsJsonAsync("/api/segments", new { id, name = id, rule }, cancellationToken)
            : await _http.PutAsJsonAsync($"/api/segments/{id}", new { name = id, rule }, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            return Response.Fail($"http {(int)response.StatusCode}");
        }

        var deadline = DateTime.UtcNow + options.Timeout;
        while (DateTime.UtcNow < deadline)
        {
            var segment = await _http.GetFromJsonAsync<JsonElement>($"/api/segments/{id}", cancellationToken);
            if (segment.GetProperty("status").GetString() == "active")
            {
                return Response.Ok(0);
            }

            await Task.Delay(10, cancellationToken);
        }

        return Response.Fail("backfill not done in time");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _background;
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }

        await _events.DisposeAsync();
        _stop.Dispose();
        _http.Dispose();
    }
}
