using System.Globalization;
using Audience.Silo.Hosting;

namespace Audience.Api.Access;

/// <summary>One API key: its name (for logs and rate limits), the SHA-256 of the key and what it may do.</summary>
public sealed class ApiKeyOptions
{
    public string Name { get; init; } = string.Empty;

    /// <summary>The SHA-256 of the key's UTF-8 bytes, 64 lowercase hex digits; the key itself is never configured.</summary>
    public string Sha256 { get; init; } = string.Empty;

    public string[] Scopes { get; init; } = [];

    /// <summary>Requests per second this key may make to ingestion and authoring, per process; unset = no limit.</summary>
    public int? RequestsPerSecond { get; init; }
}

/// <summary>CORS: the origins a browser page may call the API from; none = no CORS headers.</summary>
public sealed class CorsOptions
{
    public string[] Origins { get; init; } = [];
}

/// <summary>The <c>Security</c> section: API keys, CORS and the limits that keep slow or abusive clients at bay.</summary>
public sealed class SecurityOptions
{
    public ApiKeyOptions[] ApiKeys { get; init; } = [];

    public CorsOptions Cors { get; init; } = new();

    /// <summary>Open Server-Sent Events streams (<c>/api/changes</c> and <c>/api/notifications</c> together) at most.</summary>
    public int MaxStreamSubscribers { get; init; } = 1_000;

    public int MaxConcurrentConnections { get; init; } = 10_000;

    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A request body arriving slower than this (after a grace period) is cut off: a slowloris holds no connection.</summary>
    public double MinRequestBodyBytesPerSecond { get; init; } = 240;

    public TimeSpan MinRequestBodyGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Reads and checks the section; a bad setting is reported on <paramref name="error"/> and gives null.</summary>
    public static SecurityOptions? ReadOrReport(IConfiguration configuration, TextWriter error)
    {
        try
        {
            return Read(configuration);
        }
        catch (ConfigurationException e)
        {
            error.WriteLine(e.Message);
            return null;
        }
    }

    /// <summary>Reads and checks the section; a bad setting stops start-up with a message naming its key.</summary>
    public static SecurityOptions Read(IConfiguration configuration)
    {
        SecurityOptions options;
        try
        {
            options = configuration.GetSection("Security").Get<SecurityOptions>() ?? new SecurityOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new ConfigurationException("Security", $"valid ({e.InnerException?.Message ?? e.Message})");
        }

        options.Validate();
        return options;
    }

    private void Validate()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < ApiKeys.Length; i++)
        {
            var key = ApiKeys[i];
            var at = "Security:ApiKeys:" + i.ToString(CultureInfo.InvariantCulture);
            if (string.IsNullOrWhiteSpace(key.Name) || !names.Add(key.Name))
            {
                throw new ConfigurationException(at + ":Name", "a name no other key has (it appears in logs and rate limits)");
            }

            if (key.Sha256.Length != 64 || !key.Sha256.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
            {
                throw new ConfigurationException(at + ":Sha256", "the SHA-256 of the key in 64 lowercase hex digits, such as the output of printf %s \"$KEY\" | sha256sum");
            }

            if (key.Scopes.Length == 0 || key.Scopes.Any(s => !AccessScopes.All.Contains(s)))
            {
                throw new ConfigurationException(at + ":Scopes", $"one or more of {string.Join(", ", AccessScopes.All)}");
            }

            if (key.RequestsPerSecond is <= 0)
            {
                throw new ConfigurationException(at + ":RequestsPerSecond", "a positive number of requests per second, or unset for no limit");
            }
        }

        foreach (var origin in Cors.Origins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/")
            {
                throw new ConfigurationException("Security:Cors:Origins", $"origins such as https://app.example.com (scheme, host and port only), not '{origin}'");
            }
        }

        Positive(MaxStreamSubscribers, "Security:MaxStreamSubscribers");
        Positive(MaxConcurrentConnections, "Security:MaxConcurrentConnections");
        if (RequestHeadersTimeout <= TimeSpan.Zero)
        {
            throw new ConfigurationException("Security:RequestHeadersTimeout", "a positive time span such as 00:00:30");
        }

        if (MinRequestBodyBytesPerSecond < 0 || MinRequestBodyGracePeriod < TimeSpan.FromSeconds(1))
        {
            throw new ConfigurationException("Security:MinRequestBodyBytesPerSecond",
                "0 (no minimum) or more bytes per second, with Security:MinRequestBodyGracePeriod at least 00:00:01");
        }
    }

    private static void Positive(int value, string key)
    {
        if (value <= 0)
        {
            throw new ConfigurationException(key, "a positive number");
        }
    }
}

/// <summary>The scopes a key may hold, which are also the names of the authorization policies.</summary>
public static class AccessScopes
{
    /// <summary><c>POST /api/events</c> and <c>/api/events/batch</c>.</summary>
    public const string Ingest = "ingest";

    /// <summary>Every <c>GET</c> under <c>/api</c>: queries and live streams.</summary>
    public const string Read = "read";

    /// <summary>Everything: authoring segments and campaigns, previews, and what the other scopes allow.</summary>
    public const string Admin = "admin";

    public static readonly string[] All = [Ingest, Read, Admin];
}
