using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Audience.Silo.Campaigns;

/// <summary>What a campaign sends: a template, a subject (email), and the profile fields it fills in.</summary>
public sealed record CampaignContent(string Template, string? Subject, string[] Personalization);

/// <summary>
/// At most <see cref="Count"/> notifications per user within <see cref="Period"/> (<c>30m</c>, <c>24h</c>, <c>7d</c>,
/// <c>2w</c>), counting this campaign's sends (<c>campaign</c>) or every campaign's (<c>global</c>).
/// </summary>
public sealed record CampaignCap(int Count, string Period, string Scope)
{
    [JsonIgnore]
    public long PeriodMs => Campaign.ParsePeriod(Period) ?? 0;

    [JsonIgnore]
    public bool Global => Scope == Campaign.GlobalScope;
}

/// <summary>A campaign as stored and shown; times in Unix milliseconds.</summary>
public sealed record CampaignRecord(
    string Id,
    string Name,
    string SegmentId,
    string Type,
    CampaignContent Content,
    string Status,
    string Trigger,
    string? Condition,
    CampaignCap[] Caps,
    int Priority,
    long? ScheduledAt,
    long Version,
    long CreatedAt,
    long UpdatedAt)
{
    /// <summary>Whether it sends now: active, and triggered by membership changes.</summary>
    public bool FiresOnChanges => Status == Campaign.Active && Trigger is Campaign.OnEnter or Campaign.OnExit;

    /// <summary>Whether it is a broadcast to be made: active, scheduled.</summary>
    public bool Broadcasts => Status == Campaign.Active && Trigger == Campaign.Scheduled && ScheduledAt is not null;
}

/// <summary>What a campaign request asks for, before it is checked.</summary>
public sealed record CampaignDraft(
    string? Id,
    string Name,
    string SegmentId,
    string Type,
    CampaignContent Content,
    string Status,
    string Trigger,
    string? Condition,
    CampaignCap[] Caps,
    int Priority,
    long? ScheduledAt);

/// <summary>The vocabulary of campaigns, and the checks on it that need nothing but the draft.</summary>
public static partial class Campaign
{
    public const string OnEnter = "on_enter";
    public const string OnExit = "on_exit";
    public const string Scheduled = "scheduled";
    public const string Draft = "draft";
    public const string Active = "active";
    public const string Paused = "paused";
    public const string Completed = "completed";
    public const string CampaignScope = "campaign";
    public const string GlobalScope = "global";

    public static readonly IReadOnlyList<string> Types = ["email", "sms", "push"];
    public static readonly IReadOnlyList<string> Statuses = [Draft, Active, Paused, Completed];
    public static readonly IReadOnlyList<string> Triggers = [OnEnter, OnExit, Scheduled];

    /// <summary>The longest cap period: a user's sends are kept this long for caps to count them.</summary>
    public static readonly TimeSpan MaxPeriod = TimeSpan.FromDays(90);

    /// <summary>Caps per campaign, and profile fields a campaign may name for personalization.</summary>
    public const int MaxCaps = 8;

    public const int MaxPersonalization = 32;

    /// <summary><c>30m</c>, <c>24h</c>, <c>7d</c> or <c>2w</c> in milliseconds, from 1 minute to 90 days; null otherwise.</summary>
    public static long? ParsePeriod(string period)
    {
        var match = PeriodPattern().Match(period);
        if (!match.Success || !long.TryParse(match.Groups[1].ValueSpan, out var amount))
        {
            return null;
        }

        var unit = match.Groups[2].Value switch
        {
            "m" => TimeSpan.FromMinutes(1),
            "h" => TimeSpan.FromHours(1),
            "d" => TimeSpan.FromDays(1),
            _ => TimeSpan.FromDays(7),
        };
        var ms = amount * (long)unit.TotalMilliseconds;
        return amount > 0 && ms <= MaxPeriod.TotalMilliseconds ? ms : null;
    }

    /// <summary>What is wrong with the draft's fields, each naming the field; empty when nothing is.</summary>
    public static List<string> Problems(CampaignDraft draft)
    {
        var problems = new List<string>();
        if (draft.Id is not null && !IdPattern().IsMatch(draft.Id))
        {
            problems.Add("'id' is 1 to 64 characters: letters, digits, '_' and '-'.");
        }

        if (!Types.Contains(draft.Type))
        {
            problems.Add($"'type' is one of {string.Join(", ", Types)}.");
        }

        if (!Statuses.Contains(draft.Status))
        {
            problems.Add($"'status' is one of {string.Join(", ", Statuses)}.");
        }

        if (!Triggers.Contains(draft.Trigger))
        {
            problems.Add($"'trigger' is one of {string.Join(", ", Triggers)}.");
        }

        if (draft.Trigger == Scheduled && draft.ScheduledAt is null)
        {
            problems.Add("A scheduled campaign needs 'scheduledAt'.");
        }

        if (!TemplatePattern().IsMatch(draft.Content.Template))
        {
            problems.Add("'content.template' is 1 to 128 characters: letters, digits, '_', '-' and '.'.");
        }

        if (draft.Content.Personalization.Length > MaxPersonalization
            || draft.Content.Personalization.Any(f => !FieldPattern().IsMatch(f)))
        {
            problems.Add($"'content.personalization' lists at most {MaxPersonalization} field names (a profile field such as totalSpent, or a trait such as firstName).");
        }

        if (draft.Caps.Length > MaxCaps)
        {
            problems.Add($"A campaign has at most {MaxCaps} caps.");
        }

        foreach (var cap in draft.Caps)
        {
            if (cap.Count is < 1 or > 1_000)
            {
                problems.Add("A cap's 'count' is from 1 to 1000.");
            }

            if (ParsePeriod(cap.Period) is null)
            {
                problems.Add($"A cap's 'period' is a duration from 1m to 90d such as 24h or 7d, not '{cap.Period}'.");
            }

            if (cap.Scope is not (CampaignScope or GlobalScope))
            {
                problems.Add($"A cap's 'scope' is '{CampaignScope}' or '{GlobalScope}'.");
            }
        }

        if (draft.Priority is < -1_000_000 or > 1_000_000)
        {
            problems.Add("'priority' is an integer from -1000000 to 1000000.");
        }

        return problems;
    }

    /// <summary>A new campaign id.</summary>
    public static string NewId() => "cmp_" + Guid.CreateVersion7().ToString("N")[..16];

    public static string ContentJson(CampaignContent content) => JsonSerializer.Serialize(content, CampaignJsonContext.Default.CampaignContent);

    public static CampaignContent ReadContent(string json) => JsonSerializer.Deserialize(json, CampaignJsonContext.Default.CampaignContent)!;

    public static string CapsJson(CampaignCap[] caps) => JsonSerializer.Serialize(caps, CampaignJsonContext.Default.CampaignCapArray);

    public static CampaignCap[] ReadCaps(string json) => JsonSerializer.Deserialize(json, CampaignJsonContext.Default.CampaignCapArray)!;

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,128}$")]
    private static partial Regex TemplatePattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    private static partial Regex FieldPattern();

    [GeneratedRegex("^([0-9]{1,6})([mhdw])$")]
    private static partial Regex PeriodPattern();
}

/// <summary>JSON of the stored content and caps columns.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(CampaignContent))]
[JsonSerializable(typeof(CampaignCap[]))]
internal sealed partial class CampaignJsonContext : JsonSerializerContext;
