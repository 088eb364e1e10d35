using Microsoft.Extensions.Logging;

namespace Audience.Aerospike;

/// <summary>The client's log messages; event ids 9100–9199 are reserved for Audience.Aerospike.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 9100, Level = LogLevel.Information, Message = "Aerospike node {Node} at {Host}:{Port} joined")]
    public static partial void NodeAdded(ILogger logger, string node, string host, int port);

    [LoggerMessage(EventId = 9101, Level = LogLevel.Warning, Message = "Aerospike node {Node} at {Host}:{Port} removed after {Failures} failed tends")]
    public static partial void NodeRemoved(ILogger logger, string node, string host, int port, int failures);

    [LoggerMessage(EventId = 9102, Level = LogLevel.Debug, Message = "Aerospike info request to {Host}:{Port} failed: {Reason}")]
    public static partial void InfoFailed(ILogger logger, string host, int port, string reason);

    [LoggerMessage(EventId = 9103, Level = LogLevel.Error, Message = "Aerospike tend failed")]
    public static partial void TendFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 9104, Level = LogLevel.Debug, Message = "Aerospike {Command} attempt {Attempt} failed with {ResultCode}; retrying")]
    public static partial void Retrying(ILogger logger, string command, int attempt, ResultCode resultCode);
}
