using Audience.Aerospike.Wire;

namespace Audience.Aerospike.Operations;

/// <summary>Wire operation codes (AEROSPIKE.md §3).</summary>
internal enum OperationType : byte
{
    Read = 1,
    Write = 2,
    CdtRead = 3,
    CdtModify = 4,
    Add = 5,
    Touch = 11,
    Delete = 14,
}

/// <summary>
/// One operation of an operate command. Basic operations carry a bin value; map operations carry their msgpack
/// payload already packed (a blob particle), so building the request only copies bytes.
/// </summary>
public sealed class Operation
{
    private Operation(OperationType type, string? binName, object? value, bool header = false, byte[]? payload = null)
    {
        if (binName is not null && System.Text.Encoding.UTF8.GetByteCount(binName) > 15)
        {
            throw new ArgumentException($"Bin name '{binName}' is longer than 15 bytes.", nameof(binName));
        }

        Type = type;
        BinName = binName;
        Value = value;
        IsHeader = header;
        Payload = payload;
    }

    internal OperationType Type { get; }

    internal string? BinName { get; }

    internal object? Value { get; }

    internal bool IsHeader { get; }

    internal byte[]? Payload { get; }

    internal bool IsWrite => Type is OperationType.Write or OperationType.CdtModify or OperationType.Add or OperationType.Touch or OperationType.Delete;

    /// <summary>Writes a bin (null deletes the bin).</summary>
    public static Operation Put(string bin, object? value) => new(OperationType.Write, bin, value);

    /// <summary>Adds to an integer (or double) bin, creating it at the value.</summary>
    public static Operation Add(string bin, long increment) => new(OperationType.Add, bin, increment);

    /// <summary>Reads one bin.</summary>
    public static Operation Get(string bin) => new(OperationType.Read, bin, null);

    /// <summary>Reads all bins.</summary>
    public static Operation Get() => new(OperationType.Read, null, null);

    /// <summary>Reads generation and expiration only.</summary>
    public static Operation GetHeader() => new(OperationType.Read, null, null, header: true);

    /// <summary>Resets the TTL (to the policy's) and bumps the generation.</summary>
    public static Operation Touch() => new(OperationType.Touch, null, null);

    /// <summary>Deletes the record (later operations in the same command may write it again).</summary>
    public static Operation Delete() => new(OperationType.Delete, null, null);

    internal static Operation Cdt(bool modify, string bin, Action<MessageBuffer> pack)
    {
        using var buffer = new MessageBuffer(64);
        pack(buffer);
        return new Operation(modify ? OperationType.CdtModify : OperationType.CdtRead, bin, null, payload: buffer.WrittenSpan.ToArray());
    }
}
