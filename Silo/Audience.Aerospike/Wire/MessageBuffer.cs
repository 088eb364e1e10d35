using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Audience.Aerospike.Wire;

/// <summary>
/// A growable big-endian writer over an <see cref="ArrayPool{T}"/> array: requests are built in place and sizes patched
/// afterwards, so a command costs no allocation beyond the pooled array. Dispose returns the array.
/// </summary>
internal sealed class MessageBuffer : IDisposable
{
    private byte[] _buffer;

    public MessageBuffer(int capacity = 512)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(capacity);
    }

    public int Length { get; set; }

    public Memory<byte> WrittenMemory => _buffer.AsMemory(0, Length);

    public Span<byte> WrittenSpan => _buffer.AsSpan(0, Length);

    public void WriteByte(byte value)
    {
        Ensure(1);
        _buffer[Length++] = value;
    }

    public void WriteUInt16(ushort value)
    {
        Ensure(2);
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(Length), value);
        Length += 2;
    }

    public void WriteInt32(int value)
    {
        Ensure(4);
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(Length), value);
        Length += 4;
    }

    public void WriteInt64(long value)
    {
        Ensure(8);
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(Length), value);
        Length += 8;
    }

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        Ensure(value.Length);
        value.CopyTo(_buffer.AsSpan(Length));
        Length += value.Length;
    }

    /// <summary>Writes UTF-8 and returns the number of bytes.</summary>
    public int WriteUtf8(string value)
    {
        Ensure(Encoding.UTF8.GetMaxByteCount(value.Length));
        var n = Encoding.UTF8.GetBytes(value, _buffer.AsSpan(Length));
        Length += n;
        return n;
    }

    public void PatchInt32(int offset, int value) => BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(offset), value);

    public void PatchUInt16(int offset, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(offset), value);

    public void PatchInt64(int offset, long value) => BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(offset), value);

    public void PatchByte(int offset, byte value) => _buffer[offset] = value;

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Ensure(int more)
    {
        if (Length + more <= _buffer.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, Length + more));
        _buffer.AsSpan(0, Length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }
}
