namespace Audience.Aerospike.Tests;

public class KeyTests
{
    [Fact]
    public void Digest_DemoUser42_MatchesDocumentedDigestAndPartition()
    {
        var key = new Key("test", "demo", "user:42");

        Assert.Equal("7cdca1bb03fac5adc7b5021626c020b7611aec06", Convert.ToHexStringLower(key.Digest));
        Assert.Equal(3196, key.PartitionId);
    }

    [Theory]
    [InlineData(long.MinValue, "7185c2a47fb02c996daed26b4e01b83240aee9d4")]
    [InlineData(0L, "93d943aae37b017ad7e011b0c1d2e2143c2fb37d")]
    [InlineData(-1L, "22116d253745e29fc63fdf760b6e26f7e197e01d")]
    public void Digest_IntegerKeys_MatchGoVectors(long userKey, string expected) =>
        Assert.Equal(expected, Convert.ToHexStringLower(new Key("test", "set", userKey).Digest));

    [Theory]
    [InlineData("", "2819b1ff6e346a43b4f5f6b77a88bc3eaac22a83")]
    [InlineData("aaaaaaaaaa", "5979fb32a80da070ff356f7695455592272e36c2")]
    public void Digest_StringKeys_MatchGoVectors(string userKey, string expected) =>
        Assert.Equal(expected, Convert.ToHexStringLower(new Key("test", "set", userKey).Digest));

    [Theory]
    [InlineData(0, "327e2877b8815c7aeede0d5a8620d4ef8df4a4b4")]
    [InlineData(10, "d10982327b2b04c7360579f252e164a75f83cd99")]
    public void Digest_BlobKeys_MatchGoVectors(int length, string expected)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill((byte)'a');

        Assert.Equal(expected, Convert.ToHexStringLower(new Key("test", "set", bytes).Digest));
    }

    [Fact]
    public void Constructor_LongNamespace_Throws() =>
        Assert.Throws<ArgumentException>(() => new Key(new string('n', 32), "s", "k"));
}
