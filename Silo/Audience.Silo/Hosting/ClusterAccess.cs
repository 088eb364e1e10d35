using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Hosting;

/// <summary>How this process reaches the grains: its own silo (embedded), or the cluster as a client (the Api in Kafka mode).</summary>
public interface IClusterAccess
{
    /// <summary>The grains; throws <see cref="ClusterUnavailableException"/> while no silo can be reached.</summary>
    IGrainFactory Grains { get; }
}

/// <summary>No silo of the cluster can be reached yet; queries answer 503 and ingestion goes on.</summary>
public sealed class ClusterUnavailableException(string message) : Exception(message);

/// <summary>The silo this process hosts.</summary>
public sealed class LocalCluster(IGrainFactory grains) : IClusterAccess
{
    public IGrainFactory Grains => grains;
}

/// <summary>
/// The Api's way into the silos' cluster in Kafka mode: an Orleans client in a host of its own, started in the
/// background and retrying until a silo answers, so that the Api takes events (they go to Kafka) whether or not any
/// silo is up; user queries answer 503 until the client is connected. A client whose start failed is thrown away, and a
/// new one starts on the <see cref="Resilience.ClusterConnect"/> pipeline's backoff.
/// </summary>
public sealed partial class RemoteCluster(IConfiguration configuration, AudienceMode mode, ILoggerFactory loggers, Resilience resilience, ILogger<RemoteCluster> logger)
    : BackgroundService, IClusterAccess
{
    private volatile IHost? _client;

    public IGrainFactory Grains => _client?.Services.GetRequiredService<IClusterClient>()
        ?? throw new ClusterUnavailableException("No Silo of the cluster can be reached yet.");

    public bool Connected => _client is not null;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var connecting = resilience.Retry(Resilience.ClusterConnect, Resilience.Connection, static _ => true, args =>
        {
            LogNotConnected(args.Outcome.Exception!, args.RetryDelay);
            return ValueTask.CompletedTask;
        });
        IHost? host = null;
        try
        {
            host = await connecting.ExecuteAsync(static async (cluster, cancellationToken) => await cluster.Connect(cancellationToken).ConfigureAwait(false),
                this, stoppingToken).ConfigureAwait(false);
            _client = host;
            LogConnected();
            await Task.Delay(Timeout.Infinite, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            _client = null;
            if (host is not null)
            {
                await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
                host.Dispose();
            }
        }
    }

    /// <summary>Starts a client; one that cannot reach a silo is stopped and thrown away whole.</summary>
    private async Task<IHost> Connect(CancellationToken cancellationToken)
    {
        // No defaults of its own: the Api's configuration and logging, and no file watchers.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(configuration);
        builder.Services.AddSingleton(loggers);
        builder.UseOrleansClient(client => client.AddAudienceClient(mode));
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            return host;
        }
        catch (Exception)
        {
            using (host)
            {
                await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }

            throw;
        }
    }

    [LoggerMessage(EventId = LogEvents.ClusterConnected, Level = LogLevel.Information, Message = "Connected to the Silo cluster")]
    private partial void LogConnected();

    [LoggerMessage(EventId = LogEvents.ClusterNotConnected, Level = LogLevel.Information, Message = "No Silo of the cluster answers yet; trying again in {Delay}")]
    private partial void LogNotConnected(Exception exception, TimeSpan delay);
}
