namespace Audience.Silo.Processing;

/// <summary>
/// The ids of a user's last <see cref="Capacity"/> events, as 64-bit hashes, kept with the profile: a client that
/// resends an event (after a timeout or a 503 whose events partly got through) has it applied once. The embedded
/// log already refuses repeated ids for its whole retention; in Kafka mode this is the guard, for the resends
/// that come soon after the original, which is when clients resend.
/// </summary>
public sealed class RecentEventIds
{
    public const int Capacity = 32;

    private readonly ulong[] _hashes = new ulong[Capacity];
    private int _count;
    private int _next;

    public RecentEventIds()
    {
    }

    /// <summary>Remembers the last <see cref="Capacity"/> of <paramref name="hashes"/>, oldest first.</summary>
    public RecentEventIds(ReadOnlySpan<ulong> hashes)
    {
        foreach (var hash in hashes[Math.Max(0, hashes.Length - Capacity)..])
        {
            Remember(hash);
        }
    }

    /// <summary>Oldest first.</summary>
    public IEnumerable<ulong> Hashes => Enumerable.Range(0, _count).Select(i => _hashes[(_next - _count + i + Capacity) % Capacity]);

    /// <summary>Remembers the id; false if it was among the recent ones already.</summary>
    public bool Add(string eventId)
    {
        var hash = Hash(eventId);
        for (var i = 0; i < _count; i++)
        {
            if (_hashes[i] == hash)
            {
                return false;
            }
        }

        Remember(hash);
        return true;
    }

    private void Remember(ulong hash)
    {
        _hashes[_next] = hash;
        _next = (_next + 1) % Capacity;
        _count = Math.Min(_count + 1, Capacity);
    }

    /// <summary>FNV-1a over the id's UTF-16 code units: stable across processes and versions.</summary>
    private static ulong Hash(string id)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in id)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return hash;
    }
}
