using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace Audience.Rules.Profiles;

/// <summary>
/// A user's memberships: segment slot → when the user entered, as two sorted arrays. A user of a large catalog is in
/// dozens of segments and an active Silo holds many users, so this is a third of what a dictionary took (12 bytes an
/// entry, against about 28 with its buckets and slack) and gives the garbage collector two arrays to mark instead of
/// one per entry's worth of slack. Lookups are binary searches; entering and leaving shift the tail, which is short.
/// Not thread-safe, like its profile.
/// </summary>
public sealed class MembershipDictionary : IReadOnlyDictionary<int, long>
{
    private int[] _slots = [];
    private long[] _since = [];
    private int _count;

    public int Count => _count;

    public long this[int key] => TryGetValue(key, out var since) ? since : throw new KeyNotFoundException($"Not a member of segment slot {key}.");

    public IEnumerable<int> Keys => _slots.Take(_count);

    public IEnumerable<long> Values => _since.Take(_count);

    public bool ContainsKey(int key) => Array.BinarySearch(_slots, 0, _count, key) >= 0;

    public bool TryGetValue(int key, [MaybeNullWhen(false)] out long value)
    {
        var i = Array.BinarySearch(_slots, 0, _count, key);
        value = i >= 0 ? _since[i] : 0;
        return i >= 0;
    }

    /// <summary>Room for <paramref name="count"/> entries, so that a profile being decoded allocates once.</summary>
    public void EnsureCapacity(int count)
    {
        if (_slots.Length < count)
        {
            Array.Resize(ref _slots, count);
            Array.Resize(ref _since, count);
        }
    }

    public void Set(int slot, long since)
    {
        var i = Array.BinarySearch(_slots, 0, _count, slot);
        if (i >= 0)
        {
            _since[i] = since;
            return;
        }

        i = ~i;
        if (_count == _slots.Length)
        {
            EnsureCapacity(Math.Max(4, _count + (_count / 2)));
        }

        Array.Copy(_slots, i, _slots, i + 1, _count - i);
        Array.Copy(_since, i, _since, i + 1, _count - i);
        _slots[i] = slot;
        _since[i] = since;
        _count++;
    }

    public bool Remove(int slot)
    {
        var i = Array.BinarySearch(_slots, 0, _count, slot);
        if (i < 0)
        {
            return false;
        }

        _count--;
        Array.Copy(_slots, i + 1, _slots, i, _count - i);
        Array.Copy(_since, i + 1, _since, i, _count - i);
        return true;
    }

    public IEnumerator<KeyValuePair<int, long>> GetEnumerator()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return new KeyValuePair<int, long>(_slots[i], _since[i]);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
