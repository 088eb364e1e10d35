using System.Diagnostics.Metrics;

namespace Audience.Aerospike.Tests;

[Collection(AerospikeCollection.Name)]
public class MetricsTests(AerospikeFixture fixture)
{
    [SkippableFact]
    public async Task Meter_PutAndMissingGet_CountsOperationsLatencyAndPools()
    {
        Skip.If(fixture.Hosts is null, AerospikeFixture.SkipReason);
        var measurements = new List<(string Instrument, double Value, string? Command)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Audience.Aerospike")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        listener.Start();
        await using var client = await AerospikeClient.ConnectAsync(new AerospikeClientOptions { Hosts = fixture.Hosts! });
        var key = new Key(AerospikeFixture.Namespace, AerospikeFixture.UniqueSet("metrics"), "k");

        await client.PutAsync(key, new Dictionary<string, object?> { ["v"] = 1L });
        await client.GetAsync(new Key(AerospikeFixture.Namespace, "metrics-missing", "none"));
        listener.RecordObservableInstruments();

        lock (measurements)
        {
            Assert.Contains(measurements, m => m.Instrument == "aerospike.operations" && m.Command == "put");
            Assert.Contains(measurements, m => m.Instrument == "aerospike.operations" && m.Command == "get");
            Assert.Contains(measurements, m => m.Instrument == "aerospike.latency" && m.Command == "put" && m.Value >= 0);
            Assert.Contains(measurements, m => m.Instrument == "aerospike.tends");
            Assert.Contains(measurements, m => m.Instrument == "aerospike.connections.idle" && m.Value >= 1);
        }

        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? command = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "command")
                {
                    command = tag.Value as string;
                }
            }

            lock (measurements)
            {
                measurements.Add((instrument.Name, value, command));
            }
        }
    }
}
