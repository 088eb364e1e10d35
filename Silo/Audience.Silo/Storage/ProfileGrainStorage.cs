using System.Globalization;
using Orleans.Storage;

namespace Audience.Silo.Storage;

/// <summary>
/// Orleans grain storage for user profiles, over the <see cref="IProfileStore"/>: the record's generation is its
/// ETag, a stale one fails the write with <see cref="InconsistentStateException"/> (another activation or silo wrote
/// the user since), and reads and writes of concurrent grains are grouped into one store call each
/// (<see cref="Batcher{TRequest,TResult}"/>), so a partition's batch of users costs a few round trips, not one per user.
/// </summary>
public sealed class ProfileGrainStorage : IGrainStorage, IAsyncDisposable
{
    /// <summary>The storage name user grains ask for.</summary>
    public const string Name = "profiles";

    private readonly IProfileStore _store;
    private readonly Processing.AudienceMetrics _metrics;
    private readonly Batcher<string, ProfileRecord?> _reads;
    private readonly Batcher<ProfileWrite, long> _writes;

    public ProfileGrainStorage(IProfileStore store, Processing.AudienceMetrics metrics)
    {
        _store = store;
        _metrics = metrics;
        _reads = new Batcher<string, ProfileRecord?>(ReadMany, maxBatch: 1_000, concurrency: 2);
        // One writer for SQLite (it has one anyway); two for a server, so one batch commits while the next is built.
        _writes = new Batcher<ProfileWrite, long>(WriteMany, maxBatch: 2_000, concurrency: store.Kind == "embedded" ? 1 : 2);
    }

    private async Task<IReadOnlyList<ProfileRecord?>> ReadMany(IReadOnlyList<string> userIds)
    {
        var found = await _metrics.Store(_store.Kind, "read", () => _store.ReadManyAsync([.. userIds.Distinct(StringComparer.Ordinal)])).ConfigureAwait(false);
        return [.. userIds.Select(found.GetValueOrDefault)];
    }

    private async Task<IReadOnlyList<long>> WriteMany(IReadOnlyList<ProfileWrite> writes) =>
        await _metrics.Store(_store.Kind, "write", () => _store.WriteAsync(writes)).ConfigureAwait(false);

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => ReadStateAsync(stateName, grainId, grainState, default);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken)
    {
        var userId = grainId.Key.ToString()!;
        var record = await _reads.Enqueue(userId).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            grainState.State = (T)(object)new ProfileRecord { UserId = userId };
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        grainState.State = (T)(object)record;
        grainState.ETag = record.Generation.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => WriteStateAsync(stateName, grainId, grainState, default);

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken)
    {
        var record = (ProfileRecord)(object)grainState.State!;
        var write = record.Pending ?? new ProfileWrite(record, record.Generation, [], [], null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var generation = await _writes.Enqueue(write).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (generation == 0)
        {
            throw new InconsistentStateException(
                $"The profile of '{record.UserId}' changed in the store since generation {record.Generation}: another silo owns it now.",
                storedEtag: null, currentEtag: grainState.ETag);
        }

        record.Pending = null;
        record.Generation = generation;
        grainState.ETag = generation.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    /// <summary>
    /// Not used: an erasure must be ordered with the user's events, so the grain erases through
    /// <see cref="IProfileStore.EraseAsync"/> when its partition reaches it (<c>UserGrain.Erase</c>), then reads its state again.
    /// </summary>
    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        throw new NotSupportedException("User profiles are not erased through grain storage.");

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken) =>
        ClearStateAsync(stateName, grainId, grainState);

    public async ValueTask DisposeAsync()
    {
        await _reads.DisposeAsync().ConfigureAwait(false);
        await _writes.DisposeAsync().ConfigureAwait(false);
    }
}
