namespace Audience.Aerospike;

/// <summary>
/// A record as read: bins, generation and expiration. For operate, <see cref="Results"/> holds one entry per operation
/// in request order (RESPOND_ALL_OPS), which is what a caller mixing writes and map reads on one bin needs.
/// </summary>
public sealed class Record
{
    /// <summary>The Citrusleaf epoch that void times count from.</summary>
    public static readonly DateTimeOffset Epoch = new(2010, 1, 1, 0, 0, 0, TimeSpan.Zero);

    internal Record(IReadOnlyDictionary<string, object?> bins, IReadOnlyList<KeyValuePair<string, object?>> results, int generation, uint voidTime)
    {
        Bins = bins;
        Results = results;
        Generation = generation;
        VoidTime = voidTime;
    }

    /// <summary>Bins by name; a bin that several operations returned holds the list of their results.</summary>
    public IReadOnlyDictionary<string, object?> Bins { get; }

    /// <summary>Every returned (bin, value) in response order.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Results { get; }

    /// <summary>Number of writes to the record.</summary>
    public int Generation { get; }

    /// <summary>Seconds since 2010-01-01 UTC when the record expires; 0 never.</summary>
    public uint VoidTime { get; }

    /// <summary>When the record expires; null if never.</summary>
    public DateTimeOffset? Expiration => VoidTime == 0 ? null : Epoch.AddSeconds(VoidTime);

    /// <summary>A bin's value, or null.</summary>
    public object? this[string bin] => Bins.TryGetValue(bin, out var value) ? value : null;

    public long GetLong(string bin) => this[bin] is long l ? l : throw new InvalidCastException($"Bin '{bin}' is {this[bin]?.GetType().Name ?? "null"}, not an integer.");

    public string? GetString(string bin) => this[bin] as string;
}
