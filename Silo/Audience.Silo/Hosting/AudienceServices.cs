using Audience.Rules.Indexing;
using Audience.Rules.Profiles;
using Audience.Silo.Kafka;
using Audience.Silo.Processing;
using Audience.Silo.Segments;
using Audience.Silo.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Audience.Silo.Hosting;

/// <summary>
/// How this process is deployed, read from configuration: embedded (one process, SQLite, in-process log) or
/// Kafka mode (<c>Kafka:BootstrapServers</c> set; Api and Silo processes, segments in PostgreSQL).
/// </summary>
public sealed record AudienceMode(KafkaOptions? Kafka, string? PostgresConnectionString, string ProfileStoreKind)
{
    public bool IsKafka => Kafka is not null;

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
        var kafka = configuration.GetSection("Kafka").Get<KafkaOptions>() ?? new KafkaOptions();
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

        var kind = configuration["ProfileStore:Kind"] ?? (postgres is null ? "embedded" : "postgres");
        if (kind is not ("embedded" or "postgres"))
        {
            throw new ConfigurationException("ProfileStore:Kind", $"'embedded' or 'postgres', not '{kind}'");
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

            return new AudienceMode(null, postgres, kind);
        }

        var errors = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(kafka, new(kafka), errors, validateAllProperties: true)
            || !System.ComponentModel.DataAnnotations.Validator.TryValidateObject(kafka.Topics, new(kafka.Topics), errors, validateAllProperties: true))
        {
            var member = errors[0].MemberNames.FirstOrDefault() ?? "?";
            throw new ConfigurationException($"Kafka:{member}", errors[0].ErrorMessage ?? "a valid value");
        }

        if (postgres is null)
        {
            throw new ConfigurationException("Postgres:ConnectionString",
                "a connection string: in Kafka mode every Api and Silo process reads segment definitions from PostgreSQL");
        }

        if (!siloProcess && kind != "postgres")
        {
            throw new ConfigurationException("ProfileStore:Kind", "'postgres' in the Api in Kafka mode: it answers profile queries from the store the Silos write");
        }

        return new AudienceMode(kafka, postgres, kind);
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
    /// <summary>The services every process needs: options, stores, segments and the index.</summary>
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
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<RuleCatalog>();
        services.AddSingleton<SegmentIndex>();
        services.AddSingleton<ChangeFeed>();
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

        if (mode.ProfileStoreKind == "postgres")
        {
            services.AddSingleton<IProfileStoreFactory>(sp => new PostgresProfileStoreFactory(sp.GetRequiredService<PostgresDatabase>()));
        }
        else
        {
            services.AddSingleton<IProfileStoreFactory>(sp => new EmbeddedProfileStoreFactory(sp.GetRequiredService<Database>()));
        }

        if (mode.IsKafka)
        {
            services.AddSingleton(mode.Kafka!);
            services.AddSingleton<PostgresSegmentStore>();
            services.AddSingleton<ISegmentStore>(sp => sp.GetRequiredService<PostgresSegmentStore>());
            services.AddSingleton<SegmentUpdatesListener>();
            services.AddHostedService(sp => sp.GetRequiredService<SegmentUpdatesListener>());
        }
        else
        {
            services.AddSingleton<ISegmentStore>(sp => new EmbeddedSegmentStore(sp.GetRequiredService<Database>()));
        }

        services.AddSingleton(sp =>
        {
            if (mode.IsKafka)
            {
                // Take the end of segment-updates before loading the segments, so no change falls in between.
                sp.GetRequiredService<SegmentUpdatesListener>();
            }

            return new SegmentService(sp.GetRequiredService<ISegmentStore>(), sp.GetRequiredService<SegmentIndex>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<SiloOptions>().Partitions);
        });
        return services;
    }
}
