using System.Text.Json;
using System.Text.Json.Serialization;
using Audience.Silo.Contracts;
using Audience.Silo.Hosting;

namespace Audience.Api.Features;

/// <summary>
/// Source-generated JSON for every body the API reads or writes: first in ASP.NET Core's resolver chain, so that answers
/// are written from generated metadata, with ASP.NET Core's options (web defaults: camelCase names, nulls written),
/// which is the wire format the API has always had. A test checks that every type the endpoints declare is here. The
/// request types only describe bodies that the handlers read themselves (<c>Accepts&lt;T&gt;</c>).
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(EventsApi.EventRequest))]
[JsonSerializable(typeof(EventsApi.EventRequest[]))]
[JsonSerializable(typeof(EventsApi.EventAccepted))]
[JsonSerializable(typeof(ErasureApi.ErasureAccepted))]
[JsonSerializable(typeof(EventsApi.BatchAccepted))]
[JsonSerializable(typeof(EventsApi.BatchItem[]))]
[JsonSerializable(typeof(SegmentsApi.SegmentRequest))]
[JsonSerializable(typeof(SegmentsApi.PreviewRequest))]
[JsonSerializable(typeof(SegmentsApi.SegmentResponse))]
[JsonSerializable(typeof(SegmentsApi.SegmentResponse[]))]
[JsonSerializable(typeof(SegmentsApi.PreviewResponse))]
[JsonSerializable(typeof(SegmentsApi.MembersResponse))]
[JsonSerializable(typeof(SegmentsApi.SizeResponse))]
[JsonSerializable(typeof(SegmentsApi.ExplainResponse))]
[JsonSerializable(typeof(UsersApi.ProfileResponse))]
[JsonSerializable(typeof(UsersApi.UserSegmentsResponse))]
[JsonSerializable(typeof(UsersApi.HistoryResponse))]
[JsonSerializable(typeof(CampaignsApi.CampaignRequest))]
[JsonSerializable(typeof(CampaignsApi.CampaignResponse))]
[JsonSerializable(typeof(CampaignsApi.CampaignResponse[]))]
[JsonSerializable(typeof(CampaignsApi.NotificationsResponse))]
[JsonSerializable(typeof(CampaignsApi.StatsResponse))]
[JsonSerializable(typeof(MembershipChangeMessage))]
[JsonSerializable(typeof(NotificationRequest))]
[JsonSerializable(typeof(Problems.RuleError[]))]
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(ReadinessResponse))]
[JsonSerializable(typeof(LiveResponse))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
