using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace Audience.Testing;

/// <summary>
/// librdkafka's mock cluster (three brokers on loopback TCP ports), hosted by an admin client in this process;
/// other processes, kcat included, reach it at <see cref="Bootstrap"/> like any cluster. Topics are created here
/// with their partition count before anyone uses them (the mock's admin API cannot create them). Shared by the
/// tests and the benchmarks (linked source).
/// </summary>
internal sealed class MockCluster : IDisposable
{
    // The library Confluent.Kafka loads (KafkaNative): the mock functions must run in the same copy as the admin client.
    private const string Lib = "librdkafka";
    private readonly IAdminClient _owner;

    static MockCluster()
    {
        Audience.Silo.Kafka.KafkaNative.Use();
        NativeLibrary.SetDllImportResolver(typeof(MockCluster).Assembly, Audience.Silo.Kafka.KafkaNative.Resolve);
    }

    public MockCluster()
    {
        var config = new AdminClientConfig { BootstrapServers = "unused:9092" };
        config.Set("test.mock.num.brokers", "3");
        _owner = new AdminClientBuilder(config).SetLogHandler((_, _) => { }).Build();
        Bootstrap = Marshal.PtrToStringUTF8(rd_kafka_mock_cluster_bootstraps(Cluster()))!;
    }

    public string Bootstrap { get; }

    public void CreateTopic(string topic, int partitions) => Check(rd_kafka_mock_topic_create(Cluster(), topic, partitions, 1), topic);

    /// <summary>The service's topics: <c>user-events</c> with <paramref name="userEventPartitions"/> partitions, the others with 2.</summary>
    public void CreateServiceTopics(int userEventPartitions)
    {
        CreateTopic("user-events", userEventPartitions);
        foreach (var topic in new[] { "segment-updates", "user-segments", "orders-analytics", "user-events-dlq", "notification-requests" })
        {
            CreateTopic(topic, 2);
        }
    }

    /// <summary>Takes every broker down (connections closed, new ones refused) or brings them back.</summary>
    public void SetBrokersUp(bool up)
    {
        for (var broker = 1; broker <= 3; broker++)
        {
            Check(up ? rd_kafka_mock_broker_set_up(Cluster(), broker) : rd_kafka_mock_broker_set_down(Cluster(), broker), $"broker {broker}");
        }
    }

    private static void Check(int error, string what)
    {
        if (error != 0)
        {
            throw new InvalidOperationException($"mock cluster, {what}: {(Confluent.Kafka.ErrorCode)error}");
        }
    }

    private IntPtr Cluster()
    {
        var property = typeof(Handle).GetProperty("LibrdkafkaHandle", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)!;
        return rd_kafka_handle_mock_cluster(((SafeHandle)property.GetValue(_owner.Handle)!).DangerousGetHandle());
    }

    public void Dispose() => _owner.Dispose();

    [DllImport(Lib)]
    private static extern IntPtr rd_kafka_handle_mock_cluster(IntPtr rk);

    [DllImport(Lib)]
    private static extern IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_topic_create(IntPtr cluster, [MarshalAs(UnmanagedType.LPUTF8Str)] string topic, int partitions, int replicationFactor);

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_broker_set_down(IntPtr cluster, int brokerId);

    [DllImport(Lib)]
    private static extern int rd_kafka_mock_broker_set_up(IntPtr cluster, int brokerId);
}
