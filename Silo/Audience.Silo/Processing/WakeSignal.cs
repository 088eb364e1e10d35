namespace Audience.Silo.Processing;

/// <summary>
/// Wakes one waiter that there may be work. Wake-ups while nobody waits collapse into one, and a wake-up before
/// the wait is not lost: the waiter re-checks for work after every wake-up or timeout anyway.
/// </summary>
public sealed class WakeSignal : IDisposable
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Wake()
    {
        if (_semaphore.CurrentCount == 0)
        {
            try
            {
                _semaphore.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another thread woke it first; one wake-up is enough.
            }
        }
    }

    /// <summary>Completes when woken or when the timeout passes.</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _semaphore.WaitAsync(timeout, cancellationToken);

    public void Dispose() => _semaphore.Dispose();
}
