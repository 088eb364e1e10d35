using Orleans.Hosting;

namespace Audience.Silo.Hosting;

/// <summary>
/// Orleans' Kubernetes hosting (Microsoft.Orleans.Hosting.Kubernetes) for a silo that runs in a pod of the chart
/// (helm/audience): the silo is named after its pod, takes <c>ORLEANS_SERVICE_ID</c> and <c>ORLEANS_CLUSTER_ID</c>,
/// labels its pod <c>orleans/serviceId</c> and <c>orleans/clusterId</c>, and watches the cluster's silo pods, so a
/// deleted pod's silo is declared dead at once instead of after the membership probes (seconds), and a silo in the
/// membership table whose pod is gone is declared dead at start-up. Our own endpoint settings stay in force: with
/// <c>Orleans:AdvertisedIPAddress</c> set (the chart sets it from <c>POD_IP</c>) and the ports fixed, Orleans' post-
/// configuration keeps them. docs/deploy.md has the details.
/// </summary>
public static class KubernetesHosting
{
    /// <summary>
    /// All must be set: the first is set by Kubernetes in every container (the API server the agent talks to), the others
    /// by the chart (Orleans' hosting fails validation at start without a namespace, and names the silo after the pod).
    /// So a silo run by hand, by the tests or in a pod without the chart's service account, whose agent would fail on
    /// the API server, keeps plain hosting.
    /// </summary>
    public static readonly string[] PodVariables = ["KUBERNETES_SERVICE_HOST", "POD_NAME", "POD_NAMESPACE"];

    /// <summary>Whether the process runs in a pod of the chart, from its environment.</summary>
    public static bool RunsInPod(Func<string, string?> environment) =>
        PodVariables.All(name => !string.IsNullOrWhiteSpace(environment(name)));

    /// <summary>
    /// Adds Orleans' Kubernetes hosting when the process runs in a pod (<see cref="RunsInPod"/>); otherwise nothing.
    /// Call it after the silo's own endpoints and cluster options are configured: its cluster options, read from the
    /// environment, are applied after ours.
    /// </summary>
    public static ISiloBuilder UseKubernetesHostingInPod(this ISiloBuilder silo, Func<string, string?>? environment = null)
    {
        if (RunsInPod(environment ?? Environment.GetEnvironmentVariable))
        {
            silo.UseKubernetesHosting();
        }

        return silo;
    }
}
