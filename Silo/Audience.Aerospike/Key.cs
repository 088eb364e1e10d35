using System.Buffers.Binary;
using System.Text;
using Audience.Aerospike.Cluster;

namespace Audience.Aerospike;

/// <summary>
/// A record's address: namespace, set and user key, with the RIPEMD-160 digest the server stores it by.
/// The digest hashes the set name, the key's particle type and the key's bytes (not the namespace), AEROSPIKE.md §5.
/// </summary>
public sealed class Key
{
    private const int MaxStackKey = 256;

    /// <summary>A string key.</summary>
    public Key(string ns, string? set, string userKey)
        : this(ns, set, (object)userKey)
    {
    }

    /// <summary>An integer key.</summary>
    public Key(string ns, string? set, long userKey)
        : this(ns, set, (object)userKey)
    {
    }

    /// <summary>A blob key.</summary>
    public Key(string ns, string? set, byte[] userKey)
        : this(ns, set, (object)userKey)
    {
    }

    private Key(string ns, string? set, object userKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(ns);
        if (Encoding.UTF8.GetByteCount(ns) >= 32)
        {
            throw new ArgumentException("A namespace name has at most 31 bytes.", nameof(ns));
        }

        Namespace = ns;
        SetName = string.IsNullOrEmpty(set) ? null : set;
        UserKey = userKey;
        Digest = ComputeDigest(SetName, userKey);
    }

    private Key(string ns, string? set, byte[] digest, bool _)
    {
        Namespace = ns;
        SetName = string.IsNullOrEmpty(set) ? null : set;
        Digest = digest;
    }

    public string Namespace { get; }

    public string? SetName { get; }

    /// <summary>The user key (string, long or byte[]); null for a key rebuilt from a digest.</summary>
    public object? UserKey { get; }

    /// <summary>The 20-byte RIPEMD-160 digest.</summary>
    public byte[] Digest { get; }

    /// <summary>The partition (0..4095): the first four digest bytes read little-endian, low 12 bits (AEROSPIKE.md §6).</summary>
    public int PartitionId => PartitionIdOf(Digest);

    /// <summary>A key known only by its digest, as scans return them (a factory, so it cannot be mistaken for a blob key).</summary>
    public static Key FromDigest(string ns, string? set, ReadOnlySpan<byte> digest) => digest.Length == Ripemd160.HashSize
        ? new Key(ns, set, digest.ToArray(), true)
        : throw new ArgumentException("A digest has 20 bytes.", nameof(digest));

    internal static int PartitionIdOf(ReadOnlySpan<byte> digest) => (int)(BinaryPrimitives.ReadUInt32LittleEndian(digest) & (Partitions.Count - 1));

    /// <summary>Computes a digest without building a key.</summary>
    public static byte[] ComputeDigest(string? set, object userKey)
    {
        var digest = new byte[Ripemd160.HashSize];
        var setBytes = Encoding.UTF8.GetByteCount(set ?? "");
        Span<byte> setSpan = setBytes <= MaxStackKey ? stackalloc byte[setBytes] : new byte[setBytes];
        Encoding.UTF8.GetBytes(set ?? "", setSpan);
        switch (userKey)
        {
            case string s:
                {
                    var n = Encoding.UTF8.GetByteCount(s);
                    Span<byte> buffer = n + 1 <= MaxStackKey ? stackalloc byte[n + 1] : new byte[n + 1];
                    buffer[0] = (byte)ParticleType.String;
                    Encoding.UTF8.GetBytes(s, buffer[1..]);
                    Ripemd160.Hash(setSpan, buffer, default, digest);
                    break;
                }

            case long l:
                {
                    Span<byte> buffer = stackalloc byte[9];
                    buffer[0] = (byte)ParticleType.Integer;
                    BinaryPrimitives.WriteInt64BigEndian(buffer[1..], l);
                    Ripemd160.Hash(setSpan, buffer, default, digest);
                    break;
                }

            case byte[] b:
                {
                    ReadOnlySpan<byte> type = [(byte)ParticleType.Blob];
                    Ripemd160.Hash(setSpan, type, b, digest);
                    break;
                }

            default:
                throw new ArgumentException("A user key is a string, a long or a byte array.", nameof(userKey));
        }

        return digest;
    }

    public override string ToString() => $"{Namespace}:{SetName}:{UserKey ?? Convert.ToHexStringLower(Digest)}";
}
