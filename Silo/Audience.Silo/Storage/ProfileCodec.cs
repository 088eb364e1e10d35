using System.Buffers;
using System.Buffers.Binary;
using Audience.Rules;
using Audience.Rules.Profiles;
using Audience.Silo.Processing;
using MessagePack;

namespace Audience.Silo.Storage;

/// <summary>A user's profile as a grain holds it, with what the Silo keeps beside it to keep the profile exact.</summary>
public sealed class ProfileState(UserProfile profile)
{
    public UserProfile Profile { get; } = profile;

    /// <summary>
    /// The catalog version up to which this profile holds complete state for every aggregate (see
    /// <see cref="AggregateSpec.Version"/>); -1 until a decoded profile has been completed.
    /// </summary>
    public int CompletedVersion { get; set; } = -1;

    /// <summary>The aggregates (by <see cref="AggregateSpec.StableHash"/>) the stored profile was complete for, until it is completed here.</summary>
    public HashSet<ulong>? StoredKnown { get; set; }

    /// <summary>Whether the profile holds complete state for <paramref name="spec"/> (all the user's past events in it).</summary>
    public bool IsKnown(AggregateSpec spec) => spec.Version <= CompletedVersion || (StoredKnown?.Contains(spec.StableHash) ?? false);

    /// <summary>The user's last event ids, so a resent event has effect once.</summary>
    public RecentEventIds Recent { get; init; } = new();

    /// <summary>The segments (ids and versions) the memberships were last evaluated against; see <see cref="Rules.Indexing.SegmentIndex.Fingerprint"/>.</summary>
    public ulong SegmentsFingerprint { get; set; }

    /// <summary>Membership changes recorded so far: the sequence number of the last one.</summary>
    public long HistoryCount { get; set; }

    /// <summary>The changes after the last sealed chunk of history, oldest first (fewer than <see cref="ProfileCodec.HistoryChunkSize"/>).</summary>
    public List<HistoryEntry> OpenHistory { get; init; } = [];

    /// <summary>The notifications campaigns sent the user within the longest cap period, oldest first: what caps count.</summary>
    public List<Campaigns.CampaignSend> Sends { get; init; } = [];
}

/// <summary>One entry of a user's membership history; <see cref="Seq"/> counts the user's changes from 1.</summary>
[GenerateSerializer]
[Immutable]
public sealed record HistoryEntry(
    [property: Id(0)] long Seq,
    [property: Id(1)] string SegmentId,
    [property: Id(2)] bool Entered,
    [property: Id(3)] string Reason,
    [property: Id(4)] long At,
    [property: Id(5)] double LatencyMs,
    [property: Id(6)] string? EventId);

/// <summary>
/// The stored form of a profile: a versioned MessagePack array, compact because most of it is small integers
/// (MessagePack writes them in 1 to 9 bytes) and decimals that are whole or have few places (written as a 64-bit
/// mantissa and a scale, 12 bytes, or as an integer). Aggregates are named by a 64-bit hash of their stable id, so a
/// profile costs 8 bytes per aggregate name whatever the filter's length. Layout (version 1):
/// <c>[1, eventCount, totalSpent, orderCount, firstSeen|nil, lastSeen|nil, {trait: value}, [known hash],
/// {hash: [[bucket, count, sum, min, max]...]}, {segment: since}, [recent id hash], fingerprint, historyCount,
/// [[segment, entered, reason, at, latency, eventId|nil]...], [[campaign, at]...]]</c> (the last field, the campaigns'
/// sends, came later: a profile written without it has sent nothing). Bucket indexes after the first are stored as
/// differences. History chunks use the entry layout on their own.
/// </summary>
public static class ProfileCodec
{
    public const int Version = 1;

    /// <summary>History entries per sealed chunk; the open chunk lives in the profile record.</summary>
    public const int HistoryChunkSize = 16;

    private const sbyte DecimalExt = 1;
    private const sbyte TimeExt = 2;
    private const sbyte ScaledExt = 3;

    private static readonly string[] Reasons = ["rule_evaluation", "expired", "manual", "erased"];

    public static byte[] Encode(ProfileState state)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var w = new MessagePackWriter(buffer);
        var p = state.Profile;
        w.WriteArrayHeader(16);
        w.Write(Version);
        w.Write(p.EventCount);
        WriteDecimal(ref w, p.TotalSpent);
        w.Write(p.OrderCount);
        WriteOptional(ref w, p.FirstSeen);
        WriteOptional(ref w, p.LastSeen);
        w.WriteMapHeader(p.Traits.Count);
        foreach (var (name, value) in p.Traits)
        {
            w.Write(name);
            WriteValue(ref w, value);
        }

        var known = p.Catalog.Aggregates.Where(state.IsKnown).ToList();
        w.WriteArrayHeader(known.Count);
        foreach (var spec in known)
        {
            w.Write(spec.StableHash);
        }

        var aggregates = p.AggregateStates().Where(a => a.State.BucketCount > 0).ToList();
        w.WriteMapHeader(aggregates.Count);
        foreach (var (spec, aggregate) in aggregates)
        {
            w.Write(spec.StableHash);
            w.WriteArrayHeader(aggregate.BucketCount);
            var previous = 0L;
            foreach (var b in aggregate.Buckets)
            {
                w.WriteArrayHeader(5);
                w.Write(b.Index - previous);
                previous = b.Index;
                w.Write(b.Count);
                WriteDecimal(ref w, b.Sum);
                WriteDecimal(ref w, b.Min);
                WriteDecimal(ref w, b.Max);
            }
        }

        w.WriteMapHeader(p.Memberships.Count);
        foreach (var (slot, since) in p.Memberships)
        {
            w.Write(p.Catalog.SegmentId(slot));
            w.Write(since);
        }

        var recent = state.Recent.Hashes.ToList();
        w.WriteArrayHeader(recent.Count);
        foreach (var hash in recent)
        {
            w.Write(hash);
        }

        w.Write(state.SegmentsFingerprint);
        w.Write(state.HistoryCount);
        WriteHistory(ref w, state.OpenHistory);
        w.WriteArrayHeader(state.Sends.Count);
        foreach (var send in state.Sends)
        {
            w.WriteArrayHeader(2);
            w.Write(send.CampaignId);
            w.Write(send.At);
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Restores a profile into <paramref name="catalog"/>; aggregates and memberships the catalog no longer has are dropped.</summary>
    public static ProfileState Decode(string userId, ReadOnlyMemory<byte> data, RuleCatalog catalog)
    {
        var r = new MessagePackReader(data);
        var fields = r.ReadArrayHeader();
        var version = r.ReadInt32();
        if (version != Version || fields < 15)
        {
            throw new InvalidDataException($"The stored profile of '{userId}' has format {version}; this version reads format {Version}.");
        }

        var profile = new UserProfile(userId, catalog)
        {
            EventCount = r.ReadInt64(),
            TotalSpent = ReadDecimal(ref r),
            OrderCount = r.ReadInt64(),
            FirstSeen = ReadOptional(ref r),
            LastSeen = ReadOptional(ref r),
        };
        var traits = r.ReadMapHeader();
        for (var i = 0; i < traits; i++)
        {
            var name = r.ReadString()!;
            profile.SetTrait(name, ReadValue(ref r));
        }

        var specs = SpecsByHash(catalog);
        var knownCount = r.ReadArrayHeader();
        var known = new HashSet<ulong>(knownCount);
        for (var i = 0; i < knownCount; i++)
        {
            known.Add(r.ReadUInt64());
        }

        var aggregateCount = r.ReadMapHeader();
        for (var i = 0; i < aggregateCount; i++)
        {
            specs.TryGetValue(r.ReadUInt64(), out var spec);
            var bucketCount = r.ReadArrayHeader();
            var buckets = spec is null ? null : new AggregateBucket[bucketCount];
            var index = 0L;
            for (var b = 0; b < bucketCount; b++)
            {
                r.ReadArrayHeader();
                index += r.ReadInt64();
                var bucket = new AggregateBucket(index, r.ReadInt64(), ReadDecimal(ref r), ReadDecimal(ref r), ReadDecimal(ref r));
                if (buckets is not null)
                {
                    buckets[b] = bucket;
                }
            }

            if (spec is not null)
            {
                profile.SetAggregate(spec, new WindowedAggregate(spec.Layout, buckets!));
            }
        }

        var memberships = r.ReadMapHeader();
        profile.Memberships.EnsureCapacity(memberships);
        for (var i = 0; i < memberships; i++)
        {
            var segmentId = r.ReadString()!;
            var since = r.ReadInt64();
            // Kept even for a segment deleted meanwhile: applying the deletion is what removes it, and says so.
            profile.Enter(catalog.SegmentSlot(segmentId), since);
        }

        var recentCount = r.ReadArrayHeader();
        Span<ulong> recent = recentCount <= RecentEventIds.Capacity ? stackalloc ulong[recentCount] : new ulong[recentCount];
        for (var i = 0; i < recentCount; i++)
        {
            recent[i] = r.ReadUInt64();
        }

        var fingerprint = r.ReadUInt64();
        var historyCount = r.ReadInt64();
        var open = ReadHistory(ref r, historyCount - (historyCount % HistoryChunkSize));
        var sends = new List<Campaigns.CampaignSend>();
        if (fields > 15)
        {
            var sendCount = r.ReadArrayHeader();
            for (var i = 0; i < sendCount; i++)
            {
                r.ReadArrayHeader();
                sends.Add(new Campaigns.CampaignSend(r.ReadString()!, r.ReadInt64()));
            }
        }

        return new ProfileState(profile)
        {
            Sends = sends,
            StoredKnown = known,
            Recent = new RecentEventIds(recent),
            SegmentsFingerprint = fingerprint,
            HistoryCount = historyCount,
            OpenHistory = open,
        };
    }

    /// <summary>A sealed chunk of history: <see cref="HistoryChunkSize"/> entries.</summary>
    public static byte[] EncodeHistory(IReadOnlyList<HistoryEntry> entries)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        var w = new MessagePackWriter(buffer);
        WriteHistory(ref w, entries);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a sealed chunk; its entries are numbered from <c>chunk × size + 1</c>.</summary>
    public static List<HistoryEntry> DecodeHistory(long chunk, ReadOnlyMemory<byte> data)
    {
        var r = new MessagePackReader(data);
        return ReadHistory(ref r, chunk * HistoryChunkSize);
    }

    private static void WriteHistory(ref MessagePackWriter w, IReadOnlyList<HistoryEntry> entries)
    {
        w.WriteArrayHeader(entries.Count);
        foreach (var e in entries)
        {
            w.WriteArrayHeader(6);
            w.Write(e.SegmentId);
            w.Write(e.Entered);
            var reason = Array.IndexOf(Reasons, e.Reason);
            if (reason >= 0)
            {
                w.Write(reason);
            }
            else
            {
                w.Write(e.Reason);
            }

            w.Write(e.At);
            w.Write((float)e.LatencyMs);
            if (e.EventId is null)
            {
                w.WriteNil();
            }
            else
            {
                w.Write(e.EventId);
            }
        }
    }

    private static List<HistoryEntry> ReadHistory(ref MessagePackReader r, long seqBefore)
    {
        var count = r.ReadArrayHeader();
        var entries = new List<HistoryEntry>(count);
        for (var i = 0; i < count; i++)
        {
            r.ReadArrayHeader();
            var segmentId = r.ReadString()!;
            var entered = r.ReadBoolean();
            var reason = r.NextMessagePackType == MessagePackType.Integer ? Reasons[r.ReadInt32()] : r.ReadString()!;
            var at = r.ReadInt64();
            var latency = Math.Round((double)r.ReadSingle(), 3);
            var eventId = r.TryReadNil() ? null : r.ReadString();
            entries.Add(new HistoryEntry(seqBefore + i + 1, segmentId, entered, reason, at, latency, eventId));
        }

        return entries;
    }

    private static void WriteOptional(ref MessagePackWriter w, long? value)
    {
        if (value is { } v)
        {
            w.Write(v);
        }
        else
        {
            w.WriteNil();
        }
    }

    private static long? ReadOptional(ref MessagePackReader r) => r.TryReadNil() ? null : r.ReadInt64();

    /// <summary>Whole decimals as integers; others as a 64-bit mantissa and a scale where they fit, else all 16 bytes.</summary>
    private static void WriteDecimal(ref MessagePackWriter w, decimal value)
    {
        if (decimal.IsInteger(value) && value is >= long.MinValue and <= long.MaxValue)
        {
            w.Write((long)value);
            return;
        }

        Span<int> bits = stackalloc int[4];
        decimal.GetBits(value, bits);
        var scale = (byte)((bits[3] >> 16) & 0xFF);
        var negative = bits[3] < 0;
        if (bits[2] == 0 && bits[1] >= 0)
        {
            var mantissa = ((long)bits[1] << 32) | (uint)bits[0];
            Span<byte> scaled = stackalloc byte[9];
            scaled[0] = scale;
            BinaryPrimitives.WriteInt64LittleEndian(scaled[1..], negative ? -mantissa : mantissa);
            w.WriteExtensionFormat(new ExtensionResult(ScaledExt, new ReadOnlySequence<byte>(scaled.ToArray())));
            return;
        }

        var raw = new byte[16];
        for (var i = 0; i < 4; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(i * 4), bits[i]);
        }

        w.WriteExtensionFormat(new ExtensionResult(DecimalExt, new ReadOnlySequence<byte>(raw)));
    }

    private static decimal ReadDecimal(ref MessagePackReader r)
    {
        if (r.NextMessagePackType == MessagePackType.Integer)
        {
            return r.ReadInt64();
        }

        var ext = r.ReadExtensionFormat();
        var data = ext.Data.ToArray();
        switch (ext.TypeCode)
        {
            case ScaledExt:
                var mantissa = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(1));
                var magnitude = (ulong)Math.Abs(mantissa); // below 2^63: WriteDecimal stores no larger mantissa here
                return new decimal((int)(uint)magnitude, (int)(uint)(magnitude >> 32), 0, mantissa < 0, data[0]);
            case DecimalExt:
                Span<int> bits = stackalloc int[4];
                for (var i = 0; i < 4; i++)
                {
                    bits[i] = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(i * 4));
                }

                return new decimal(bits);
            default:
                throw new InvalidDataException($"A stored number has the unknown extension {ext.TypeCode}.");
        }
    }

    private static void WriteValue(ref MessagePackWriter w, Value value)
    {
        switch (value.Kind)
        {
            case ValueKind.Bool:
                w.Write(value.AsBool);
                break;
            case ValueKind.Number:
                WriteDecimal(ref w, value.AsNumber);
                break;
            case ValueKind.String:
                w.Write(value.AsString);
                break;
            case ValueKind.Time when value.TryGetTime(out var ms):
                Span<byte> time = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(time, ms);
                w.WriteExtensionFormat(new ExtensionResult(TimeExt, new ReadOnlySequence<byte>(time.ToArray())));
                break;
            case ValueKind.List:
                w.WriteArrayHeader(value.AsList.Count);
                foreach (var item in value.AsList)
                {
                    WriteValue(ref w, item);
                }

                break;
            case ValueKind.Object:
                w.WriteMapHeader(value.AsObject.Count);
                foreach (var (name, item) in value.AsObject)
                {
                    w.Write(name);
                    WriteValue(ref w, item);
                }

                break;
            default:
                w.WriteNil();
                break;
        }
    }

    private static Value ReadValue(ref MessagePackReader r)
    {
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Nil:
                r.ReadNil();
                return Value.Null;
            case MessagePackType.Boolean:
                return Value.FromBool(r.ReadBoolean());
            case MessagePackType.Integer:
                return Value.FromNumber(r.ReadInt64());
            case MessagePackType.String:
                return Value.FromString(r.ReadString()!);
            case MessagePackType.Array:
                var count = r.ReadArrayHeader();
                var items = new Value[count];
                for (var i = 0; i < count; i++)
                {
                    items[i] = ReadValue(ref r);
                }

                return Value.FromList(items);
            case MessagePackType.Map:
                var fields = r.ReadMapHeader();
                var properties = new Dictionary<string, Value>(fields, StringComparer.Ordinal);
                for (var i = 0; i < fields; i++)
                {
                    var name = r.ReadString()!;
                    properties[name] = ReadValue(ref r);
                }

                return Value.FromObject(properties);
            case MessagePackType.Extension:
                var reader = r.CreatePeekReader();
                var header = reader.ReadExtensionFormatHeader();
                if (header.TypeCode == TimeExt)
                {
                    var ext = r.ReadExtensionFormat();
                    return Value.FromTime(BinaryPrimitives.ReadInt64LittleEndian(ext.Data.ToArray()));
                }

                return Value.FromNumber(ReadDecimal(ref r));
            default:
                r.Skip();
                return Value.Null;
        }
    }

    private static SpecTable? _specs;

    private static Dictionary<ulong, AggregateSpec> SpecsByHash(RuleCatalog catalog)
    {
        var cached = _specs;
        var version = catalog.AggregateVersion;
        if (cached is not null && ReferenceEquals(cached.Catalog, catalog) && cached.Version == version)
        {
            return cached.Specs;
        }

        var table = new SpecTable(catalog, version, catalog.Aggregates.ToDictionary(s => s.StableHash));
        _specs = table;
        return table.Specs;
    }

    private sealed record SpecTable(RuleCatalog Catalog, int Version, Dictionary<ulong, AggregateSpec> Specs);
}
