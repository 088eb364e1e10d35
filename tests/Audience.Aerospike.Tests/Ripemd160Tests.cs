using System.Text;

namespace Audience.Aerospike.Tests;

public class Ripemd160Tests
{
    [Theory]
    [InlineData("", "9c1185a5c5e9fc54612808977ee8f548b2258d31")]
    [InlineData("a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe")]
    [InlineData("abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc")]
    [InlineData("message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36")]
    [InlineData("abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc")]
    [InlineData("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b")]
    [InlineData("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "9b752e45573d4b39f4dbd3323cab82bf63326bfb")]
    public void Hash_PaperVectors_Match(string message, string expected)
    {
        Span<byte> digest = stackalloc byte[20];

        Ripemd160.Hash(Encoding.ASCII.GetBytes(message), digest);

        Assert.Equal(expected, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Hash_MillionA_Matches()
    {
        var data = new byte[1_000_000];
        data.AsSpan().Fill((byte)'a');
        Span<byte> digest = stackalloc byte[20];

        Ripemd160.Hash(data, digest);

        Assert.Equal("52783243c1697bdbe16d37f97f68f08325dc1528", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Hash_SplitInputs_EqualsWhole()
    {
        var data = Encoding.ASCII.GetBytes(new string('x', 200));
        Span<byte> whole = stackalloc byte[20];
        Span<byte> parts = stackalloc byte[20];

        Ripemd160.Hash(data, whole);
        Ripemd160.Hash(data.AsSpan(0, 63), data.AsSpan(63, 70), data.AsSpan(133), parts);

        Assert.True(whole.SequenceEqual(parts));
    }
}
