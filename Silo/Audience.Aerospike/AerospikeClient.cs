using System.Buffers;
using System.Diagnostics.Metrics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Audience.Aerospike.Cluster;
using Audience.Aerospike.Operations;
using Audience.Aerospike.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Audience.Aerospike;

/// <summary>
/// An async Aerospike client speaking the wire protocol directly (AEROSPIKE.md): commands go to the node that
/// masters the key's partition, over pooled connections, with per-attempt socket timeouts, a total timeout and retries.
/// Create one per process with <see cref="ConnectAsync"/>; it is thread-safe.
/// </summary>
public sealed class AerospikeClient : IAsyncDisposable
{
    private readonly AerospikeClientOptions _options;
    private readonly AerospikeCluster _cluster;
    private readonly AerospikeMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private long _scanIds = Environment.TickCount64;

    private AerospikeClient(AerospikeClientOptions options, TimeProvider time, ILogger logger, IMeterFactory? meterFactory)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _metrics = new AerospikeMetrics(meterFactory);
        _cluster = new AerospikeCluster(options, time, logger, _metrics);
    }

    private delegate T ResponseReader<T>(in RecordHeader header, ReadOnlySpan<byte> body, int position);

    /// <summary>Validates the options, connects to a seed, reads the partition map and starts tending.</summary>
    public static async Task<AerospikeClient> ConnectAsync(AerospikeClientOptions options, ILogger? logger = null,
        TimeProvider? time = null, IMeterFactory? meterFactory = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var client = new AerospikeClient(options, time ?? TimeProvider.System, logger ?? NullLogger.Instance, meterFactory);
        try
        {
            await client._cluster.ConnectAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The active node names.</summary>
    public IReadOnlyList<string> Nodes => [.. _cluster.Nodes.Select(n => n.Name)];

    /// <summary>Reads all bins, or the named ones; null if the record does not exist.</summary>
    public Task<Record?> GetAsync(Key key, IReadOnlyList<string>? bins = null, Policy? policy = null, CancellationToken cancellationToken = default)
    {
        Operation[] ops = bins is null ? [Operation.Get()] : [.. bins.Select(Operation.Get)];
        return ExecuteAsync("get", key, ops, null, policy, ReadRecordOrNull, cancellationToken);
    }

    /// <summary>Reads generation and expiration only; null if the record does not exist.</summary>
    public Task<Record?> GetHeaderAsync(Key key, Policy? policy = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync("get_header", key, [Operation.GetHeader()], null, policy, ReadRecordOrNull, cancellationToken);

    /// <summary>True if the record exists.</summary>
    public Task<bool> ExistsAsync(Key key, Policy? policy = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync("exists", key, [Operation.GetHeader()], null, policy, static (in RecordHeader h, ReadOnlySpan<byte> _, int _) =>
            h.ResultCode switch
            {
                ResultCode.Ok => true,
                ResultCode.KeyNotFound => false,
                _ => throw new AerospikeException(h.ResultCode),
            }, cancellationToken);

    /// <summary>Writes bins (merging or replacing per the policy). Null values delete bins.</summary>
    public Task PutAsync(Key key, IReadOnlyDictionary<string, object?> bins, WritePolicy? policy = null, CancellationToken cancellationToken = default)
    {
        var ops = new Operation[bins.Count];
        var i = 0;
        foreach (var (name, value) in bins)
        {
            ops[i++] = Operation.Put(name, value);
        }

        return ExecuteAsync("put", key, ops, policy ?? WritePolicy.Default, policy, ReadRecordOrThrow, cancellationToken);
    }

    /// <summary>
    /// Applies the operations atomically to one record and returns what they read: with a map operation present the server
    /// answers every operation (RESPOND_ALL_OPS), in order, in <see cref="Record.Results"/>; otherwise only the reads answer.
    /// The record's generation and void time come back too, so a caller can check-and-set on its next write.
    /// </summary>
    public Task<Record> OperateAsync(Key key, IReadOnlyList<Operation> operations, WritePolicy? policy = null, CancellationToken cancellationToken = default)
    {
        if (operations.Count == 0)
        {
            throw new ArgumentException("Operate needs at least one operation.", nameof(operations));
        }

        return ExecuteAsync("operate", key, operations, policy ?? WritePolicy.Default, policy, ReadRecordOrThrow, cancellationToken);
    }

    /// <summary>Deletes the record; false if it did not exist.</summary>
    public Task<bool> DeleteAsync(Key key, WritePolicy? policy = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync("delete", key, [], policy ?? WritePolicy.Default, policy, static (in RecordHeader h, ReadOnlySpan<byte> _, int _) =>
            h.ResultCode switch
            {
                ResultCode.Ok => true,
                ResultCode.KeyNotFound => false,
                _ => throw new AerospikeException(h.ResultCode),
            }, cancellationToken, delete: true);

    /// <summary>Resets the record's TTL to the policy's and bumps its generation; fails with KeyNotFound if missing.</summary>
    public Task TouchAsync(Key key, WritePolicy? policy = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync("touch", key, [Operation.Touch()], policy ?? WritePolicy.Default, policy, ReadRecordOrThrow, cancellationToken);

    /// <summary>
    /// Reads many records with the batch-index protocol: keys are grouped by the node that masters them, split into requests of
    /// at most <see cref="AerospikeClientOptions.MaxBatchKeys"/> keys, sent concurrently. Results are in input order; null where missing.
    /// </summary>
    public async Task<Record?[]> GetManyAsync(IReadOnlyList<Key> keys, IReadOnlyList<string>? bins = null, Policy? policy = null, CancellationToken cancellationToken = default)
    {
        var start = _time.GetTimestamp();
        var results = new Record?[keys.Count];
        var all = new int[keys.Count];
        for (var i = 0; i < all.Length; i++)
        {
            all[i] = i;
        }

        await GetBatchAsync(keys, all, bins, policy, results, 0, cancellationToken).ConfigureAwait(false);
        _metrics.Completed("batch_get", start, _time);
        return results;
    }

    /// <summary>
    /// Applies operations to many records with the batch-index protocol (batch operate, server 6.0 and later): records are grouped
    /// by the node that masters them, split into requests of at most <see cref="AerospikeClientOptions.MaxBatchKeys"/>, sent
    /// concurrently; one round trip per request instead of one per record. Each record's operations are atomic on that record,
    /// with its own policy; the batch as a whole is not. Results are in input order with each record's own result code (a
    /// generation mismatch or a missing record fails that record only). A request is retried only if it was never sent: once
    /// sent, its writes are in doubt and the failure is thrown (<see cref="AerospikeException.InDoubt"/>).
    /// </summary>
    public async Task<BatchResult[]> OperateManyAsync(IReadOnlyList<BatchWrite> writes, Policy? policy = null, CancellationToken cancellationToken = default)
    {
        var start = _time.GetTimestamp();
        var results = new BatchResult[writes.Count];
        var all = new int[writes.Count];
        for (var i = 0; i < all.Length; i++)
        {
            if (writes[i].Operations.Count == 0)
            {
                throw new ArgumentException("Each record of a batch operate needs at least one operation.", nameof(writes));
            }

            all[i] = i;
        }

        await OperateBatchAsync(writes, all, policy, results, 0, cancellationToken).ConfigureAwait(false);
        _metrics.Completed("batch_operate", start, _time);
        return results;
    }

    /// <summary>
    /// Scans the given partitions (all 4096 when null) of a namespace and set, streaming records as they come.
    /// Each node's partitions are scanned concurrently; a partition the server reports unavailable, or whose node failed,
    /// is scanned again from after the last digest seen, so every record is returned once.
    /// </summary>
    public async IAsyncEnumerable<ScanRecord> ScanPartitionsAsync(string ns, string? set, IReadOnlyCollection<int>? partitions = null,
        IReadOnlyList<string>? bins = null, long maxRecords = 0, Policy? policy = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var wanted = partitions ?? Enumerable.Range(0, Partitions.Count).ToArray();
        var state = new Dictionary<int, byte[]?>();
        foreach (var p in wanted)
        {
            if (p is < 0 or >= Partitions.Count)
            {
                throw new ArgumentOutOfRangeException(nameof(partitions), $"Partition {p} is outside 0..4095.");
            }

            state[p] = null;
        }

        var channel = Channel.CreateBounded<ScanRecord>(new BoundedChannelOptions(1000) { SingleReader = true });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producer = ScanAllAsync(ns, set, state, bins, maxRecords, policy, channel.Writer, cts.Token);
        long count = 0;
        try
        {
            await foreach (var record in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return record;
                if (maxRecords > 0 && ++count >= maxRecords)
                {
                    break;
                }
            }
        }
        finally
        {
            await cts.CancelAsync().ConfigureAwait(false);
            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Cancelled above because the consumer stopped (early, or on the caller's token).
            }
        }
    }

    /// <summary>
    /// Truncates a set (or the namespace when <paramref name="set"/> is null): records last updated before now are deleted.
    /// The server spreads the command through the cluster; for a set this waits until every node reports the new
    /// <c>truncate_lut</c> and has finished deleting (<c>truncating=false</c>), which is as far as the protocol tells.
    /// </summary>
    public async Task TruncateAsync(string ns, string? set, CancellationToken cancellationToken = default)
    {
        // An explicit cut-off (nanoseconds since the Unix epoch) taken after the caller's writes completed.
        var now = _time.GetUtcNow();
        var lut = (now - DateTimeOffset.UnixEpoch).Ticks * 100;
        var command = set is null ? $"truncate-namespace:namespace={ns};lut={lut}" : $"truncate:namespace={ns};set={set};lut={lut}";
        var answer = await InfoAsync([command], null, cancellationToken).ConfigureAwait(false);
        var text = answer.GetValueOrDefault(command, "");
        if (!text.Equals("ok", StringComparison.OrdinalIgnoreCase))
        {
            throw new AerospikeException(ResultCode.ServerError, $"Truncate of {ns}/{set} failed: {text}");
        }

        if (set is not null)
        {
            await WaitForTruncateAsync(ns, set, (long)(now - Record.Epoch).TotalMilliseconds, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends info commands to a node (any active node when null) and returns name → value.</summary>
    public async Task<IReadOnlyDictionary<string, string>> InfoAsync(IReadOnlyList<string> commands, string? node = null, CancellationToken cancellationToken = default)
    {
        var target = node is null ? _cluster.GetAnyNode()
            : _cluster.Nodes.FirstOrDefault(n => n.Name == node) ?? throw new AerospikeException(ResultCode.InvalidNode, $"No active node named {node}.");
        var answer = await target.InfoAsync(commands, _options.TotalTimeout, cancellationToken).ConfigureAwait(false);
        foreach (var (name, value) in answer)
        {
            if (value.StartsWith("ERROR", StringComparison.OrdinalIgnoreCase))
            {
                throw new AerospikeException(ResultCode.ServerError, $"Info '{name}' failed: {value}") { Node = target.Name };
            }
        }

        return answer;
    }

    public async ValueTask DisposeAsync()
    {
        await _cluster.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    /// <summary>Polls <c>sets/ns/set</c> on every node until its truncate_lut (ms since 2010) reaches the cut-off and it is no longer truncating.</summary>
    private async Task WaitForTruncateAsync(string ns, string set, long cutoff, CancellationToken cancellationToken)
    {
        var command = $"sets/{ns}/{set}";
        var deadline = _time.GetTimestamp();
        foreach (var node in _cluster.Nodes)
        {
            while (true)
            {
                var info = await node.InfoAsync([command], _options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                var text = info.GetValueOrDefault(command, "");
                var at = text.IndexOf("truncate_lut=", StringComparison.Ordinal);
                if (at < 0)
                {
                    // The node holds nothing of the set.
                    break;
                }

                var value = text[(at + "truncate_lut=".Length)..];
                var end = value.IndexOfAny([':', ';']);
                if (long.TryParse(end < 0 ? value : value[..end], out var truncated) && truncated >= cutoff
                    && !text.Contains("truncating=true", StringComparison.Ordinal))
                {
                    break;
                }

                if (_time.GetElapsedTime(deadline) > TimeSpan.FromSeconds(10))
                {
                    throw new AerospikeException(ResultCode.Timeout, $"Node {node} did not report the truncate of {ns}/{set} within 10 s.") { Node = node.Name };
                }

                await Task.Delay(TimeSpan.FromMilliseconds(20), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static Record? ReadRecordOrNull(in RecordHeader header, ReadOnlySpan<byte> body, int position) => header.ResultCode switch
    {
        ResultCode.Ok => RecordParser.ReadRecord(body, ref position, header),
        ResultCode.KeyNotFound => null,
        _ => throw new AerospikeException(header.ResultCode),
    };

    private static Record ReadRecordOrThrow(in RecordHeader header, ReadOnlySpan<byte> body, int position) =>
        header.ResultCode == ResultCode.Ok ? RecordParser.ReadRecord(body, ref position, header) : throw new AerospikeException(header.ResultCode);

    /// <summary>
    /// The single-record command loop: pick the node (master; reads move to the next replica on retry), send, read one answer.
    /// A server answer leaves the connection healthy; any failure mid-exchange discards it. Retryable failures back off and retry
    /// while attempts and total time remain. A write that failed after its request was sent is reported in doubt.
    /// </summary>
    private async Task<T> ExecuteAsync<T>(string command, Key key, IReadOnlyList<Operation> ops, WritePolicy? write, Policy? policy,
        ResponseReader<T> read, CancellationToken cancellationToken, bool delete = false)
    {
        var isWrite = delete || ops.Any(o => o.IsWrite);
        var total = policy?.TotalTimeout ?? _options.TotalTimeout;
        var socket = policy?.SocketTimeout ?? _options.SocketTimeout;
        var maxRetries = policy?.MaxRetries ?? _options.MaxRetries;
        var start = _time.GetTimestamp();
        using var request = new MessageBuffer();
        CommandWriter.WriteRecordCommand(request, key, ops, write, (int)total.TotalMilliseconds, delete);
        var partition = key.PartitionId;
        for (var attempt = 0; ; attempt++)
        {
            var node = _cluster.GetNode(key.Namespace, partition, isWrite ? 0 : attempt);
            var sent = false;
            AerospikeException failure;
            var remaining = total - _time.GetElapsedTime(start);
            using (var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                cts.CancelAfter(remaining < socket ? remaining : socket);
                Connection? connection = null;
                try
                {
                    if (node is null)
                    {
                        throw new AerospikeException(ResultCode.InvalidNode, $"No node serves {key.Namespace} partition {partition}.");
                    }

                    connection = await node.Pool.RentAsync(cts.Token).ConfigureAwait(false);
                    sent = true;
                    await connection.SendAsync(request.WrittenMemory, cts.Token).ConfigureAwait(false);
                    var (_, body, length) = await connection.ReadMessageAsync(cts.Token).ConfigureAwait(false);
                    RecordHeader header;
                    try
                    {
                        var position = 0;
                        header = RecordParser.ReadHeader(body.AsSpan(0, length), ref position);
                        node.Pool.Return(connection);
                        connection = null;
                        var result = read(header, body.AsSpan(0, length), position);
                        _metrics.Completed(command, start, _time);
                        return result;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(body);
                    }
                }
                catch (AerospikeException ex) when (connection is null && ex.ResultCode >= 0)
                {
                    // A server answer: the connection went back to the pool.
                    failure = new AerospikeException(ex.ResultCode, null, ex) { Node = node?.Name, Attempts = attempt + 1 };
                }
                catch (Exception ex) when (ex is AerospikeException or SocketException or IOException or OperationCanceledException)
                {
                    if (connection is not null)
                    {
                        node!.Pool.Discard(connection);
                    }

                    if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
                    {
                        throw;
                    }

                    var code = AerospikeException.CodeOf(ex);
                    failure = new AerospikeException(code, $"Aerospike {command} on {key} failed: {ex.Message}", ex)
                    {
                        Node = node?.Name,
                        Attempts = attempt + 1,
                        InDoubt = isWrite && sent && code is ResultCode.Timeout or ResultCode.NetworkError,
                    };
                }
            }

            _metrics.Error(command, failure.ResultCode);
            if (!AerospikeException.IsRetryable(failure.ResultCode) || attempt >= maxRetries)
            {
                throw failure;
            }

            var backoff = _options.RetryBackoff * (1 << attempt);
            if (_time.GetElapsedTime(start) + backoff >= total)
            {
                throw failure;
            }

            Log.Retrying(_logger, command, attempt + 1, failure.ResultCode);
            await Task.Delay(backoff, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task GetBatchAsync(IReadOnlyList<Key> keys, IReadOnlyList<int> indexes, IReadOnlyList<string>? bins, Policy? policy,
        Record?[] results, int attempt, CancellationToken cancellationToken)
    {
        // Reads may go to a replica on a retry.
        var chunks = ChunksByNode(indexes, i => keys[i], replica: attempt);
        await Task.WhenAll(chunks.Select(c => GetBatchChunkAsync(c.Node, keys, c.Indexes, bins, policy, results, attempt, cancellationToken))).ConfigureAwait(false);
    }

    private async Task GetBatchChunkAsync(Node node, IReadOnlyList<Key> keys, int[] indexes, IReadOnlyList<string>? bins, Policy? policy,
        Record?[] results, int attempt, CancellationToken cancellationToken)
    {
        using var request = new MessageBuffer(indexes.Length * 26 + 64);
        CommandWriter.WriteBatchRead(request, keys, indexes, bins, (int)(policy?.TotalTimeout ?? _options.TotalTimeout).TotalMilliseconds);
        var (failure, _) = await ExchangeBatchAsync(node, request, body => ReadBatchGroup(body, results), policy, $"batch get of {indexes.Length} keys",
            writes: false, attempt, cancellationToken).ConfigureAwait(false);
        if (failure is null)
        {
            return;
        }

        _metrics.Error("batch_get", failure.ResultCode);
        if (!AerospikeException.IsRetryable(failure.ResultCode) || attempt >= (policy?.MaxRetries ?? _options.MaxRetries))
        {
            throw failure;
        }

        await Task.Delay(_options.RetryBackoff * (1 << attempt), _time, cancellationToken).ConfigureAwait(false);
        await GetBatchAsync(keys, indexes, bins, policy, results, attempt + 1, cancellationToken).ConfigureAwait(false);
    }

    private async Task OperateBatchAsync(IReadOnlyList<BatchWrite> writes, IReadOnlyList<int> indexes, Policy? policy, BatchResult[] results, int attempt,
        CancellationToken cancellationToken)
    {
        var chunks = ChunksByNode(indexes, i => writes[i].Key, replica: 0);
        await Task.WhenAll(chunks.Select(c => OperateBatchChunkAsync(c.Node, writes, c.Indexes, policy, results, attempt, cancellationToken))).ConfigureAwait(false);
    }

    private async Task OperateBatchChunkAsync(Node node, IReadOnlyList<BatchWrite> writes, int[] indexes, Policy? policy, BatchResult[] results, int attempt,
        CancellationToken cancellationToken)
    {
        using var request = new MessageBuffer(indexes.Length * 128 + 64);
        CommandWriter.WriteBatchOperate(request, writes, indexes, (int)(policy?.TotalTimeout ?? _options.TotalTimeout).TotalMilliseconds);
        var (failure, sent) = await ExchangeBatchAsync(node, request, body => ReadBatchResults(body, results), policy,
            $"batch operate of {indexes.Length} records", writes: true, attempt, cancellationToken).ConfigureAwait(false);
        if (failure is null)
        {
            return;
        }

        _metrics.Error("batch_operate", failure.ResultCode);
        // A request that reached the server is not sent again: some of its writes may have happened.
        if (sent || !AerospikeException.IsRetryable(failure.ResultCode) || attempt >= (policy?.MaxRetries ?? _options.MaxRetries))
        {
            throw failure;
        }

        await Task.Delay(_options.RetryBackoff * (1 << attempt), _time, cancellationToken).ConfigureAwait(false);
        await OperateBatchAsync(writes, indexes, policy, results, attempt + 1, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The indexes grouped by the node that serves their keys (<paramref name="replica"/> 0: the master), in requests of at most MaxBatchKeys.</summary>
    private List<(Node Node, int[] Indexes)> ChunksByNode(IReadOnlyList<int> indexes, Func<int, Key> keyOf, int replica)
    {
        var groups = new Dictionary<Node, List<int>>();
        foreach (var index in indexes)
        {
            var key = keyOf(index);
            var node = _cluster.GetNode(key.Namespace, key.PartitionId, replica)
                ?? throw new AerospikeException(ResultCode.InvalidNode, $"No node serves {key.Namespace} partition {key.PartitionId}.");
            if (!groups.TryGetValue(node, out var list))
            {
                groups[node] = list = [];
            }

            list.Add(index);
        }

        return [.. groups.SelectMany(g => g.Value.Chunk(_options.MaxBatchKeys).Select(chunk => (g.Key, chunk)))];
    }

    private delegate bool BatchGroupReader(ReadOnlySpan<byte> body);

    /// <summary>
    /// Sends one batch request to a node and reads its answer a proto message at a time until the last record. A
    /// failure comes back (with whether the request was sent) for the caller's retry rule; the caller's own
    /// cancellation is thrown.
    /// </summary>
    private async Task<(AerospikeException? Failure, bool Sent)> ExchangeBatchAsync(Node node, MessageBuffer request, BatchGroupReader readGroup, Policy? policy,
        string what, bool writes, int attempt, CancellationToken cancellationToken)
    {
        var total = policy?.TotalTimeout ?? _options.TotalTimeout;
        var socket = policy?.SocketTimeout ?? _options.SocketTimeout;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(total);
        Connection? connection = null;
        var sent = false;
        try
        {
            connection = await node.Pool.RentAsync(cts.Token).ConfigureAwait(false);
            sent = true;
            await connection.SendAsync(request.WrittenMemory, cts.Token).ConfigureAwait(false);
            var done = false;
            while (!done)
            {
                cts.CancelAfter(socket < total ? socket : total);
                var (_, body, length) = await connection.ReadMessageAsync(cts.Token).ConfigureAwait(false);
                try
                {
                    done = readGroup(body.AsSpan(0, length));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(body);
                }
            }

            node.Pool.Return(connection);
            return (null, sent);
        }
        catch (Exception ex) when (ex is AerospikeException or SocketException or IOException or OperationCanceledException)
        {
            if (connection is not null)
            {
                node.Pool.Discard(connection);
            }

            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            var code = AerospikeException.CodeOf(ex);
            return (new AerospikeException(code, $"Aerospike {what} failed: {ex.Message}", ex) { Node = node.Name, Attempts = attempt + 1, InDoubt = writes && sent }, sent);
        }
    }

    /// <summary>Reads one proto message of a batch operate's answer, each record's result code at its index; true at the LAST record.</summary>
    private static bool ReadBatchResults(ReadOnlySpan<byte> body, BatchResult[] results) =>
        ReadBatchAnswer(body, results, static (code, record, _) => new BatchResult(code, code == ResultCode.Ok ? record : null));

    /// <summary>Reads one proto message of a batch read's answer; true at the LAST record.</summary>
    private static bool ReadBatchGroup(ReadOnlySpan<byte> body, Record?[] results) =>
        // Missing is null; any other failure of one key fails the batch (a timeout must not read as "not there").
        ReadBatchAnswer(body, results, static (code, record, index) => code switch
        {
            ResultCode.Ok => record,
            ResultCode.KeyNotFound or ResultCode.FilteredOut => null,
            _ => throw new AerospikeException(code, $"Batch key {index} failed with {code}."),
        });

    /// <summary>
    /// Reads one proto message of a batch answer, putting each record, as <paramref name="result"/> makes it, at its
    /// batch index; true at the LAST record, which ends the answer.
    /// </summary>
    private static bool ReadBatchAnswer<T>(ReadOnlySpan<byte> body, T[] results, Func<ResultCode, Record, int, T> result)
    {
        var position = 0;
        while (position < body.Length)
        {
            var header = RecordParser.ReadHeader(body, ref position);
            if (header.IsLast)
            {
                return header.ResultCode is ResultCode.Ok or ResultCode.KeyNotFound
                    ? true
                    : throw new AerospikeException(header.ResultCode, $"The batch ended with {header.ResultCode}.");
            }

            RecordParser.ReadFields(body, ref position, header.FieldCount, keep: false);
            var record = RecordParser.ReadRecord(body, ref position, header);
            if ((uint)header.BatchIndex >= (uint)results.Length)
            {
                throw new AerospikeException(ResultCode.ParseError, $"Batch index {header.BatchIndex} is out of range.");
            }

            results[header.BatchIndex] = result(header.ResultCode, record, header.BatchIndex);
        }

        return false;
    }

    private async Task ScanAllAsync(string ns, string? set, Dictionary<int, byte[]?> state, IReadOnlyList<string>? bins, long maxRecords,
        Policy? policy, ChannelWriter<ScanRecord> writer, CancellationToken cancellationToken)
    {
        var maxRetries = policy?.MaxRetries ?? _options.MaxRetries;
        Exception? error = null;
        try
        {
            for (var attempt = 0; state.Count > 0; attempt++)
            {
                var groups = new Dictionary<Node, List<int>>();
                foreach (var p in state.Keys)
                {
                    var node = _cluster.GetNode(ns, p, attempt)
                        ?? throw new AerospikeException(ResultCode.InvalidNode, $"No node serves {ns} partition {p}.");
                    if (!groups.TryGetValue(node, out var list))
                    {
                        groups[node] = list = [];
                    }

                    list.Add(p);
                }

                var failures = await Task.WhenAll(groups.Select(g => ScanNodeAsync(g.Key, ns, set, g.Value, state, bins, maxRecords, policy, writer, cancellationToken)))
                    .ConfigureAwait(false);
                var failure = failures.FirstOrDefault(f => f is not null);
                if (state.Count == 0)
                {
                    break;
                }

                if (attempt >= maxRetries)
                {
                    throw failure ?? new AerospikeException(ResultCode.PartitionUnavailable, $"{state.Count} partitions of {ns} stayed unavailable.");
                }

                await Task.Delay(_options.RetryBackoff * (1 << attempt), _time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            error = ex;
            throw;
        }
        finally
        {
            writer.TryComplete(error is OperationCanceledException ? null : error);
        }
    }

    /// <summary>Scans one node's partitions; returns the failure (to retry what is left) or null.</summary>
    private async Task<AerospikeException?> ScanNodeAsync(Node node, string ns, string? set, List<int> partitions, Dictionary<int, byte[]?> state,
        IReadOnlyList<string>? bins, long maxRecords, Policy? policy, ChannelWriter<ScanRecord> writer, CancellationToken cancellationToken)
    {
        var socket = policy?.SocketTimeout ?? _options.SocketTimeout;
        var full = new List<int>();
        var resume = new List<byte[]>();
        lock (state)
        {
            foreach (var p in partitions)
            {
                if (state[p] is { } digest)
                {
                    resume.Add(digest);
                }
                else
                {
                    full.Add(p);
                }
            }
        }

        using var request = new MessageBuffer(full.Count * 2 + resume.Count * 20 + 128);
        CommandWriter.WriteScan(request, ns, set, full, resume, bins, maxRecords, Interlocked.Increment(ref _scanIds), (int)socket.TotalMilliseconds);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Connection? connection = null;
        try
        {
            cts.CancelAfter(socket);
            connection = await node.Pool.RentAsync(cts.Token).ConfigureAwait(false);
            await connection.SendAsync(request.WrittenMemory, cts.Token).ConfigureAwait(false);
            var records = new List<ScanRecord>();
            var unavailable = new HashSet<int>();
            var done = false;
            while (!done)
            {
                cts.CancelAfter(socket);
                var (_, body, length) = await connection.ReadMessageAsync(cts.Token).ConfigureAwait(false);
                try
                {
                    done = ReadScanGroup(body.AsSpan(0, length), ns, state, records, unavailable);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(body);
                }

                // The socket timeout covers waiting on the server, not on a slow consumer.
                cts.CancelAfter(Timeout.InfiniteTimeSpan);
                foreach (var record in records)
                {
                    await writer.WriteAsync(record, cancellationToken).ConfigureAwait(false);
                }

                records.Clear();
            }

            node.Pool.Return(connection);
            connection = null;

            // A complete answer covers every partition asked for, except those the server said it does not hold.
            lock (state)
            {
                foreach (var p in partitions)
                {
                    if (!unavailable.Contains(p))
                    {
                        state.Remove(p);
                    }
                }
            }

            return null;
        }
        catch (Exception ex) when (ex is AerospikeException or SocketException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            if (connection is not null)
            {
                node.Pool.Discard(connection);
            }

            var code = AerospikeException.CodeOf(ex);
            _metrics.Error("scan", code);
            return new AerospikeException(code, $"Aerospike scan of {ns}/{set} on {node} failed: {ex.Message}", ex) { Node = node.Name };
        }
        catch when (connection is not null)
        {
            node.Pool.Discard(connection);
            throw;
        }
    }

    /// <summary>
    /// Reads one proto message of a scan answer into <paramref name="records"/>, noting each record's digest for its partition
    /// (the resume point) and dropping partitions the server reports done. True at the LAST record.
    /// </summary>
    private static bool ReadScanGroup(ReadOnlySpan<byte> body, string ns, Dictionary<int, byte[]?> state, List<ScanRecord> records, HashSet<int> unavailable)
    {
        var position = 0;
        while (position < body.Length)
        {
            var header = RecordParser.ReadHeader(body, ref position);
            if (header.IsLast)
            {
                return header.ResultCode is ResultCode.Ok or ResultCode.KeyNotFound
                    ? true
                    : throw new AerospikeException(header.ResultCode, $"The scan ended with {header.ResultCode}.");
            }

            if (header.IsPartitionDone)
            {
                // The partition id travels in the generation slot; a non-zero code means "not here, ask again".
                RecordParser.ReadFields(body, ref position, header.FieldCount, keep: false);
                if (header.ResultCode == ResultCode.Ok)
                {
                    lock (state)
                    {
                        state.Remove(header.Generation);
                    }
                }
                else
                {
                    unavailable.Add(header.Generation);
                }

                continue;
            }

            var (digest, set) = RecordParser.ReadFields(body, ref position, header.FieldCount, keep: true);
            var record = RecordParser.ReadRecord(body, ref position, header);
            if (digest is null)
            {
                throw new AerospikeException(ResultCode.ParseError, $"A scan record came without its digest. {header}");
            }

            var key = Key.FromDigest(ns, set, digest);
            lock (state)
            {
                var partition = key.PartitionId;
                if (state.ContainsKey(partition))
                {
                    state[partition] = digest;
                }
            }

            records.Add(new ScanRecord(key, record));
        }

        return false;
    }
}

/// <summary>One record of a scan: its key (digest, set) and the record.</summary>
public sealed record ScanRecord(Key Key, Record Record);
