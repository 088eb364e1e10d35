using Audience.Rules.Engines;
using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo.Campaigns;
using Audience.Silo.Grains;
using Audience.Silo.Kafka;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.Hosting;

namespace Audience.Silo.Hosting;

/// <summary>
/// How this process is deployed, read from configuration: embedded (one process, SQLite, in-process log) or
/// Kafka mode (<c>Kafka:BootstrapServers</c> set; Api and Silo processes, segments in PostgreSQL); and which
/// engine its silo evaluates segments with.
/// </summary>
public sealed record AudienceMode(KafkaOptions? Kafka, string? PostgresConnectionString, string ProfileStoreKind, OrleansOptions Orleans,
    RulesOptions Rules, AerospikeStoreOptions? Aerospike = null)
{
    public bool IsKafka => Kafka is not null;

    /// <summary>Whether spans are recorded (<see cref="Telemetry.TracesEnabled"/>).</summary>
    public bool Traces { get; init; }

    /// <summary>Without the secrets (the connection string's password; Kafka's print themselves without theirs).</summary>
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        var postgres = PostgresConnectionString is null ? null
            : new Npgsql.NpgsqlConnectionStringBuilder(PostgresConnectionString) { Password = null }.ConnectionString;
        builder.Append($"Kafka = {Kafka}, PostgresConnectionString = {postgres}, ProfileStoreKind = {ProfileStoreKind}, Orleans = {Orleans}, ");
        builder.Append($"Rules = {Rules}, Aerospike = {Aerospike}, Traces = {Traces}");
        return true;
    }

    /// <summary>
    /// <see cref="Read"/>, for a process's start: a bad setting is reported on <paramref name="error"/> in one
    /// line naming its key, and the result is null (the process then exits with code 2).
    /// </summary>
    public static AudienceMode? ReadOrReport(IConfiguration configuration, bool siloProcess, TextWriter error)
    {
        try
        {
            return Read(configuration, siloProcess);
        }
        catch (ConfigurationException e)
        {
            error.WriteLine(e.Message);
            return null;
        }
    }

    /// <summary>Reads and checks the mode; a bad setting stops start-up with a message naming its key.</summary>
    public static AudienceMode Read(IConfiguration configuration, bool siloProcess)
    {
        KafkaOptions kafka;
        try
        {
            kafka = configuration.GetSection("Kafka").Get<KafkaOptions>() ?? new KafkaOptions();
        }
        catch (InvalidOperationException e)
        {
            // A value the binder cannot convert, such as an unknown SecurityProtocol: its message names the key and value.
            throw new ConfigurationException("Kafka", $"valid ({e.GetBaseException().Message})");
        }

        var traces = Telemetry.TracesEnabled(configuration);
        var orleans = OrleansOptions.Read(configuration);
        var rules = RulesOptions.Read(configuration);
        var postgres = configuration["Postgres:ConnectionString"];
        if (postgres is not null && string.IsNullOrWhiteSpace(postgres))
        {
            throw new ConfigurationException("Postgres:ConnectionString", "a PostgreSQL connection string such as 'Host=db;Username=audience;Password=...;Database=audience'");
        }

        if (postgres is not null)
        {
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(postgres);
            }
            catch (ArgumentException e)
            {
                throw new ConfigurationException("Postgres:ConnectionString", $"a valid PostgreSQL connection string ({e.Message})");
            }
        }

        var aerospike = ReadAerospike(configuration);
        var kind = configuration["ProfileStore:Kind"] ?? (aerospike is not null ? "aerospike" : postgres is null ? "embedded" : "postgres");
        if (kind is not ("embedded" or "postgres" or "aerospike"))
        {
            throw new ConfigurationException("ProfileStore:Kind", $"'embedded', 'postgres' or 'aerospike', not '{kind}'");
        }

        if (kind == "aerospike" && aerospike is null)
        {
            throw new ConfigurationException("Aerospike:Hosts", "the Aerospike seed nodes (host:port,...), because ProfileStore:Kind is 'aerospike'");
        }

        if (kind == "postgres" && postgres is null)
        {
            throw new ConfigurationException("Postgres:ConnectionString", "a connection string, because ProfileStore:Kind is 'postgres'");
        }

        if (!kafka.Enabled)
        {
            if (siloProcess)
            {
                throw new ConfigurationException("Kafka:BootstrapServers",
                    "the Kafka brokers (host:port,...): the Silo runs as its own process only in Kafka mode; embedded, run Api/Audience.Api alone");
            }

            return new AudienceMode(null, postgres, kind, orleans, rules, aerospike) { Traces = traces };
        }

        var errors = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(kafka, new(kafka), errors, validateAllProperties: true)
            || !System.ComponentModel.DataAnnotations.Validator.TryValidateObject(kafka.Topics, new(kafka.Topics), errors, validateAllProperties: true))
        {
            var member = errors[0].MemberNames.FirstOrDefault() ?? "?";
            throw new ConfigurationException($"Kafka:{member}", errors[0].ErrorMessage ?? "a valid value");
        }

        kafka.ValidateSecurity();

        if (postgres is null)
        {
            throw new ConfigurationException("Postgres:ConnectionString",
                "a connection string: in Kafka mode every Api and Silo process reads segment definitions from PostgreSQL");
        }

        if (kind == "embedded")
        {
            throw new ConfigurationException("ProfileStore:Kind",
                "'aerospike' or 'postgres' in Kafka mode: every Silo reads and writes the same profiles as users move between them, and the Api answers from them");
        }

        return new AudienceMode(kafka, postgres, kind, orleans, rules, aerospike) { Traces = traces };
    }

    /// <summary>The Aerospike settings, when <c>Aerospike:Hosts</c> is set.</summary>
    private static AerospikeStoreOptions? ReadAerospike(IConfiguration configuration)
    {
        var section = configuration.GetSection("Aerospike");
        if (string.IsNullOrWhiteSpace(section["Hosts"]))
        {
            return null;
        }

        AerospikeStoreOptions options;
        try
        {
            options = section.Get<AerospikeStoreOptions>() ?? new AerospikeStoreOptions();
            options.Validate();
            options.Client().Validate();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new ConfigurationException("Aerospike", $"valid ({e.Message})");
        }

        return options;
    }
}

/// <summary>A configuration value is missing or wrong; the message names the key and what it expects.</summary>
public sealed class ConfigurationException(string key, string expected)
    : Exception($"Configuration key '{key}' must be {expected}.")
{
    public string Key { get; } = key;
}

public static class AudienceServices
{
    /// <summary>The key of the <see cref="TimeProvider"/> Audience's own code reads time from.</summary>
    public const string Clock = "audience-clock";

    /// <summary>
    /// The command line for a host, with configuration files read once: reloading them on change makes the host watch
    /// its content root and every folder below it, and the embedded database lives there by default, so every write
    /// of SQLite would wake the watcher (about 7% of the Silo's time). Options are checked at start-up anyway.
    /// </summary>
    public static string[] HostArguments(string[] args) => [.. args, "--hostBuilder:reloadConfigOnChange=false"];

    /// <summary>
    /// Log levels a production service wants unless configured otherwise (<c>Logging:LogLevel:*</c> in any source
    /// overrides them): without them every request writes eight Information lines (ASP.NET Core's request, routing
    /// and result logs, Orleans' placement through Polly), which took a large share of the CPU at load.
    /// </summary>
    public static void AddLoggingDefaults(this IConfigurationManager configuration) =>
        configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Information",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                ["Logging:LogLevel:Orleans"] = "Warning",
                ["Logging:LogLevel:Polly"] = "Warning",
                ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            },
        });

    /// <summary>The services every process needs: options, the profile store, segments and the index, queries.</summary>
    public static IServiceCollection AddAudienceCore(this IServiceCollection services, IConfiguration configuration, AudienceMode mode)
    {
        services.AddOptions<SiloOptions>()
            .Bind(configuration.GetSection("Silo"))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SiloOptions>>().Value;
            var dataDirectory = configuration["DataDirectory"];
            return string.IsNullOrWhiteSpace(dataDirectory) ? options : options with { DataDirectory = dataDirectory };
        });
        services.AddSingleton(mode);
        // The clock of profiles, windows and events, apart from the TimeProvider Orleans and ASP.NET Core use for their
        // own timing: a test may set it to a fake one without stopping theirs.
        services.TryAddKeyedSingleton(Clock, TimeProvider.System);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<RuleCatalog>();
        services.AddSingleton<SegmentIndex>();
        services.AddSingleton<ChangeFeed>();
        services.AddSingleton<NotificationFeed>();
        services.AddSingleton<AudienceMetrics>();
        services.AddSingleton<Resilience>();
        services.AddSingleton(sp => new Database(sp.GetRequiredService<SiloOptions>().DataDirectory));
        if (mode.PostgresConnectionString is { } postgres)
        {
            services.AddSingleton(_ =>
            {
                var database = new PostgresDatabase(postgres);
                database.Migrate();
                return database;
            });
        }

        if (mode.ProfileStoreKind == "aerospike")
        {
            services.AddSingleton<IProfileStore>(sp => new AerospikeProfileStore(mode.Aerospike!, sp.GetRequiredService<SiloOptions>().EventRetention,
                sp.GetRequiredKeyedService<TimeProvider>(Clock), sp.GetRequiredService<ILogger<AerospikeProfileStore>>()));
        }
        else if (mode.ProfileStoreKind == "postgres")
        {
            services.AddSingleton<IProfileStore>(sp => new PostgresProfileStore(sp.GetRequiredService<PostgresDatabase>().DataSource));
        }
        else
        {
            services.AddSingleton<IProfileStore>(sp => new EmbeddedProfileStore(sp.GetRequiredService<Database>()));
        }

        if (mode.IsKafka)
        {
            services.AddSingleton(mode.Kafka!);
            services.AddSingleton<PostgresSegmentStore>();
            services.AddSingleton<ISegmentStore>(sp => sp.GetRequiredService<PostgresSegmentStore>());
            services.AddSingleton<ICampaignStore>(sp => new PostgresCampaignStore(sp.GetRequiredService<PostgresDatabase>()));
            services.AddSingleton<SegmentUpdatesListener>();
            services.AddHostedService(sp => sp.GetRequiredService<SegmentUpdatesListener>());
        }
        else
        {
            services.AddSingleton<ISegmentStore>(sp => new EmbeddedSegmentStore(sp.GetRequiredService<Database>()));
            services.AddSingleton<ICampaignStore>(sp => new EmbeddedCampaignStore(sp.GetRequiredService<Database>()));
            // The in-process log stands in for user-events: the Api appends to it, the silo's readers read it.
            services.AddSingleton(sp =>
            {
                var options = sp.GetRequiredService<SiloOptions>();
                return new EventLog(Path.Combine(options.DataDirectory, "log"), options.Partitions, options.DeduplicationWindow,
                    sp.GetRequiredKeyedService<TimeProvider>(Clock), sp.GetRequiredService<ILogger<EventLog>>());
            });
        }

        services.AddSingleton(sp =>
        {
            if (mode.IsKafka)
            {
                // Take the end of segment-updates before loading the segments, so no change falls in between.
                sp.GetRequiredService<SegmentUpdatesListener>();
            }

            return new SegmentService(sp.GetRequiredService<ISegmentStore>(), sp.GetRequiredService<SegmentIndex>(),
                sp.GetRequiredKeyedService<TimeProvider>(Clock), sp.GetRequiredService<SiloOptions>().Partitions);
        });
        services.AddSingleton<ProfileQueries>();
        services.AddSingleton<SegmentPreview>();
        services.AddSingleton<CampaignService>();
        services.AddHostedService(sp => sp.GetRequiredService<CampaignService>());
        return services;
    }

    /// <summary>
    /// Creates or migrates the databases before anything starts: Orleans' membership tables live in PostgreSQL too,
    /// and a silo reads them as soon as it starts; the embedded log takes over the events of an earlier layout.
    /// </summary>
    public static async Task PrepareStorageAsync(this IServiceProvider services)
    {
        var mode = services.GetRequiredService<AudienceMode>();
        if (mode.PostgresConnectionString is not null)
        {
            services.GetRequiredService<PostgresDatabase>();
        }

        if (services.GetService<IProfileStore>() is AerospikeProfileStore aerospike)
        {
            try
            {
                await aerospike.CheckLayoutAsync().ConfigureAwait(false);
            }
            catch (StoreUnavailableException)
            {
                // Not reachable yet: the store checks its layout whenever it connects, and the process waits it out like any outage.
            }
        }

        if (!mode.IsKafka)
        {
            await services.GetRequiredService<Database>().ImportEventsAsync(services.GetRequiredService<EventLog>()).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// This process as an Orleans silo: embedded, on localhost clustering beside the Api, reading the in-process log;
    /// in Kafka mode, one of any number of silos clustered through PostgreSQL, reading <c>user-events</c>.
    /// </summary>
    public static ISiloBuilder AddAudienceSilo(this ISiloBuilder silo, AudienceMode mode)
    {
        var orleans = mode.Orleans;
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = orleans.ClusterId;
            o.ServiceId = orleans.ServiceId;
        });
        if (mode.IsKafka)
        {
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = mode.PostgresConnectionString;
            });
            var siloPort = orleans.SiloPort == 0 ? OrleansOptions.FreePort() : orleans.SiloPort;
            var gatewayPort = orleans.GatewayPort == 0 ? OrleansOptions.FreePort() : orleans.GatewayPort;
            if (orleans.AdvertisedIPAddress is { } address)
            {
                silo.ConfigureEndpoints(address, siloPort, gatewayPort, listenOnAnyHostAddress: true);
            }
            else
            {
                silo.ConfigureEndpoints(siloPort, gatewayPort, listenOnAnyHostAddress: true);
            }

            silo.UseKubernetesHostingInPod();
        }
        else
        {
            // Embedded: a cluster of one, on loopback, with no gateway (the Api calls its grains in process).
            var siloPort = orleans.SiloPort == 0 ? OrleansOptions.FreePort() : orleans.SiloPort;
            silo.UseLocalhostClustering(siloPort, gatewayPort: 0, primarySiloEndpoint: null, serviceId: orleans.ServiceId, clusterId: orleans.ClusterId);
        }

        return silo.AddAudienceGrains(mode);
    }

    /// <summary>The grains, their storage and placement, and the silo's services, on whatever clustering the silo has.</summary>
    public static ISiloBuilder AddAudienceGrains(this ISiloBuilder silo, AudienceMode mode)
    {
        var services = silo.Services;
        services.AddSingleton<IClusterAccess, LocalCluster>();
        services.AddOptions<GrainCollectionOptions>().Configure<SiloOptions>((o, options) =>
        {
            o.CollectionAge = options.IdleTimeout;
            o.CollectionQuantum = TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(1).Ticks, options.IdleTimeout.Ticks / 2));
        });
        services.AddGrainStorage(ProfileGrainStorage.Name, (sp, _) => new ProfileGrainStorage(sp.GetRequiredService<IProfileStore>(), sp.GetRequiredService<AudienceMetrics>()));
        services.AddPlacementDirector<PartitionPlacement, PartitionPlacementDirector>();
        services.AddSingleton<SiloContext>();
        // The evaluation seam, chosen here once: the index's compiled delegates, or NRules with its rule set
        // recompiled in the background after every change of segments.
        if (mode.Rules.Engine == RulesOptions.NRules)
        {
            services.AddSingleton<NRulesSegmentEngine>();
            services.AddSingleton<ISegmentEngine>(sp => sp.GetRequiredService<NRulesSegmentEngine>());
            services.AddHostedService<NRulesRecompiler>();
        }
        else
        {
            services.AddSingleton<ISegmentEngine>(sp => sp.GetRequiredService<SegmentIndex>());
        }

        services.AddSingleton<ActiveUsers>();
        services.AddSingleton<SiloMetrics>();
        services.AddSingleton<LocalReaders>();
        services.AddSingleton<UserGrains>();
        services.AddSingleton<PartitionSupervisor>();
        services.AddHostedService(sp => sp.GetRequiredService<PartitionSupervisor>());
        services.AddHostedService<Housekeeping>();
        services.AddHostedService<CampaignBroadcasts>();
        if (mode.IsKafka)
        {
            services.AddSingleton<KafkaPartitionSources>();
            services.AddSingleton<IPartitionSources>(sp => sp.GetRequiredService<KafkaPartitionSources>());
            services.AddSingleton<KafkaOutputs>();
            services.AddSingleton<ISiloOutputs>(sp => sp.GetRequiredService<KafkaOutputs>());
        }
        else
        {
            services.AddSingleton<IPartitionSources, LogPartitionSources>();
            services.AddSingleton<ISiloOutputs, FeedOutputs>();
        }

        return silo;
    }

    /// <summary>
    /// The Api in Kafka mode: an Orleans client of the silos' cluster, found through PostgreSQL. Its start fails when no
    /// silo answers; <see cref="RemoteCluster"/> then starts a new client, on the <see cref="Resilience.ClusterConnect"/>
    /// pipeline's backoff, so the Api and the silos may start in any order.
    /// </summary>
    public static IClientBuilder AddAudienceClient(this IClientBuilder client, AudienceMode mode)
    {
        client.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = mode.Orleans.ClusterId;
            o.ServiceId = mode.Orleans.ServiceId;
        });
        client.UseAdoNetClustering(o =>
        {
            o.Invariant = "Npgsql";
            o.ConnectionString = mode.PostgresConnectionString;
        });
        return client;
    }
}
