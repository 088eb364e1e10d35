using System.Net;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting.Kubernetes;

namespace Audience.Silo.Tests;

/// <summary>
/// Orleans' Kubernetes hosting is added only in a pod of the chart, and leaves the endpoints the chart configures
/// (advertised address from the pod's IP, fixed silo and gateway ports) as they are.
/// </summary>
public sealed class KubernetesHostingTests
{
    private static readonly Dictionary<string, string?> Pod = new()
    {
        ["KUBERNETES_SERVICE_HOST"] = "10.96.0.1",
        ["POD_NAME"] = "audience-silo-7d9f-abcde",
        ["POD_NAMESPACE"] = "audience",
    };

    [Theory]
    [InlineData("KUBERNETES_SERVICE_HOST")]
    [InlineData("POD_NAME")]
    [InlineData("POD_NAMESPACE")]
    public void RunsInPod_without_one_of_the_variables_is_false(string missing)
    {
        Assert.True(KubernetesHosting.RunsInPod(name => Pod.GetValueOrDefault(name)));
        Assert.False(KubernetesHosting.RunsInPod(name => name == missing ? null : Pod.GetValueOrDefault(name)));
        Assert.False(KubernetesHosting.RunsInPod(name => name == missing ? " " : Pod.GetValueOrDefault(name)));
    }

    [Fact]
    public void AddAudienceSilo_in_Kafka_mode_outside_a_pod_adds_no_Kubernetes_agent()
    {
        Assert.False(KubernetesHosting.RunsInPod(Environment.GetEnvironmentVariable), "the test process runs in a pod");
        var (services, host) = Silo(inPod: false);
        host.Dispose();

        Assert.DoesNotContain(services, d => d.ImplementationType == typeof(KubernetesClusterAgent));
    }

    [Fact]
    public void UseKubernetesHostingInPod_in_a_pod_adds_the_agent_and_keeps_the_configured_endpoints_and_cluster()
    {
        var (services, host) = Silo(inPod: true);
        using var _ = host;
        var provider = host.Services;

        Assert.Contains(services, d => d.ImplementationType == typeof(KubernetesClusterAgent));
        var endpoints = provider.GetRequiredService<IOptions<EndpointOptions>>().Value;
        Assert.Equal(IPAddress.Parse("10.1.2.3"), endpoints.AdvertisedIPAddress);
        Assert.Equal(11111, endpoints.SiloPort);
        Assert.Equal(30000, endpoints.GatewayPort);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 11111), endpoints.SiloListeningEndpoint);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 30000), endpoints.GatewayListeningEndpoint);

        // Orleans reads ORLEANS_CLUSTER_ID and ORLEANS_SERVICE_ID from the process environment, where the chart sets them
        // to the same values as Orleans__ClusterId and Orleans__ServiceId; here they are unset, so the options are ours.
        var cluster = provider.GetRequiredService<IOptions<ClusterOptions>>().Value;
        Assert.Equal(("audience-test", "audience-test-service"), (cluster.ClusterId, cluster.ServiceId));
    }

    /// <summary>A Kafka-mode silo as the Silo process configures it (not started), in a pod or not.</summary>
    private static (List<ServiceDescriptor> Services, IHost Host) Silo(bool inPod)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kafka:BootstrapServers"] = "unused:9092",
            ["Postgres:ConnectionString"] = "Host=unused;Username=audience",
            ["Orleans:ClusterId"] = "audience-test",
            ["Orleans:ServiceId"] = "audience-test-service",
            ["Orleans:SiloPort"] = "11111",
            ["Orleans:GatewayPort"] = "30000",
            ["Orleans:AdvertisedIPAddress"] = "10.1.2.3",
        }).Build();
        var mode = AudienceMode.Read(configuration, siloProcess: true);
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo =>
        {
            silo.AddAudienceSilo(mode);
            // The call inside AddAudienceSilo read this process's environment (not a pod); this one is told it is in
            // one, and comes after the silo's own configuration, as it does there.
            silo.UseKubernetesHostingInPod(name => inPod ? Pod.GetValueOrDefault(name) : null);
        });
        var services = builder.Services.ToList();
        return (services, builder.Build());
    }
}
