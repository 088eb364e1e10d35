using Audience.Aerospike.Operations;

namespace Audience.Aerospike;

/// <summary>One record of <see cref="AerospikeClient.OperateManyAsync"/>: its operations and its own write policy (TTL, generation check, existence action).</summary>
public sealed record BatchWrite(Key Key, IReadOnlyList<Operation> Operations, WritePolicy? Policy = null);

/// <summary>The answer for one record of a batch operate: its result code and, when it succeeded, the record (generation, what the operations read).</summary>
public readonly record struct BatchResult(ResultCode ResultCode, Record? Record)
{
    public bool IsOk => ResultCode == ResultCode.Ok;
}
