using System.Linq.Expressions;
using System.Text.Json.Nodes;
using Audience.Rules;
using Audience.Rules.Compilation;
using Audience.Rules.Profiles;
using Audience.Silo.Contracts;
using NRules;
using NRules.RuleModel;
using NRules.RuleModel.Builders;

namespace Audience.Silo.Campaigns;

/// <summary>A membership change, as a fact campaign rules match on.</summary>
public sealed record MembershipTrigger(string SegmentId, bool Entered, string ChangeId, long At);

/// <summary>A scheduled campaign's broadcast reaching a member, as a fact.</summary>
public sealed record ScheduledTrigger(string CampaignId, string SegmentId, long At);

/// <summary>The user's profile, read-only, as a fact: what conditions read and personalization fills in.</summary>
public sealed record ProfileFact(UserProfile Profile, long Now);

/// <summary>
/// The user's recent sends, as a fact: the campaigns' actions note what matched (<see cref="Matched"/>), and
/// <see cref="Settle"/> then applies the caps in priority order, each send counting for the campaigns after it.
/// </summary>
public sealed class SendLedger(List<CampaignSend> sends)
{
    /// <summary>The most sends kept per user: a cap counts at most 1,000.</summary>
    public const int MaxSends = 1_000;

    public List<CampaignSend> Sends { get; } = sends;

    /// <summary>What the campaigns' rules matched in this evaluation, in firing order (salience first).</summary>
    public List<(CampaignRecord Campaign, string SegmentId, string NotificationId, long At)> Matched { get; } = [];

    /// <summary>
    /// Turns what matched into notifications: highest priority first (within a priority, in the order the rules
    /// fired), each capped when the sends before it, this evaluation's included, reach one of its caps. A send the user
    /// already had (a broadcast page reached again after a crash) is not counted twice.
    /// </summary>
    public List<CampaignFiring> Settle(UserProfile profile)
    {
        var firings = new List<CampaignFiring>(Matched.Count);
        foreach (var (campaign, segmentId, notificationId, at) in Matched.Select((m, i) => (m, i)).OrderByDescending(x => x.m.Campaign.Priority).ThenBy(x => x.i).Select(x => x.m))
        {
            var send = new CampaignSend(campaign.Id, at);
            var capped = !Sends.Contains(send) && Capped(campaign, at);
            firings.Add(new CampaignFiring(CampaignRules.Request(campaign, profile, segmentId, notificationId, at), capped));
            if (!capped && !Sends.Contains(send))
            {
                Sends.Add(send);
            }
        }

        if (Sends.Count > MaxSends)
        {
            Sends.RemoveRange(0, Sends.Count - MaxSends);
        }

        return firings;
    }

    /// <summary>Whether a cap of <paramref name="campaign"/> stops a send at <paramref name="at"/>.</summary>
    public bool Capped(CampaignRecord campaign, long at)
    {
        foreach (var cap in campaign.Caps)
        {
            var since = at - cap.PeriodMs;
            var count = 0;
            foreach (var send in Sends)
            {
                if (send.At > since && (cap.Global || send.CampaignId == campaign.Id))
                {
                    count++;
                }
            }

            if (count >= cap.Count)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>One notification sent to the user, kept in the profile for caps.</summary>
public readonly record struct CampaignSend(string CampaignId, long At);

/// <summary>
/// The active campaigns that fire on membership changes, as one NRules rule set. Each campaign is an NRules rule built
/// through the rule model: a <see cref="MembershipTrigger"/> of its segment and direction, the <see cref="ProfileFact"/>
/// its condition (our rule language, compiled) accepts, and the user's <see cref="SendLedger"/>; its priority is the
/// rule's salience, so when several fire for one change the higher fire first; its action notes the match, and the
/// ledger then applies the caps in priority order (each send counting for the campaigns after it) and yields one
/// notification request per match.
/// Built once per change of the campaigns, off the evaluation path, as one compiled set per segment; a session is created
/// per evaluation (a grain call that changed memberships of a segment some campaign listens to), since a session per
/// user grain would keep NRules' working memory for every active user.
/// </summary>
public sealed class CampaignRules : IDisposable
{
    /// <summary>
    /// A compiled rule set per segment, of the campaigns on it: an NRules session allocates working memory for every
    /// node of its network, so one set for all campaigns made a change cost in proportion to every campaign (0.57 ms and
    /// 1 MB with 1,000), where a set per segment costs in proportion to the campaigns on the changed segment.
    /// </summary>
    private readonly Dictionary<string, ISessionFactory> _bySegment;

    private readonly List<CompiledRule> _conditions;

    /// <summary>The segments and directions some campaign listens to: a change no campaign listens to creates no session.</summary>
    private readonly HashSet<(string SegmentId, bool Entered)> _listening;

    private CampaignRules(IReadOnlyList<CampaignRecord> campaigns, Dictionary<string, ISessionFactory> bySegment, List<CompiledRule> conditions, string stamp)
    {
        Campaigns = campaigns;
        _bySegment = bySegment;
        _conditions = conditions;
        Stamp = stamp;
        _listening = [.. campaigns.Where(c => c.FiresOnChanges).Select(c => (c.SegmentId, c.Trigger == Campaign.OnEnter))];
        LongestPeriodMs = campaigns.SelectMany(c => c.Caps).Select(c => c.PeriodMs).DefaultIfEmpty(0).Max();
    }

    public static CampaignRules Empty { get; } = new([], [], [], string.Empty);

    /// <summary>The campaigns this set fires: active, on a membership change or on their broadcast.</summary>
    public IReadOnlyList<CampaignRecord> Campaigns { get; }

    /// <summary>The store's stamp the set was built from.</summary>
    public string Stamp { get; }

    /// <summary>The campaigns' versions this set holds, by id: what <c>live</c> reports.</summary>
    public long? VersionOf(string campaignId) => Campaigns.FirstOrDefault(c => c.Id == campaignId)?.Version;

    /// <summary>The longest cap period of the set: sends older than that no longer count.</summary>
    public long LongestPeriodMs { get; }

    /// <summary>Compiles the rule set; <paramref name="compile"/> turns a condition into a predicate over the profile.</summary>
    public static CampaignRules Build(IEnumerable<CampaignRecord> all, Func<string, CompiledRule> compile, string stamp)
    {
        var campaigns = all.Where(c => c.FiresOnChanges || c.Broadcasts).ToList();
        var conditions = new List<CompiledRule>();
        var bySegment = new Dictionary<string, ISessionFactory>(StringComparer.Ordinal);
        try
        {
            var compiler = new NRules.RuleCompiler();
            foreach (var segment in campaigns.GroupBy(c => c.SegmentId, StringComparer.Ordinal))
            {
                var definitions = new List<IRuleDefinition>();
                foreach (var campaign in segment)
                {
                    var condition = campaign.Condition is { } text ? compile(text) : null;
                    if (condition is not null)
                    {
                        conditions.Add(condition);
                    }

                    definitions.Add(Define(campaign, condition));
                }

                bySegment[segment.Key] = compiler.Compile(definitions);
            }

            return new CampaignRules(campaigns, bySegment, conditions, stamp);
        }
        catch
        {
            conditions.ForEach(c => c.Dispose());
            throw;
        }
    }

    private static IRuleDefinition Define(CampaignRecord campaign, CompiledRule? condition)
    {
        var rule = new RuleBuilder();
        rule.Name($"campaign {campaign.Id} v{campaign.Version}");
        rule.Priority(campaign.Priority);
        var when = rule.LeftHandSide();

        ParameterExpression t;
        if (campaign.Trigger == Campaign.Scheduled)
        {
            var trigger = when.Pattern(typeof(ScheduledTrigger), "trigger");
            t = trigger.Declaration.ToParameterExpression();
            trigger.Condition(Expression.Lambda(
                Expression.Equal(Expression.Property(t, nameof(ScheduledTrigger.CampaignId)), Expression.Constant(campaign.Id)), t));
        }
        else
        {
            var trigger = when.Pattern(typeof(MembershipTrigger), "trigger");
            t = trigger.Declaration.ToParameterExpression();
            trigger.Condition(Expression.Lambda(
                Expression.AndAlso(
                    Expression.Equal(Expression.Property(t, nameof(MembershipTrigger.SegmentId)), Expression.Constant(campaign.SegmentId)),
                    Expression.Equal(Expression.Property(t, nameof(MembershipTrigger.Entered)), Expression.Constant(campaign.Trigger == Campaign.OnEnter))),
                t));
        }

        var profile = when.Pattern(typeof(ProfileFact), "profile");
        var p = profile.Declaration.ToParameterExpression();
        if (condition is not null)
        {
            profile.Condition(Expression.Lambda(
                Expression.Call(Expression.Constant(condition), nameof(CompiledRule.Evaluate),
                    null, Expression.Property(p, nameof(ProfileFact.Profile)), Expression.Property(p, nameof(ProfileFact.Now))),
                p));
        }

        var ledger = when.Pattern(typeof(SendLedger), "ledger");
        var l = ledger.Declaration.ToParameterExpression();

        var context = Expression.Parameter(typeof(IContext), "context");
        rule.RightHandSide().Action(Expression.Lambda(
            Expression.Call(typeof(CampaignRules).GetMethod(nameof(Fire), [typeof(CampaignRecord), t.Type, typeof(ProfileFact), typeof(SendLedger)])!,
                Expression.Constant(campaign), t, p, l),
            context, t, p, l));
        return rule.Build();
    }

    /// <summary>A campaign's action on a membership change: it matched; <see cref="SendLedger.Settle"/> applies the caps.</summary>
    public static void Fire(CampaignRecord campaign, MembershipTrigger trigger, ProfileFact profile, SendLedger ledger) =>
        ledger.Matched.Add((campaign, trigger.SegmentId, $"{campaign.Id}/{trigger.ChangeId}", trigger.At));

    /// <summary>A scheduled campaign's action for one member.</summary>
    public static void Fire(CampaignRecord campaign, ScheduledTrigger trigger, ProfileFact profile, SendLedger ledger) =>
        ledger.Matched.Add((campaign, trigger.SegmentId, $"{campaign.Id}/{profile.Profile.UserId}/scheduled/{trigger.At}", trigger.At));

    /// <summary>
    /// Evaluates the campaigns for a user's membership changes; returns what fired, in firing order, and adds the
    /// sends to <paramref name="sends"/>.
    /// </summary>
    public List<CampaignFiring> Evaluate(IReadOnlyList<MembershipChangeMessage> changes, UserProfile profile, List<CampaignSend> sends, long now)
    {
        if (!changes.Any(c => _listening.Contains((c.SegmentId, c.Action == "added"))))
        {
            return [];
        }

        // A session per segment changed; what matched in all of them is settled together, in priority order.
        var ledger = new SendLedger(sends);
        var fact = new ProfileFact(profile, now);
        foreach (var segment in changes.GroupBy(c => c.SegmentId, StringComparer.Ordinal))
        {
            if (!segment.Any(c => _listening.Contains((c.SegmentId, c.Action == "added"))))
            {
                continue;
            }

            var session = _bySegment[segment.Key].CreateSession();
            session.Insert(fact);
            session.Insert(ledger);
            foreach (var change in segment)
            {
                session.Insert(new MembershipTrigger(change.SegmentId, change.Action == "added", change.Metadata.ChangeId ?? string.Empty,
                    change.Timestamp.ToUnixTimeMilliseconds()));
            }

            session.Fire();
        }

        return ledger.Settle(profile);
    }

    /// <summary>
    /// Evaluates a scheduled campaign's broadcast for one member: one notification, a capped one, or nothing when its
    /// condition does not hold or the user is no longer a member (the membership index lags the grains).
    /// </summary>
    public List<CampaignFiring> EvaluateScheduled(CampaignRecord campaign, long scheduledAt, UserProfile profile, List<CampaignSend> sends, long now)
    {
        if (!profile.IsMember(profile.Catalog.SegmentSlot(campaign.SegmentId)))
        {
            return [];
        }

        var ledger = new SendLedger(sends);
        var session = _bySegment[campaign.SegmentId].CreateSession();
        session.Insert(new ProfileFact(profile, now));
        session.Insert(ledger);
        session.Insert(new ScheduledTrigger(campaign.Id, campaign.SegmentId, scheduledAt));
        session.Fire();
        return ledger.Settle(profile);
    }

    /// <summary>The notification request: seed 004's format, personalised from the profile.</summary>
    public static NotificationRequest Request(CampaignRecord campaign, UserProfile profile, string segmentId, string notificationId, long at)
    {
        var personalization = new JsonObject();
        if (profile.Traits.TryGetValue("firstName", out var firstName))
        {
            personalization["firstName"] = Json(firstName);
        }

        personalization["totalSpent"] = profile.TotalSpent;
        foreach (var field in campaign.Content.Personalization)
        {
            personalization[field] = field switch
            {
                "totalSpent" => profile.TotalSpent,
                "orderCount" => profile.OrderCount,
                "eventCount" => profile.EventCount,
                "firstSeen" => profile.FirstSeen is { } f ? DateTimeOffset.FromUnixTimeMilliseconds(f) : null,
                "lastSeen" => profile.LastSeen is { } s ? DateTimeOffset.FromUnixTimeMilliseconds(s) : null,
                _ => profile.Traits.TryGetValue(field, out var value) ? Json(value) : null,
            };
        }

        return new NotificationRequest(notificationId, campaign.Id, profile.UserId, campaign.Type, campaign.Content.Template, campaign.Content.Subject,
            personalization, campaign.Trigger, segmentId, DateTimeOffset.FromUnixTimeMilliseconds(at));
    }

    private static JsonNode? Json(Value value)
    {
        using var buffer = new MemoryStream();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            EventValues.Write(writer, value);
        }

        return JsonNode.Parse(buffer.ToArray());
    }

    public void Dispose() => _conditions.ForEach(c => c.Dispose());
}
