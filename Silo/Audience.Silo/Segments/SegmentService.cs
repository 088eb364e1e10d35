using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Audience.Rules.Checking;
using Audience.Rules.Compilation;
using Audience.Rules.Indexing;
using Audience.Rules.Json;
using Audience.Rules.Syntax;

namespace Audience.Silo.Segments;

/// <summary>A segment change the Silo must apply to existing profiles.</summary>
public sealed record SegmentChange(string SegmentId, long Version, bool Deleted, BackfillProgress Progress);

/// <summary>How far applying a new or edited segment to existing profiles has come.</summary>
public sealed class BackfillProgress
{
    private long _processed;
    private int _partitionsLeft;

    public BackfillProgress(int partitions) => _partitionsLeft = partitions;

    public long Processed => Interlocked.Read(ref _processed);

    public long Total { get; set; }

    public bool Done => Volatile.Read(ref _partitionsLeft) == 0;

    public void Add(long users) => Interlocked.Add(ref _processed, users);

    public void PartitionDone() => Interlocked.Decrement(ref _partitionsLeft);

    public static BackfillProgress Completed { get; } = new(0);
}

/// <summary>What a segment request asks for; the rule in text or in JSON (seed 004's <c>rules</c> object).</summary>
public sealed record SegmentDraft(string? Id, string Name, string? Description, string? Type, string? RuleText, string? RuleJson);

/// <summary>A segment as the API shows it.</summary>
public sealed record SegmentInfo(SegmentRecord Record, string RuleJson, string Status, long BackfillProcessed, long BackfillTotal);

/// <summary>The outcome of saving a segment: the segment, or what is wrong with the request.</summary>
public sealed record SegmentResult(SegmentInfo? Segment, IReadOnlyList<RuleDiagnostic> RuleErrors, string? Problem = null, bool NotFound = false, bool Conflict = false);

/// <summary>
/// Owns segment definitions: validates rules (parse, check against the other segments, compile), stores each
/// version, publishes the compiled rule into the index, and hands the change to the Silo so that it is applied
/// to every existing profile. Changes are serialised; reads are lock-free.
/// </summary>
public sealed partial class SegmentService : ISegmentGraph
{
    private readonly Lock _gate = new();
    private readonly ISegmentStore _store;
    private readonly SegmentIndex _index;
    private readonly TimeProvider _time;
    private readonly int _partitions;
    private readonly ConcurrentDictionary<string, SegmentRecord> _records = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, BackfillProgress> _progress = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _costs = new(StringComparer.Ordinal);

    public SegmentService(ISegmentStore store, SegmentIndex index, TimeProvider time, int partitions)
    {
        _store = store;
        _index = index;
        _time = time;
        _partitions = partitions;
        foreach (var record in store.All())
        {
            Publish(record);
        }
    }

    /// <summary>Compiles a stored definition into the index; stored rules were checked when they were saved.</summary>
    private void Publish(SegmentRecord record)
    {
        var checkedRule = RuleChecker.Check(RuleParser.Parse(record.Rule));
        if (checkedRule.IsValid)
        {
            _index.Upsert(record.Id, RuleCompiler.Compile(checkedRule, _index.Catalog), record.Version);
        }

        _records[record.Id] = record;
        _costs[record.Id] = checkedRule.Cost;
    }

    /// <summary>Refreshes every segment the store or this process knows: the safety net behind <see cref="Refresh"/>.</summary>
    public void RefreshAll()
    {
        lock (_gate)
        {
            // Under the gate, like every change made here, so the read and what is held agree.
            var stored = _store.All().ToDictionary(r => r.Id, StringComparer.Ordinal);
            foreach (var id in stored.Keys.Union(_records.Keys).ToList())
            {
                Apply(id, stored.GetValueOrDefault(id));
            }
        }
    }

    /// <summary>
    /// Applies a change another process made (announced on <c>segment-updates</c>): reads the segment's current
    /// definition from the store and, if it is newer than the one held here, publishes it or its deletion.
    /// Returns whether anything changed. Idempotent, so a repeated or reordered announcement is harmless.
    /// </summary>
    public bool Refresh(string id)
    {
        lock (_gate)
        {
            return Apply(id, _store.Find(id));
        }
    }

    /// <summary>Brings the held segment <paramref name="id"/> to <paramref name="stored"/>, its definition in the store; under the gate.</summary>
    private bool Apply(string id, SegmentRecord? stored)
    {
        var held = _records.GetValueOrDefault(id);
        if (stored is null)
        {
            if (held is null)
            {
                return false;
            }

            _index.Remove(id);
            _records.TryRemove(id, out _);
            _costs.TryRemove(id, out _);
            Changed?.Invoke(new SegmentChange(id, held.Version + 1, Deleted: true, new BackfillProgress(_partitions)));
            return true;
        }

        if (held is not null && held.Version >= stored.Version)
        {
            return false;
        }

        Publish(stored);
        var progress = new BackfillProgress(_partitions);
        _progress[id] = progress;
        Changed?.Invoke(new SegmentChange(id, stored.Version, Deleted: false, progress));
        return true;
    }

    /// <summary>Raised after a segment was saved or deleted; the Silo applies it to existing profiles.</summary>
    public event Action<SegmentChange>? Changed;

    public SegmentIndex Index => _index;

    public bool Contains(string segmentId) => _records.ContainsKey(segmentId);

    public IEnumerable<string> DependenciesOf(string segmentId) =>
        _index.Find(segmentId)?.Rule.Dependencies.Segments ?? (IEnumerable<string>)[];

    public IReadOnlyList<SegmentInfo> List() => [.. _records.Values.OrderBy(r => r.CreatedAt).ThenBy(r => r.Id).Select(Info)];

    public SegmentInfo? Get(string id) => _records.TryGetValue(id, out var record) ? Info(record) : null;

    public SegmentRecord? Record(string id) => _records.GetValueOrDefault(id);

    /// <summary>Checks a rule without saving it; for validation and preview.</summary>
    public CheckedRule Check(SegmentDraft draft, string? selfId = null)
    {
        var parsed = draft.RuleJson is { } json ? RuleJson.Parse(json) : RuleParser.Parse(draft.RuleText ?? string.Empty);
        return RuleChecker.Check(parsed, this, selfId);
    }

    public SegmentResult Create(SegmentDraft draft)
    {
        lock (_gate)
        {
            var id = draft.Id ?? "seg_" + Guid.CreateVersion7().ToString("N")[..16];
            if (!IdPattern().IsMatch(id))
            {
                return new SegmentResult(null, [], "A segment id is 1 to 64 characters: letters, digits, '_' and '-'.");
            }

            if (_records.ContainsKey(id))
            {
                return new SegmentResult(null, [], $"A segment with the id '{id}' already exists.", Conflict: true);
            }

            return Save(id, draft, previous: null);
        }
    }

    public SegmentResult Update(string id, SegmentDraft draft)
    {
        lock (_gate)
        {
            return _records.TryGetValue(id, out var previous)
                ? Save(id, draft, previous)
                : new SegmentResult(null, [], $"There is no segment with the id '{id}'.", NotFound: true);
        }
    }

    public SegmentResult Delete(string id)
    {
        lock (_gate)
        {
            if (!_records.TryGetValue(id, out var record))
            {
                return new SegmentResult(null, [], $"There is no segment with the id '{id}'.", NotFound: true);
            }

            var dependents = _index.Segments.Where(s => s.Rule.Dependencies.Segments.Contains(id)).Select(s => s.Id).Order().ToList();
            if (dependents.Count > 0)
            {
                return new SegmentResult(null, [], $"The segment '{id}' is used by {string.Join(", ", dependents)}; change or delete those first.", Conflict: true);
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            try
            {
                _store.Delete(record, now);
            }
            catch (SegmentConflictException e)
            {
                return new SegmentResult(null, [], e.Message, Conflict: true);
            }

            _index.Remove(id);
            _records.TryRemove(id, out _);
            _costs.TryRemove(id, out _);
            var progress = new BackfillProgress(_partitions);
            Changed?.Invoke(new SegmentChange(id, record.Version + 1, Deleted: true, progress));
            return new SegmentResult(Info(record) with { Status = "deleted" }, []);
        }
    }

    /// <summary>
    /// Checks a draft as saving it would: the rule (<see cref="Check"/>), then the cost of every segment together, the
    /// segment <paramref name="selfId"/> (one being saved) left out of the others. For saves and previews alike, so a
    /// preview refuses exactly what a save would.
    /// </summary>
    public CheckedRule Validate(SegmentDraft draft, string? selfId)
    {
        var checkedRule = Check(draft, selfId);
        if (!checkedRule.IsValid)
        {
            return checkedRule;
        }

        var others = _costs.Where(c => c.Key != selfId).Sum(c => c.Value);
        var limit = RuleLimits.Default.MaxTotalCost;
        return others + checkedRule.Cost <= limit
            ? checkedRule
            : checkedRule with
            {
                Errors = [new RuleDiagnostic(DiagnosticCodes.TooCostly,
                    $"this rule costs about {checkedRule.Cost:N0} units per event and the other segments {others:N0}; together they may cost at most "
                    + $"{limit:N0}, so that every event stays cheap to evaluate. Simplify this rule or delete segments no longer used",
                    SourceSpan.Start)],
            };
    }

    private SegmentResult Save(string id, SegmentDraft draft, SegmentRecord? previous)
    {
        var checkedRule = Validate(draft, id);
        if (!checkedRule.IsValid)
        {
            return new SegmentResult(null, checkedRule.Errors);
        }

        var compiled = RuleCompiler.Compile(checkedRule, _index.Catalog);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var record = new SegmentRecord(id, draft.Name, draft.Description, draft.Type ?? "DYNAMIC", compiled.Text,
            (previous?.Version ?? 0) + 1, previous?.CreatedAt ?? now, now);
        try
        {
            _store.Save(record, previous is null ? "created" : "updated");
        }
        catch (SegmentConflictException e)
        {
            compiled.Dispose();
            return new SegmentResult(null, [], e.Message, Conflict: true);
        }
        catch
        {
            compiled.Dispose();
            throw;
        }

        _index.Upsert(id, compiled, record.Version);
        _records[id] = record;
        _costs[id] = checkedRule.Cost;
        var progress = new BackfillProgress(_partitions);
        _progress[id] = progress;
        Changed?.Invoke(new SegmentChange(id, record.Version, Deleted: false, progress));
        return new SegmentResult(Info(record), []);
    }

    private SegmentInfo Info(SegmentRecord record)
    {
        var progress = _progress.GetValueOrDefault(record.Id) ?? BackfillProgress.Completed;
        var rule = _index.Find(record.Id)?.Rule;
        return new SegmentInfo(record, rule is null ? "null" : RuleJson.Write(rule.Rule),
            progress.Done ? "active" : "backfilling", progress.Processed, progress.Total);
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex IdPattern();
}
