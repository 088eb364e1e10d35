using Audience.Testing;

namespace Audience.Benchmarks;

/// <summary>
/// librdkafka's mock cluster as a process of its own, for measuring Kafka mode with the load tool: creates the
/// service's topics (<c>user-events</c> with the partitions asked for), prints the bootstrap servers on the first line
/// and runs until it is stopped (SIGTERM or Ctrl+C). The mock keeps at most 5 MiB per partition (MOCK-KAFKA.md).
/// </summary>
internal static class MockKafkaHost
{
    public static async Task RunAsync(string[] args)
    {
        var partitions = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 4;
        using var cluster = new MockCluster();
        cluster.CreateServiceTopics(partitions);

        Console.WriteLine(cluster.Bootstrap);
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }
}
