using Audience.Aerospike.Wire;

namespace Audience.Aerospike.Operations;

/// <summary>How a map keeps its entries (AEROSPIKE.md §3).</summary>
public enum MapOrder
{
    Unordered = 0,
    KeyOrdered = 1,
    KeyValueOrdered = 3,
}

/// <summary>What a map read or remove returns.</summary>
public enum MapReturnType
{
    None = 0,
    Index = 1,
    ReverseIndex = 2,
    Rank = 3,
    ReverseRank = 4,
    Count = 5,
    Key = 6,
    Value = 7,
    KeyValue = 8,
}

/// <summary>
/// Map (CDT) operations for <see cref="AerospikeClient.OperateAsync"/>. Each packs <c>[opcode, args...]</c> as msgpack
/// (AEROSPIKE.md §8.7). Range ends are exclusive; a null end means "to the end of the map".
/// Map writes take the order the map is created with, so the profile store's maps stay key-ordered.
/// </summary>
public static class MapOperation
{
    private const int SetType = 64;
    private const int PutCode = 67;
    private const int PutItemsCode = 68;
    private const int IncrementCode = 73;
    private const int ClearCode = 75;
    private const int RemoveByKeyCode = 76;
    private const int RemoveByKeyListCode = 81;
    private const int RemoveByKeyIntervalCode = 84;
    private const int SizeCode = 96;
    private const int GetByKeyCode = 97;
    private const int GetByKeyIntervalCode = 103;
    private const int GetByIndexRangeCode = 104;
    private const int GetByValueIntervalCode = 105;
    private const int GetByRankRangeCode = 106;
    private const int GetByKeyListCode = 107;
    private const int GetByKeyRelativeIndexRangeCode = 109;

    /// <summary>Sets the map's order (creating an empty map if the bin is missing).</summary>
    public static Operation SetMapOrder(string bin, MapOrder order) => Modify(bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 2);
        MsgPackWriter.WriteInteger(b, SetType);
        MsgPackWriter.WriteInteger(b, (int)order);
    });

    /// <summary>Puts one entry; returns the map size.</summary>
    public static Operation Put(string bin, object key, object? value, MapOrder order = MapOrder.KeyOrdered) => Modify(bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 4);
        MsgPackWriter.WriteInteger(b, PutCode);
        MsgPackWriter.WriteValue(b, key);
        MsgPackWriter.WriteValue(b, value);
        MsgPackWriter.WriteInteger(b, (int)order);
    });

    /// <summary>Puts many entries; returns the map size.</summary>
    public static Operation PutItems<TKey>(string bin, IReadOnlyDictionary<TKey, object?> items, MapOrder order = MapOrder.KeyOrdered)
        where TKey : notnull => Modify(bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 3);
        MsgPackWriter.WriteInteger(b, PutItemsCode);
        MsgPackWriter.WriteMapHeader(b, items.Count);
        foreach (var (key, value) in items)
        {
            MsgPackWriter.WriteValue(b, key);
            MsgPackWriter.WriteValue(b, value);
        }

        MsgPackWriter.WriteInteger(b, (int)order);
    });

    /// <summary>Adds to a numeric entry (creating it); returns the new value.</summary>
    public static Operation Increment(string bin, object key, long increment, MapOrder order = MapOrder.KeyOrdered) => Modify(bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 4);
        MsgPackWriter.WriteInteger(b, IncrementCode);
        MsgPackWriter.WriteValue(b, key);
        MsgPackWriter.WriteInteger(b, increment);
        MsgPackWriter.WriteInteger(b, (int)order);
    });

    /// <summary>Removes every entry.</summary>
    public static Operation Clear(string bin) => Modify(bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 1);
        MsgPackWriter.WriteInteger(b, ClearCode);
    });

    public static Operation RemoveByKey(string bin, object key, MapReturnType returnType = MapReturnType.None) =>
        Modify(bin, b => Pack(b, RemoveByKeyCode, returnType, key));

    public static Operation RemoveByKeyList(string bin, IReadOnlyCollection<object> keys, MapReturnType returnType = MapReturnType.None) =>
        Modify(bin, b => Pack(b, RemoveByKeyListCode, returnType, keys));

    /// <summary>Removes keys in [begin, end); a null end runs to the end of the map.</summary>
    public static Operation RemoveByKeyRange(string bin, object? begin, object? end, MapReturnType returnType = MapReturnType.None) =>
        Modify(bin, b => PackRange(b, RemoveByKeyIntervalCode, returnType, begin, end));

    /// <summary>Number of entries.</summary>
    public static Operation Size(string bin) => Operation.Cdt(false, bin, b =>
    {
        MsgPackWriter.WriteArrayHeader(b, 1);
        MsgPackWriter.WriteInteger(b, SizeCode);
    });

    public static Operation GetByKey(string bin, object key, MapReturnType returnType = MapReturnType.Value) =>
        Read(bin, b => Pack(b, GetByKeyCode, returnType, key));

    public static Operation GetByKeyList(string bin, IReadOnlyCollection<object> keys, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => Pack(b, GetByKeyListCode, returnType, keys));

    /// <summary>Entries with keys in [begin, end); null bounds are open.</summary>
    public static Operation GetByKeyRange(string bin, object? begin, object? end, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => PackRange(b, GetByKeyIntervalCode, returnType, begin, end));

    /// <summary>Entries with values in [begin, end); null bounds are open.</summary>
    public static Operation GetByValueRange(string bin, object? begin, object? end, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => PackRange(b, GetByValueIntervalCode, returnType, begin, end));

    /// <summary>Entries by index (key order): <paramref name="count"/> from <paramref name="index"/>, or to the end when null.</summary>
    public static Operation GetByIndexRange(string bin, int index, int? count, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => PackCounted(b, GetByIndexRangeCode, returnType, null, index, count));

    /// <summary>Entries by value rank: <paramref name="count"/> from <paramref name="rank"/> (negative ranks count from the top).</summary>
    public static Operation GetByRankRange(string bin, int rank, int? count, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => PackCounted(b, GetByRankRangeCode, returnType, null, rank, count));

    /// <summary>Entries from the position of <paramref name="key"/> (or where it would be) plus <paramref name="index"/>: pagination by key.</summary>
    public static Operation GetByKeyRelativeIndexRange(string bin, object key, int index, int? count, MapReturnType returnType = MapReturnType.KeyValue) =>
        Read(bin, b => PackCounted(b, GetByKeyRelativeIndexRangeCode, returnType, key, index, count));

    private static Operation Modify(string bin, Action<MessageBuffer> pack) => Operation.Cdt(true, bin, pack);

    private static Operation Read(string bin, Action<MessageBuffer> pack) => Operation.Cdt(false, bin, pack);

    private static void Pack(MessageBuffer b, int code, MapReturnType returnType, object argument)
    {
        MsgPackWriter.WriteArrayHeader(b, 3);
        MsgPackWriter.WriteInteger(b, code);
        MsgPackWriter.WriteInteger(b, (int)returnType);
        MsgPackWriter.WriteValue(b, argument);
    }

    private static void PackRange(MessageBuffer b, int code, MapReturnType returnType, object? begin, object? end)
    {
        // Without an end the server takes the range to the end of the map.
        MsgPackWriter.WriteArrayHeader(b, end is null ? 3 : 4);
        MsgPackWriter.WriteInteger(b, code);
        MsgPackWriter.WriteInteger(b, (int)returnType);
        MsgPackWriter.WriteValue(b, begin);
        if (end is not null)
        {
            MsgPackWriter.WriteValue(b, end);
        }
    }

    private static void PackCounted(MessageBuffer b, int code, MapReturnType returnType, object? key, int index, int? count)
    {
        var n = 3 + (key is null ? 0 : 1) + (count is null ? 0 : 1);
        MsgPackWriter.WriteArrayHeader(b, n);
        MsgPackWriter.WriteInteger(b, code);
        MsgPackWriter.WriteInteger(b, (int)returnType);
        if (key is not null)
        {
            MsgPackWriter.WriteValue(b, key);
        }

        MsgPackWriter.WriteInteger(b, index);
        if (count is int c)
        {
            MsgPackWriter.WriteInteger(b, c);
        }
    }
}
