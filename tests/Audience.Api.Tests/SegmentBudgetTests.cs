using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;
using Audience.Silo.Segments;
using Audience.Silo.Storage;

namespace Audience.Api.Tests;

public sealed class SegmentBudgetTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-budget", Guid.NewGuid().ToString("N"));

    [Fact]
    public void SegmentsTogether_StopAtTheTotalBudget_AndAFreedBudgetIsUsableAgain()
    {
        var segments = new SegmentService(new EmbeddedSegmentStore(new Database(_directory)), new SegmentIndex(new RuleCatalog()), TimeProvider.System, 4);
        var pattern = new string('x', 85);
        // About 18,600 units each: six windowed counts filtered by a long substring search.
        string Rule(int i) => string.Join(" or ", Enumerable.Range(1, 6).Select(d => $"count(purchase where p{i} contains \"{pattern}\" within {d}d) >= 1"));

        SegmentResult result;
        var created = 0;
        while ((result = segments.Create(new SegmentDraft($"costly-{created}", "costly", null, null, Rule(created), null))).Segment is not null)
        {
            created++;
            Assert.True(created < 200, "the total budget never stopped the segments");
        }

        var error = Assert.Single(result.RuleErrors);
        Assert.Equal(DiagnosticCodes.TooCostly, error.Code);
        Assert.Contains("together they may cost at most 2,000,000", error.Message, StringComparison.Ordinal);
        Assert.InRange(created, 100, 110);
        Assert.Null(segments.Get($"costly-{created}"));

        Assert.NotNull(segments.Delete("costly-0").Segment);
        Assert.NotNull(segments.Create(new SegmentDraft($"costly-{created}", "costly", null, null, Rule(created), null)).Segment);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned with the temp folder.
        }
    }
}
