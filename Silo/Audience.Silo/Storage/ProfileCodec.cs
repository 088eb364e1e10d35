using System.Text.Json;
using Audience.Rules;
using Audience.Rules.Profiles;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;

namespace Audience.Silo.Storage;

/// <summary>
/// A profile as the store keeps it: JSON with the statistics, traits, the buckets of every aggregate (named by
/// <see cref="AggregateSpec.Id"/>, since slots are per process), the aggregates the profile is known to be
/// complete for, memberships by segment id, and the hashes of the user's recent event ids.
/// </summary>
public static class ProfileCodec
{
    public static byte[] Encode(UserProfile profile, IEnumerable<AggregateSpec> knownSpecs, RecentEventIds recent)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteNumber("eventCount", profile.EventCount);
            w.WriteNumber("totalSpent", profile.TotalSpent);
            w.WriteNumber("orderCount", profile.OrderCount);
            if (profile.FirstSeen is { } first)
            {
                w.WriteNumber("firstSeen", first);
            }

            if (profile.LastSeen is { } last)
            {
                w.WriteNumber("lastSeen", last);
            }

            w.WriteStartObject("traits");
            foreach (var (name, value) in profile.Traits)
            {
                w.WritePropertyName(name);
                EventValues.Write(w, value);
            }

            w.WriteEndObject();
            w.WriteStartArray("known");
            foreach (var spec in knownSpecs)
            {
                w.WriteStringValue(spec.Id);
            }

            w.WriteEndArray();
            w.WriteStartObject("aggregates");
            foreach (var (spec, state) in profile.AggregateStates())
            {
                if (state.BucketCount == 0)
                {
                    continue;
                }

                w.WriteStartArray(spec.Id);
                foreach (var b in state.Buckets)
                {
                    w.WriteStartArray();
                    w.WriteNumberValue(b.Index);
                    w.WriteNumberValue(b.Count);
                    w.WriteNumberValue(b.Sum);
                    w.WriteNumberValue(b.Min);
                    w.WriteNumberValue(b.Max);
                    w.WriteEndArray();
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
            w.WriteStartObject("memberships");
            foreach (var (slot, since) in profile.Memberships)
            {
                w.WriteNumber(profile.Catalog.SegmentId(slot), since);
            }

            w.WriteEndObject();
            w.WriteStartArray("recent");
            foreach (var hash in recent.Hashes)
            {
                w.WriteNumberValue(hash);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>Restores a profile; returns the specs of the catalog it holds complete state for, and its recent event ids.</summary>
    public static UserProfile Decode(string userId, byte[] state, RuleCatalog catalog, out HashSet<AggregateSpec> knownSpecs, out RecentEventIds recent)
    {
        using var document = JsonDocument.Parse(state);
        var root = document.RootElement;
        var profile = new UserProfile(userId, catalog)
        {
            EventCount = root.GetProperty("eventCount").GetInt64(),
            TotalSpent = root.GetProperty("totalSpent").GetDecimal(),
            OrderCount = root.GetProperty("orderCount").GetInt64(),
            FirstSeen = root.TryGetProperty("firstSeen", out var first) ? first.GetInt64() : null,
            LastSeen = root.TryGetProperty("lastSeen", out var last) ? last.GetInt64() : null,
        };
        foreach (var trait in root.GetProperty("traits").EnumerateObject())
        {
            profile.SetTrait(trait.Name, EventValues.ToValue(trait.Value));
        }

        var specs = catalog.Aggregates.ToDictionary(s => s.Id, StringComparer.Ordinal);
        knownSpecs = [];
        foreach (var id in root.GetProperty("known").EnumerateArray())
        {
            if (specs.TryGetValue(id.GetString()!, out var spec))
            {
                knownSpecs.Add(spec);
            }
        }

        foreach (var aggregate in root.GetProperty("aggregates").EnumerateObject())
        {
            if (!specs.TryGetValue(aggregate.Name, out var spec))
            {
                continue;
            }

            var buckets = aggregate.Value.EnumerateArray().Select(b => new AggregateBucket(
                b[0].GetInt64(), b[1].GetInt64(), b[2].GetDecimal(), b[3].GetDecimal(), b[4].GetDecimal()));
            profile.SetAggregate(spec, new WindowedAggregate(spec.Layout, buckets));
        }

        foreach (var membership in root.GetProperty("memberships").EnumerateObject())
        {
            profile.Enter(catalog.SegmentSlot(membership.Name), membership.Value.GetInt64());
        }

        // Profiles written before the field existed have none.
        recent = new RecentEventIds(root.TryGetProperty("recent", out var hashes) ? hashes.EnumerateArray().Select(h => h.GetUInt64()) : []);
        return profile;
    }
}
