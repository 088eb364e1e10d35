using Audience.Aerospike.Operations;

namespace Audience.Aerospike.Wire;

/// <summary>
/// Builds request messages: the 8-byte proto header, the 22-byte message header, fields, then operations
/// (AEROSPIKE.md §8.1–8.5, §8.9). Sizes are patched once the body is written.
/// </summary>
internal static class CommandWriter
{
    public const int ProtoHeaderSize = 8;
    public const int MessageHeaderSize = 22;

    // info1
    public const byte Read = 1 << 0;
    public const byte GetAll = 1 << 1;
    public const byte Batch = 1 << 3;
    public const byte NoBinData = 1 << 5;

    // info2
    public const byte Write = 1 << 0;
    public const byte Delete = 1 << 1;
    public const byte Generation = 1 << 2;
    public const byte GenerationGreater = 1 << 3;
    public const byte CreateOnly = 1 << 5;
    public const byte RespondAllOps = 1 << 7;

    // info3
    public const byte Last = 1 << 0;
    public const byte CommitMaster = 1 << 1;
    public const byte PartitionDone = 1 << 2;
    public const byte UpdateOnly = 1 << 3;
    public const byte CreateOrReplace = 1 << 4;
    public const byte ReplaceOnly = 1 << 5;

    private const byte FieldNamespace = 0;
    private const byte FieldSet = 1;
    private const byte FieldDigest = 4;
    private const byte FieldTransactionId = 7;
    private const byte FieldSocketTimeout = 9;
    private const byte FieldPartitionIds = 11;
    private const byte FieldDigests = 12;
    private const byte FieldMaxRecords = 13;
    private const byte FieldBatch = 41;
    private const byte FieldBatchWithSet = 42;

    // The batch field's flags (server batch.c): answer in the receiving thread for in-memory data, go on past a record's
    // error, and send a record for each error.
    private const byte BatchInline = 0x1;
    private const byte BatchRespondAllKeys = 0x4;
    private const byte BatchReportErrorRecords = 0x8;

    // A batch record's flags: info bytes, generation and TTL follow the digest.
    private const byte BatchHasInfo = 0x2;
    private const byte BatchHasGeneration = 0x4;
    private const byte BatchHasTtl = 0x8;

    /// <summary>A single-record command (see <see cref="Attributes"/> for its flags).</summary>
    public static void WriteRecordCommand(MessageBuffer buffer, Key key, IReadOnlyList<Operation> ops, WritePolicy? write, int timeoutMs, bool delete = false)
    {
        var a = Attributes(ops, write, delete);
        buffer.Length = ProtoHeaderSize;
        WriteHeader(buffer, a.Info1, a.Info2, a.Info3, a.Generation, a.Ttl, timeoutMs, key.SetName is null ? 2 : 3, a.WireOps);
        WriteKeyFields(buffer, key);
        WriteOperations(buffer, ops, a.Writes);
        EndMessage(buffer);
    }

    /// <summary>
    /// A batch operate (batch-index protocol with per-record attributes, server 6.0 and later) of <paramref name="writes"/> at
    /// <paramref name="indexes"/>: each record carries its own info bytes, generation and TTL, namespace and set, and operations,
    /// as a single-record command would; the server answers every record, errors included.
    /// </summary>
    public static void WriteBatchOperate(MessageBuffer buffer, IReadOnlyList<BatchWrite> writes, IReadOnlyList<int> indexes, int timeoutMs)
    {
        buffer.Length = ProtoHeaderSize;
        WriteHeader(buffer, Batch, 0, 0, 0, 0, timeoutMs, 1, 0);
        var fieldStart = buffer.Length;
        buffer.WriteInt32(0);
        buffer.WriteByte(FieldBatch);
        buffer.WriteInt32(indexes.Count);
        buffer.WriteByte(BatchInline | BatchRespondAllKeys | BatchReportErrorRecords);
        foreach (var index in indexes)
        {
            var write = writes[index];
            var key = write.Key;
            var a = Attributes(write.Operations, write.Policy ?? WritePolicy.Default, delete: false);
            buffer.WriteInt32(index);
            buffer.WriteBytes(key.Digest);
            buffer.WriteByte(BatchHasInfo | BatchHasGeneration | BatchHasTtl);
            buffer.WriteByte(a.Info1);
            buffer.WriteByte(a.Info2);
            buffer.WriteByte(a.Info3);
            buffer.WriteUInt16((ushort)a.Generation);
            buffer.WriteInt32(a.Ttl);
            buffer.WriteUInt16((ushort)(key.SetName is null ? 1 : 2));
            buffer.WriteUInt16((ushort)a.WireOps);
            WriteField(buffer, FieldNamespace, key.Namespace);
            if (key.SetName is not null)
            {
                WriteField(buffer, FieldSet, key.SetName);
            }

            WriteOperations(buffer, write.Operations, a.Writes);
        }

        buffer.PatchInt32(fieldStart, buffer.Length - fieldStart - 4);
        EndMessage(buffer);
    }

    /// <summary>
    /// The info bytes, generation, TTL and wire op count of a record command. Reads of all bins and header reads are expressed
    /// by flags (GET_ALL, NOBINDATA), not ops. RESPOND_ALL_OPS is set when a map operation is present, as Aerospike's clients
    /// do, so each op's result comes back in order.
    /// </summary>
    private static RecordAttributes Attributes(IReadOnlyList<Operation> ops, WritePolicy? write, bool delete)
    {
        byte info1 = 0, info2 = 0, info3 = 0;
        var header = false;
        var wireOps = 0;
        var cdt = false;

        // The server takes GET_ALL only on pure reads; with writes present a nameless READ op asks for all bins.
        var writes = false;
        for (var i = 0; i < ops.Count; i++)
        {
            writes |= ops[i].IsWrite;
        }

        foreach (var op in ops)
        {
            if (op.IsWrite)
            {
                info2 |= Write;
            }
            else if (op.IsHeader)
            {
                header = true;
                continue;
            }
            else
            {
                info1 |= Read;
                if (op.BinName is null)
                {
                    info1 |= GetAll;
                    if (!writes)
                    {
                        continue;
                    }
                }
            }

            cdt |= op.Type is OperationType.CdtRead or OperationType.CdtModify;
            wireOps++;
        }

        if (header && (info1 & Read) == 0)
        {
            info1 |= Read | NoBinData;
        }

        if (delete)
        {
            info2 |= Write | Delete;
        }

        if (cdt && (info1 & GetAll) == 0)
        {
            info2 |= RespondAllOps;
        }

        var generation = 0;
        var ttl = 0;
        if (write is not null && (info2 & Write) != 0)
        {
            (info2, info3) = ApplyWritePolicy(write, info2, info3);
            generation = write.GenerationPolicy == GenerationPolicy.None ? 0 : write.Generation;
            ttl = write.Ttl;
        }

        return new RecordAttributes(info1, info2, info3, generation, ttl, wireOps, writes);
    }

    private static void WriteOperations(MessageBuffer buffer, IReadOnlyList<Operation> ops, bool writes)
    {
        foreach (var op in ops)
        {
            if (op.IsHeader || (op.Type == OperationType.Read && op.BinName is null && !writes))
            {
                continue;
            }

            WriteOperation(buffer, op);
        }
    }

    /// <summary>
    /// A batch-index read of <paramref name="keys"/> at <paramref name="indexes"/> (positions in the caller's list, echoed back).
    /// Keys after the first that share namespace and set use the REPEAT flag, so the namespace and bin list go once.
    /// </summary>
    public static void WriteBatchRead(MessageBuffer buffer, IReadOnlyList<Key> keys, IReadOnlyList<int> indexes, IReadOnlyList<string>? bins, int timeoutMs)
    {
        buffer.Length = ProtoHeaderSize;
        WriteHeader(buffer, Read | Batch, 0, 0, 0, 0, timeoutMs, 1, 0);
        var fieldStart = buffer.Length;
        buffer.WriteInt32(0);
        buffer.WriteByte(FieldBatchWithSet);
        buffer.WriteInt32(indexes.Count);

        // Inline answers from memory; no per-key error records beyond not-found.
        buffer.WriteByte(1);
        Key? previous = null;
        foreach (var index in indexes)
        {
            var key = keys[index];
            buffer.WriteInt32(index);
            buffer.WriteBytes(key.Digest);
            if (previous is not null && previous.Namespace == key.Namespace && previous.SetName == key.SetName)
            {
                buffer.WriteByte(1);
                continue;
            }

            buffer.WriteByte(0);
            buffer.WriteByte(bins is null ? (byte)(Read | GetAll) : Read);
            buffer.WriteUInt16(2);
            buffer.WriteUInt16((ushort)(bins?.Count ?? 0));
            WriteField(buffer, FieldNamespace, key.Namespace);
            WriteField(buffer, FieldSet, key.SetName ?? "");
            if (bins is not null)
            {
                foreach (var bin in bins)
                {
                    WriteOperation(buffer, Operation.Get(bin));
                }
            }

            previous = key;
        }

        buffer.PatchInt32(fieldStart, buffer.Length - fieldStart - 4);
        EndMessage(buffer);
    }

    /// <summary>
    /// A partition scan: the partitions to read, and per partition optionally the digest to resume after
    /// (a partition given by digest is read from after that digest).
    /// </summary>
    public static void WriteScan(MessageBuffer buffer, string ns, string? set, IReadOnlyList<int> partitions, IReadOnlyList<byte[]> resumeDigests,
        IReadOnlyList<string>? bins, long maxRecords, long taskId, int socketTimeoutMs)
    {
        var fields = 3 + (set is null ? 0 : 1) + (partitions.Count > 0 ? 1 : 0) + (resumeDigests.Count > 0 ? 1 : 0) + (maxRecords > 0 ? 1 : 0);
        buffer.Length = ProtoHeaderSize;
        WriteHeader(buffer, bins is null ? (byte)(Read | GetAll) : Read, 0, PartitionDone, 0, 0, 0, fields, bins?.Count ?? 0);
        WriteField(buffer, FieldNamespace, ns);
        if (set is not null)
        {
            WriteField(buffer, FieldSet, set);
        }

        buffer.WriteInt32(9);
        buffer.WriteByte(FieldTransactionId);
        buffer.WriteInt64(taskId);
        buffer.WriteInt32(5);
        buffer.WriteByte(FieldSocketTimeout);
        buffer.WriteInt32(socketTimeoutMs);
        if (partitions.Count > 0)
        {
            buffer.WriteInt32(partitions.Count * 2 + 1);
            buffer.WriteByte(FieldPartitionIds);
            foreach (var id in partitions)
            {
                // Partition ids in this field are little-endian.
                buffer.WriteByte((byte)id);
                buffer.WriteByte((byte)(id >> 8));
            }
        }

        if (resumeDigests.Count > 0)
        {
            buffer.WriteInt32(resumeDigests.Count * 20 + 1);
            buffer.WriteByte(FieldDigests);
            foreach (var digest in resumeDigests)
            {
                buffer.WriteBytes(digest);
            }
        }

        if (maxRecords > 0)
        {
            buffer.WriteInt32(9);
            buffer.WriteByte(FieldMaxRecords);
            buffer.WriteInt64(maxRecords);
        }

        if (bins is not null)
        {
            foreach (var bin in bins)
            {
                WriteOperation(buffer, Operation.Get(bin));
            }
        }

        EndMessage(buffer);
    }

    /// <summary>An info request: each command followed by a newline, proto type 1.</summary>
    public static void WriteInfo(MessageBuffer buffer, IEnumerable<string> commands)
    {
        buffer.Length = ProtoHeaderSize;
        foreach (var command in commands)
        {
            buffer.WriteUtf8(command);
            buffer.WriteByte((byte)'\n');
        }

        buffer.PatchInt64(0, (long)((2UL << 56) | (1UL << 48) | (uint)(buffer.Length - ProtoHeaderSize)));
    }

    private static (byte Info2, byte Info3) ApplyWritePolicy(WritePolicy policy, byte info2, byte info3)
    {
        info2 |= policy.GenerationPolicy switch
        {
            GenerationPolicy.ExpectEqual => Generation,
            GenerationPolicy.ExpectGreater => GenerationGreater,
            _ => 0,
        };
        switch (policy.RecordExistsAction)
        {
            case RecordExistsAction.UpdateOnly:
                info3 |= UpdateOnly;
                break;
            case RecordExistsAction.Replace:
                info3 |= CreateOrReplace;
                break;
            case RecordExistsAction.ReplaceOnly:
                info3 |= ReplaceOnly;
                break;
            case RecordExistsAction.CreateOnly:
                info2 |= CreateOnly;
                break;
            case RecordExistsAction.Update:
            default:
                break;
        }

        if (policy.CommitMasterOnly)
        {
            info3 |= CommitMaster;
        }

        return (info2, info3);
    }

    private static void WriteHeader(MessageBuffer buffer, byte info1, byte info2, byte info3, int generation, int ttl, int timeoutMs, int fields, int ops)
    {
        buffer.WriteByte(MessageHeaderSize);
        buffer.WriteByte(info1);
        buffer.WriteByte(info2);
        buffer.WriteByte(info3);
        buffer.WriteByte(0);
        buffer.WriteByte(0);
        buffer.WriteInt32(generation);
        buffer.WriteInt32(ttl);
        buffer.WriteInt32(timeoutMs);
        buffer.WriteUInt16((ushort)fields);
        buffer.WriteUInt16((ushort)ops);
    }

    private static void WriteKeyFields(MessageBuffer buffer, Key key)
    {
        WriteField(buffer, FieldNamespace, key.Namespace);
        if (key.SetName is not null)
        {
            WriteField(buffer, FieldSet, key.SetName);
        }

        buffer.WriteInt32(Ripemd160.HashSize + 1);
        buffer.WriteByte(FieldDigest);
        buffer.WriteBytes(key.Digest);
    }

    private static void WriteField(MessageBuffer buffer, byte type, string value)
    {
        var start = buffer.Length;
        buffer.WriteInt32(0);
        buffer.WriteByte(type);
        var n = buffer.WriteUtf8(value);
        buffer.PatchInt32(start, n + 1);
    }

    private static void WriteOperation(MessageBuffer buffer, Operation op)
    {
        var start = buffer.Length;
        buffer.WriteInt32(0);
        buffer.WriteByte((byte)op.Type);
        var particle = op.Payload is not null ? ParticleType.Blob
            : op.Type is OperationType.Write or OperationType.Add ? Particle.TypeOf(op.Value) : ParticleType.Null;
        buffer.WriteByte((byte)particle);
        buffer.WriteByte(0);
        var nameStart = buffer.Length;
        buffer.WriteByte(0);
        var nameLength = op.BinName is null ? 0 : buffer.WriteUtf8(op.BinName);
        buffer.PatchByte(nameStart, (byte)nameLength);
        if (op.Payload is not null)
        {
            buffer.WriteBytes(op.Payload);
        }
        else if (op.Type is OperationType.Write or OperationType.Add)
        {
            Particle.Write(buffer, op.Value);
        }

        buffer.PatchInt32(start, buffer.Length - start - 4);
    }

    private readonly record struct RecordAttributes(byte Info1, byte Info2, byte Info3, int Generation, int Ttl, int WireOps, bool Writes);

    private static void EndMessage(MessageBuffer buffer) =>
        buffer.PatchInt64(0, (long)((2UL << 56) | (3UL << 48) | (uint)(buffer.Length - ProtoHeaderSize)));
}
