using System.Buffers.Binary;
using System.Text;

namespace Audience.Aerospike.Wire;

/// <summary>
/// Decodes Aerospike CDT msgpack into plain .NET values: long, double, string, byte[], bool, null,
/// <see cref="List{T}"/> of object and <see cref="Dictionary{TKey, TValue}"/> of object to object (insertion order kept).
/// Extension values (ordered-map flags, wildcards) are skipped.
/// </summary>
internal ref struct MsgPackReader
{
    private static readonly object Extension = new();

    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public MsgPackReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public static object? Decode(ReadOnlySpan<byte> data)
    {
        var reader = new MsgPackReader(data);
        var value = reader.Read();
        return ReferenceEquals(value, Extension) ? null : value;
    }

    public object? Read()
    {
        var b = _data[_position++];
        if (b <= 0x7f)
        {
            return (long)b;
        }

        if (b >= 0xe0)
        {
            return (long)(sbyte)b;
        }

        if ((b & 0xe0) == 0xa0)
        {
            return ReadString(b & 0x1f);
        }

        if ((b & 0xf0) == 0x90)
        {
            return ReadList(b & 0x0f);
        }

        if ((b & 0xf0) == 0x80)
        {
            return ReadMap(b & 0x0f);
        }

        return b switch
        {
            0xc0 => null,
            0xc2 => false,
            0xc3 => true,
            0xc4 => ReadBytes(_data[_position++]),
            0xc5 => ReadBytes(ReadUInt16()),
            0xc6 => ReadBytes(ReadInt32()),
            0xc7 => SkipExtension(_data[_position++]),
            0xc8 => SkipExtension(ReadUInt16()),
            0xc9 => SkipExtension(ReadInt32()),
            0xca => (double)BitConverter.Int32BitsToSingle(ReadInt32()),
            0xcb => BitConverter.Int64BitsToDouble(ReadInt64()),
            0xcc => (long)_data[_position++],
            0xcd => (long)ReadUInt16(),
            0xce => (long)(uint)ReadInt32(),
            0xcf => ReadInt64(),
            0xd0 => (long)(sbyte)_data[_position++],
            0xd1 => (long)(short)ReadUInt16(),
            0xd2 => (long)ReadInt32(),
            0xd3 => ReadInt64(),
            0xd4 => SkipExtension(1),
            0xd5 => SkipExtension(2),
            0xd6 => SkipExtension(4),
            0xd7 => SkipExtension(8),
            0xd8 => SkipExtension(16),
            0xd9 => ReadString(_data[_position++]),
            0xda => ReadString(ReadUInt16()),
            0xdb => ReadString(ReadInt32()),
            0xdc => ReadList(ReadUInt16()),
            0xdd => ReadList(ReadInt32()),
            0xde => ReadMap(ReadUInt16()),
            0xdf => ReadMap(ReadInt32()),
            _ => throw new AerospikeException(ResultCode.ParseError, $"Unexpected msgpack byte 0x{b:x2}."),
        };
    }

    private List<object?> ReadList(int count)
    {
        var list = new List<object?>(count);
        for (var i = 0; i < count; i++)
        {
            var item = Read();
            if (!ReferenceEquals(item, Extension))
            {
                list.Add(item);
            }
        }

        return list;
    }

    private Dictionary<object, object?> ReadMap(int count)
    {
        var map = new Dictionary<object, object?>(count);
        for (var i = 0; i < count; i++)
        {
            var key = Read();
            var value = Read();

            // An ordered map starts with an (extension, nil) entry that carries its flags.
            if (key is not null && !ReferenceEquals(key, Extension))
            {
                map[key] = value;
            }
        }

        return map;
    }

    private object? ReadString(int length)
    {
        var payload = _data.Slice(_position, length);
        _position += length;
        if (length == 0)
        {
            return "";
        }

        // Aerospike prefixes CDT strings and blobs with their particle type.
        return payload[0] switch
        {
            (byte)ParticleType.String => Encoding.UTF8.GetString(payload[1..]),
            (byte)ParticleType.Blob => payload[1..].ToArray(),
            _ => Encoding.UTF8.GetString(payload),
        };
    }

    private byte[] ReadBytes(int length)
    {
        var bytes = _data.Slice(_position, length).ToArray();
        _position += length;
        return bytes;
    }

    private object SkipExtension(int length)
    {
        _position += 1 + length;
        return Extension;
    }

    private ushort ReadUInt16()
    {
        var v = BinaryPrimitives.ReadUInt16BigEndian(_data[_position..]);
        _position += 2;
        return v;
    }

    private int ReadInt32()
    {
        var v = BinaryPrimitives.ReadInt32BigEndian(_data[_position..]);
        _position += 4;
        return v;
    }

    private long ReadInt64()
    {
        var v = BinaryPrimitives.ReadInt64BigEndian(_data[_position..]);
        _position += 8;
        return v;
    }
}
