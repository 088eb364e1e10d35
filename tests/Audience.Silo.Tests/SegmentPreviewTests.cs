using System.Text;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;
using Audience.Silo.Segments;
using Audience.Silo.Storage;

namespace Audience.Silo.Tests;

/// <summary>The preview of a draft rule against a real embedded store: its counts, its time bound, and that it changes nothing.</summary>
public sealed class SegmentPreviewTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "audience-tests", Guid.NewGuid().ToString("N"));
    private readonly EmbeddedProfileStore _store;
    private readonly SegmentIndex _index = new(new RuleCatalog());
    private readonly SegmentService _segments;
    private readonly long _now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public SegmentPreviewTests()
    {
        var database = new Database(_directory);
        _store = new EmbeddedProfileStore(database);
        _segments = new SegmentService(new EmbeddedSegmentStore(database), _index, TimeProvider.System, 2);
    }

    private SegmentPreview Preview(TimeProvider? time = null) => new(_segments, _store, new SiloOptions(), time ?? TimeProvider.System);

    private static SegmentDraft Draft(string rule) => new(null, string.Empty, null, null, rule, null);

    /// <summary>
    /// Users u00 to u49 over two partitions, u{i} having spent 10 × i, members of <c>big</c> (totalSpent &gt;= 250) as a
    /// backfill would have left them; and a user <c>archived</c> who spent 25 in two purchases of yesterday, whose events are only in the
    /// archive.
    /// </summary>
    private async Task StoreProfilesAsync()
    {
        Assert.NotNull(_segments.Create(new SegmentDraft("big", "big", null, null, "totalSpent >= 250", null)).Segment);
        var big = _index.Catalog.SegmentSlot("big");
        await _store.ClaimPartitionAsync(0);
        await _store.ClaimPartitionAsync(1);
        var writes = new List<ProfileWrite>();
        for (var i = 0; i < 50; i++)
        {
            var profile = new UserProfile($"u{i:00}", _index.Catalog) { EventCount = 1, TotalSpent = 10 * i, OrderCount = 1, FirstSeen = _now, LastSeen = _now };
            var memberships = new List<MembershipDelta>();
            if (profile.TotalSpent >= 250)
            {
                profile.Enter(big, _now);
                memberships.Add(new MembershipDelta("big", _now));
            }

            writes.Add(Write(profile, partition: i % 2, lastSeq: 0, memberships, archive: null));
        }

        var yesterday = DateTimeOffset.FromUnixTimeMilliseconds(_now).AddDays(-1).ToString("O");
        var archived = new UserProfile("archived", _index.Catalog) { EventCount = 2, TotalSpent = 25, OrderCount = 2, FirstSeen = _now, LastSeen = _now };
        writes.Add(Write(archived, partition: 1, lastSeq: 2, [], EventArchive.Encode([
            new ArchivedEvent(1, _now, Encoding.UTF8.GetBytes($$$"""{"eventId":"e1","userId":"archived","eventType":"purchase","timestamp":"{{{yesterday}}}","properties":{"amount":12.5}}""")),
            new ArchivedEvent(2, _now, Encoding.UTF8.GetBytes($$$"""{"eventId":"e2","userId":"archived","eventType":"purchase","timestamp":"{{{yesterday}}}","properties":{"amount":12.5}}""")),
        ])));
        Assert.All(await _store.WriteAsync(writes), generation => Assert.Equal(1, generation));
    }

    private ProfileWrite Write(UserProfile profile, int partition, long lastSeq, IReadOnlyList<MembershipDelta> memberships, ArchiveChunk? archive)
    {
        var state = new ProfileState(profile) { CompletedVersion = _index.Catalog.AggregateVersion, SegmentsFingerprint = _index.Fingerprint };
        var record = new ProfileRecord { UserId = profile.UserId, Partition = partition, LastSeq = lastSeq, Data = ProfileCodec.Encode(state) };
        return new ProfileWrite(record, 0, memberships, [], archive, _now);
    }

    [Fact]
    public async Task RunAsync_DraftForAnExistingSegment_CountsMatchesAndWhoWouldEnterAndLeave()
    {
        await StoreProfilesAsync();

        var counts = (await Preview().RunAsync(Draft("totalSpent >= 300 or totalSpent < 20"), "big", SegmentPreview.DefaultBudget)).Counts!;

        Assert.True(counts.Complete);
        Assert.Equal(51, counts.Examined);
        Assert.Equal(22, counts.Matching); // u30 to u49, u00, u01
        string[] sample = ["u00", "u01", .. Enumerable.Range(30, 18).Select(i => $"u{i}")];
        Assert.Equal(sample, counts.Sample);
        Assert.Equal((2L, 5L), (counts.WouldEnter!.Value, counts.WouldLeave!.Value)); // u00, u01 enter; u25 to u29 leave
        Assert.Empty(counts.AggregatesFromArchive);
    }

    [Fact]
    public async Task RunAsync_AggregateNoStoredProfileHolds_IsFilledFromTheArchive_AndTheCatalogAndStoreStayAsTheyWere()
    {
        await StoreProfilesAsync();
        var catalog = _index.Catalog;
        var before = (catalog.AggregateVersion, catalog.TraitVersion, catalog.Aggregates.Count, _index.Count, _index.Fingerprint);
        var record = await _store.ReadAsync("archived");

        var counts = (await Preview().RunAsync(Draft("count(purchase within 7d) >= 2 and not (traits.plan exists)"), null, SegmentPreview.DefaultBudget)).Counts!;

        Assert.Equal<string>(["archived"], counts.Sample);
        Assert.Equal(1, counts.Matching);
        Assert.Equal((long?)null, counts.WouldEnter);
        Assert.Equal<string>(["count(purchase within 7d)"], counts.AggregatesFromArchive);
        Assert.Equal(1, counts.ProfilesFromArchive); // the others have applied no event: nothing to fill
        Assert.Equal(before, (catalog.AggregateVersion, catalog.TraitVersion, catalog.Aggregates.Count, _index.Count, _index.Fingerprint));
        var after = await _store.ReadAsync("archived");
        Assert.Equal(record!.Generation, after!.Generation);
        Assert.Equal(record.Data, after.Data);
        Assert.Equal(25, await _store.CountMembersAsync("big"));
    }

    [Fact]
    public async Task RunAsync_BudgetReached_StopsWithCompleteFalse()
    {
        await StoreProfilesAsync();

        // Every reading of the clock moves it 100 ms: a one-second budget runs out after a few profiles.
        var counts = (await Preview(new SteppingClock(TimeSpan.FromMilliseconds(100))).RunAsync(Draft("totalSpent >= 0"), null, TimeSpan.FromSeconds(1))).Counts!;

        Assert.False(counts.Complete);
        Assert.InRange(counts.Examined, 1, 50);
        Assert.Equal(counts.Examined, counts.Matching);
        Assert.Equal(counts.Examined, counts.Sample.Count);
    }

    [Fact]
    public async Task RunAsync_UnknownSegmentOrInvalidRule_AnswersAsASaveWould()
    {
        await StoreProfilesAsync();
        var preview = Preview();

        Assert.True((await preview.RunAsync(Draft("totalSpent > 1"), "nope", SegmentPreview.DefaultBudget)).NotFound);

        var draft = Draft("totalSpend > 1 and inSegment(\"big\")");
        var saved = _segments.Create(draft with { Name = "x" });
        var previewed = await preview.RunAsync(draft, null, SegmentPreview.DefaultBudget);
        Assert.Equal(DiagnosticCodes.UnknownField, Assert.Single(saved.RuleErrors).Code);
        Assert.Equal(saved.RuleErrors, previewed.RuleErrors);

        // A draft for big may not refer to big, as an update of big may not.
        var self = await preview.RunAsync(Draft("inSegment(\"big\")"), "big", SegmentPreview.DefaultBudget);
        Assert.Equal(_segments.Update("big", Draft("inSegment(\"big\")") with { Name = "big" }).RuleErrors, self.RuleErrors);
        Assert.Equal(DiagnosticCodes.Cycle, Assert.Single(self.RuleErrors).Code);
    }

    public void Dispose()
    {
        _store.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned with the temp folder.
        }
    }

    /// <summary>A clock whose timestamp moves a fixed step each time it is read.</summary>
    private sealed class SteppingClock(TimeSpan step) : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Add(ref _ticks, step.Ticks);
    }
}
