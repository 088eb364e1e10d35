using System.Threading.Channels;

namespace Audience.Silo.Storage;

/// <summary>
/// Groups requests that arrive while earlier ones are being served into one call: group commit. No request waits
/// for a timer; a batch is whatever queued up during the previous call, so batches grow with the load and a
/// request alone goes straight through. At most <paramref name="concurrency"/> calls run at once.
/// </summary>
public sealed class Batcher<TRequest, TResult> : IAsyncDisposable
{
    private readonly Channel<(TRequest Request, TaskCompletionSource<TResult> Completion)> _queue =
        Channel.CreateUnbounded<(TRequest, TaskCompletionSource<TResult>)>(new UnboundedChannelOptions { SingleReader = false });
    private readonly Func<IReadOnlyList<TRequest>, Task<IReadOnlyList<TResult>>> _serve;
    private readonly int _maxBatch;
    private readonly Task[] _loops;

    public Batcher(Func<IReadOnlyList<TRequest>, Task<IReadOnlyList<TResult>>> serve, int maxBatch, int concurrency)
    {
        _serve = serve;
        _maxBatch = maxBatch;
        _loops = [.. Enumerable.Range(0, concurrency).Select(_ => Task.Run(Loop))];
    }

    public Task<TResult> Enqueue(TRequest request)
    {
        var completion = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((request, completion)))
        {
            completion.SetException(new ObjectDisposedException(nameof(Batcher<TRequest, TResult>)));
        }

        return completion.Task;
    }

    private async Task Loop()
    {
        var batch = new List<(TRequest Request, TaskCompletionSource<TResult> Completion)>(_maxBatch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < _maxBatch && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            if (batch.Count == 0)
            {
                continue;
            }

            try
            {
                var results = await _serve([.. batch.Select(b => b.Request)]).ConfigureAwait(false);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Completion.TrySetResult(results[i]);
                }
            }
            catch (Exception e)
            {
                // The whole call failed (the store is away): every request in it fails, and the batcher goes on.
                foreach (var (_, completion) in batch)
                {
                    completion.TrySetException(e);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_loops).ConfigureAwait(false);
    }
}
