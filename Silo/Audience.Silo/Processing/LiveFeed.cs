using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>A message as a feed holds it: the key subscribers filter on, and its Server-Sent Events frame, encoded once for every subscriber.</summary>
public sealed record FeedItem(string Key, byte[] Frame);

/// <summary>Membership changes for <c>GET /api/changes</c>, filtered by segment.</summary>
public sealed class ChangeFeed() : LiveFeed<MembershipChangeMessage>("membership", SiloJsonContext.Default.MembershipChangeMessage, c => c.SegmentId);

/// <summary>Notification requests for <c>GET /api/notifications</c>, filtered by campaign.</summary>
public sealed class NotificationFeed() : LiveFeed<NotificationRequest>("notification", SiloJsonContext.Default.NotificationRequest, n => n.CampaignId);

/// <summary>
/// Broadcasts messages to live subscribers (the SSE endpoints). Publishing encodes each message once, writes
/// it into a shared ring and wakes whoever waits, whatever the number of subscribers; each subscriber reads the ring
/// at its own pace from its own position and writes the encoded frames as they are. A subscriber that falls more than
/// the ring's size behind skips to the oldest change still held (it is told how many it missed), so a slow reader
/// costs only itself and memory stays bounded.
/// </summary>
public abstract class LiveFeed<T>
{
    /// <summary>Changes kept for readers that lag; a reader further behind loses the oldest.</summary>
    public const int Capacity = 16_384;

    private static readonly byte[] FrameSuffix = "\n\n"u8.ToArray();

    private readonly byte[] _framePrefix;
    private readonly JsonTypeInfo<T> _type;
    private readonly Func<T, string> _key;

    private readonly FeedItem?[] _ring = new FeedItem?[Capacity];
    private readonly Lock _gate = new();
    private long _published;
    private int _subscribers;
    private TaskCompletionSource _next = NewSignal();
    private long _lastWake;
    private int _wakePending;

    /// <summary>The longest pause between two wake-ups of the subscribers, reached with 500 of them.</summary>
    private static readonly TimeSpan MaxWakePause = TimeSpan.FromMilliseconds(5);

    /// <summary>A feed whose frames are SSE events named <paramref name="eventName"/>, filtered on <paramref name="key"/>.</summary>
    protected LiveFeed(string eventName, JsonTypeInfo<T> type, Func<T, string> key)
    {
        _framePrefix = Encoding.UTF8.GetBytes($"event: {eventName}\ndata: ");
        _type = type;
        _key = key;
    }

    public int Subscribers => Volatile.Read(ref _subscribers);

    /// <summary>Changes published so far: the position a new subscriber starts reading from.</summary>
    public long Position => Interlocked.Read(ref _published);

    /// <summary>Publishes the messages of one grain call, in order, and wakes the subscribers once for them.</summary>
    public void Publish(IReadOnlyList<T> messages)
    {
        if (messages.Count == 0 || Volatile.Read(ref _subscribers) == 0)
        {
            return;
        }

        var items = new FeedItem[messages.Count];
        for (var i = 0; i < items.Length; i++)
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(messages[i], _type);
            items[i] = new FeedItem(_key(messages[i]), [.. _framePrefix, .. json, .. FrameSuffix]);
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
    private static TimeSpan WakePause(int subscribers) => TimeSpan.FromTicks(Math.Min(MaxWakePause.Ticks, subscribers * 100L));

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
    public Subscription Subscribe(string? key)
    {
        Interlocked.Increment(ref _subscribers);
        return new Subscription(this, key, Position);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One reader of the feed, with its own position; single-threaded, like the request that holds it.</summary>
    public sealed class Subscription(LiveFeed<T> feed, string? key, long position) : IDisposable
    {
        private long _position = position;
        private int _disposed;

        /// <summary>Changes that were overwritten before this reader got to them.</summary>
        public long Missed { get; private set; }

        /// <summary>Waits for messages after this reader's position and copies those of its key into <paramref name="into"/>.</summary>
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
                    if (key is null || key == item.Key)
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
