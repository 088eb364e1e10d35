using System.Buffers.Binary;
using System.Collections;
using System.Text;

namespace Audience.Aerospike.Wire;

/// <summary>Bin values as particles: a type byte in the op header and the value bytes after the bin name (AEROSPIKE.md §8.6).</summary>
internal static class Particle
{
    public static ParticleType TypeOf(object? value) => value switch
    {
        null => ParticleType.Null,
        long or int or short or byte => ParticleType.Integer,
        double or float => ParticleType.Double,
        string => ParticleType.String,
        byte[] => ParticleType.Blob,
        bool => ParticleType.Bool,
        IDictionary => ParticleType.Map,
        ICollection => ParticleType.List,
        _ => throw new ArgumentException($"Aerospike cannot store a {value.GetType().Name}; use long, double, string, byte[], bool, a list or a dictionary."),
    };

    public static void Write(MessageBuffer buffer, object? value)
    {
        switch (value)
        {
            case null:
                break;
            case long l:
                buffer.WriteInt64(l);
                break;
            case int i:
                buffer.WriteInt64(i);
                break;
            case short s:
                buffer.WriteInt64(s);
                break;
            case byte b:
                buffer.WriteInt64(b);
                break;
            case double d:
                buffer.WriteInt64(BitConverter.DoubleToInt64Bits(d));
                break;
            case float f:
                buffer.WriteInt64(BitConverter.DoubleToInt64Bits(f));
                break;
            case string str:
                buffer.WriteUtf8(str);
                break;
            case byte[] bytes:
                buffer.WriteBytes(bytes);
                break;
            case bool flag:
                buffer.WriteByte(flag ? (byte)1 : (byte)0);
                break;
            default:
                MsgPackWriter.WriteValue(buffer, value);
                break;
        }
    }

    public static object? Read(ParticleType type, ReadOnlySpan<byte> bytes) => type switch
    {
        ParticleType.Null => null,
        ParticleType.Integer => bytes.Length == 8 ? BinaryPrimitives.ReadInt64BigEndian(bytes) : 0L,
        ParticleType.Double => BitConverter.Int64BitsToDouble(BinaryPrimitives.ReadInt64BigEndian(bytes)),
        ParticleType.String => Encoding.UTF8.GetString(bytes),
        ParticleType.Bool => bytes.Length > 0 && bytes[0] != 0,
        ParticleType.Map or ParticleType.List => MsgPackReader.Decode(bytes),
        _ => bytes.ToArray(),
    };
}
