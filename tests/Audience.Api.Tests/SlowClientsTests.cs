using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Audience.Api.Tests;

/// <summary>
/// The service (its own process) with 500 Server-Sent Events subscribers and 200 slow clients open at once: clients
/// that send a request body a byte a second, and clients that send their headers a line at a time. A normal client is
/// still answered (its latency is reported, not asserted against a time), every subscriber still gets the change
/// it waits for, and Kestrel's limits close the slow connections.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class SlowClientsTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const int Subscribers = 500;
    private const int SlowBodies = 100;
    private const int SlowHeaders = 100;

    private readonly string _data = Directory.CreateTempSubdirectory("audience-slow-").FullName;

    [Fact]
    public async Task With_200_slow_connections_and_500_SSE_subscribers_a_normal_request_is_still_answered()
    {
        using var service = await ServiceProcess.StartAsync(_data, new Dictionary<string, string>
        {
            ["Security:RequestHeadersTimeout"] = "00:00:05",
            ["Security:MinRequestBodyGracePeriod"] = "00:00:05",
        });
        var address = service.Http.BaseAddress!;
        Assert.Equal(HttpStatusCode.Created, (await service.Http.PostJson("/api/segments", """{"id": "slow-vip", "name": "VIP", "rule": "totalSpent > 100"}""")).StatusCode);

        // 500 subscribers, each on its own connection.
        using var streams = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue }) { BaseAddress = address, Timeout = Timeout.InfiniteTimeSpan };
        var readers = await Task.WhenAll(Enumerable.Range(0, Subscribers).Select(async _ =>
        {
            var reader = new StreamReader(await streams.GetStreamAsync("/api/changes?segmentId=slow-vip"));
            Assert.Equal(": subscribed", await reader.ReadLineAsync());
            return reader;
        }));

        // 200 slow clients: half trickle a body, half trickle their headers.
        using var stop = new CancellationTokenSource();
        var slow = Enumerable.Range(0, SlowBodies + SlowHeaders).Select(i => Trickle(address, headersOnly: i >= SlowBodies, stop.Token)).ToList();
        await Task.Delay(TimeSpan.FromSeconds(2)); // every slow client has started

        // A normal client meanwhile: events and queries, each answered.
        var latencies = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            var watch = Stopwatch.StartNew();
            await service.Http.Send($"normal-{i}", "purchase", new { amount = 50 * (i + 1) });
            Assert.Equal(HttpStatusCode.OK, (await service.Http.GetAsync("/api/segments/slow-vip")).StatusCode);
            latencies.Add(watch.Elapsed.TotalMilliseconds);
        }

        latencies.Sort();
        output.WriteLine($"a normal event + query with {Subscribers} SSE subscribers and {SlowBodies + SlowHeaders} slow clients open: " +
            $"median {latencies[latencies.Count / 2]:F1} ms, max {latencies[^1]:F1} ms over {latencies.Count}");

        // Every subscriber gets every change: normal-2 .. normal-19 spent over 100.
        var expected = Enumerable.Range(2, 18).Select(i => $"normal-{i}").ToHashSet();
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await Task.WhenAll(readers.Select(async reader =>
        {
            var seen = new HashSet<string>();
            while (!seen.SetEquals(expected) && await reader.ReadLineAsync(patience.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    seen.Add(JsonDocument.Parse(line[6..]).RootElement.GetProperty("userId").GetString()!);
                }
            }

            Assert.Equal(expected.Order(), seen.Order());
        }));

        // The server, not the client, ends the slow connections, once its limits run out: the body rate's grace and the
        // header timeout are 5 s here (not at once: a body the service refuses outright would prove nothing).
        var closed = await Task.WhenAll(slow);
        stop.Cancel();
        output.WriteLine($"slow connections closed by the server: {closed.Count(c => c.Closed)} of {closed.Length}, after " +
            $"{closed.Min(c => c.After.TotalSeconds):F1} to {closed.Max(c => c.After.TotalSeconds):F1} s; answers: " +
            string.Join(", ", closed.GroupBy(c => c.Answer ?? "none").Select(g => $"{g.Key} ×{g.Count()}")));
        Assert.All(closed, c => Assert.True(c.Closed && c.After >= TimeSpan.FromSeconds(4), $"closed {c.Closed} after {c.After}, answer {c.Answer}"));
        Assert.All(closed, c => Assert.True(c.Answer is null or "408", $"answered {c.Answer}"));
        foreach (var reader in readers)
        {
            reader.Dispose();
        }

        Assert.Equal(HttpStatusCode.OK, (await service.Http.GetAsync("/health/ready")).StatusCode);
    }

    /// <summary>
    /// A client that sends a request a byte or a header line at a time, once a second, for up to 40 s: whether the server
    /// closed the connection (or answered and closed it) before then, after how long, and the status it answered.
    /// </summary>
    private static async Task<(bool Closed, TimeSpan After, string? Answer)> Trickle(Uri address, bool headersOnly, CancellationToken stop)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(address.Host, address.Port, stop);
        var watch = Stopwatch.StartNew();
        var stream = client.GetStream();
        // A body the service would take (under an event's 32 KiB), so that only the rate limit can end it.
        var head = $"POST /api/events HTTP/1.1\r\nHost: {address.Authority}\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n";
        // The request line and the first headers at once; then either the body a byte a second, or more headers a line
        // a second and never their end.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(headersOnly ? head : head + "\r\n"), stop);

        var buffer = new byte[4096];
        var reading = stream.ReadAsync(buffer, stop).AsTask();
        for (var second = 0; second < 40; second++)
        {
            var tick = Task.Delay(TimeSpan.FromSeconds(1), stop);
            if (await Task.WhenAny(reading, tick) == reading)
            {
                // The server answered (408) or closed the connection.
                var read = reading.IsCompletedSuccessfully ? reading.Result : 0;
                var answer = read >= 12 ? Encoding.ASCII.GetString(buffer, 9, 3) : null;
                return (true, watch.Elapsed, answer);
            }

            try
            {
                var piece = headersOnly ? Encoding.ASCII.GetBytes($"X-Slow-{second}: {second}\r\n") : "{"u8.ToArray();
                await stream.WriteAsync(piece, stop);
            }
            catch (IOException)
            {
                return (true, watch.Elapsed, null);
            }
        }

        return (false, watch.Elapsed, null);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
