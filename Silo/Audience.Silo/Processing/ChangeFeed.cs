using System.Collections.Concurrent;
using System.Threading.Channels;
using Audience.Silo.Contracts;

namespace Audience.Silo.Processing;

/// <summary>
/// Broadcasts membership changes to live subscribers (the SSE endpoint). Each subscriber has a bounded buffer;
/// a subscriber that falls behind loses its oldest changes rather than slowing the Silo down.
/// </summary>
public sealed class ChangeFeed
{
    private const int BufferPerSubscriber = 10_000;

    private readonly ConcurrentDictionary<Channel<MembershipChangeMessage>, string?> _subscribers = new();

    public int Subscribers => _subscribers.Count;

    public ChannelReader<MembershipChangeMessage> Subscribe(string? segmentId, CancellationToken unsubscribe)
    {
        var channel = Channel.CreateBounded<MembershipChangeMessage>(new BoundedChannelOptions(BufferPerSubscriber)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        _subscribers[channel] = segmentId;
        unsubscribe.Register(() =>
        {
            _subscribers.TryRemove(channel, out _);
            channel.Writer.TryComplete();
        });
        return channel.Reader;
    }

    public void Publish(MembershipChangeMessage change)
    {
        foreach (var (channel, segmentId) in _subscribers)
        {
            if (segmentId is null || segmentId == change.SegmentId)
            {
                channel.Writer.TryWrite(change);
            }
        }
    }
}
