using System.Collections;
using System.Text;

namespace Audience.Aerospike.Wire;

/// <summary>
/// The MessagePack subset Aerospike's collection (CDT) payloads use. Strings and blobs inside CDT msgpack carry Aerospike's
/// particle-type byte (0x03 string, 0x04 blob) as the first byte of a str payload (AEROSPIKE.md §8.7), which no general
/// msgpack library does, so the few bytes are written here.
/// </summary>
internal static class MsgPackWriter
{
    public static void WriteArrayHeader(MessageBuffer buffer, int count)
    {
        if (count < 16)
        {
            buffer.WriteByte((byte)(0x90 | count));
        }
        else if (count <= ushort.MaxValue)
        {
            buffer.WriteByte(0xdc);
            buffer.WriteUInt16((ushort)count);
        }
        else
        {
            buffer.WriteByte(0xdd);
            buffer.WriteInt32(count);
        }
    }

    public static void WriteMapHeader(MessageBuffer buffer, int count)
    {
        if (count < 16)
        {
            buffer.WriteByte((byte)(0x80 | count));
        }
        else if (count <= ushort.MaxValue)
        {
            buffer.WriteByte(0xde);
            buffer.WriteUInt16((ushort)count);
        }
        else
        {
            buffer.WriteByte(0xdf);
            buffer.WriteInt32(count);
        }
    }

    public static void WriteInteger(MessageBuffer buffer, long value)
    {
        if (value >= 0)
        {
            if (value < 128)
            {
                buffer.WriteByte((byte)value);
            }
            else if (value <= byte.MaxValue)
            {
                buffer.WriteByte(0xcc);
                buffer.WriteByte((byte)value);
            }
            else if (value <= ushort.MaxValue)
            {
                buffer.WriteByte(0xcd);
                buffer.WriteUInt16((ushort)value);
            }
            else if (value <= uint.MaxValue)
            {
                buffer.WriteByte(0xce);
                buffer.WriteInt32((int)(uint)value);
            }
            else
            {
                buffer.WriteByte(0xcf);
                buffer.WriteInt64(value);
            }
        }
        else if (value >= -32)
        {
            buffer.WriteByte((byte)(sbyte)value);
        }
        else if (value >= sbyte.MinValue)
        {
            buffer.WriteByte(0xd0);
            buffer.WriteByte((byte)(sbyte)value);
        }
        else if (value >= short.MinValue)
        {
            buffer.WriteByte(0xd1);
            buffer.WriteUInt16((ushort)(short)value);
        }
        else if (value >= int.MinValue)
        {
            buffer.WriteByte(0xd2);
            buffer.WriteInt32((int)value);
        }
        else
        {
            buffer.WriteByte(0xd3);
            buffer.WriteInt64(value);
        }
    }

    /// <summary>Writes any supported value: null, bool, integers, floating point, string, byte[], maps and lists.</summary>
    public static void WriteValue(MessageBuffer buffer, object? value)
    {
        switch (value)
        {
            case null:
                buffer.WriteByte(0xc0);
                break;
            case bool b:
                buffer.WriteByte(b ? (byte)0xc3 : (byte)0xc2);
                break;
            case long l:
                WriteInteger(buffer, l);
                break;
            case int i:
                WriteInteger(buffer, i);
                break;
            case short s:
                WriteInteger(buffer, s);
                break;
            case byte u8:
                WriteInteger(buffer, u8);
                break;
            case double d:
                buffer.WriteByte(0xcb);
                buffer.WriteInt64(BitConverter.DoubleToInt64Bits(d));
                break;
            case float f:
                buffer.WriteByte(0xcb);
                buffer.WriteInt64(BitConverter.DoubleToInt64Bits(f));
                break;
            case string str:
                WriteParticleString(buffer, str, ParticleType.String);
                break;
            case byte[] bytes:
                WriteStrHeader(buffer, bytes.Length + 1);
                buffer.WriteByte((byte)ParticleType.Blob);
                buffer.WriteBytes(bytes);
                break;
            case IDictionary map:
                WriteMapHeader(buffer, map.Count);
                foreach (DictionaryEntry entry in map)
                {
                    WriteValue(buffer, entry.Key);
                    WriteValue(buffer, entry.Value);
                }

                break;
            case ICollection list:
                WriteArrayHeader(buffer, list.Count);
                foreach (var item in list)
                {
                    WriteValue(buffer, item);
                }

                break;
            default:
                throw new ArgumentException($"Aerospike cannot store a {value.GetType().Name}; use long, double, string, byte[], bool, a list or a dictionary.");
        }
    }

    private static void WriteParticleString(MessageBuffer buffer, string value, ParticleType type)
    {
        WriteStrHeader(buffer, Encoding.UTF8.GetByteCount(value) + 1);
        buffer.WriteByte((byte)type);
        buffer.WriteUtf8(value);
    }

    private static void WriteStrHeader(MessageBuffer buffer, int length)
    {
        if (length < 32)
        {
            buffer.WriteByte((byte)(0xa0 | length));
        }
        else if (length <= byte.MaxValue)
        {
            buffer.WriteByte(0xd9);
            buffer.WriteByte((byte)length);
        }
        else if (length <= ushort.MaxValue)
        {
            buffer.WriteByte(0xda);
            buffer.WriteUInt16((ushort)length);
        }
        else
        {
            buffer.WriteByte(0xdb);
            buffer.WriteInt32(length);
        }
    }
}
