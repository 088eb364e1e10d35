namespace Audience.LoadTests;

/// <summary>
/// Realistic traffic: users drawn from a Zipf distribution over the population (a few users very active, most
/// rarely seen), and an event mix of page views, add-to-cart and purchases with amounts and categories.
/// Thread-safe; each call draws from a thread-local generator seeded from the run's seed.
/// </summary>
internal sealed class Traffic : IDisposable
{
    private static readonly string[] Categories = ["electronics", "books", "fashion", "home", "sports"];
    private static readonly string[] Pages = ["/", "/search", "/cart", "/product", "/checkout", "/account"];

    private readonly double[] _cdf;
    private readonly ThreadLocal<Random> _random;

    public Traffic(int users, double exponent, int seed)
    {
        _cdf = new double[users];
        var sum = 0.0;
        for (var k = 0; k < users; k++)
        {
            sum += 1 / Math.Pow(k + 1, exponent);
            _cdf[k] = sum;
        }

        for (var k = 0; k < users; k++)
        {
            _cdf[k] /= sum;
        }

        var seeds = new Random(seed);
        _random = new ThreadLocal<Random>(() =>
        {
            lock (seeds)
            {
                return new Random(seeds.Next());
            }
        });
    }

    public Random Random => _random.Value!;

    public string User()
    {
        var index = Array.BinarySearch(_cdf, Random.NextDouble());
        return "lt-user-" + (index < 0 ? ~index : index);
    }

    /// <summary>One event of the mix: 70% page views, 20% add-to-cart, 10% purchases.</summary>
    public object Event(string userId)
    {
        var random = Random;
        var kind = random.Next(10);
        var category = Categories[random.Next(Categories.Length)];
        return kind switch
        {
            0 => new { userId, eventType = "purchase", properties = new { amount = Math.Round(5 + (random.NextDouble() * 495), 2), category } },
            < 3 => new { userId, eventType = "add_to_cart", properties = new { amount = Math.Round(5 + (random.NextDouble() * 495), 2), category } },
            _ => new { userId, eventType = "page_view", properties = new { page = Pages[random.Next(Pages.Length)], category } },
        };
    }

    public void Dispose() => _random.Dispose();

    /// <summary>Segments of the kinds in docs/rules.md, with varied thresholds, created before a run.</summary>
    public static IEnumerable<(string Id, string Rule)> Segments(int count)
    {
        for (var i = 0; i < count; i++)
        {
            var n = (i / 8) + 1;
            yield return ($"lt-segment-{i}", (i % 8) switch
            {
                0 => $"totalSpent > {200 * n}",
                1 => $"count(purchase within 7d) >= {n + 1}",
                2 => $"sum(purchase.amount where category == \"electronics\" within 30d) > {300 * n}",
                3 => $"count(page_view within 1h) >= {10 * n}",
                4 => $"count(add_to_cart within 24h) >= {n} and orderCount == 0",
                5 => $"totalSpent >= {100 * n} and orderCount >= 2",
                6 => $"max(purchase.amount within 30d) > {400 + n}",
                _ => $"count(any within 30d) >= {20 * n} or inSegment(\"lt-segment-{i - 7}\")",
            });
        }
    }
}
