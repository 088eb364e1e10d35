namespace Audience.Aerospike;

/// <summary>
/// Aerospike result codes (server <c>proto.h</c>), plus the client-side negative codes this client raises itself.
/// </summary>
public enum ResultCode
{
    /// <summary>The cluster has no node that serves the partition (or no node at all).</summary>
    InvalidNode = -3,

    /// <summary>The connection failed or closed mid-command.</summary>
    NetworkError = -2,

    /// <summary>The response could not be parsed.</summary>
    ParseError = -1,

    Ok = 0,
    ServerError = 1,
    KeyNotFound = 2,
    GenerationError = 3,
    ParameterError = 4,
    RecordExists = 5,
    BinExists = 6,
    ClusterKeyMismatch = 7,
    ServerMemoryError = 8,
    Timeout = 9,
    AlwaysForbidden = 10,
    PartitionUnavailable = 11,
    BinTypeError = 12,
    RecordTooBig = 13,
    KeyBusy = 14,
    ScanAbort = 15,
    UnsupportedFeature = 16,
    BinNotFound = 17,
    DeviceOverload = 18,
    KeyMismatch = 19,
    InvalidNamespace = 20,
    BinNameTooLong = 21,
    FailForbidden = 22,
    ElementNotFound = 23,
    ElementExists = 24,
    EnterpriseOnly = 25,
    OpNotApplicable = 26,
    FilteredOut = 27,
    LostConflict = 28,
    XdrKeyBusy = 32,
    QueryEnd = 50,
    UdfBadResponse = 100,
    BatchDisabled = 150,
    BatchMaxRequestsExceeded = 151,
    BatchQueuesFull = 152,
}
