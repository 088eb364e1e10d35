using System.Globalization;
using System.Threading.RateLimiting;
using Audience.Api.Features;
using Audience.Silo.Hosting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Audience.Api.Access;

/// <summary>API keys, scopes, per-key rate limits, CORS and Kestrel's limits, wired into ASP.NET Core's own middleware.</summary>
public static partial class AccessServices
{
    /// <summary>The rate-limiting policy of ingestion and authoring: a token bucket per key name.</summary>
    public const string PerKeyLimit = "per-key";

    private const string CorsPolicy = "configured-origins";

    public static WebApplicationBuilder AddAudienceAccess(this WebApplicationBuilder builder, SecurityOptions security)
    {
        builder.Services.AddAudienceAccess(security);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxConcurrentConnections = security.MaxConcurrentConnections;
            // An upgraded connection (none today) would count here too; bound it the same way.
            kestrel.Limits.MaxConcurrentUpgradedConnections = security.MaxConcurrentConnections;
            kestrel.Limits.RequestHeadersTimeout = security.RequestHeadersTimeout;
            kestrel.Limits.MinRequestBodyDataRate = security.MinRequestBodyBytesPerSecond > 0
                ? new MinDataRate(security.MinRequestBodyBytesPerSecond, security.MinRequestBodyGracePeriod)
                : null;
        });
        return builder;
    }

    /// <summary>The services alone (the tests use them on a plain service collection).</summary>
    public static IServiceCollection AddAudienceAccess(this IServiceCollection services, SecurityOptions security)
    {
        var keys = new ApiKeys(security);
        services.AddSingleton(security);
        services.AddSingleton(keys);
        services.AddSingleton(new StreamSubscribers(security.MaxStreamSubscribers));
        services.AddAuthentication(ApiKeys.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeys.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(AccessScopes.Ingest, p => p.RequireAuthenticatedUser().RequireClaim(ApiKeys.ScopeClaim, AccessScopes.Ingest))
            .AddPolicy(AccessScopes.Read, p => p.RequireAuthenticatedUser().RequireClaim(ApiKeys.ScopeClaim, AccessScopes.Read))
            .AddPolicy(AccessScopes.Admin, p => p.RequireAuthenticatedUser().RequireClaim(ApiKeys.ScopeClaim, AccessScopes.Admin));
        services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(PerKeyLimit, context =>
                context.User.Identity?.Name is { } name && keys.RequestsPerSecond.GetValueOrDefault(name) is { } perSecond
                    ? RateLimitPartition.GetTokenBucketLimiter(name, _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = perSecond,
                        TokensPerPeriod = perSecond,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    })
                    : RateLimitPartition.GetNoLimiter(string.Empty));
            limiter.OnRejected = (rejected, _) =>
            {
                var seconds = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
                    ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))
                    : 1;
                var name = rejected.HttpContext.User.Identity?.Name;
                var perSecond = name is null ? null : keys.RequestsPerSecond.GetValueOrDefault(name);
                return new ValueTask(Problems.TooManyRequests(
                        $"The key '{name}' may make {perSecond?.ToString(CultureInfo.InvariantCulture) ?? "a limited number of"} ingestion and authoring requests per second; try again in {seconds} s.",
                        seconds)
                    .ExecuteAsync(rejected.HttpContext));
            };
        });
        if (security.Cors.Origins.Length > 0)
        {
            services.AddCors(cors => cors.AddPolicy(CorsPolicy, policy => policy
                .WithOrigins(security.Cors.Origins)
                .WithMethods("GET", "POST", "PUT", "DELETE")
                .WithHeaders(ApiKeys.Header, "Content-Type")
                .WithExposedHeaders("Retry-After", "Location")));
        }

        return services;
    }

    /// <summary>CORS, authentication, authorization and rate limiting, in that order (after routing).</summary>
    public static WebApplication UseAudienceAccess(this WebApplication app)
    {
        var security = app.Services.GetRequiredService<SecurityOptions>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Audience.Api.Access");
        if (app.Services.GetRequiredService<ApiKeys>().LoopbackOnly)
        {
            NoKeys(log);
        }
        else
        {
            // Names only: the keys are never configured, and their hashes are not logged either.
            var names = string.Join(", ", security.ApiKeys.Select(k => $"{k.Name} ({string.Join("+", k.Scopes)})"));
            KeysConfigured(log, security.ApiKeys.Length, names);
        }

        if (security.Cors.Origins.Length > 0)
        {
            app.UseCors(CorsPolicy);
        }

        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        return app;
    }

    /// <summary>Authoring (segments, campaigns, previews): the admin scope, and the key's rate limit.</summary>
    public static TBuilder Authoring<TBuilder>(this TBuilder endpoint)
        where TBuilder : IEndpointConventionBuilder =>
        endpoint.RequireScope(AccessScopes.Admin).RateLimitedPerKey();

    /// <summary>
    /// The scope's policy, and in the OpenAPI document the ProblemDetails answers it gives in the endpoint's stead:
    /// 401 (no key or an unknown one) and 403 (the key lacks the scope; or no key is configured and the request is not
    /// from this machine).
    /// </summary>
    public static TBuilder RequireScope<TBuilder>(this TBuilder endpoint, string scope)
        where TBuilder : IEndpointConventionBuilder =>
        endpoint.RequireAuthorization(scope)
            .WithMetadata(
                Problem(StatusCodes.Status401Unauthorized, $"No {ApiKeys.Header} header, or an unknown key (WWW-Authenticate: {ApiKeys.Challenge})."),
                Problem(StatusCodes.Status403Forbidden, "The key lacks the scope; or no key is configured and the request is not from this machine."));

    /// <summary>The key's rate limit, and its 429 (with <c>Retry-After</c>) in the OpenAPI document.</summary>
    public static TBuilder RateLimitedPerKey<TBuilder>(this TBuilder endpoint)
        where TBuilder : IEndpointConventionBuilder =>
        endpoint.RequireRateLimiting(PerKeyLimit)
            .WithMetadata(Problem(StatusCodes.Status429TooManyRequests, "Over the key's Security:ApiKeys:N:RequestsPerSecond; Retry-After says when to try again."));

    private static ProducesResponseTypeMetadata Problem(int status, string description) =>
        new(status, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]) { Description = description };

    [LoggerMessage(EventId = LogEvents.AccessNoKeys, Level = LogLevel.Warning,
        Message = "No API key is configured (Security:ApiKeys): the API answers only connections from this machine (loopback), with every scope and no rate limit. Configure keys before exposing it")]
    private static partial void NoKeys(ILogger logger);

    [LoggerMessage(EventId = LogEvents.AccessKeysConfigured, Level = LogLevel.Information, Message = "{Count} API keys configured: {Keys}")]
    private static partial void KeysConfigured(ILogger logger, int count, string keys);
}

/// <summary>
/// Bounds the open Server-Sent Events streams across every live feed: each holds a connection and a subscription
/// buffer, so without a bound a client could open them until memory ran out.
/// </summary>
public sealed class StreamSubscribers(int max)
{
    private int _open;

    public int Max => max;

    public int Open => Volatile.Read(ref _open);

    /// <summary>Takes a place; false when all are taken. A true must be followed by <see cref="Leave"/>.</summary>
    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _open) <= max)
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        return false;
    }

    public void Leave() => Interlocked.Decrement(ref _open);
}
