using Audience.Rules.Compilation;
using Audience.Rules.Profiles;
using Audience.Rules.Syntax;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Audience.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Audience.Silo.Segments;

/// <summary>What a draft rule would do over the stored profiles; see <see cref="SegmentPreview"/>.</summary>
/// <param name="Rule">The draft's canonical text, as a save would store it.</param>
/// <param name="Matching">Examined profiles the rule matches.</param>
/// <param name="Examined">Stored profiles evaluated.</param>
/// <param name="Complete">Whether every stored profile was evaluated; false when the time budget ran out first.</param>
/// <param name="Sample">The first matching user ids, in user id order (ordinal), at most <see cref="SegmentPreview.SampleSize"/>.</param>
/// <param name="WouldEnter">For an existing segment: examined non-members the rule matches.</param>
/// <param name="WouldLeave">For an existing segment: examined members the rule does not match.</param>
/// <param name="AggregatesFromArchive">The rule's aggregates that some examined profiles did not hold, filled from their archived events.</param>
/// <param name="ProfilesFromArchive">Examined profiles whose archived events were read for that.</param>
/// <param name="Elapsed">How long the preview took.</param>
public sealed record PreviewCounts(
    string Rule,
    long Matching,
    long Examined,
    bool Complete,
    IReadOnlyList<string> Sample,
    long? WouldEnter,
    long? WouldLeave,
    IReadOnlyList<string> AggregatesFromArchive,
    long ProfilesFromArchive,
    TimeSpan Elapsed);

/// <summary>The outcome of a preview: the counts, or what is wrong with the request, as saving the rule would say it.</summary>
public sealed record PreviewResult(PreviewCounts? Counts, IReadOnlyList<RuleDiagnostic> RuleErrors, string? Problem = null, bool NotFound = false);

/// <summary>
/// Evaluates a draft rule over the stored profiles without any effect: nothing is stored, announced or backfilled, and
/// the draft never enters the segment index. The rule is validated as a save validates it (against the other segments,
/// a draft for an existing segment leaving that one out, like an update), then compiled into a catalog of its own, so
/// the live catalog gains no aggregate or trait (a new aggregate there would make every grain fill it from the
/// archive); stored profiles are decoded into that catalog, page by page and partition by partition in turn, and never
/// written. An aggregate a stored profile does not hold yet (no segment used it when the profile was written) is filled
/// from the user's archived events, as the backfill of the saved segment would fill it, so the counts agree with what
/// saving does. The scan stops at its time budget, read from <c>TimeProvider</c>, and says it is incomplete.
/// </summary>
public sealed class SegmentPreview(SegmentService segments, IProfileStore store, SiloOptions options,
    [FromKeyedServices(AudienceServices.Clock)] TimeProvider time)
{
    /// <summary>Matching user ids a preview returns, at most.</summary>
    public const int SampleSize = 20;

    /// <summary>Stored records read per store call.</summary>
    public const int PageSize = 250;

    /// <summary>The time budget when the request names none.</summary>
    public static readonly TimeSpan DefaultBudget = TimeSpan.FromSeconds(2);

    /// <summary>The longest budget a request may ask for: a preview holds a request and reads the store meanwhile.</summary>
    public static readonly TimeSpan MaxBudget = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Previews <paramref name="draft"/>, as the new rule of the segment <paramref name="segmentId"/> when given, over
    /// the stored profiles, for at most about <paramref name="budget"/>.
    /// </summary>
    public async Task<PreviewResult> RunAsync(SegmentDraft draft, string? segmentId, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(draft);
        var started = time.GetTimestamp();
        if (segmentId is not null && segments.Record(segmentId) is null)
        {
            return new PreviewResult(null, [], $"There is no segment with the id '{segmentId}'.", NotFound: true);
        }

        var checkedRule = segments.Validate(draft, segmentId);
        if (!checkedRule.IsValid)
        {
            return new PreviewResult(null, checkedRule.Errors);
        }

        var catalog = new RuleCatalog();
        using var rule = RuleCompiler.Compile(checkedRule, catalog);
        var self = segmentId is null ? -1 : catalog.SegmentSlot(segmentId);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var scan = new Scan(self >= 0);
        var partitions = (await store.CheckpointsAsync(cancellationToken).ConfigureAwait(false)).Keys.Order().ToList();
        var cursors = partitions.ToDictionary(p => p, _ => string.Empty);
        var missing = new List<AggregateSpec>(rule.Aggregates.Count);
        var complete = true;

        // Partitions in turn, a page each, so that a scan cut short by its budget has seen some of every partition.
        while (complete && cursors.Count > 0)
        {
            foreach (var partition in partitions.Where(cursors.ContainsKey).ToList())
            {
                if (time.GetElapsedTime(started) >= budget)
                {
                    complete = false;
                    break;
                }

                var page = await store.ScanAsync(partition, cursors[partition], PageSize, cancellationToken).ConfigureAwait(false);
                foreach (var record in page)
                {
                    if (time.GetElapsedTime(started) >= budget)
                    {
                        complete = false;
                        break;
                    }

                    var profile = await LoadAsync(record, catalog, rule.Aggregates, missing, now, scan, cancellationToken).ConfigureAwait(false);
                    scan.Add(record.UserId, rule.Evaluate(profile, now), self >= 0 && profile.IsMember(self));
                }

                if (!complete)
                {
                    break;
                }

                if (page.Count < PageSize)
                {
                    cursors.Remove(partition);
                }
                else
                {
                    cursors[partition] = page[^1].UserId;
                }
            }
        }

        var fromArchive = checkedRule.Dependencies.Aggregates
            .Where(a => scan.FilledFromArchive.Contains(AggregateKey.Of(a)))
            .Select(RulePrinter.Print)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        return new PreviewResult(new PreviewCounts(rule.Text, scan.Matching, scan.Examined, complete, [.. scan.Sample],
            scan.WouldEnter, scan.WouldLeave, fromArchive, scan.ProfilesFromArchive, time.GetElapsedTime(started)), []);
    }

    /// <summary>
    /// A stored record as a profile of the preview's own catalog, holding the rule's aggregates: those the record does
    /// not hold yet are filled from the archive, as <see cref="ProfileSession.CompleteAggregatesAsync"/> fills them.
    /// </summary>
    private async Task<UserProfile> LoadAsync(ProfileRecord record, RuleCatalog catalog, IReadOnlyList<AggregateSpec> aggregates,
        List<AggregateSpec> missing, long now, Scan scan, CancellationToken cancellationToken)
    {
        if (record.Data.Length == 0)
        {
            // A record without a profile is a user without a past: every aggregate is complete (empty).
            return new UserProfile(record.UserId, catalog);
        }

        var state = ProfileCodec.Decode(record.UserId, record.Data, catalog);
        missing.Clear();
        foreach (var spec in aggregates)
        {
            if (!state.IsKnown(spec))
            {
                missing.Add(spec);
            }
        }

        if (missing.Count > 0 && record.LastSeq > 0)
        {
            await ProfileSession.FillFromArchiveAsync(store, options.EventRetention, record, state.Profile, missing, now, cancellationToken)
                .ConfigureAwait(false);
            scan.ReadArchive(missing);
        }

        return state.Profile;
    }

    /// <summary>The tallies of one preview.</summary>
    private sealed class Scan(bool forSegment)
    {
        private readonly SortedSet<string> _sample = new(StringComparer.Ordinal);
        private long _wouldEnter;
        private long _wouldLeave;

        public long Matching { get; private set; }

        public long Examined { get; private set; }

        public IReadOnlyCollection<string> Sample => _sample;

        public long? WouldEnter => forSegment ? _wouldEnter : null;

        public long? WouldLeave => forSegment ? _wouldLeave : null;

        public HashSet<AggregateKey> FilledFromArchive { get; } = [];

        public long ProfilesFromArchive { get; private set; }

        public void ReadArchive(List<AggregateSpec> filled)
        {
            ProfilesFromArchive++;
            foreach (var spec in filled)
            {
                FilledFromArchive.Add(spec.Key);
            }
        }

        public void Add(string userId, bool matches, bool member)
        {
            Examined++;
            if (matches)
            {
                Matching++;
                if (_sample.Count < SampleSize || StringComparer.Ordinal.Compare(userId, _sample.Max) < 0)
                {
                    _sample.Add(userId);
                    if (_sample.Count > SampleSize)
                    {
                        _sample.Remove(_sample.Max!);
                    }
                }
            }

            if (matches && !member)
            {
                _wouldEnter++;
            }
            else if (!matches && member)
            {
                _wouldLeave++;
            }
        }
    }
}
