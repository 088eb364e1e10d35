using Audience.Silo.Grains;
using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Api asks about one user, answered by the user's grain (wherever it lives in the cluster), so a read sees
/// the latest state without waiting for a write; and what it asks about a segment's members, answered by the
/// profile store's membership index.
/// </summary>
public sealed class ProfileQueries(Hosting.IClusterAccess cluster, IProfileStore store)
{
    public Task<ProfileView?> GetProfileAsync(string userId) => cluster.Grains.GetGrain<IUserGrain>(userId).GetProfile();

    public Task<HistoryEntry[]> GetHistoryAsync(string userId, long afterSeq, int limit) => cluster.Grains.GetGrain<IUserGrain>(userId).History(afterSeq, limit);

    public Task<ExplainResult?> ExplainAsync(string userId, string segmentId) => cluster.Grains.GetGrain<IUserGrain>(userId).Explain(segmentId);

    public Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit) => store.MembersAsync(segmentId, afterUserId, limit);

    public Task<long> SizeAsync(string segmentId) => store.CountMembersAsync(segmentId);
}
