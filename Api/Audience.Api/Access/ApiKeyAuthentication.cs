using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Audience.Api.Features;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace Audience.Api.Access;

/// <summary>The configured keys, by the SHA-256 of each; with none, the API answers loopback connections only.</summary>
public sealed class ApiKeys
{
    public const string SchemeName = "ApiKey";
    public const string Header = "X-API-Key";
    public const string ScopeClaim = "scope";

    /// <summary>The hint a 401 gives, in the form of a <c>WWW-Authenticate</c> challenge.</summary>
    public const string Challenge = "ApiKey header=\"X-API-Key\"";

    private readonly Key[] _keys;

    public ApiKeys(SecurityOptions options)
    {
        _keys = [.. options.ApiKeys.Select(k => new Key(k, Convert.FromHexString(k.Sha256)))];
        RequestsPerSecond = options.ApiKeys.ToDictionary(k => k.Name, k => k.RequestsPerSecond, StringComparer.Ordinal);
    }

    /// <summary>No key is configured: the API answers loopback connections only, with every scope.</summary>
    public bool LoopbackOnly => _keys.Length == 0;

    public IReadOnlyDictionary<string, int?> RequestsPerSecond { get; }

    /// <summary>The principal of a loopback connection when no key is configured: every scope, no rate limit.</summary>
    public static ClaimsPrincipal Loopback { get; } = Principal(null, AccessScopes.All);

    /// <summary>
    /// The principal of the key whose SHA-256 is that of <paramref name="presented"/>, or null. Every configured hash is
    /// compared in constant time, so the time taken says nothing about how close the key came to one.
    /// </summary>
    public ClaimsPrincipal? Find(string presented)
    {
        var byteCount = Encoding.UTF8.GetByteCount(presented);
        var bytes = byteCount <= 256 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(presented, bytes);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes, hash);
        ClaimsPrincipal? found = null;
        foreach (var key in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, key.Hash))
            {
                found ??= key.Principal;
            }
        }

        return found;
    }

    /// <summary>True for a connection from this machine: a loopback address, or no IP at all (a Unix socket, in process).</summary>
    public static bool IsLoopback(ConnectionInfo connection) => connection.RemoteIpAddress switch
    {
        null => true,
        { IsIPv4MappedToIPv6: true } mapped => IPAddress.IsLoopback(mapped.MapToIPv4()),
        var address => IPAddress.IsLoopback(address),
    };

    private static ClaimsPrincipal Principal(string? name, IEnumerable<string> scopes)
    {
        var claims = new List<Claim>();
        if (name is not null)
        {
            claims.Add(new Claim(ClaimTypes.Name, name));
        }

        // admin holds every scope, so a policy asks for one claim.
        var all = scopes.Contains(AccessScopes.Admin) ? AccessScopes.All : scopes.Distinct();
        claims.AddRange(all.Select(s => new Claim(ScopeClaim, s)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
    }

    private sealed class Key(ApiKeyOptions options, byte[] hash)
    {
        public byte[] Hash { get; } = hash;

        public ClaimsPrincipal Principal { get; } = ApiKeys.Principal(options.Name, options.Scopes);
    }
}

/// <summary>
/// Authenticates the <c>X-API-Key</c> header against <see cref="ApiKeys"/>, and answers a missing or unknown key (401)
/// and a missing scope (403) as ProblemDetails. The key is never logged, nor put in a failure message.
/// </summary>
internal sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeys keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (keys.LoopbackOnly)
        {
            return Task.FromResult(ApiKeys.IsLoopback(Context.Connection)
                ? AuthenticateResult.Success(new AuthenticationTicket(ApiKeys.Loopback, ApiKeys.SchemeName))
                : AuthenticateResult.NoResult());
        }

        var values = Request.Headers[ApiKeys.Header];
        if (values.Count == 0 || string.IsNullOrEmpty(values[0]))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (values.Count > 1)
        {
            return Task.FromResult(AuthenticateResult.Fail($"More than one {ApiKeys.Header} header was sent."));
        }

        return Task.FromResult(keys.Find(values[0]!) is { } principal
            ? AuthenticateResult.Success(new AuthenticationTicket(principal, ApiKeys.SchemeName))
            : AuthenticateResult.Fail("The API key is not known."));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (keys.LoopbackOnly)
        {
            await Problems.Forbidden(
                    "No API key is configured, so the API answers only connections from this machine (loopback). "
                    + "Configure keys (Security:ApiKeys) to call it from elsewhere.")
                .ExecuteAsync(Context);
            return;
        }

        var result = await HandleAuthenticateOnceSafeAsync();
        Response.Headers.WWWAuthenticate = ApiKeys.Challenge;
        var why = result.Failure?.Message ?? $"No API key was sent.";
        await Problems.Unauthorized($"{why} Send a key in the {ApiKeys.Header} header (WWW-Authenticate: {ApiKeys.Challenge}).")
            .ExecuteAsync(Context);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        // The scope the endpoint asks for (its policies are named after scopes) that this key lacks: the endpoint's
        // own (admin to author) before its group's (read).
        var policies = Context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>() ?? [];
        var needed = policies.Select(p => p.Policy).LastOrDefault(p => p is not null && !Context.User.HasClaim(ApiKeys.ScopeClaim, p))
            ?? AccessScopes.Admin;
        var held = string.Join(", ", Context.User.FindAll(ApiKeys.ScopeClaim).Select(c => c.Value));
        await Problems.Forbidden($"The key '{Context.User.Identity?.Name}' lacks the scope '{needed}' this request needs (it has: {held}).")
            .ExecuteAsync(Context);
    }
}
