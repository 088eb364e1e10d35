using MessagePack;

namespace Audience.Silo.Storage;

/// <summary>
/// The events a user sent in one batch, as the store archives them where the log cannot (Kafka mode): each event's
/// sequence number, receive time and JSON, LZ4-compressed together by MessagePack. A new segment's aggregates are
/// filled from them, so they are kept as long as the longest window (<c>Silo:EventRetention</c>).
/// </summary>
public static class EventArchive
{
    private static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithCompression(MessagePackCompression.Lz4BlockArray);

    public static ArchiveChunk Encode(IReadOnlyList<ArchivedEvent> events)
    {
        var rows = new (long Seq, long ReceivedAt, byte[] Json)[events.Count];
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i] = (events[i].Seq, events[i].ReceivedAt, events[i].Json);
        }

        return new ArchiveChunk(events[0].Seq, events[^1].Seq, events[0].ReceivedAt, MessagePackSerializer.Serialize(rows, Options));
    }

    public static IEnumerable<ArchivedEvent> Decode(byte[] data) =>
        MessagePackSerializer.Deserialize<(long Seq, long ReceivedAt, byte[] Json)[]>(data, Options)
            .Select(r => new ArchivedEvent(r.Seq, r.ReceivedAt, r.Json));
}
