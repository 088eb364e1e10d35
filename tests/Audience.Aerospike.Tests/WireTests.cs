using Audience.Aerospike.Cluster;
using Audience.Aerospike.Operations;
using Audience.Aerospike.Wire;

namespace Audience.Aerospike.Tests;

public class WireTests
{
    private static readonly Key Demo = new("test", "demo", "user:42");

    private static string Hex(MessageBuffer buffer) => Convert.ToHexStringLower(buffer.WrittenSpan);

    [Fact]
    public void WriteRecordCommand_GetAllBins_Is73DocumentedBytes()
    {
        using var buffer = new MessageBuffer();

        CommandWriter.WriteRecordCommand(buffer, Demo, [Operation.Get()], null, 1000);

        var expected = "0203000000000041" + "16030000000000000000000000000000" + "03e800030000"
            + "000000050074657374" + "0000000501" + "64656d6f" + "0000001504" + "7cdca1bb03fac5adc7b5021626c020b7611aec06";
        Assert.Equal(73, buffer.Length);
        Assert.Equal(expected, Hex(buffer));
    }

    [Fact]
    public void WriteRecordCommand_OperateWithCas_Is103DocumentedBytes()
    {
        using var buffer = new MessageBuffer();
        var policy = WritePolicy.ExpectGeneration(7) with { Ttl = 3600 };

        CommandWriter.WriteRecordCommand(buffer, Demo, [Operation.Add("cnt", 1), Operation.Get("cnt")], policy, 1000);

        var expected = "020300000000005f" + "160105000000" + "00000007" + "00000e10" + "000003e8" + "0003" + "0002"
            + "000000050074657374" + "000000050164656d6f" + "0000001504" + "7cdca1bb03fac5adc7b5021626c020b7611aec06"
            + "0000000f0501000363" + "6e740000000000000001" + "00000007010000" + "03636e74";
        Assert.Equal(103, buffer.Length);
        Assert.Equal(expected, Hex(buffer));
    }

    [Fact]
    public void WriteRecordCommand_MapIncrement_EndsWithDocumentedOpAndRespondsAllOps()
    {
        using var buffer = new MessageBuffer();

        CommandWriter.WriteRecordCommand(buffer, Demo, [MapOperation.Increment("segs", "s1", 1, MapOrder.Unordered)], WritePolicy.Default, 1000);

        Assert.EndsWith("00000010040400047365677394" + "49a30373310100", Hex(buffer), StringComparison.Ordinal);
        Assert.Equal(CommandWriter.Write | CommandWriter.RespondAllOps, buffer.WrittenSpan[10]);
    }

    [Fact]
    public void WriteInfo_TwoCommands_HasInfoProtoHeader()
    {
        using var buffer = new MessageBuffer();

        CommandWriter.WriteInfo(buffer, ["partition-generation", "replicas"]);

        Assert.Equal("020100000000001e", Convert.ToHexStringLower(buffer.WrittenSpan[..8]));
        Assert.Equal("partition-generation\nreplicas\n", System.Text.Encoding.ASCII.GetString(buffer.WrittenSpan[8..]));
    }

    [Fact]
    public void ParseReplicas_TwoNamespaces_SetsOwnedPartitions()
    {
        var master = new byte[512];
        master[0] = 0x80; // partition 0
        master[511] = 0x01; // partition 4095
        var prole = new byte[512];
        prole[1] = 0x40; // partition 9
        var full = Enumerable.Repeat((byte)0xff, 512).ToArray();
        var text = $"audience:0,2,{Convert.ToBase64String(master)},{Convert.ToBase64String(prole)};other:0,1,{Convert.ToBase64String(full)}";
        var owned = new List<(string, int, int, int)>();

        InfoParser.ParseReplicas(text, (ns, count, replica, partition) => owned.Add((ns, count, replica, partition)));

        Assert.Equal([("audience", 2, 0, 0), ("audience", 2, 0, 4095), ("audience", 2, 1, 9)], owned.Take(3));
        Assert.Equal(4096, owned.Count(o => o.Item1 == "other"));
        Assert.Equal(684, Convert.ToBase64String(master).Length);
    }

    [Fact]
    public void ParseReplicas_WrongBitmapLength_Throws() =>
        Assert.Throws<AerospikeException>(() => InfoParser.ParseReplicas("ns:0,1,AAAA", (_, _, _, _) => { }));

    [Fact]
    public void ParsePeers_ThreePeers_ReturnsNamesAndFirstAddresses()
    {
        var (generation, peers) = InfoParser.ParsePeers("7,3000,[[BB9020011AC4202,,[10.0.0.2:3100,10.0.0.3]],[BB9030011AC4202,,[10.0.0.4]],[BB9040011AC4202,,[[::1]:3200]]]");

        Assert.Equal(7, generation);
        Assert.Equal([("BB9020011AC4202", "10.0.0.2", 3100), ("BB9030011AC4202", "10.0.0.4", 3000), ("BB9040011AC4202", "::1", 3200)], peers);
    }

    [Fact]
    public void ParsePeers_NoPeers_ReturnsEmpty()
    {
        var (generation, peers) = InfoParser.ParsePeers("1,3000,[]");

        Assert.Equal(1, generation);
        Assert.Empty(peers);
    }

    [Fact]
    public void ParseResponse_NameTabValueLines_Splits()
    {
        var info = InfoParser.ParseResponse("node\tBB9\npartition-generation\t12\n"u8);

        Assert.Equal("BB9", info["node"]);
        Assert.Equal("12", info["partition-generation"]);
    }

    [Fact]
    public void MsgPack_NestedValues_RoundTrip()
    {
        using var buffer = new MessageBuffer();
        var value = new Dictionary<object, object?>
        {
            ["s"] = "text",
            [5L] = new List<object?> { 1L, -1L, 300L, -70000L, long.MaxValue, 1.5, true, null, new byte[] { 1, 2 } },
        };

        MsgPackWriter.WriteValue(buffer, value);
        var decoded = Assert.IsType<Dictionary<object, object?>>(MsgPackReader.Decode(buffer.WrittenSpan));

        Assert.Equal("text", decoded["s"]);
        var list = Assert.IsType<List<object?>>(decoded[5L]);
        Assert.Equal([1L, -1L, 300L, -70000L, long.MaxValue, 1.5, true, null], list.Take(8));
        Assert.Equal([1, 2], Assert.IsType<byte[]>(list[8]));
    }

    [Theory]
    [InlineData("127.0.0.1:3000", "127.0.0.1", 3000)]
    [InlineData("db.local", "db.local", 3000)]
    [InlineData("[::1]:3100", "::1", 3100)]
    public void ParseHosts_Forms_Parse(string text, string host, int port) =>
        Assert.Equal((host, port), HostParser.Parse(text, 3000));

    [Fact]
    public void Validate_BadPort_ThrowsActionableMessage()
    {
        var error = Assert.Throws<ArgumentException>(() => new AerospikeClientOptions { Hosts = "a:0" }.Validate());

        Assert.Contains("port", error.Message, StringComparison.Ordinal);
    }
}
