using Audience.Rules.Model;

namespace Audience.Rules.Profiles;

/// <summary>
/// How a window is cut into buckets: <see cref="Count"/> buckets of <see cref="WidthMs"/> each. An event counts
/// while its bucket is one of the last <see cref="Count"/> buckets, the current one included, so the far edge of
/// a window moves in steps of one bucket. The width is the smallest step of a fixed ladder that needs at most
/// <see cref="MaxBuckets"/> buckets, which keeps the edge within about 1% to 3% of the window.
/// </summary>
public readonly record struct BucketLayout(long WidthMs, int Count)
{
    public const int MaxBuckets = 120;

    private static readonly long[] Ladder =
    [
        1_000, 5_000, 10_000, 15_000, 30_000,
        60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
        3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
    ];

    public static BucketLayout For(long windowMs)
    {
        foreach (var width in Ladder)
        {
            var count = (windowMs + width - 1) / width;
            if (count <= MaxBuckets)
            {
                return new BucketLayout(width, (int)Math.Max(count, 1));
            }
        }

        var widest = Ladder[^1];
        return new BucketLayout(widest, (int)((windowMs + widest - 1) / widest));
    }

    public static BucketLayout For(Duration window) => For(window.Milliseconds);

    public long BucketOf(long unixMs) => unixMs >= 0 ? unixMs / WidthMs : ((unixMs + 1) / WidthMs) - 1;

    /// <summary>The oldest bucket still inside the window at <paramref name="nowMs"/>.</summary>
    public long FirstLiveBucket(long nowMs) => BucketOf(nowMs) - Count + 1;

    /// <summary>The instant at which a bucket leaves the window.</summary>
    public long ExpiryOf(long bucket) => (bucket + Count) * WidthMs;
}

/// <summary>The totals of one bucket.</summary>
public readonly record struct AggregateBucket(long Index, long Count, decimal Sum, decimal Min, decimal Max);

/// <summary>What an aggregate's window holds at a given moment.</summary>
public readonly record struct WindowTotals(long Count, decimal Sum, decimal Min, decimal Max)
{
    public static WindowTotals Empty => default;
}

/// <summary>
/// One user's sliding-window totals for one aggregate spec: a sorted, sparse list of non-empty buckets, so a
/// quiet user costs a few bytes and a busy one at most <see cref="BucketLayout.Count"/> buckets, whatever the
/// event rate. Count and sum are kept as running totals (exact, since they are decimals); min and max are read
/// from the live buckets. Not thread-safe: a profile has a single writer.
/// </summary>
public sealed class WindowedAggregate
{
    private AggregateBucket[] _buckets;
    private int _length;
    private long _count;
    private decimal _sum;

    public WindowedAggregate(BucketLayout layout)
    {
        Layout = layout;
        _buckets = new AggregateBucket[2];
    }

    /// <summary>
    /// A window over stored buckets: takes <paramref name="buckets"/> over as its own array (sorting it by index first,
    /// unless it is in order already, as a stored profile's are) and drops the empty ones.
    /// </summary>
    public WindowedAggregate(BucketLayout layout, AggregateBucket[] buckets)
    {
        Layout = layout;
        for (var i = 1; i < buckets.Length; i++)
        {
            if (buckets[i].Index < buckets[i - 1].Index)
            {
                Array.Sort(buckets, static (a, b) => a.Index.CompareTo(b.Index));
                break;
            }
        }

        var length = 0;
        foreach (var bucket in buckets)
        {
            if (bucket.Count > 0)
            {
                buckets[length++] = bucket;
                _count += bucket.Count;
                _sum += bucket.Sum;
            }
        }

        _buckets = buckets;
        _length = length;
    }

    public BucketLayout Layout { get; }

    public int BucketCount => _length;

    public ReadOnlySpan<AggregateBucket> Buckets => _buckets.AsSpan(0, _length);

    /// <summary>
    /// Adds one event at <paramref name="eventMs"/> carrying <paramref name="value"/>, as seen at <paramref name="nowMs"/>.
    /// An event already outside the window is ignored; one from the future counts in the current bucket.
    /// </summary>
    public void Add(long eventMs, decimal value, long nowMs)
    {
        var current = Layout.BucketOf(nowMs);
        var bucket = Math.Min(Layout.BucketOf(eventMs), current);
        var firstLive = current - Layout.Count + 1;
        Expire(firstLive);
        if (bucket < firstLive)
        {
            return;
        }

        var i = Find(bucket);
        if (i >= 0)
        {
            var b = _buckets[i];
            _buckets[i] = new AggregateBucket(bucket, b.Count + 1, b.Sum + value, Math.Min(b.Min, value), Math.Max(b.Max, value));
        }
        else
        {
            Insert(~i, new AggregateBucket(bucket, 1, value, value, value));
        }

        _count++;
        _sum += value;
    }

    /// <summary>The totals over the buckets inside the window at <paramref name="nowMs"/>; does not change state.</summary>
    public WindowTotals Query(long nowMs)
    {
        var firstLive = Layout.FirstLiveBucket(nowMs);
        var count = _count;
        var sum = _sum;
        var start = 0;
        while (start < _length && _buckets[start].Index < firstLive)
        {
            count -= _buckets[start].Count;
            sum -= _buckets[start].Sum;
            start++;
        }

        if (count == 0)
        {
            return WindowTotals.Empty;
        }

        var min = decimal.MaxValue;
        var max = decimal.MinValue;
        for (var i = start; i < _length; i++)
        {
            min = Math.Min(min, _buckets[i].Min);
            max = Math.Max(max, _buckets[i].Max);
        }

        return new WindowTotals(count, sum, min, max);
    }

    /// <summary>The next instant after <paramref name="nowMs"/> at which a bucket leaves the window, or null.</summary>
    public long? NextExpiry(long nowMs)
    {
        var firstLive = Layout.FirstLiveBucket(nowMs);
        for (var i = 0; i < _length; i++)
        {
            if (_buckets[i].Index >= firstLive)
            {
                return Layout.ExpiryOf(_buckets[i].Index);
            }
        }

        return null;
    }

    /// <summary>Drops buckets that have left the window; called on every add so memory stays bounded.</summary>
    public void Expire(long firstLiveBucket)
    {
        var drop = 0;
        while (drop < _length && _buckets[drop].Index < firstLiveBucket)
        {
            _count -= _buckets[drop].Count;
            _sum -= _buckets[drop].Sum;
            drop++;
        }

        if (drop == 0)
        {
            return;
        }

        Array.Copy(_buckets, drop, _buckets, 0, _length - drop);
        _length -= drop;
    }

    private int Find(long bucket)
    {
        // Events mostly arrive in order, so the last bucket is the usual answer.
        if (_length > 0 && _buckets[_length - 1].Index == bucket)
        {
            return _length - 1;
        }

        if (_length == 0 || _buckets[_length - 1].Index < bucket)
        {
            return ~_length;
        }

        int lo = 0, hi = _length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var index = _buckets[mid].Index;
            if (index == bucket)
            {
                return mid;
            }

            if (index < bucket)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return ~lo;
    }

    private void Append(AggregateBucket bucket) => Insert(_length, bucket);

    private void Insert(int at, AggregateBucket bucket)
    {
        if (_length == _buckets.Length)
        {
            Array.Resize(ref _buckets, Math.Min(Math.Max(_buckets.Length * 2, 2), Math.Max(Layout.Count + 1, _length + 1)));
        }

        Array.Copy(_buckets, at, _buckets, at + 1, _length - at);
        _buckets[at] = bucket;
        _length++;
    }
}
