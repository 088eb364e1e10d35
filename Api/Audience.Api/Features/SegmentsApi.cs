using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using Audience.Api.Access;
using Audience.Silo.Grains;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Audience.Api.Features;

/// <summary>Segment authoring and segment queries under <c>/api/segments</c>.</summary>
public static class SegmentsApi
{
    /// <summary>The largest segment body; a rule is at most 16 KiB of text, and its JSON form a few times that.</summary>
    public const int MaxBodyBytes = 1024 * 1024;

    public static RouteGroupBuilder MapSegmentsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/segments").WithTags("Segments").RequireScope(AccessScopes.Read)
            .ProducesUnavailable();
        // Bodies are read by the handlers (both rule forms, every field error named), not bound: the request types describe them.
        group.MapPost("/", Create).WithName("CreateSegment").Accepts<SegmentRequest>("application/json")
            .WithSummary("Create a segment; its rule is checked, stored, and applied to existing profiles.")
            .WithDescription("The rule as text ('rule') or as seed 004's condition tree ('rules'); 201 with the canonical rule, Location naming the segment.")
            .Authoring();
        group.MapPost("/preview", Preview).WithName("PreviewSegment").Accepts<PreviewRequest>("application/json")
            .WithSummary("What a draft rule would do over the stored profiles (matches, a sample, who would enter and leave); nothing is saved.")
            .WithDescription("timeoutMs (1 to 10000, default 2000) in the body or the query string, not both; past it 'complete' is false.")
            .Authoring();
        group.MapGet("/", List).WithName("ListSegments")
            .WithSummary("Every segment, with its status (backfilling, then active) and backfill progress.");
        group.MapGet("/{id}", Get).WithName("GetSegment")
            .WithSummary("One segment, with its status and backfill progress.");
        group.MapPut("/{id}", Update).WithName("UpdateSegment").Accepts<SegmentRequest>("application/json")
            .WithSummary("A new name or rule: a new version, applied again to every profile.")
            .Authoring();
        group.MapDelete("/{id}", Delete).WithName("DeleteSegment")
            .WithSummary("Delete a segment; its members leave with reason 'manual'. 409 while a segment or a campaign refers to it.")
            .Authoring();
        group.MapGet("/{id}/members", Members).WithName("SegmentMembers")
            .WithSummary("Members, paged by user id: 'next' is the 'after' of the next page, null on the last.");
        group.MapGet("/{id}/size", Size).WithName("SegmentSize")
            .WithSummary("The member count.");
        group.MapGet("/{id}/explain/{userId}", Explain).WithName("ExplainMembership").DecodeSlashesIn("userId")
            .WithSummary("The rule's evaluation tree for the user: each node's result and the value it read.");
        return group;
    }

    private static async Task<Results<Created<SegmentResponse>, BodyProblem, ConflictProblem, UnprocessableProblem>> Create(
        HttpRequest request, SegmentService segments, CancellationToken cancellationToken)
    {
        var (draft, problem) = await ReadDraft(request, DraftUse.Create, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        // A create finds no segment missing: its errors are the rule's, an id taken, or an id not valid (in the body).
        var result = segments.Create(draft!);
        if (result.RuleErrors.Count > 0)
        {
            return Problems.InvalidRule(result.RuleErrors);
        }

        if (result.Conflict)
        {
            return Problems.Conflict(result.Problem!);
        }

        if (result.Segment is null)
        {
            return Problems.InvalidBody(result.Problem!);
        }

        var response = ToResponse(result.Segment);
        return TypedResults.Created($"/api/segments/{response.Id}", response);
    }

    private static async Task<Results<Ok<SegmentResponse>, BodyProblem, NotFoundProblem, ConflictProblem, UnprocessableProblem>> Update(
        string id, HttpRequest request, SegmentService segments, CancellationToken cancellationToken)
    {
        var (draft, problem) = await ReadDraft(request, DraftUse.Update, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var result = segments.Update(id, draft!);
        if (result.RuleErrors.Count > 0)
        {
            return Problems.InvalidRule(result.RuleErrors);
        }

        if (result.NotFound)
        {
            return Problems.NotFound(result.Problem!);
        }

        if (result.Conflict)
        {
            return Problems.Conflict(result.Problem!);
        }

        return result.Segment is null ? Problems.InvalidBody(result.Problem!) : TypedResults.Ok(ToResponse(result.Segment));
    }

    /// <summary>
    /// Previews a draft: the body of a save (<c>rule</c> or <c>rules</c>; <c>name</c> optional) with, optionally, the
    /// <c>segmentId</c> of the segment it would replace and a <c>timeoutMs</c> (also taken from the query string).
    /// </summary>
    private static async Task<Results<Ok<PreviewResponse>, BodyProblem, BadRequestProblem, NotFoundProblem, UnprocessableProblem>> Preview(
        HttpRequest request, SegmentPreview preview, int? timeoutMs, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, MaxBodyBytes, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        SegmentDraft draft;
        string? segmentId = null;
        int? bodyTimeoutMs = null;
        using (document)
        {
            var root = document!.RootElement;
            var (parsed, draftProblem) = ParseDraft(root, DraftUse.Preview);
            if (draftProblem is not null)
            {
                return draftProblem;
            }

            draft = parsed!;
            if (root.TryGetProperty("segmentId", out var id) && id.ValueKind != JsonValueKind.Null)
            {
                if (id.ValueKind != JsonValueKind.String || id.GetString()!.Length is 0 or > 64)
                {
                    return Problems.InvalidBody("'segmentId' must be the id of an existing segment, a string of 1 to 64 characters.");
                }

                segmentId = id.GetString();
            }

            if (root.TryGetProperty("timeoutMs", out var timeout) && timeout.ValueKind != JsonValueKind.Null)
            {
                if (timeout.ValueKind != JsonValueKind.Number || !timeout.TryGetInt32(out var ms))
                {
                    return Problems.InvalidBody($"'timeoutMs' must be a whole number of milliseconds, not {Describe(timeout)}.");
                }

                bodyTimeoutMs = ms;
            }
        }

        if (timeoutMs is not null && bodyTimeoutMs is not null)
        {
            return Problems.BadRequest("Give 'timeoutMs' once: in the query string or in the body.");
        }

        var budget = timeoutMs ?? bodyTimeoutMs ?? (int)SegmentPreview.DefaultBudget.TotalMilliseconds;
        var max = (int)SegmentPreview.MaxBudget.TotalMilliseconds;
        if (budget < 1 || budget > max)
        {
            return Problems.BadRequest($"'timeoutMs' must be from 1 to {max}.");
        }

        var result = await preview.RunAsync(draft, segmentId, TimeSpan.FromMilliseconds(budget), cancellationToken);
        if (result.NotFound)
        {
            return Problems.NotFound(result.Problem!);
        }

        if (result.RuleErrors.Count > 0)
        {
            return Problems.InvalidRule(result.RuleErrors);
        }

        var counts = result.Counts!;
        return TypedResults.Ok(new PreviewResponse(segmentId, counts.Rule, counts.Matching, counts.Examined, counts.Complete, counts.Sample,
            counts.WouldEnter, counts.WouldLeave, new ArchiveResponse(counts.AggregatesFromArchive, counts.ProfilesFromArchive),
            (long)counts.Elapsed.TotalMilliseconds));
    }

    private static async Task<Results<NoContent, NotFoundProblem, ConflictProblem>> Delete(
        string id, SegmentService segments, Audience.Silo.Campaigns.CampaignService campaigns, CancellationToken cancellationToken)
    {
        if (await campaigns.UsingSegmentAsync(id, cancellationToken) is { Count: > 0 } users)
        {
            return Problems.Conflict($"The segment '{id}' is used by the campaigns {string.Join(", ", users)}; delete them or point them at another segment first.");
        }

        // A delete is refused only for a segment missing or still used.
        var result = segments.Delete(id);
        return result.Segment is not null ? TypedResults.NoContent()
            : result.NotFound ? Problems.NotFound(result.Problem!)
            : Problems.Conflict(result.Problem!);
    }

    private static async Task<Ok<SegmentResponse[]>> List(SegmentService segments, IProfileStore store) =>
        TypedResults.Ok(await Responses(segments.List(), store));

    private static async Task<Results<Ok<SegmentResponse>, NotFoundProblem>> Get(string id, SegmentService segments, IProfileStore store) =>
        segments.Get(id) is { } segment ? TypedResults.Ok((await Responses([segment], store))[0]) : Problems.NotFound($"There is no segment with the id '{id}'.");

    /// <summary>
    /// Responses with each segment's status: a backfill this process runs reports its own progress; one that runs
    /// elsewhere (the silos, in Kafka mode) is done when every claimed partition has recorded the segment's version.
    /// </summary>
    private static async Task<SegmentResponse[]> Responses(IReadOnlyList<SegmentInfo> infos, IProfileStore store)
    {
        if (infos.All(i => i.Status != "backfilling"))
        {
            return [.. infos.Select(ToResponse)];
        }

        var (partitions, completed) = await store.BackfillSummaryAsync();
        return [.. infos.Select(info => info.Status == "backfilling" && partitions > 0
            && completed.Count(c => c.SegmentId == info.Record.Id && c.Version >= info.Record.Version) >= partitions
                ? ToResponse(info with { Status = "active" })
                : ToResponse(info))];
    }

    private static async Task<Results<Ok<MembersResponse>, BadRequestProblem, NotFoundProblem>> Members(string id, SegmentService segments, ProfileQueries queries, string? after = null, int limit = 100)
    {
        if (segments.Get(id) is null)
        {
            return Problems.NotFound($"There is no segment with the id '{id}'.");
        }

        if (limit is < 1 or > 1000)
        {
            return Problems.BadRequest("'limit' must be from 1 to 1000.");
        }

        var rows = await queries.MembersAsync(id, after ?? string.Empty, limit);
        return TypedResults.Ok(new MembersResponse(id, [.. rows.Select(r => new Member(r.UserId, DateTimeOffset.FromUnixTimeMilliseconds(r.Since)))],
            rows.Count == limit ? rows[^1].UserId : null));
    }

    private static async Task<Results<Ok<SizeResponse>, NotFoundProblem>> Size(string id, SegmentService segments, ProfileQueries queries) =>
        segments.Get(id) is null
            ? Problems.NotFound($"There is no segment with the id '{id}'.")
            : TypedResults.Ok(new SizeResponse(id, await queries.SizeAsync(id)));

    private static async Task<Results<Ok<ExplainResponse>, NotFoundProblem>> Explain(string id, string userId, SegmentService segments, ProfileQueries queries)
    {
        if (segments.Get(id) is null)
        {
            return Problems.NotFound($"There is no segment with the id '{id}'.");
        }

        return await queries.ExplainAsync(userId, id) is { } result
            ? TypedResults.Ok(new ExplainResponse(id, userId, result.Member, result.Explanation.Result, ToTree(result.Explanation)))
            : Problems.NotFound($"There is no user with the id '{userId}'.");
    }

    private static ExplanationNode ToTree(ExplanationView node) =>
        new(node.Rule, node.Result, node.Value, node.Note, node.Children.Length == 0 ? null : [.. node.Children.Select(ToTree)]);

    internal static SegmentResponse ToResponse(SegmentInfo info) => new(
        info.Record.Id,
        info.Record.Name,
        info.Record.Description,
        info.Record.Type,
        info.Record.Rule,
        JsonDocument.Parse(info.RuleJson).RootElement.Clone(),
        info.Record.Version,
        info.Status,
        new BackfillResponse(info.BackfillProcessed, info.BackfillTotal),
        DateTimeOffset.FromUnixTimeMilliseconds(info.Record.CreatedAt),
        DateTimeOffset.FromUnixTimeMilliseconds(info.Record.UpdatedAt));

    /// <summary>What a segment body is read for: what it may and must hold differs.</summary>
    private enum DraftUse
    {
        Create,
        Update,
        Preview,
    }

    private static async Task<(SegmentDraft? Draft, BodyProblem? Problem)> ReadDraft(HttpRequest request, DraftUse use, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, MaxBodyBytes, cancellationToken);
        if (problem is not null)
        {
            return (null, problem);
        }

        using (document)
        {
            return ParseDraft(document!.RootElement, use);
        }
    }

    /// <summary>
    /// Reads <c>{id?, name, description?, type?, rule}</c> where <c>rule</c> is the text form, or seed 004's
    /// <c>{name, type, rules: {conditions: [...]}}</c>; a <c>rule</c> given as an object is the JSON form too. An update
    /// takes no <c>id</c> (the URL gives it); a preview takes none either, and needs no <c>name</c>.
    /// </summary>
    private static (SegmentDraft? Draft, BodyProblem? Problem) ParseDraft(JsonElement root, DraftUse use)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return (null, Problems.InvalidBody($"A {(use == DraftUse.Preview ? "preview" : "segment")} is a JSON object, not {Describe(root)}."));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (!names.Add(property.Name))
            {
                return (null, Problems.InvalidBody($"'{property.Name}' appears twice in the segment."));
            }
        }

        string? Text(string name, int max, out BodyProblem? error)
        {
            error = null;
            if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            if (value.ValueKind != JsonValueKind.String || value.GetString()!.Length is 0 || value.GetString()!.Length > max)
            {
                error = Problems.InvalidBody($"'{name}' must be a string of 1 to {max} characters.");
                return null;
            }

            return value.GetString();
        }

        var id = Text("id", 64, out var idError);
        var name = Text("name", 255, out var nameError);
        var description = Text("description", 2000, out var descriptionError);
        var type = Text("type", 50, out var typeError);
        if ((idError ?? nameError ?? descriptionError ?? typeError) is { } fieldError)
        {
            return (null, fieldError);
        }

        if (use == DraftUse.Update && id is not null)
        {
            return (null, Problems.InvalidBody("'id' cannot be changed; it is given by the URL."));
        }

        if (use == DraftUse.Preview && id is not null)
        {
            return (null, Problems.InvalidBody("A preview takes no 'id'; name the segment whose rule it would replace with 'segmentId'."));
        }

        if (name is null && use != DraftUse.Preview)
        {
            return (null, Problems.InvalidBody("'name' is required."));
        }

        string? ruleText = null;
        string? ruleJson = null;
        var hasRule = root.TryGetProperty("rule", out var rule) && rule.ValueKind != JsonValueKind.Null;
        var hasRules = root.TryGetProperty("rules", out var rules) && rules.ValueKind != JsonValueKind.Null;
        if (hasRule == hasRules)
        {
            return (null, Problems.InvalidBody("Give the rule once: 'rule' as text (totalSpent > 1000) or 'rules' as seed 004's condition tree."));
        }

        var given = hasRule ? rule : rules;
        switch (given.ValueKind)
        {
            case JsonValueKind.String:
                ruleText = given.GetString();
                break;
            case JsonValueKind.Object:
                ruleJson = given.GetRawText();
                break;
            default:
                return (null, Problems.InvalidBody($"'{(hasRule ? "rule" : "rules")}' must be rule text or a condition object, not {Describe(given)}."));
        }

        return (new SegmentDraft(id, name ?? string.Empty, description, type, ruleText, ruleJson), null);
    }

    private static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>
    /// A segment as sent to <c>POST</c> and <c>PUT /api/segments</c>; it documents the body, which the handler reads
    /// itself. The rule is given once: as text in <c>rule</c>, or as seed 004's condition tree in <c>rules</c>
    /// (<c>{"conditions": [{"field": "totalSpent", "operator": "gt", "value": 1000}]}</c>). An update takes no <c>id</c>.
    /// </summary>
    public sealed record SegmentRequest
    {
        [Description("1 to 64 letters, digits, '_' and '-'; generated (seg_...) when absent.")]
        public string? Id { get; init; }

        [Description("1 to 255 characters.")]
        public required string Name { get; init; }

        [Description("At most 2000 characters.")]
        public string? Description { get; init; }

        [Description("At most 50 characters; DYNAMIC when absent.")]
        public string? Type { get; init; }

        [Description("The rule as text, such as 'totalSpent > 1000 and count(purchase within 7d) >= 3'.")]
        public string? Rule { get; init; }

        [Description("The rule as seed 004's condition tree.")]
        public JsonElement? Rules { get; init; }
    }

    /// <summary>A draft for <c>POST /api/segments/preview</c>: a segment's body, no id, name optional.</summary>
    public sealed record PreviewRequest
    {
        public string? Name { get; init; }

        public string? Description { get; init; }

        public string? Type { get; init; }

        [Description("The draft rule as text.")]
        public string? Rule { get; init; }

        [Description("The draft rule as seed 004's condition tree.")]
        public JsonElement? Rules { get; init; }

        [Description("An existing segment the draft would replace: the answer then says who would enter and leave.")]
        public string? SegmentId { get; init; }

        [Description("The time budget, 1 to 10000 ms (default 2000); or the query parameter, not both.")]
        public int? TimeoutMs { get; init; }
    }

    public sealed record BackfillResponse(long Processed, long Total);

    public sealed record Member(string UserId, DateTimeOffset Since);

    /// <summary>A page of members; <c>next</c> is the <c>after</c> of the next page, null on the last.</summary>
    public sealed record MembersResponse(string SegmentId, Member[] Members, string? Next);

    public sealed record SizeResponse(string SegmentId, long Size);

    /// <summary>A node of a rule's evaluation: its text, its result, the value it read, and its children (null for a leaf).</summary>
    public sealed record ExplanationNode(string Rule, bool Result, string? Value, string? Note, ExplanationNode[]? Children);

    /// <summary><c>member</c>: the user is a member now; <c>matches</c>: the rule holds on the profile now.</summary>
    public sealed record ExplainResponse(string SegmentId, string UserId, bool Member, bool Matches, ExplanationNode Explanation);

    /// <summary>The rule's aggregates that examined profiles did not hold yet, filled from the archive, and how many profiles needed that.</summary>
    public sealed record ArchiveResponse(IReadOnlyList<string> Aggregates, long Profiles);

    /// <summary>What <c>POST /api/segments/preview</c> answers; <c>wouldEnter</c> and <c>wouldLeave</c> only for a <c>segmentId</c>.</summary>
    public sealed record PreviewResponse(
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? SegmentId,
        string Rule,
        long Matching,
        long Examined,
        bool Complete,
        IReadOnlyList<string> Sample,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? WouldEnter,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? WouldLeave,
        ArchiveResponse FilledFromArchive,
        long ElapsedMs);

    public sealed record SegmentResponse(
        string Id,
        string Name,
        string? Description,
        string Type,
        string Rule,
        JsonElement Rules,
        long Version,
        string Status,
        BackfillResponse Backfill,
        DateTimeOffset CreatedAt,
        DateTimeOffset UpdatedAt);
}
