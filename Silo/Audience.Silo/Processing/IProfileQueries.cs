using Audience.Silo.Grains;
using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Api asks about one user, answered by the user's grain (wherever it lives in the cluster), so a read sees
/// the latest state without waiting for a write; and what it asks about a segment's members, answered by the
/// profile store's membership index. A user id no event can carry (empty or only white space) has no grain to ask: there is no such user.
/// </summary>
public sealed class ProfileQueries(Hosting.IClusterAccess cluster, IProfileStore store)
{
    public Task<ProfileView?> GetProfileAsync(string userId) =>
        IsUserId(userId) ? cluster.Grains.GetGrain<IUserGrain>(userId).GetProfile() : Task.FromResult<ProfileView?>(null);

    public Task<HistoryEntry[]> GetHistoryAsync(string userId, long afterSeq, int limit) =>
        IsUserId(userId) ? cluster.Grains.GetGrain<IUserGrain>(userId).History(afterSeq, limit) : Task.FromResult<HistoryEntry[]>([]);

    public Task<ExplainResult?> ExplainAsync(string userId, string segmentId) =>
        IsUserId(userId) ? cluster.Grains.GetGrain<IUserGrain>(userId).Explain(segmentId) : Task.FromResult<ExplainResult?>(null);

    /// <summary>No grain for an id no event could have: blank, too long, control characters, broken Unicode.</summary>
    private static bool IsUserId(string userId) => !string.IsNullOrWhiteSpace(userId) && Contracts.EventParser.CheckUserId(userId) is null;

    public Task<IReadOnlyList<MembershipRow>> MembersAsync(string segmentId, string afterUserId, int limit) => store.MembersAsync(segmentId, afterUserId, limit);

    public Task<long> SizeAsync(string segmentId) => store.CountMembersAsync(segmentId);
}
