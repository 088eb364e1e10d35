using Audience.Rules.Evaluation;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo.Storage;

namespace Audience.Silo.Processing;

/// <summary>
/// What the Api asks about one user. Embedded, the <see cref="SiloHost"/> answers from the live actor; in Kafka
/// mode the Silos are other processes, and <see cref="StoreProfileQueries"/> answers from the shared profile
/// store, which is at most one flush interval behind.
/// </summary>
public interface IProfileQueries
{
    Task<ProfileView?> GetProfileAsync(string userId);

    Task<List<HistoryEntry>> GetHistoryAsync(string userId, long afterId, int limit);

    Task<(ExplainNode? Explanation, bool Member)> ExplainAsync(string userId, string segmentId);
}

/// <summary>A copy of a profile, safe to read on any thread.</summary>
public sealed record ProfileView(
    string UserId,
    long EventCount,
    decimal TotalSpent,
    long OrderCount,
    long? FirstSeen,
    long? LastSeen,
    IReadOnlyDictionary<string, Audience.Rules.Value> Traits,
    IReadOnlyList<(string SegmentId, long Since)> Memberships,
    long? NextTimer)
{
    public static ProfileView Of(UserProfile p, RuleCatalog catalog, long? nextTimer) =>
        new(p.UserId, p.EventCount, p.TotalSpent, p.OrderCount, p.FirstSeen, p.LastSeen,
            new Dictionary<string, Audience.Rules.Value>(p.Traits, StringComparer.Ordinal),
            [.. p.Memberships.Select(m => (catalog.SegmentId(m.Key), m.Value)).OrderBy(m => m.Item1, StringComparer.Ordinal)],
            nextTimer);
}

/// <summary>Answers user queries from the profile store (Kafka mode, where the actors live in Silo processes).</summary>
public sealed class StoreProfileQueries(IProfileStoreFactory stores, SegmentIndex index, TimeProvider time) : IProfileQueries
{
    public Task<ProfileView?> GetProfileAsync(string userId) => Task.Run(() =>
        Load(userId, out var stored) is { } profile ? ProfileView.Of(profile, index.Catalog, stored!.NextTimer) : null);

    public Task<List<HistoryEntry>> GetHistoryAsync(string userId, long afterId, int limit) => Task.Run(() =>
    {
        using var store = stores.Open();
        return store.History(userId, afterId, limit);
    });

    public Task<(ExplainNode? Explanation, bool Member)> ExplainAsync(string userId, string segmentId) => Task.Run(() =>
    {
        var segment = index.Find(segmentId);
        if (segment is null || Load(userId, out _) is not { } profile)
        {
            return ((ExplainNode?)null, false);
        }

        return (RuleInterpreter.Explain(segment.Rule.Rule, profile, time.GetUtcNow().ToUnixTimeMilliseconds()), profile.IsMember(segment.Slot));
    });

    private UserProfile? Load(string userId, out StoredProfile? stored)
    {
        using var store = stores.Open();
        stored = store.Load(userId);
        return stored is null ? null : ProfileCodec.Decode(userId, stored.State, index.Catalog, out _, out _);
    }
}
