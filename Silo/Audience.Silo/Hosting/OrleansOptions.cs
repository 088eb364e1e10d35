using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;

namespace Audience.Silo.Hosting;

/// <summary>
/// Configuration section <c>Orleans</c>: which cluster this process belongs to and where its silo listens. Ports of
/// 0 (the default) pick a free port, so several silos run on one machine; a deployment sets fixed ones (the chart
/// uses 11111 and 30000).
/// </summary>
public sealed record OrleansOptions
{
    public string ClusterId { get; init; } = "audience";

    public string ServiceId { get; init; } = "audience";

    public int SiloPort { get; init; }

    public int GatewayPort { get; init; }

    /// <summary>The address other silos and clients reach this silo at; by default the machine's own.</summary>
    public IPAddress? AdvertisedIPAddress { get; init; }

    public static OrleansOptions Read(IConfiguration configuration)
    {
        var section = configuration.GetSection("Orleans");
        var options = new OrleansOptions
        {
            ClusterId = Text(section, "ClusterId") ?? "audience",
            ServiceId = Text(section, "ServiceId") ?? "audience",
            SiloPort = Port(section, "SiloPort"),
            GatewayPort = Port(section, "GatewayPort"),
        };
        if (section["AdvertisedIPAddress"] is { } address)
        {
            options = IPAddress.TryParse(address, out var ip)
                ? options with { AdvertisedIPAddress = ip }
                : throw new ConfigurationException("Orleans:AdvertisedIPAddress", $"an IP address such as 10.0.0.5, not '{address}'");
        }

        return options;
    }

    private static string? Text(IConfigurationSection section, string key)
    {
        var value = section[key];
        if (value is not null && (value.Length is 0 or > 150 || value.Any(char.IsControl)))
        {
            throw new ConfigurationException($"Orleans:{key}", "1 to 150 printable characters");
        }

        return value;
    }

    private static int Port(IConfigurationSection section, string key) =>
        section[key] is not { } value ? 0
        : int.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is >= 0 and <= 65535 ? port
        : throw new ConfigurationException($"Orleans:{key}", $"a port from 0 to 65535 (0 picks a free one), not '{value}'");

    /// <summary>A TCP port free on this machine now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
