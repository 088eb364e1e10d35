using Audience.Silo.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Audience.Silo;

/// <summary>
/// The Silo as its own process, for Kafka mode: <c>dotnet run --project Silo/Audience.Silo</c> with
/// <c>Kafka__BootstrapServers</c> and <c>Postgres__ConnectionString</c> set. Any number of them form one Orleans
/// cluster through PostgreSQL and share the partitions of <c>user-events</c> and the users' grains. It serves
/// <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c> over HTTP on <c>urls</c> (<c>ASPNETCORE_URLS</c>,
/// <c>--urls</c>), by default <see cref="DefaultUrls"/>, beside an Api's default port.
/// </summary>
public static class SiloProgram
{
    public const string DefaultUrls = "http://localhost:5100";

    public static async Task<int> Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(AudienceServices.HostArguments(args));
        builder.Configuration.AddLoggingDefaults();
        if (AudienceMode.ReadOrReport(builder.Configuration, siloProcess: true, Console.Error) is not { } mode)
        {
            return 2;
        }

        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
        {
            builder.WebHost.UseUrls(DefaultUrls);
        }

        builder.Services.AddAudienceCore(builder.Configuration, mode);
        builder.UseOrleans(silo => silo.AddAudienceSilo(mode));
        builder.Services.AddReadiness(mode, siloProcess: true);
        builder.Services.AddAudienceTelemetry(builder.Configuration, "audience-silo");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        await using var app = builder.Build();
        await app.Services.PrepareStorageAsync();
        app.MapGet("/health/live", () => TypedResults.Ok(new LiveResponse("live")));
        app.MapReadiness(mode);
        app.MapPrometheusScrapingEndpoint();
        await app.RunAsync();
        return 0;
    }
}
