using Audience.Silo.Hosting;
using Audience.Silo.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Audience.Silo;

/// <summary>
/// The Silo as its own process, for Kafka mode: <c>dotnet run --project Silo/Audience.Silo</c> with
/// <c>Kafka__BootstrapServers</c> and <c>Postgres__ConnectionString</c> set. Any number of them share the
/// partitions of <c>user-events</c> in one consumer group.
/// </summary>
public static class SiloProgram
{
    public static int Main(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        if (AudienceMode.ReadOrReport(builder.Configuration, siloProcess: true, Console.Error) is not { } mode)
        {
            return 2;
        }

        builder.Services.AddAudienceCore(builder.Configuration, mode);
        builder.Services.AddSingleton<KafkaSiloHost>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<KafkaSiloHost>());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        using var host = builder.Build();
        host.Run();
        return 0;
    }
}
