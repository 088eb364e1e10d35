using System.Diagnostics;
using System.Diagnostics.Metrics;
using Audience.Aerospike.Cluster;

namespace Audience.Aerospike;

/// <summary>
/// The <c>Audience.Aerospike</c> meter: operations and latency by command, errors by result code,
/// pool connections in use and idle, and tends.
/// </summary>
internal sealed class AerospikeMetrics : IDisposable
{
    public const string MeterName = "Audience.Aerospike";

    private readonly Meter _meter;
    private readonly Counter<long> _operations;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _tends;

    public AerospikeMetrics(IMeterFactory? meterFactory)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _operations = _meter.CreateCounter<long>("aerospike.operations", "{operation}", "Commands completed, by command.");
        _latency = _meter.CreateHistogram<double>("aerospike.latency", "ms", "Command latency including retries.");
        _errors = _meter.CreateCounter<long>("aerospike.errors", "{error}", "Failed attempts, by result code.");
        _tends = _meter.CreateCounter<long>("aerospike.tends", "{tend}", "Cluster tends.");
    }

    /// <summary>Registers the pool gauges over the cluster's current nodes.</summary>
    public void ObservePools(Func<Node[]> nodes)
    {
        _meter.CreateObservableGauge("aerospike.connections.in_use", () => nodes().Select(n => new Measurement<int>(n.Pool.Open - n.Pool.Idle, new KeyValuePair<string, object?>("node", n.Name))), "{connection}");
        _meter.CreateObservableGauge("aerospike.connections.idle", () => nodes().Select(n => new Measurement<int>(n.Pool.Idle, new KeyValuePair<string, object?>("node", n.Name))), "{connection}");
    }

    public void Completed(string command, long startTimestamp, TimeProvider time)
    {
        var tag = new KeyValuePair<string, object?>("command", command);
        _operations.Add(1, tag);
        _latency.Record(time.GetElapsedTime(startTimestamp).TotalMilliseconds, tag);
    }

    public void Error(string command, ResultCode code)
    {
        var tags = new TagList { { "command", command }, { "result_code", code.ToString() } };
        _errors.Add(1, tags);
    }

    public void Tend() => _tends.Add(1);

    public void Dispose() => _meter.Dispose();
}
