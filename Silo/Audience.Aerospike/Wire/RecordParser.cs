using System.Buffers.Binary;
using System.Text;

namespace Audience.Aerospike.Wire;

/// <summary>The 22-byte header of one record in a response (AEROSPIKE.md §8.2).</summary>
internal readonly record struct RecordHeader(byte Info3, ResultCode ResultCode, int Generation, uint VoidTime, int BatchIndex, int FieldCount, int OpCount)
{
    public bool IsLast => (Info3 & CommandWriter.Last) != 0;

    public bool IsPartitionDone => (Info3 & CommandWriter.PartitionDone) != 0;
}

/// <summary>Parses record headers, fields and bins out of a response body.</summary>
internal static class RecordParser
{
    public static RecordHeader ReadHeader(ReadOnlySpan<byte> body, ref int position)
    {
        var h = body.Slice(position, CommandWriter.MessageHeaderSize);
        position += CommandWriter.MessageHeaderSize;
        return new RecordHeader(
            h[3],
            (ResultCode)h[5],
            BinaryPrimitives.ReadInt32BigEndian(h[6..]),
            BinaryPrimitives.ReadUInt32BigEndian(h[10..]),
            BinaryPrimitives.ReadInt32BigEndian(h[14..]),
            BinaryPrimitives.ReadUInt16BigEndian(h[18..]),
            BinaryPrimitives.ReadUInt16BigEndian(h[20..]));
    }

    /// <summary>Skips the fields, returning the digest and set name if present (scans need them to rebuild keys).</summary>
    public static (byte[]? Digest, string? Set) ReadFields(ReadOnlySpan<byte> body, ref int position, int count, bool keep)
    {
        byte[]? digest = null;
        string? set = null;
        for (var i = 0; i < count; i++)
        {
            var size = BinaryPrimitives.ReadInt32BigEndian(body[position..]);
            var type = body[position + 4];
            if (keep && type == 4)
            {
                digest = body.Slice(position + 5, size - 1).ToArray();
            }
            else if (keep && type == 1)
            {
                set = Encoding.UTF8.GetString(body.Slice(position + 5, size - 1));
            }

            position += 4 + size;
        }

        return (digest, set);
    }

    /// <summary>Reads the bins of one record: a dictionary (results for a repeated bin grouped in a list) and the ordered results.</summary>
    public static Record ReadRecord(ReadOnlySpan<byte> body, ref int position, in RecordHeader header)
    {
        var bins = new Dictionary<string, object?>(header.OpCount);
        var results = new List<KeyValuePair<string, object?>>(header.OpCount);
        for (var i = 0; i < header.OpCount; i++)
        {
            var size = BinaryPrimitives.ReadInt32BigEndian(body[position..]);
            var particle = (ParticleType)body[position + 5];
            var nameLength = body[position + 7];
            var name = Encoding.UTF8.GetString(body.Slice(position + 8, nameLength));
            var value = Particle.Read(particle, body.Slice(position + 8 + nameLength, size - 4 - nameLength));
            position += 4 + size;
            results.Add(new(name, value));
            if (bins.TryGetValue(name, out var existing))
            {
                if (existing is GroupedResults grouped)
                {
                    grouped.Add(value);
                }
                else
                {
                    bins[name] = new GroupedResults { existing, value };
                }
            }
            else
            {
                bins[name] = value;
            }
        }

        return new Record(bins, results, header.Generation, header.VoidTime);
    }
}

/// <summary>Several operate results for one bin, in op order.</summary>
public sealed class GroupedResults : List<object?>
{
}
