using Audience.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Audience.Silo;

/// <summary>
/// The Silo as its own process, for Kafka mode: <c>dotnet run --project Silo/Audience.Silo</c> with
/// <c>Kafka__BootstrapServers</c> and <c>Postgres__ConnectionString</c> set. Any number of them form one Orleans
/// cluster through PostgreSQL and share the partitions of <c>user-events</c> and the users' grains.
/// </summary>
public static class SiloProgram
{
    public static async Task<int> Main(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(AudienceServices.HostArguments(args));
        builder.Configuration.AddLoggingDefaults();
        if (AudienceMode.ReadOrReport(builder.Configuration, siloProcess: true, Console.Error) is not { } mode)
        {
            return 2;
        }

        builder.Services.AddAudienceCore(builder.Configuration, mode);
        builder.UseOrleans(silo => silo.AddAudienceSilo(mode));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        using var host = builder.Build();
        await host.Services.PrepareStorageAsync();
        await host.RunAsync();
        return 0;
    }
}
