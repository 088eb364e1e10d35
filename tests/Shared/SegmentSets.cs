namespace Audience.Testing;

/// <summary>The segment sets the benchmarks measure and the tests hold to the rule budgets (linked source).</summary>
internal static class SegmentSets
{
    /// <summary>
    /// 1,000 segments of the kinds docs/rules.md describes: 950 read traits (only identify events touch them),
    /// 50 read purchase statistics and windows. A purchase can therefore affect 5% of them.
    /// </summary>
    public static IEnumerable<(string Id, string Rule)> ThousandSegments()
    {
        for (var i = 0; i < 950; i++)
        {
            yield return ($"trait-{i}", (i % 4) switch
            {
                0 => $"traits.country == \"C{i % 40}\"",
                1 => $"traits.plan in [\"p{i % 7}\", \"p{(i + 1) % 7}\"] and traits.age > {18 + (i % 50)}",
                2 => $"traits.email endsWith \"@d{i % 30}.example\"",
                _ => $"not (traits.vip == true) and traits.score >= {i}",
            });
        }

        for (var i = 0; i < 50; i++)
        {
            yield return ($"purchase-{i}", (i % 5) switch
            {
                0 => $"totalSpent > {1000 + (i * 10)}",
                1 => $"count(purchase within {1 + (i % 7)}d) >= {1 + (i % 4)}",
                2 => $"sum(purchase.amount where category == \"electronics\" within 30d) > {500 + i}",
                3 => $"orderCount >= {2 + (i % 3)} and totalSpent >= {100 * i}",
                _ => $"avg(purchase.amount within 90d) > {20 + i} and count(purchase within 1h) < 1000000",
            });
        }
    }

    /// <summary>A rule of about 1 KB, the size of a large hand-written segment.</summary>
    public static string OneKilobyteRule()
    {
        var parts = new List<string>();
        var i = 0;
        while (string.Join(" and ", parts).Length < 1000)
        {
            parts.Add((i % 5) switch
            {
                0 => $"traits.country in [\"DE\", \"AT\", \"CH\", \"C{i}\"]",
                1 => $"(totalSpent > {i * 100} or orderCount >= {i})",
                2 => $"count(purchase where category == \"cat{i}\" within {i + 1}d) >= 2",
                3 => "not (traits.email endsWith \"@test.example\")",
                _ => $"lastSeen within {i + 1}d",
            });
            i++;
        }

        return string.Join(" and ", parts);
    }
}
