using System.ComponentModel;
using System.Text.Json;
using Audience.Api.Access;
using Audience.Silo.Campaigns;
using Audience.Silo.Contracts;
using Audience.Silo.Processing;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Audience.Api.Features;

/// <summary>Campaigns (seed 004's Communication API) under <c>/api/campaigns</c>, and the live notifications stream.</summary>
public static partial class CampaignsApi
{
    /// <summary>The largest campaign body: a condition is at most 16 KiB of text.</summary>
    public const int MaxBodyBytes = 256 * 1024;

    private static readonly HashSet<string> Fields =
        ["id", "name", "segmentId", "type", "content", "status", "trigger", "condition", "caps", "priority", "scheduledAt"];

    public static RouteGroupBuilder MapCampaignsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/campaigns").WithTags("Campaigns").RequireScope(AccessScopes.Read)
            .ProducesUnavailable();
        // Bodies are read by the handlers (every malformed or unknown field named), not bound: CampaignRequest describes them.
        group.MapPost("/", Create).WithName("CreateCampaign").Accepts<CampaignRequest>("application/json")
            .WithSummary("Create a campaign on a segment: a notification per user who enters (on_enter) or leaves (on_exit) it.")
            .Authoring();
        group.MapGet("/", List).WithName("ListCampaigns")
            .WithSummary("Every campaign; a scheduled one with its broadcast's progress.");
        group.MapGet("/{id}", Get).WithName("GetCampaign")
            .WithSummary("One campaign; a scheduled one with its broadcast's progress.");
        group.MapPut("/{id}", Update).WithName("UpdateCampaign").Accepts<CampaignRequest>("application/json")
            .WithSummary("Replace a campaign: a new version.")
            .Authoring();
        group.MapDelete("/{id}", Delete).WithName("DeleteCampaign")
            .WithSummary("Delete a campaign.")
            .Authoring();
        group.MapGet("/{id}/notifications", Notifications).WithName("CampaignNotifications")
            .WithSummary("The notifications the campaign recorded, oldest first; ?after= the last seq seen.");
        group.MapGet("/{id}/stats", Stats).WithName("CampaignStats")
            .WithSummary("The campaign's counts: sent by type, capped, and the last sent.");
        routes.MapGet("/api/notifications", Stream).WithTags("Campaigns").WithName("StreamNotifications")
            .WithSummary("Server-Sent Events: one 'notification' event per notification sent; ?campaignId= filters.")
            .WithDescription(LiveFeedStream<NotificationRequest>.Description("notification", "notifications"))
            .RequireScope(AccessScopes.Read);
        return group;
    }

    private static async Task<Results<Created<CampaignResponse>, BodyProblem, ConflictProblem, UnprocessableProblem>> Create(
        HttpRequest request, CampaignService campaigns, CancellationToken cancellationToken)
    {
        var (draft, problem) = await ReadDraft(request, allowId: true, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        // A create finds no campaign missing: its errors are the condition's, an id taken, or the campaign's own (422).
        var result = await campaigns.CreateAsync(draft!, cancellationToken);
        if (Refused(result) is { } refused)
        {
            return refused;
        }

        if (result.Conflict)
        {
            return Problems.Conflict(result.Problems[0]);
        }

        var response = ToResponse(result.Campaign!, campaigns);
        return TypedResults.Created($"/api/campaigns/{response.Id}", response);
    }

    private static async Task<Results<Ok<CampaignResponse>, BodyProblem, NotFoundProblem, ConflictProblem, UnprocessableProblem>> Update(
        string id, HttpRequest request, CampaignService campaigns, CancellationToken cancellationToken)
    {
        var (draft, problem) = await ReadDraft(request, allowId: false, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var result = await campaigns.UpdateAsync(id, draft!, cancellationToken);
        if (Refused(result) is { } refused)
        {
            return refused;
        }

        return result.NotFound ? Problems.NotFound(result.Problems[0])
            : result.Conflict ? Problems.Conflict(result.Problems[0])
            : TypedResults.Ok(ToResponse(result.Campaign!, campaigns));
    }

    private static async Task<Results<NoContent, NotFoundProblem, ConflictProblem>> Delete(string id, CampaignService campaigns, CancellationToken cancellationToken)
    {
        // A delete is refused only for a campaign missing, or a conflict with a concurrent change.
        var result = await campaigns.DeleteAsync(id, cancellationToken);
        return result.Campaign is not null ? TypedResults.NoContent()
            : result.NotFound ? Problems.NotFound(result.Problems[0])
            : Problems.Conflict(result.Problems[0]);
    }

    private static async Task<Ok<CampaignResponse[]>> List(CampaignService campaigns, CancellationToken cancellationToken)
    {
        var responses = new List<CampaignResponse>();
        foreach (var campaign in await campaigns.ListAsync(cancellationToken))
        {
            responses.Add(await WithBroadcast(ToResponse(campaign, campaigns), campaign, campaigns, cancellationToken));
        }

        return TypedResults.Ok(responses.ToArray());
    }

    private static async Task<Results<Ok<CampaignResponse>, NotFoundProblem>> Get(string id, CampaignService campaigns, CancellationToken cancellationToken) =>
        await campaigns.GetAsync(id, cancellationToken) is { } campaign
            ? TypedResults.Ok(await WithBroadcast(ToResponse(campaign, campaigns), campaign, campaigns, cancellationToken))
            : Problems.NotFound($"There is no campaign with the id '{id}'.");

    /// <summary>A scheduled campaign's answer says how far its broadcast has come.</summary>
    private static async Task<CampaignResponse> WithBroadcast(CampaignResponse response, CampaignRecord campaign, CampaignService campaigns, CancellationToken cancellationToken) =>
        campaign.Trigger == Campaign.Scheduled && campaign.ScheduledAt is { } at
            && await campaigns.Store.BroadcastAsync(campaign.Id, at, cancellationToken) is { } progress
            ? response with
            {
                Broadcast = new BroadcastResponse(progress.Processed, progress.CompletedAt is { } done ? DateTimeOffset.FromUnixTimeMilliseconds(done) : null),
            }
            : response;

    private static async Task<Results<Ok<NotificationsResponse>, BadRequestProblem, NotFoundProblem>> Notifications(string id, CampaignService campaigns, CancellationToken cancellationToken, long after = 0, int limit = 100)
    {
        if (limit is < 1 or > 1000)
        {
            return Problems.BadRequest("'limit' must be from 1 to 1000.");
        }

        if (after < 0)
        {
            return Problems.BadRequest("'after' is the 'seq' of the last notification seen, 0 or more.");
        }

        if (await campaigns.GetAsync(id, cancellationToken) is null)
        {
            return Problems.NotFound($"There is no campaign with the id '{id}'.");
        }

        var rows = await campaigns.Store.NotificationsAsync(id, after, limit, cancellationToken);
        return TypedResults.Ok(new NotificationsResponse(id, [.. rows.Select(r => new NotificationEntry(r.Seq, r.Status, r.Request))],
            rows.Count == limit ? rows[^1].Seq : null));
    }

    private static async Task<Results<Ok<StatsResponse>, NotFoundProblem>> Stats(string id, CampaignService campaigns, CancellationToken cancellationToken)
    {
        if (await campaigns.GetAsync(id, cancellationToken) is null)
        {
            return Problems.NotFound($"There is no campaign with the id '{id}'.");
        }

        var stats = await campaigns.Store.StatsAsync(id, cancellationToken);
        return TypedResults.Ok(new StatsResponse(id, stats.SentByType, stats.SentByType.Values.Sum(), stats.Capped, stats.LastSent));
    }

    private static async Task<Results<LiveFeedStream<NotificationRequest>, NotFoundProblem>> Stream(
        NotificationFeed feed, CampaignService campaigns, CancellationToken cancellationToken, string? campaignId = null) =>
        campaignId is not null && await campaigns.GetAsync(campaignId, cancellationToken) is null
            ? Problems.NotFound($"There is no campaign with the id '{campaignId}'.")
            : new LiveFeedStream<NotificationRequest>(feed, campaignId, "notifications");

    /// <summary>
    /// The 422 of a save the campaign service refused as not valid: the condition's rule errors, or the campaign's own
    /// (no such segment, a bad trigger, ...); null when the result is a campaign, a missing one or a conflict.
    /// </summary>
    private static UnprocessableProblem? Refused(CampaignResult result) =>
        result.ConditionErrors.Count > 0 ? Problems.InvalidRule(result.ConditionErrors)
        : result.Campaign is null && !result.NotFound && !result.Conflict ? Problems.Unprocessable(result.Problems, "The campaign is not valid")
        : null;

    private static CampaignResponse ToResponse(CampaignRecord c, CampaignService campaigns) => new(
        c.Id, c.Name, c.SegmentId, c.Type, new ContentResponse(c.Content.Template, c.Content.Subject, c.Content.Personalization),
        c.Status, c.Trigger, c.Condition, [.. c.Caps.Select(cap => new CapResponse(cap.Count, cap.Period, cap.Scope))], c.Priority,
        c.ScheduledAt is { } at ? DateTimeOffset.FromUnixTimeMilliseconds(at) : null, c.Version,
        (c.FiresOnChanges || c.Broadcasts) && campaigns.LiveVersion(c.Id) == c.Version,
        DateTimeOffset.FromUnixTimeMilliseconds(c.CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(c.UpdatedAt));

    /// <summary>
    /// Reads <c>{id?, name, segmentId, type, content: {template, subject?, personalization?}, status?, trigger?,
    /// condition?, caps?, priority?, scheduledAt?}</c>; every malformed or unknown field is a 400 naming it.
    /// </summary>
    private static async Task<(CampaignDraft? Draft, BodyProblem? Problem)> ReadDraft(HttpRequest request, bool allowId, CancellationToken cancellationToken)
    {
        var (document, problem) = await JsonBody.ReadAsync(request, MaxBodyBytes, cancellationToken);
        if (problem is not null)
        {
            return (null, problem);
        }

        using (document)
        {
            try
            {
                return (Draft(document!.RootElement, allowId), null);
            }
            catch (BadFieldException e)
            {
                return (null, Problems.InvalidBody(e.Message));
            }
        }
    }

    private static CampaignDraft Draft(JsonElement root, bool allowId)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new BadFieldException("A campaign is a JSON object.");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (!names.Add(property.Name))
            {
                throw new BadFieldException($"'{property.Name}' appears twice in the campaign.");
            }

            if (!Fields.Contains(property.Name))
            {
                throw new BadFieldException($"'{property.Name}' is not a campaign field; the fields are {string.Join(", ", Fields)}.");
            }
        }

        var id = Text(root, "id", 64, required: false);
        if (!allowId && id is not null)
        {
            throw new BadFieldException("'id' cannot be changed; it is given by the URL.");
        }

        if (!root.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Object)
        {
            throw new BadFieldException("'content' is required: an object with 'template', and optionally 'subject' and 'personalization'.");
        }

        foreach (var property in content.EnumerateObject())
        {
            if (property.Name is not ("template" or "subject" or "personalization"))
            {
                throw new BadFieldException($"'content.{property.Name}' is not a content field; they are template, subject and personalization.");
            }
        }

        var personalization = Array.Empty<string>();
        if (content.TryGetProperty("personalization", out var fields) && fields.ValueKind != JsonValueKind.Null)
        {
            if (fields.ValueKind != JsonValueKind.Array || fields.EnumerateArray().Any(f => f.ValueKind != JsonValueKind.String))
            {
                throw new BadFieldException("'content.personalization' is a list of profile field names, such as [\"firstName\", \"totalSpent\"].");
            }

            personalization = [.. fields.EnumerateArray().Select(f => f.GetString()!)];
        }

        var caps = Array.Empty<CampaignCap>();
        if (root.TryGetProperty("caps", out var capList) && capList.ValueKind != JsonValueKind.Null)
        {
            if (capList.ValueKind != JsonValueKind.Array)
            {
                throw new BadFieldException("'caps' is a list of {\"count\": N, \"period\": \"7d\", \"scope\": \"campaign\" or \"global\"}.");
            }

            caps = [.. capList.EnumerateArray().Select(Cap)];
        }

        long? scheduledAt = null;
        if (root.TryGetProperty("scheduledAt", out var scheduled) && scheduled.ValueKind != JsonValueKind.Null)
        {
            if (scheduled.ValueKind != JsonValueKind.String || !scheduled.TryGetDateTimeOffset(out var at) || !OffsetPattern().IsMatch(scheduled.GetString()!))
            {
                throw new BadFieldException("'scheduledAt' is an ISO 8601 time with an offset, such as 2026-12-01T09:00:00Z.");
            }

            scheduledAt = at.ToUnixTimeMilliseconds();
        }

        return new CampaignDraft(
            id,
            Text(root, "name", 255, required: true)!,
            Text(root, "segmentId", 64, required: true)!,
            Text(root, "type", 16, required: true)!,
            new CampaignContent(Text(content, "template", 128, required: true, prefix: "content.")!, Text(content, "subject", 998, required: false, prefix: "content."),
                personalization),
            Text(root, "status", 16, required: false) ?? Campaign.Draft,
            Text(root, "trigger", 16, required: false) ?? Campaign.OnEnter,
            Text(root, "condition", 16 * 1024, required: false),
            caps,
            Integer(root, "priority") ?? 0,
            scheduledAt);
    }

    private static CampaignCap Cap(JsonElement cap)
    {
        if (cap.ValueKind != JsonValueKind.Object || cap.EnumerateObject().Any(p => p.Name is not ("count" or "period" or "scope")))
        {
            throw new BadFieldException("Each cap is {\"count\": N, \"period\": \"7d\", \"scope\": \"campaign\" or \"global\"}.");
        }

        return new CampaignCap(Integer(cap, "count") ?? throw new BadFieldException("A cap needs 'count'."),
            Text(cap, "period", 16, required: true, prefix: "caps.")!, Text(cap, "scope", 16, required: false, prefix: "caps.") ?? Campaign.CampaignScope);
    }

    private static string? Text(JsonElement element, string name, int max, bool required, string prefix = "")
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return required ? throw new BadFieldException($"'{prefix}{name}' is required.") : null;
        }

        if (value.ValueKind != JsonValueKind.String || value.GetString() is not { Length: > 0 } text || text.Length > max || string.IsNullOrWhiteSpace(text))
        {
            throw new BadFieldException($"'{prefix}{name}' must be a string of 1 to {max} characters.");
        }

        return text;
    }

    private static int? Integer(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)
            ? number
            : throw new BadFieldException($"'{name}' must be an integer.");
    }

    private sealed class BadFieldException(string message) : Exception(message);

    /// <summary>A time's offset, required: without one a time would be read in the server's zone.</summary>
    [System.Text.RegularExpressions.GeneratedRegex("(Z|z|[+-][0-9]{2}:?[0-9]{2})$")]
    private static partial System.Text.RegularExpressions.Regex OffsetPattern();

    /// <summary>
    /// A campaign as sent to <c>POST</c> and <c>PUT /api/campaigns</c> (docs/campaigns.md); it documents the body, which
    /// the handler reads itself, naming every malformed or unknown field. An update takes no <c>id</c>.
    /// </summary>
    public sealed record CampaignRequest
    {
        [Description("1 to 64 characters; generated when absent.")]
        public string? Id { get; init; }

        [Description("1 to 255 characters.")]
        public required string Name { get; init; }

        [Description("The segment whose entries (or exits) fire the campaign.")]
        public required string SegmentId { get; init; }

        [Description("email, sms or push")]
        public required string Type { get; init; }

        public required ContentRequest Content { get; init; }

        [Description("draft (the default), active, paused or completed; only active campaigns send.")]
        public string? Status { get; init; }

        [Description("on_enter (the default), on_exit or scheduled")]
        public string? Trigger { get; init; }

        [Description("A rule over the user's profile at the moment of the change; the campaign fires only where it holds.")]
        public string? Condition { get; init; }

        [Description("Up to 8 caps.")]
        public CapRequest[]? Caps { get; init; }

        [Description("Campaigns that fire for one change fire from the highest priority down; 0 when absent.")]
        public int? Priority { get; init; }

        [Description("Required for a scheduled campaign: when to notify every member, ISO 8601 with an offset.")]
        public DateTimeOffset? ScheduledAt { get; init; }
    }

    public sealed record ContentRequest
    {
        [Description("The template's name.")]
        public required string Template { get; init; }

        [Description("A subject, for email.")]
        public string? Subject { get; init; }

        [Description("Profile fields sent with the notification, such as firstName or totalSpent.")]
        public string[]? Personalization { get; init; }
    }

    /// <summary>At most <c>count</c> notifications per user within <c>period</c> (30m, 24h, 7d, 2w), counting this campaign's sends or every campaign's (<c>global</c>).</summary>
    public sealed record CapRequest
    {
        public required int Count { get; init; }

        [Description("30m, 24h, 7d, 2w: 1 minute to 90 days.")]
        public required string Period { get; init; }

        [Description("campaign (the default) or global")]
        public string? Scope { get; init; }
    }

    public sealed record ContentResponse(string Template, string? Subject, string[] Personalization);

    public sealed record CapResponse(int Count, string Period, string Scope);

    /// <summary>A scheduled campaign's broadcast: members reached so far, and when it completed.</summary>
    public sealed record BroadcastResponse(long Processed, DateTimeOffset? CompletedAt);

    /// <summary>A campaign; <c>live</c> says whether the rules that fire campaigns hold this version of it yet.</summary>
    public sealed record CampaignResponse(
        string Id,
        string Name,
        string SegmentId,
        string Type,
        ContentResponse Content,
        string Status,
        string Trigger,
        string? Condition,
        CapResponse[] Caps,
        int Priority,
        DateTimeOffset? ScheduledAt,
        long Version,
        bool Live,
        DateTimeOffset CreatedAt,
        DateTimeOffset UpdatedAt)
    {
        public BroadcastResponse? Broadcast { get; init; }
    }

    public sealed record NotificationEntry(long Seq, string Status, NotificationRequest Notification);

    public sealed record NotificationsResponse(string CampaignId, NotificationEntry[] Notifications, long? Next);

    public sealed record StatsResponse(string CampaignId, IReadOnlyDictionary<string, long> SentByType, long Sent, long Capped, DateTimeOffset? LastSent);
}
