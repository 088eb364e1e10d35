using System.Text;
using Audience.Aerospike;
using Audience.Aerospike.Operations;

namespace Audience.Silo.Storage;

/// <summary>
/// The profile store on Aerospike, through our own client (<c>Silo/Audience.Aerospike</c>). One record per user in
/// the set <c>profiles</c> (bins: partition, last sequence number, next due time, update time, the encoded profile),
/// whose Aerospike generation is the ETag; everything else is laid out so that no record grows without bound and no
/// record is hot (docs/operations.md has the layout and sizes):
/// <list type="bullet">
/// <item>the membership index: per segment, <see cref="AerospikeStoreOptions.MemberBuckets"/> records, each a
/// key-ordered map user → since; a user's bucket is a hash of the user id;</item>
/// <item>the partition directory: per partition, <see cref="AerospikeStoreOptions.DirectoryBuckets"/> records, each a
/// map user → next due time (0 for none) ordered by key and value, for scans in user order and due times earliest
/// first;</item>
/// <item>history chunks, one record each; archived events, one record per user and day holding a map first sequence
/// number → chunk, expiring by TTL after <c>Silo:EventRetention</c> (no pruning pass);</item>
/// <item>partition checkpoints and epochs, completed backfills, and a registry of claimed partitions.</item>
/// </list>
/// Aerospike has no transactions across records: a batch first drops the writes whose generation is already stale,
/// then writes what goes with the records (all idempotent), then the records with their generation check: three round
/// trips per node (a batch read, two batch operates) whatever the batch's size. A crash in between leaves side records
/// that the replay writes again; a writer that lost its user between the check and the write (milliseconds) can leave
/// a side change that the user's owner overwrites at its next change.
/// </summary>
public sealed class AerospikeProfileStore : IProfileStore, IAsyncDisposable
{
    private const string ProfileSet = "profiles";
    private const string MemberSet = "members";
    private const string DirectorySet = "directory";
    private const string HistorySet = "history";
    private const string ArchiveSet = "archive";
    private const string PartitionSet = "partitions";
    private const string BackfillSet = "backfills";
    private const long DayMs = 86_400_000;

    /// <summary>History chunks past those a profile says it sealed that an erasure deletes too.</summary>
    private const int ErasedChunksPastSealed = 4;

    private static readonly IReadOnlyList<string> RecordBins = ["p", "s", "d", "data"];

    private readonly AerospikeStoreOptions _options;
    private readonly AerospikeClientOptions _clientOptions;
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private readonly Microsoft.Extensions.Logging.ILogger? _logger;
    private Task<AerospikeClient>? _client;

    public AerospikeProfileStore(AerospikeStoreOptions options, TimeSpan eventRetention, TimeProvider time, Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        options.Validate();
        _options = options;
        _clientOptions = options.Client();
        _clientOptions.Validate();
        _retention = eventRetention;
        _time = time;
        _logger = logger;
    }

    public string Kind => "aerospike";

    private string Set(string name) => _options.SetPrefix + name;

    private Key ProfileKey(string userId) => new(_options.Namespace, Set(ProfileSet), userId);

    private Key MemberKey(string segmentId, int bucket) => new(_options.Namespace, Set(MemberSet), $"{bucket}:{segmentId}");

    private Key DirectoryKey(int partition, int bucket) => new(_options.Namespace, Set(DirectorySet), $"{bucket}:{partition}");

    private Key HistoryKey(string userId, long chunk) => new(_options.Namespace, Set(HistorySet), $"{chunk}:{userId}");

    private Key ArchiveKey(string userId, long day) => new(_options.Namespace, Set(ArchiveSet), $"{day}:{userId}");

    private Key PartitionKey(int partition) => new(_options.Namespace, Set(PartitionSet), partition);

    private Key RegistryKey => new(_options.Namespace, Set(PartitionSet), "claimed");

    private Key BackfillKey(int partition) => new(_options.Namespace, Set(BackfillSet), partition);

    public async Task<ProfileRecord?> ReadAsync(string userId, CancellationToken cancellationToken = default) =>
        (await ReadManyAsync([userId], cancellationToken).ConfigureAwait(false)).GetValueOrDefault(userId);

    public Task<IReadOnlyDictionary<string, ProfileRecord>> ReadManyAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyDictionary<string, ProfileRecord>>(async client =>
        {
            var found = new Dictionary<string, ProfileRecord>(StringComparer.Ordinal);
            if (userIds.Count == 0)
            {
                return found;
            }

            var ids = userIds.ToList();
            var records = await client.GetManyAsync([.. ids.Select(ProfileKey)], RecordBins, null, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < ids.Count; i++)
            {
                if (records[i] is { } record)
                {
                    found[ids[i]] = ToRecord(ids[i], record);
                }
            }

            return found;
        }, cancellationToken);

    private static ProfileRecord ToRecord(string userId, Record record) => new()
    {
        UserId = userId,
        Partition = (int)(record["p"] as long? ?? 0),
        LastSeq = record["s"] as long? ?? 0,
        NextDue = record["d"] is long due and not 0 ? due : null,
        Data = record["data"] as byte[] ?? [],
        Generation = record.Generation,
    };

    public Task<long[]> WriteAsync(IReadOnlyList<ProfileWrite> writes, CancellationToken cancellationToken = default) =>
        Run(async client =>
        {
            var results = new long[writes.Count];
            if (writes.Count == 0)
            {
                return results;
            }

            // Writes already stale are dropped before anything of theirs is written.
            var current = await client.GetManyAsync([.. writes.Select(w => ProfileKey(w.Record.UserId))], ["s"], null, cancellationToken).ConfigureAwait(false);
            var kept = new List<int>(writes.Count);
            for (var i = 0; i < writes.Count; i++)
            {
                if ((current[i]?.Generation ?? 0) == writes[i].ExpectedGeneration)
                {
                    kept.Add(i);
                }
            }

            var keptWrites = kept.Select(i => writes[i]).ToList();
            // Two batch operates per write batch (one request per node each) instead of a command per record: first what
            // goes with the records, then the records.
            var sides = new List<BatchWrite>();
            AddMemberships(sides, keptWrites);
            AddDirectory(sides, keptWrites);
            AddHistory(sides, keptWrites);
            AddArchive(sides, keptWrites);
            if (sides.Count > 0)
            {
                foreach (var answer in await client.OperateManyAsync(sides, null, cancellationToken).ConfigureAwait(false))
                {
                    // A removal from a bucket record that does not exist has nothing to remove.
                    if (!answer.IsOk && answer.ResultCode != ResultCode.KeyNotFound)
                    {
                        throw new AerospikeException(answer.ResultCode, $"Writing what goes with {keptWrites.Count} profiles failed: {answer.ResultCode}.");
                    }
                }
            }

            if (kept.Count == 0)
            {
                return results;
            }

            var written = await client.OperateManyAsync([.. keptWrites.Select(RecordWrite)], null, cancellationToken).ConfigureAwait(false);
            for (var k = 0; k < kept.Count; k++)
            {
                results[kept[k]] = written[k] switch
                {
                    { IsOk: true, Record: { } record } => record.Generation,
                    // Another writer got there first.
                    { ResultCode: ResultCode.GenerationError or ResultCode.RecordExists or ResultCode.KeyNotFound } => 0,
                    var failed => throw new AerospikeException(failed.ResultCode, $"Writing profile {keptWrites[k].Record.UserId} failed: {failed.ResultCode}."),
                };
            }

            return results;
        }, cancellationToken);

    /// <summary>The record itself, with its generation check (create-only for a new user).</summary>
    private BatchWrite RecordWrite(ProfileWrite write)
    {
        var record = write.Record;
        var policy = write.ExpectedGeneration == 0
            ? new WritePolicy { RecordExistsAction = RecordExistsAction.CreateOnly, Ttl = ProfileTtl }
            : WritePolicy.ExpectGeneration((int)write.ExpectedGeneration) with { Ttl = ProfileTtl };
        return new BatchWrite(ProfileKey(record.UserId), [
            Operation.Put("p", (long)record.Partition),
            Operation.Put("s", record.LastSeq),
            Operation.Put("d", record.NextDue ?? 0L),
            Operation.Put("at", write.UpdatedAt),
            Operation.Put("data", record.Data),
        ], policy);
    }

    /// <summary>-1 (never) unless inactive profiles expire: then each write sets the TTL again.</summary>
    private int ProfileTtl => _options.ProfileTtl is { } ttl ? (int)ttl.TotalSeconds : -1;

    private void AddMemberships(List<BatchWrite> batch, List<ProfileWrite> writes)
    {
        // Only the last change of each (segment, user) decides the index; one operation per bucket record.
        var last = new Dictionary<(string Segment, string User), long?>();
        foreach (var write in writes)
        {
            foreach (var delta in write.Memberships)
            {
                last[(delta.SegmentId, write.Record.UserId)] = delta.Since;
            }
        }

        foreach (var bucket in last.GroupBy(l => (l.Key.Segment, Bucket: Bucket(l.Key.User, _options.MemberBuckets))))
        {
            var operations = new List<Operation>(2);
            var entered = bucket.Where(l => l.Value is not null).ToDictionary(l => l.Key.User, l => (object?)l.Value!.Value, StringComparer.Ordinal);
            var left = bucket.Where(l => l.Value is null).Select(l => (object)l.Key.User).ToList();
            if (entered.Count > 0)
            {
                operations.Add(MapOperation.PutItems("m", entered));
            }

            if (left.Count > 0)
            {
                operations.Add(MapOperation.RemoveByKeyList("m", left));
            }

            batch.Add(new BatchWrite(MemberKey(bucket.Key.Segment, bucket.Key.Bucket), operations));
        }
    }

    /// <summary>Applies map changes to a record; removals from a record that does not exist have nothing to remove.</summary>
    private static async Task Modify(AerospikeClient client, Key key, List<Operation> operations, CancellationToken cancellationToken)
    {
        try
        {
            await client.OperateAsync(key, operations, null, cancellationToken).ConfigureAwait(false);
        }
        catch (AerospikeException e) when (e.IsKeyNotFound)
        {
            // Nothing was there to remove.
        }
    }

    private void AddDirectory(List<BatchWrite> batch, List<ProfileWrite> writes)
    {
        foreach (var bucket in writes.GroupBy(w => (w.Record.Partition, Bucket: Bucket(w.Record.UserId, _options.DirectoryBuckets))))
        {
            var items = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var write in bucket)
            {
                items[write.Record.UserId] = write.Record.NextDue ?? 0L;
            }

            batch.Add(new BatchWrite(DirectoryKey(bucket.Key.Partition, bucket.Key.Bucket), [MapOperation.PutItems("u", items, MapOrder.KeyValueOrdered)]));
        }
    }

    private void AddHistory(List<BatchWrite> batch, List<ProfileWrite> writes)
    {
        var policy = new WritePolicy { Ttl = ProfileTtl };
        foreach (var write in writes)
        {
            foreach (var chunk in write.History)
            {
                batch.Add(new BatchWrite(HistoryKey(write.Record.UserId, chunk.Chunk), [Operation.Put("d", chunk.Data)], policy));
            }
        }
    }

    private void AddArchive(List<BatchWrite> batch, List<ProfileWrite> writes)
    {
        // Kept a day longer than the retention, so a chunk outlives the longest window whatever its day.
        var policy = new WritePolicy { Ttl = (int)(_retention + TimeSpan.FromDays(1)).TotalSeconds };
        foreach (var write in writes)
        {
            if (write.Archive is { } archive)
            {
                batch.Add(new BatchWrite(ArchiveKey(write.Record.UserId, archive.ReceivedAt / DayMs), [MapOperation.Put("c", archive.FirstSeq, archive.Data)], policy));
            }
        }
    }

    /// <summary>
    /// Connects, which checks the layout (see <see cref="CheckLayout"/>): at start, so that a changed bucket count stops
    /// the process with its reason.
    /// </summary>
    public Task CheckLayoutAsync(CancellationToken cancellationToken = default) => Run(_ => Task.FromResult(0), cancellationToken);

    /// <summary>
    /// Records the bucket counts (<see cref="AerospikeStoreOptions.MemberBuckets"/>, <see cref="AerospikeStoreOptions.DirectoryBuckets"/>)
    /// the first time the namespace is used, and refuses different ones afterwards: a user's bucket depends on them, so
    /// a change would lose every entry written before it (nothing moves them).
    /// </summary>
    private async Task CheckLayout(AerospikeClient client)
    {
        var key = new Key(_options.Namespace, Set(PartitionSet), "layout");
        var layout = new Dictionary<string, object?> { ["mb"] = (long)_options.MemberBuckets, ["db"] = (long)_options.DirectoryBuckets };
        try
        {
            await client.PutAsync(key, layout, new WritePolicy { RecordExistsAction = RecordExistsAction.CreateOnly }).ConfigureAwait(false);
        }
        catch (AerospikeException e) when (e.IsRecordExists)
        {
            var stored = await client.GetAsync(key, ["mb", "db"]).ConfigureAwait(false);
            if (stored?["mb"] as long? != _options.MemberBuckets || stored?["db"] as long? != _options.DirectoryBuckets)
            {
                throw new InvalidOperationException(
                    $"Aerospike:MemberBuckets is {_options.MemberBuckets} and Aerospike:DirectoryBuckets {_options.DirectoryBuckets}, but the profiles in " +
                    $"namespace {_options.Namespace} were written with {stored?["mb"]} and {stored?["db"]}; they cannot change once data exists.");
            }
        }
    }

    public Task<PartitionLease> ClaimPartitionAsync(int partition, CancellationToken cancellationToken = default) =>
        Run(async client =>
        {
            await client.OperateAsync(RegistryKey, [MapOperation.Put("p", (long)partition, 1L)], null, cancellationToken).ConfigureAwait(false);
            var claimed = await client.OperateAsync(PartitionKey(partition), [Operation.Add("e", 1), Operation.Get("e"), Operation.Get("s")], null, cancellationToken)
                .ConfigureAwait(false);
            return new PartitionLease(partition, claimed["e"] as long? ?? 1, claimed["s"] as long? ?? 0);
        }, cancellationToken);

    public Task<IReadOnlyDictionary<int, long>> CheckpointsAsync(CancellationToken cancellationToken = default) =>
        Run<IReadOnlyDictionary<int, long>>(async client =>
        {
            var partitions = await ClaimedPartitionsAsync(client, cancellationToken).ConfigureAwait(false);
            var records = await client.GetManyAsync([.. partitions.Select(PartitionKey)], ["s"], null, cancellationToken).ConfigureAwait(false);
            return partitions.Select((p, i) => (p, records[i]?["s"] as long? ?? 0)).ToDictionary(c => c.p, c => c.Item2);
        }, cancellationToken);

    private async Task<List<int>> ClaimedPartitionsAsync(AerospikeClient client, CancellationToken cancellationToken)
    {
        var registry = await client.GetAsync(RegistryKey, ["p"], null, cancellationToken).ConfigureAwait(false);
        return [.. (registry?["p"] as Dictionary<object, object?> ?? []).Keys.Select(p => (int)(long)p)];
    }

    public Task<bool> CheckpointAsync(int partition, long epoch, long seq, CancellationToken cancellationToken = default) =>
        Run(async client =>
        {
            // The epoch check and the write are one: the write expects the generation the check read.
            while (true)
            {
                var current = await client.GetAsync(PartitionKey(partition), ["e"], null, cancellationToken).ConfigureAwait(false);
                if (current?["e"] as long? != epoch)
                {
                    return false;
                }

                try
                {
                    await client.PutAsync(PartitionKey(partition), new Dictionary<string, object?> { ["s"] = seq },
                        WritePolicy.ExpectGeneration(current.Generation), cancellationToken).ConfigureAwait(false);
                    return true;
                }
                catch (AerospikeException e) when (e.IsGenerationError)
                {
                    // A claim or another checkpoint came in between: look again.
                }
            }
        }, cancellationToken);

    public Task<IReadOnlyList<string>> DueAsync(int partition, long upTo, int limit, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyList<string>>(async client =>
        {
            var buckets = await Task.WhenAll(Enumerable.Range(0, _options.DirectoryBuckets).Select(b =>
                ReadMap(client, DirectoryKey(partition, b), MapOperation.GetByValueRange("u", 1L, upTo + 1, MapReturnType.KeyValue), cancellationToken))).ConfigureAwait(false);
            return [.. buckets.SelectMany(b => b).OrderBy(e => (long)e.Value!).ThenBy(e => (string)e.Key, Utf8Order.Instance).Take(limit).Select(e => (string)e.Key)];
        }, cancellationToken);

    public Task<IReadOnlyList<ProfileRecord>> ScanAsync(int partition, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyList<ProfileRecord>>(async client =>
        {
            var users = await FirstKeysAfter(client, Enumerable.Range(0, _options.DirectoryBuckets).Select(b => DirectoryKey(partition, b)), "u", afterUserId, limit, cancellationToken)
                .ConfigureAwait(false);
            var records = await client.GetManyAsync([.. users.Select(u => ProfileKey(u.Key))], RecordBins, null, cancellationToken).ConfigureAwait(false);
            return [.. users.Select((u, i) => records[i] is { } r ? ToRecord(u.Key, r) : null).OfType<ProfileRecord>()];
        }, cancellationToken);

    public Task<long> CountUsersAsync(int partition, CancellationToken cancellationToken = default) =>
        Run(client => MapSizes(client, Enumerable.Range(0, _options.DirectoryBuckets).Select(b => DirectoryKey(partition, b)), "u", cancellationToken), cancellationToken);

    public Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyList<MembershipRow>>(async client =>
        {
            var members = await FirstKeysAfter(client, Enumerable.Range(0, _options.MemberBuckets).Select(b => MemberKey(segmentId, b)), "m", afterUserId, limit, cancellationToken)
                .ConfigureAwait(false);
            return [.. members.Select(m => new MembershipRow(segmentId, m.Key, (long)m.Value!))];
        }, cancellationToken);

    public Task<long> CountMembersAsync(string segmentId, CancellationToken cancellationToken = default) =>
        Run(client => MapSizes(client, Enumerable.Range(0, _options.MemberBuckets).Select(b => MemberKey(segmentId, b)), "m", cancellationToken), cancellationToken);

    /// <summary>
    /// The first <paramref name="limit"/> map keys after <paramref name="after"/> (in byte order, as the server orders
    /// them) over all the bucket records: each bucket gives its first ones, and they are merged.
    /// </summary>
    private static async Task<List<KeyValuePair<string, object?>>> FirstKeysAfter(AerospikeClient client, IEnumerable<Key> buckets, string bin, string after, int limit,
        CancellationToken cancellationToken)
    {
        var pages = await Task.WhenAll(buckets.Select(key =>
            ReadMap(client, key, MapOperation.GetByKeyRelativeIndexRange(bin, after, 0, limit + 1, MapReturnType.KeyValue), cancellationToken))).ConfigureAwait(false);
        return [.. pages.SelectMany(p => p)
            .Select(e => new KeyValuePair<string, object?>((string)e.Key, e.Value))
            .Where(e => Utf8Order.Instance.Compare(e.Key, after) > 0)
            .OrderBy(e => e.Key, Utf8Order.Instance)
            .Take(limit)];
    }

    private static async Task<long> MapSizes(AerospikeClient client, IEnumerable<Key> buckets, string bin, CancellationToken cancellationToken)
    {
        var sizes = await Task.WhenAll(buckets.Select(async key =>
        {
            try
            {
                var record = await client.OperateAsync(key, [MapOperation.Size(bin)], null, cancellationToken).ConfigureAwait(false);
                return record[bin] as long? ?? 0;
            }
            catch (AerospikeException e) when (e.IsKeyNotFound)
            {
                return 0L;
            }
        })).ConfigureAwait(false);
        return sizes.Sum();
    }

    /// <summary>A map read's entries; none if the bucket record does not exist yet.</summary>
    private static async Task<IReadOnlyDictionary<object, object?>> ReadMap(AerospikeClient client, Key key, Operation read, CancellationToken cancellationToken)
    {
        try
        {
            var record = await client.OperateAsync(key, [read], null, cancellationToken).ConfigureAwait(false);
            return record.Results.Count > 0 && record.Results[0].Value is Dictionary<object, object?> map ? map : new Dictionary<object, object?>();
        }
        catch (AerospikeException e) when (e.IsKeyNotFound)
        {
            return new Dictionary<object, object?>();
        }
    }

    public Task<IReadOnlyList<HistoryChunk>> HistoryAsync(string userId, long fromChunk, int limit, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyList<HistoryChunk>>(async client =>
        {
            var keys = Enumerable.Range(0, limit).Select(i => HistoryKey(userId, fromChunk + i)).ToList();
            var records = await client.GetManyAsync(keys, ["d"], null, cancellationToken).ConfigureAwait(false);
            // Chunks are sealed in order, so the first missing one ends the history.
            return [.. records.TakeWhile(r => r is not null).Select((r, i) => new HistoryChunk(fromChunk + i, (byte[])r!["d"]!))];
        }, cancellationToken);

    public Task<IReadOnlyList<ArchivedEvent>> ArchiveAsync(string userId, long uptoSeq, long receivedSince, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyList<ArchivedEvent>>(async client =>
        {
            var (firstDay, lastDay) = ArchiveDays(receivedSince);
            var days = Enumerable.Range(0, (int)(lastDay - firstDay + 1)).Select(d => firstDay + d).ToList();
            var records = await client.GetManyAsync([.. days.Select(d => ArchiveKey(userId, d))], ["c"], null, cancellationToken).ConfigureAwait(false);
            return [.. records
                .SelectMany(r => r?["c"] is Dictionary<object, object?> chunks ? chunks : [])
                .Where(c => (long)c.Key <= uptoSeq)
                .OrderBy(c => (long)c.Key)
                .SelectMany(c => EventArchive.Decode((byte[])c.Value!))
                .Where(e => e.Seq <= uptoSeq && e.ReceivedAt >= receivedSince)];
        }, cancellationToken);

    /// <summary>The days whose archive records may hold events received since <paramref name="receivedSince"/>: from the later of that and the retention's start, to tomorrow.</summary>
    private (long First, long Last) ArchiveDays(long receivedSince)
    {
        var lastDay = (_time.GetUtcNow().ToUnixTimeMilliseconds() / DayMs) + 1;
        return (Math.Max(receivedSince / DayMs, lastDay - (long)_retention.TotalDays - 2), lastDay);
    }

    /// <summary>Archived events expire by TTL (<c>Silo:EventRetention</c> and a day): nothing to prune.</summary>
    public Task<long> PruneArchiveAsync(long receivedBefore, CancellationToken cancellationToken = default) => Task.FromResult(0L);

    /// <summary>
    /// Deletes the user's records by key in one batch operate (a request per node): the profile, its history chunks
    /// (those sealed and a few past them, which a write that lost its generation check may have left), its archive days
    /// over the retention (the days <see cref="ArchiveAsync"/> reads), and its entries in the bucket records of the
    /// membership index and the partition directory. Community Edition's deletes are not durable: on a server that keeps
    /// its data in files, a cold restart can bring deleted records back (docs/operations.md).
    /// </summary>
    public Task EraseAsync(ProfileErasure erasure, CancellationToken cancellationToken = default) =>
        Run(async client =>
        {
            var user = erasure.UserId;
            var deletes = new List<BatchWrite> { new(ProfileKey(user), [Operation.Delete()]) };
            for (var chunk = 0L; chunk < erasure.HistoryChunks + ErasedChunksPastSealed; chunk++)
            {
                deletes.Add(new BatchWrite(HistoryKey(user, chunk), [Operation.Delete()]));
            }

            var (firstDay, lastDay) = ArchiveDays(0);
            for (var day = firstDay; day <= lastDay; day++)
            {
                deletes.Add(new BatchWrite(ArchiveKey(user, day), [Operation.Delete()]));
            }

            foreach (var segmentId in erasure.SegmentIds)
            {
                deletes.Add(new BatchWrite(MemberKey(segmentId, Bucket(user, _options.MemberBuckets)), [MapOperation.RemoveByKeyList("m", [user])]));
            }

            foreach (var partition in erasure.Partitions)
            {
                deletes.Add(new BatchWrite(DirectoryKey(partition, Bucket(user, _options.DirectoryBuckets)), [MapOperation.RemoveByKeyList("u", [user])]));
            }

            foreach (var answer in await client.OperateManyAsync(deletes, null, cancellationToken).ConfigureAwait(false))
            {
                // Most of the keys name nothing: days without events, chunks never sealed, buckets never written.
                if (!answer.IsOk && answer.ResultCode != ResultCode.KeyNotFound)
                {
                    throw new AerospikeException(answer.ResultCode, $"Erasing user {user} failed: {answer.ResultCode}.");
                }
            }

            return true;
        }, cancellationToken);

    public Task<IReadOnlyDictionary<string, long>> BackfilledVersionsAsync(int partition, CancellationToken cancellationToken = default) =>
        Run<IReadOnlyDictionary<string, long>>(async client =>
        {
            var record = await client.GetAsync(BackfillKey(partition), ["v"], null, cancellationToken).ConfigureAwait(false);
            return Versions(record);
        }, cancellationToken);

    private static Dictionary<string, long> Versions(Record? record) =>
        (record?["v"] as Dictionary<object, object?> ?? []).ToDictionary(v => (string)v.Key, v => (long)v.Value!, StringComparer.Ordinal);

    public Task<(int Partitions, IReadOnlyList<(string SegmentId, long Version)> Completed)> BackfillSummaryAsync(CancellationToken cancellationToken = default) =>
        Run<(int, IReadOnlyList<(string, long)>)>(async client =>
        {
            var partitions = await ClaimedPartitionsAsync(client, cancellationToken).ConfigureAwait(false);
            var records = await client.GetManyAsync([.. partitions.Select(BackfillKey)], ["v"], null, cancellationToken).ConfigureAwait(false);
            return (partitions.Count, [.. records.SelectMany(r => Versions(r)).Select(v => (v.Key, v.Value))]);
        }, cancellationToken);

    public Task MarkBackfilledAsync(int partition, IReadOnlyCollection<(string SegmentId, long? Version)> backfills, CancellationToken cancellationToken = default) =>
        Run(async client =>
        {
            var done = backfills.Where(b => b.Version is not null).ToDictionary(b => b.SegmentId, b => (object?)b.Version!.Value, StringComparer.Ordinal);
            var forgotten = backfills.Where(b => b.Version is null).Select(b => (object)b.SegmentId).ToList();
            var operations = new List<Operation>(2);
            if (done.Count > 0)
            {
                operations.Add(MapOperation.PutItems("v", done));
            }

            if (forgotten.Count > 0)
            {
                operations.Add(MapOperation.RemoveByKeyList("v", forgotten));
            }

            if (operations.Count > 0)
            {
                await Modify(client, BackfillKey(partition), operations, cancellationToken).ConfigureAwait(false);
            }

            return true;
        }, cancellationToken);

    /// <summary>The bucket of a user among <paramref name="buckets"/>: a stable hash of the id (FNV-1a over its UTF-16 code units).</summary>
    internal static int Bucket(string userId, int buckets)
    {
        var hash = 2166136261u;
        foreach (var c in userId)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash % (uint)buckets);
    }

    /// <summary>
    /// Runs against the cluster, connecting first if need be; a cluster that cannot be reached, or a command that
    /// timed out or found the cluster too busy, is <see cref="StoreUnavailableException"/>: wait and try again.
    /// </summary>
    private async Task<T> Run<T>(Func<AerospikeClient, Task<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            var client = await Client().WaitAsync(cancellationToken).ConfigureAwait(false);
            return await work(client).ConfigureAwait(false);
        }
        catch (AerospikeException e) when (IsUnavailable(e.ResultCode))
        {
            throw new StoreUnavailableException("Aerospike is unavailable: " + e.Message, e);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new StoreUnavailableException("Aerospike is unavailable: " + e.Message, e);
        }
    }

    private static bool IsUnavailable(ResultCode code) => code is ResultCode.NetworkError or ResultCode.InvalidNode
        or ResultCode.Timeout or ResultCode.PartitionUnavailable or ResultCode.KeyBusy or ResultCode.DeviceOverload or ResultCode.ServerMemoryError
        or ResultCode.BatchQueuesFull or ResultCode.BatchMaxRequestsExceeded;

    /// <summary>The client, connected on first use; a failed connection is tried again by the next call.</summary>
    private Task<AerospikeClient> Client()
    {
        var connecting = Volatile.Read(ref _client);
        if (connecting is { IsFaulted: false, IsCanceled: false })
        {
            return connecting;
        }

        // The client's timeouts and tending run on the system clock, like Orleans' own timing: the profiles' clock may be a test's fake one.
        var fresh = ConnectAsync();
        return Interlocked.CompareExchange(ref _client, fresh, connecting) == connecting ? fresh : Volatile.Read(ref _client)!;
    }

    private async Task<AerospikeClient> ConnectAsync()
    {
        var client = await AerospikeClient.ConnectAsync(_clientOptions, _logger).ConfigureAwait(false);
        try
        {
            await CheckLayout(client).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _client) is { IsCompletedSuccessfully: true } connected)
        {
            await connected.Result.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Strings in the order of their UTF-8 bytes, as Aerospike orders map keys (and PostgreSQL's "C" collation).</summary>
    private sealed class Utf8Order : IComparer<string>
    {
        public static readonly Utf8Order Instance = new();

        public int Compare(string? x, string? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }

            if (x is null || y is null)
            {
                return x is null ? -1 : 1;
            }

            var left = Encoding.UTF8.GetBytes(x);
            var right = Encoding.UTF8.GetBytes(y);
            return left.AsSpan().SequenceCompareTo(right);
        }
    }
}

/// <summary>
/// <c>Aerospike:*</c>: the cluster, the namespace and the layout of the profile store (docs/operations.md).
/// </summary>
public sealed record AerospikeStoreOptions
{
    /// <summary>Seed nodes, <c>host:port</c> separated by commas; the rest of the cluster is discovered.</summary>
    public string Hosts { get; init; } = "127.0.0.1:3000";

    /// <summary>The namespace (Community Edition allows two per cluster; seed 004's namespaces are sets here).</summary>
    public string Namespace { get; init; } = "audience";

    /// <summary>Put before every set name: several deployments (or test runs) can share a namespace.</summary>
    public string SetPrefix { get; init; } = "";

    public TimeSpan TotalTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan SocketTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    public int MaxConnectionsPerNode { get; init; } = 100;

    /// <summary>Profiles not written for this long expire (and their history with them); null: never.</summary>
    public TimeSpan? ProfileTtl { get; init; }

    /// <summary>Records per segment of the membership index: at most about 20,000 members each (a record is at most 1 MiB).</summary>
    public int MemberBuckets { get; init; } = 64;

    /// <summary>Records per partition of the user directory (scans and due times): at most about 25,000 users each.</summary>
    public int DirectoryBuckets { get; init; } = 16;

    /// <summary>Checks what the client does not: the namespace, the set names and the buckets.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Namespace) || Namespace.Length > 31)
        {
            throw new ArgumentException($"Aerospike:Namespace must be 1 to 31 characters, not '{Namespace}'.");
        }

        if (SetPrefix.Length > 40)
        {
            throw new ArgumentException("Aerospike:SetPrefix must be at most 40 characters (a set name is at most 63).");
        }

        if (MemberBuckets is < 1 or > 65_536 || DirectoryBuckets is < 1 or > 65_536)
        {
            throw new ArgumentException("Aerospike:MemberBuckets and Aerospike:DirectoryBuckets must be from 1 to 65,536.");
        }

        if (ProfileTtl is { } ttl && (ttl < TimeSpan.FromSeconds(1) || ttl > TimeSpan.FromDays(3650)))
        {
            throw new ArgumentException("Aerospike:ProfileTtl must be from 1 second to 10 years (or unset: never).");
        }
    }

    public AerospikeClientOptions Client() => new()
    {
        Hosts = Hosts,
        // Connecting (the seeds' info requests) may take as long as a command may: a busy machine answers late, not never.
        ConnectTimeout = TotalTimeout > TimeSpan.FromSeconds(1) ? TotalTimeout : TimeSpan.FromSeconds(1),
        TotalTimeout = TotalTimeout,
        SocketTimeout = SocketTimeout,
        MaxConnectionsPerNode = MaxConnectionsPerNode,
    };
}
