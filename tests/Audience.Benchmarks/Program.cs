using BenchmarkDotNet.Running;

namespace Audience.Benchmarks;

public static class Program
{
    /// <summary>
    /// BenchmarkDotNet:      dotnet run -c Release --project tests/Audience.Benchmarks -- --filter '*'
    /// Bare Kestrel limit:   dotnet run -c Release --project tests/Audience.Benchmarks -- bare-kestrel --urls http://127.0.0.1:5090
    /// Silo throughput:      dotnet run -c Release --project tests/Audience.Benchmarks -- silo-throughput [segments] [events] [users]
    /// Kafka mode:           dotnet run -c Release --project tests/Audience.Benchmarks -- kafka-throughput [segments] [events] [users]
    /// Store write limit:    dotnet run -c Release --project tests/Audience.Benchmarks -- store-write [rows] [batch]
    /// Backfill:             dotnet run -c Release --project tests/Audience.Benchmarks -- backfill [profiles] [segments] [rule]
    /// Mock Kafka cluster:   dotnet run -c Release --project tests/Audience.Benchmarks -- mock-kafka [partitions]   (prints the bootstrap servers)
    /// Aerospike client:     AUDIENCE_BENCH_AEROSPIKE=127.0.0.1:3000 dotnet run -c Release --project tests/Audience.Benchmarks -- aerospike-client [seconds] [records]
    /// </summary>
    public static async Task Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "bare-kestrel":
                await BareKestrel.RunAsync(args[1..]);
                break;
            case "store-write":
                await StoreWrite.RunAsync(args[1..]);
                break;
            case "aerospike-client":
                await AerospikeClientThroughput.RunAsync(args[1..]);
                break;
            case "kafka-throughput":
                await KafkaThroughput.RunAsync(args[1..]);
                break;
            case "silo-throughput":
                await SiloThroughput.RunAsync(args[1..]);
                break;
            case "backfill":
                await BackfillThroughput.RunAsync(args[1..]);
                break;
            case "mock-kafka":
                await MockKafkaHost.RunAsync(args[1..]);
                break;
            default:
                BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
                break;
        }
    }
}
