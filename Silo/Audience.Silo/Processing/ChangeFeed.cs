using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>A change as the feed holds it: the message, and its Server-Sent Events frame, encoded once for every subscriber.</summary>
public sealed record FeedItem(MembershipChangeMessage Change, byte[] Frame);

/// <summary>
/// Broadcasts membership changes to live subscribers (the SSE endpoint). Publishing encodes each change once, writes
/// it into a shared ring and wakes whoever waits, whatever the number of subscribers; each subscriber reads the ring
/// at its own pace from its own position and writes the encoded frames as they are. A subscriber that falls more than
/// the ring's size behind skips to the oldest change still held (it is told how many it missed), so a slow reader
/// costs only itself and memory stays bounded.
/// </summary>
public sealed class ChangeFeed
{
    /// <summary>Changes kept for readers that lag; a reader further behind loses the oldest.</summary>
    public const int Capacity = 16_384;

    private static readonly byte[] FramePrefix = "event: membership\ndata: "u8.ToArray();
    private static readonly byte[] FrameSuffix = "\n\n"u8.ToArray();

    private readonly FeedItem?[] _ring = new FeedItem?[Capacity];
    private readonly Lock _gate = new();
    private long _published;
    private int _subscribers;
    private TaskCompletionSource _next = NewSignal();
    private long _lastWake;
    private int _wakePending;

    /// <summary>The longest pause between two wake-ups of the subscribers, reached with 500 of them.</summary>
    public static readonly TimeSpan MaxWakePause = TimeSpan.FromMilliseconds(5);

    public int Subscribers => Volatile.Read(ref _subscribers);

    /// <summary>Changes published so far: the position a new subscriber starts reading from.</summary>
    public long Position => Interlocked.Read(ref _published);

    /// <summary>Publishes the changes of one grain call, in order, and wakes the subscribers once for them.</summary>
    public void Publish(IReadOnlyList<MembershipChangeMessage> changes)
    {
        if (changes.Count == 0 || Volatile.Read(ref _subscribers) == 0)
        {
            return;
        }

        var items = new FeedItem[changes.Count];
        for (var i = 0; i < items.Length; i++)
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(changes[i], SiloJsonContext.Default.MembershipChangeMessage);
            items[i] = new FeedItem(changes[i], [.. FramePrefix, .. json, .. FrameSuffix]);
        }

        lock (_gate)
        {
            foreach (var item in items)
            {
                // The slot first, then the count that makes it visible to readers, which read without the lock.
                _ring[_published % Capacity] = item;
                Interlocked.Increment(ref _published);
            }
        }

        RequestWake();
    }

    /// <summary>
    /// Wakes waiting subscribers, at most once per a pause that grows with their number (<see cref="WakePause"/>): a
    /// change goes out at once after a quiet spell, and under load each wake-up hands every subscriber what has come
    /// meanwhile. A wake-up costs a little for each subscriber; with a few, every change wakes them, and with hundreds
    /// they wake a few hundred times a second instead of once per change (the difference between a little CPU and
    /// most of it).
    /// </summary>
    private void RequestWake()
    {
        var now = Stopwatch.GetTimestamp();
        if (Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastWake), now) >= WakePause(Subscribers))
        {
            Wake(now);
        }
        else if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _ = WakeSoon();
        }
    }

    /// <summary>10 µs per subscriber, at most <see cref="MaxWakePause"/>: the work of waking them stays bounded.</summary>
    public static TimeSpan WakePause(int subscribers) => TimeSpan.FromTicks(Math.Min(MaxWakePause.Ticks, subscribers * 100L));

    private async Task WakeSoon()
    {
        await Task.Delay(WakePause(Subscribers)).ConfigureAwait(false);
        Interlocked.Exchange(ref _wakePending, 0);
        Wake(Stopwatch.GetTimestamp());
    }

    private void Wake(long now)
    {
        Interlocked.Exchange(ref _lastWake, now);
        TaskCompletionSource woken;
        lock (_gate)
        {
            woken = _next;
            Volatile.Write(ref _next, NewSignal());
        }

        woken.TrySetResult();
    }

    /// <summary>A subscription from now on; dispose it to leave.</summary>
    public Subscription Subscribe(string? segmentId)
    {
        Interlocked.Increment(ref _subscribers);
        return new Subscription(this, segmentId, Position);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One reader of the feed, with its own position; single-threaded, like the request that holds it.</summary>
    public sealed class Subscription(ChangeFeed feed, string? segmentId, long position) : IDisposable
    {
        private long _position = position;
        private int _disposed;

        /// <summary>Changes that were overwritten before this reader got to them.</summary>
        public long Missed { get; private set; }

        /// <summary>Waits for changes after this reader's position and copies those of its segment into <paramref name="into"/>.</summary>
        public async Task ReadAsync(List<FeedItem> into, int max, CancellationToken cancellationToken)
        {
            while (true)
            {
                // Taken before the position is read: a change published after that read completes this very task.
                var next = Volatile.Read(ref feed._next).Task;
                var published = Interlocked.Read(ref feed._published);
                while (_position < published && into.Count < max)
                {
                    if (published - _position > Capacity)
                    {
                        Missed += published - Capacity - _position;
                        _position = published - Capacity;
                    }

                    var item = feed._ring[_position % Capacity]!;
                    if (Interlocked.Read(ref feed._published) - _position > Capacity)
                    {
                        // The writer lapped this reader while it read the slot, which may now hold a later change.
                        published = Interlocked.Read(ref feed._published);
                        continue;
                    }

                    _position++;
                    if (segmentId is null || segmentId == item.Change.SegmentId)
                    {
                        into.Add(item);
                    }
                }

                if (into.Count > 0)
                {
                    return;
                }

                if (_position >= published)
                {
                    await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref feed._subscribers);
            }
        }
    }
}
