namespace Audience.Aerospike;

/// <summary>
/// A command failed. <see cref="ResultCode"/> says why (a server code, or a negative client code);
/// <see cref="InDoubt"/> is true for a write whose request may have reached the server, so its outcome is unknown.
/// </summary>
public sealed class AerospikeException : Exception
{
    public AerospikeException(ResultCode resultCode, string? message = null, Exception? innerException = null)
        : base(message ?? Describe(resultCode), innerException)
    {
        ResultCode = resultCode;
    }

    public AerospikeException()
        : this(ResultCode.ServerError)
    {
    }

    public AerospikeException(string message)
        : this(ResultCode.ServerError, message)
    {
    }

    public AerospikeException(string message, Exception innerException)
        : this(ResultCode.ServerError, message, innerException)
    {
    }

    /// <summary>The result code.</summary>
    public ResultCode ResultCode { get; }

    /// <summary>True when a write may or may not have been applied (the request was sent, the answer was lost).</summary>
    public bool InDoubt { get; init; }

    /// <summary>The node the command went to, when one was chosen.</summary>
    public string? Node { get; init; }

    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; init; }

    /// <summary>The compare-and-set on the record's generation failed.</summary>
    public bool IsGenerationError => ResultCode == ResultCode.GenerationError;

    /// <summary>The record does not exist (an update-only write, a touch, an operate on a missing record).</summary>
    public bool IsKeyNotFound => ResultCode == ResultCode.KeyNotFound;

    /// <summary>A create-only write found the record.</summary>
    public bool IsRecordExists => ResultCode == ResultCode.RecordExists;

    /// <summary>Failures worth retrying on another attempt: the network, timeouts, hot keys, overload, a partition in migration.</summary>
    internal static bool IsRetryable(ResultCode code) => code is ResultCode.NetworkError or ResultCode.Timeout
        or ResultCode.KeyBusy or ResultCode.DeviceOverload or ResultCode.PartitionUnavailable
        or ResultCode.InvalidNode;

    /// <summary>The code a command's failure counts as: the server's, a timeout for a cancelled wait, else the network.</summary>
    internal static ResultCode CodeOf(Exception exception) => exception switch
    {
        AerospikeException a => a.ResultCode,
        OperationCanceledException => ResultCode.Timeout,
        _ => ResultCode.NetworkError,
    };

    public override string Message => Node is null ? base.Message : $"{base.Message} (node {Node}, attempts {Attempts}{(InDoubt ? ", in doubt" : "")})";

    private static string Describe(ResultCode code) => $"Aerospike error {(int)code} {code}";
}
