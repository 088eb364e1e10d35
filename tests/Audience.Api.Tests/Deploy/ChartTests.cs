using System.ComponentModel;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Audience.Silo.Hosting;
using Audience.Silo.Processing;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting.Kubernetes;

namespace Audience.Api.Tests.Deploy;

/// <summary>
/// The helm chart (helm/audience), rendered by helm/check (Go's text/template with sprig and helm's functions, as helm
/// renders; it checks each object's fields, selectors, ports and security settings) for the defaults with the two
/// required values, seed 004's demo values and a file that turns every optional part on; then yamllint over the output,
/// and here, against the service itself: every environment variable is a configuration key it reads or one of Orleans'
/// Kubernetes variables, the probes are routes the Api maps, on its HTTP port, and every query of the dashboard and
/// alert rules names series the service exports.
/// </summary>
public sealed partial class ChartTests : IClassFixture<ChartTests.Renderer>
{
    /// <summary>The values files a rendering is checked with, by name.</summary>
    public static TheoryData<string> Renderings => ["minimal", "demo", "everything"];

    private readonly Renderer _renderer;

    public ChartTests(Renderer renderer) => _renderer = renderer;

    [Theory]
    [MemberData(nameof(Renderings))]
    public void Render_with_the_values_passes_the_object_checks_and_yamllint(string rendering)
    {
        var output = _renderer.Render(rendering);

        Assert.True(output.ExitCode == 0, $"helm/check with the {rendering} values:\n{output.Text}");
        Assert.Contains("every check passed", output.Text, StringComparison.Ordinal);
        var lint = Run("yamllint", ["-f", "parsable", "-c", Path.Combine(Root, "helm", "check", "yamllint.yaml"), Path.Combine(output.Folder, "manifests.yaml")], Root);
        Assert.True(lint.ExitCode == 0, $"yamllint over the {rendering} rendering:\n{lint.Text}");
        var summary = output.Summary;
        foreach (var kind in new[] { "Deployment/", "Service/", "PodDisruptionBudget/", "ServiceAccount/", "Role/", "RoleBinding/", "NetworkPolicy/" })
        {
            Assert.Contains(summary.Objects, o => o.StartsWith(kind, StringComparison.Ordinal));
        }

        Assert.Equal(["api", "silo"], summary.Containers.Where(c => c.Object.StartsWith("Deployment/", StringComparison.Ordinal)).Select(c => c.Component).Order());
        Assert.Contains("Kafka mode", summary.Notes, StringComparison.Ordinal);
    }

    [Fact]
    public void The_chart_own_YAML_files_pass_yamllint()
    {
        var files = new[] { "Chart.yaml", "values.yaml", "values-demo.yaml" }.Select(f => Path.Combine(Root, "helm", "audience", f))
            .Append(Path.Combine(Root, "helm", "check", "values-everything.yaml"));
        var lint = Run("yamllint", ["-f", "parsable", "-c", Path.Combine(Root, "helm", "check", "yamllint.yaml"), .. files], Root);

        Assert.True(lint.ExitCode == 0, lint.Text);
    }

    [Fact]
    public void Render_with_the_defaults_alone_fails_naming_a_required_value()
    {
        var output = _renderer.Render("defaults");

        Assert.Equal(1, output.ExitCode);
        Assert.Matches("postgres.existingSecret .* is required|kafka.bootstrapServers is required", output.Text);
    }

    [Fact]
    public void Render_with_an_API_key_that_is_no_SHA256_is_refused_by_the_values_schema()
    {
        var output = _renderer.Render("minimal", """
            api:
              apiKeys:
                - name: shop
                  sha256: the-key-itself
                  scopes: [ingest]
            """);

        Assert.Equal(1, output.ExitCode);
        Assert.Contains("values don't meet the specifications of the schema", output.Text, StringComparison.Ordinal);
        Assert.Contains("sha256", output.Text, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Renderings))]
    public void Every_environment_variable_is_a_configuration_key_of_the_service_or_an_Orleans_Kubernetes_variable(string rendering)
    {
        var unknown = UnknownVariables(_renderer.Render(rendering).Summary);

        Assert.True(unknown.Count == 0, "not a key the service reads (docs/operations.md, README): " + string.Join(", ", unknown));
    }

    [Fact]
    public void A_configuration_key_the_service_does_not_read_is_found_among_the_variables()
    {
        var rendering = _renderer.Render("minimal", """
            silo:
              config:
                "Silo:ReadBatchSize": 1000
                "Kafka:SaslToken": secret
            """);

        Assert.Equal(0, rendering.ExitCode);
        Assert.Equal([("Deployment/audience-silo", "Kafka__SaslToken")], UnknownVariables(rendering.Summary));
    }

    /// <summary>The containers' variables that are no configuration key of the service, no platform variable and no Orleans one.</summary>
    private static List<(string Object, string Name)> UnknownVariables(ChartSummary summary)
    {
        var keys = ConfigurationKeys();
        Assert.Contains(keys, k => k.IsMatch("Kafka:BootstrapServers"));
        Assert.Contains(keys, k => k.IsMatch("Security:ApiKeys:0:Sha256"));
        return [.. summary.Containers
            .SelectMany(c => c.Env.Select(e => (c.Object, e.Name)))
            .Where(v => !OrleansKubernetesVariables.Contains(v.Name)
                && !EnvironmentPrefixes.Any(p => v.Name.StartsWith(p, StringComparison.Ordinal))
                && !keys.Any(k => k.IsMatch(v.Name.Replace("__", ":", StringComparison.Ordinal))))];
    }

    [Theory]
    [MemberData(nameof(Renderings))]
    public void The_silo_sets_what_Orleans_Kubernetes_hosting_reads_and_advertises_the_pod_address(string rendering)
    {
        var silo = _renderer.Render(rendering).Summary.Containers.Single(c => c.Component == "silo");
        var env = silo.Env.ToDictionary(e => e.Name);

        Assert.Equal("field metadata.name", env[KubernetesHostingOptions.PodNameEnvironmentVariable].From);
        Assert.Equal("field metadata.namespace", env[KubernetesHostingOptions.PodNamespaceEnvironmentVariable].From);
        Assert.Equal("field status.podIP", env[KubernetesHostingOptions.PodIPEnvironmentVariable].From);
        // Our code turns Orleans' hosting on only where these are set; Kubernetes sets KUBERNETES_SERVICE_HOST itself.
        Assert.All(KubernetesHosting.PodVariables.Where(v => v != "KUBERNETES_SERVICE_HOST"), v => Assert.Contains(v, env.Keys));
        Assert.Equal(env["Orleans__ServiceId"].Value, env[KubernetesHostingOptions.ServiceIdEnvironmentVariable].Value);
        Assert.Equal(env["Orleans__ClusterId"].Value, env[KubernetesHostingOptions.ClusterIdEnvironmentVariable].Value);
        Assert.Equal("$(POD_IP)", env["Orleans__AdvertisedIPAddress"].Value);
        Assert.Equal(silo.Ports["silo"].ToString(System.Globalization.CultureInfo.InvariantCulture), env["Orleans__SiloPort"].Value);
        Assert.Equal(silo.Ports["gateway"].ToString(System.Globalization.CultureInfo.InvariantCulture), env["Orleans__GatewayPort"].Value);
        Assert.True(silo.Env.FindIndex(e => e.Name == "POD_IP") < silo.Env.FindIndex(e => e.Name == "Orleans__AdvertisedIPAddress"),
            "$(POD_IP) is expanded only from a variable defined before it");

        // The Api is an Orleans client of the same cluster.
        var api = _renderer.Render(rendering).Summary.Containers.Single(c => c.Component == "api").Env.ToDictionary(e => e.Name);
        Assert.Equal(env["Orleans__ClusterId"].Value, api["Orleans__ClusterId"].Value);
        Assert.Equal(env["Orleans__ServiceId"].Value, api["Orleans__ServiceId"].Value);
        Assert.StartsWith("secret ", api["Postgres__ConnectionString"].From, StringComparison.Ordinal);
        Assert.StartsWith("secret ", env["Postgres__ConnectionString"].From, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Renderings))]
    public async Task Probes_are_routes_the_Api_maps_and_answers_on_the_HTTP_port_it_listens_on(string rendering)
    {
        using var api = new AudienceFactory();
        var routes = api.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => "/" + e.RoutePattern.RawText?.TrimStart('/')).ToHashSet(StringComparer.Ordinal);

        foreach (var container in _renderer.Render(rendering).Summary.Containers.Where(c => c.Component is "api" or "silo"))
        {
            Assert.Equal(["livenessProbe", "readinessProbe", "startupProbe"], container.Probes.Select(p => p.Kind).Order());
            var url = container.Env.Single(e => e.Name == "ASPNETCORE_URLS").Value!;
            foreach (var probe in container.Probes)
            {
                // The Silo process serves the same health endpoints as the Api (SiloProgram; KafkaModeTests'
                // The_Silo_process_serves_health_and_metrics... requests them from a Silo process); the Api's route table
                // is the one this test can build in process.
                Assert.Contains(probe.Path, routes);
                Assert.True((await api.Http.GetAsync(probe.Path)).IsSuccessStatusCode, $"{probe.Path} answers the embedded service");
                Assert.EndsWith($":{container.Ports[probe.Port]}", url, StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Renderings))]
    public void Every_dashboard_and_alert_query_names_series_the_service_exports(string rendering)
    {
        var summary = _renderer.Render(rendering).Summary;
        var documented = DocumentedSeries();
        var exported = ExportedAudienceSeries();
        Assert.NotEmpty(summary.PromQL);

        foreach (var query in summary.PromQL)
        {
            var names = MetricNames(query.Expr).ToList();
            Assert.True(names.Count > 0, $"{query.Source}: no series in '{query.Expr}'");
            foreach (var name in names)
            {
                if (name.StartsWith("audience_", StringComparison.Ordinal))
                {
                    Assert.True(documented.Contains(name), $"{query.Source}: {name} is not in docs/operations.md's Metrics");
                    Assert.True(exported.Contains(name), $"{query.Source}: {name} is not exported by the service's meters ({string.Join(", ", exported.Order())})");
                }
                else
                {
                    Assert.True(StandardSeries().IsMatch(name), $"{query.Source}: {name} is neither the service's nor a standard ASP.NET Core, Orleans or runtime series");
                }
            }
        }

        var dashboard = string.Join("\n", summary.PromQL.Where(q => q.Source.StartsWith("ConfigMap/", StringComparison.Ordinal)).Select(q => q.Expr));
        foreach (var series in new[] { "audience_events_accepted_total", "audience_consumer_lag", "audience_membership_changes_total", "audience_dead_letters_total",
            "audience_store_operation_duration_seconds_bucket", "audience_grains_active" })
        {
            Assert.Contains(series, dashboard, StringComparison.Ordinal);
        }

        Assert.Contains("histogram_quantile(0.5, sum by (le) (rate(audience_qualify_latency_seconds_bucket", dashboard, StringComparison.Ordinal);
        Assert.Contains("histogram_quantile(0.99, sum by (le) (rate(audience_qualify_latency_seconds_bucket", dashboard, StringComparison.Ordinal);
        Assert.Contains("by (partition) (audience_consumer_lag", dashboard, StringComparison.Ordinal);
        if (rendering == "everything")
        {
            var alerts = summary.PromQL.Where(q => q.Source.StartsWith("PrometheusRule/", StringComparison.Ordinal)).Select(q => q.Source.Split(' ')[1]).ToList();
            Assert.Equal(["AudienceConsumerLagHigh", "AudienceDeadLetters", "AudienceHttpErrorRatioHigh", "AudienceQualifyLatencyHigh", "AudienceStoreErrors"], alerts.Order());
            var runbooks = File.ReadAllText(Path.Combine(Root, "docs", "deploy.md"));
            Assert.All(alerts, a => Assert.Contains("### " + a, runbooks, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void MetricNames_leaves_out_functions_labels_ranges_and_grouping()
    {
        Assert.Equal(["a_total", "b_bucket"], MetricNames("""sum by (le, x) (rate(a_total{job="x", y=~"5.."}[$__rate_interval])) / on (pod) histogram_quantile(0.99, rate(b_bucket[5m])) > 0.5 and bool 1"""));
        Assert.Equal(["audience_events_accepted_total"], MetricNames("label_values(audience_events_accepted_total, namespace)"));
    }

    /// <summary>Orleans' Kubernetes hosting reads these from the environment (not configuration keys of ours).</summary>
    private static readonly HashSet<string> OrleansKubernetesVariables =
    [
        KubernetesHostingOptions.PodNameEnvironmentVariable, KubernetesHostingOptions.PodNamespaceEnvironmentVariable,
        KubernetesHostingOptions.PodIPEnvironmentVariable, KubernetesHostingOptions.ServiceIdEnvironmentVariable,
        KubernetesHostingOptions.ClusterIdEnvironmentVariable,
    ];

    /// <summary>
    /// Read by the platform rather than by our options: ASP.NET Core's (ASPNETCORE_URLS), the .NET runtime's, the
    /// OpenTelemetry SDK's (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME), and the host's logging section
    /// (Logging:LogLevel, Logging:Console:FormatterName), whose defaults AudienceServices.AddLoggingDefaults sets.
    /// </summary>
    private static readonly string[] EnvironmentPrefixes = ["ASPNETCORE_", "DOTNET_", "OTEL_", "Logging__"];

    /// <summary>The keys of the configuration tables in docs/operations.md and the README, as patterns (N, M: an index).</summary>
    private static List<Regex> ConfigurationKeys()
    {
        var keys = new List<Regex>();
        foreach (var (file, section) in new[] { ("docs/operations.md", "## Configuration keys"), ("README.md", "## Configuration") })
        {
            foreach (var row in TableRows(File.ReadAllText(Path.Combine(Root, file)), section))
            {
                foreach (Match token in Backticked().Matches(row.Split('|')[1]))
                {
                    var key = token.Groups[1].Value.Replace("__", ":", StringComparison.Ordinal);
                    if (key.StartsWith('-') || key.Contains('*', StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var pattern = string.Join(":", key.Split(':').Select(part => part is "N" or "M" ? "[0-9]+" : Regex.Escape(part)));
                    keys.Add(new Regex("^" + pattern + "$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant));
                }
            }
        }

        return keys;
    }

    /// <summary>The series docs/operations.md's Metrics table names, with a histogram's _bucket, _sum and _count.</summary>
    private static HashSet<string> DocumentedSeries()
    {
        var series = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in TableRows(File.ReadAllText(Path.Combine(Root, "docs", "operations.md")), "## Metrics"))
        {
            var cells = row.Split('|');
            foreach (Match token in Backticked().Matches(cells[1]))
            {
                var name = token.Groups[1].Value.Split('{')[0];
                series.Add(name);
                if (cells[2].Contains("histogram", StringComparison.Ordinal))
                {
                    series.UnionWith([name + "_bucket", name + "_sum", name + "_count"]);
                }
            }
        }

        Assert.Contains("audience_qualify_latency_seconds_bucket", series);
        return series;
    }

    /// <summary>
    /// The audience_* series the service's meters publish, named as OpenTelemetry's Prometheus exporter names them:
    /// counters with _total, histograms with _bucket, _sum and _count, gauges as they are.
    /// </summary>
    private static HashSet<string> ExportedAudienceSeries()
    {
        var series = new HashSet<string>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, _) =>
        {
            if (instrument.Meter.Name is not (AudienceMetrics.MeterName or SiloMetrics.MeterName))
            {
                return;
            }

            var type = instrument.GetType().GetGenericTypeDefinition();
            if (type == typeof(Counter<>) || type == typeof(ObservableCounter<>))
            {
                series.Add(instrument.Name + "_total");
            }
            else if (type == typeof(Histogram<>))
            {
                series.UnionWith([instrument.Name + "_bucket", instrument.Name + "_sum", instrument.Name + "_count"]);
            }
            else
            {
                series.Add(instrument.Name);
            }
        };
        using var audience = new AudienceMetrics();
        using var silo = new SiloMetrics(new ActiveUsers());
        listener.Start();
        return series;
    }

    [GeneratedRegex("^(?:http_server_request_duration_seconds|kestrel|orleans|dotnet|process)_[a-z0-9_]+$")]
    private static partial Regex StandardSeries();

    /// <summary>The series a PromQL expression (or Grafana's label_values) reads.</summary>
    internal static IEnumerable<string> MetricNames(string expr)
    {
        if (LabelValues().Match(expr) is { Success: true } variable)
        {
            return [variable.Groups[1].Value];
        }

        var text = Quoted().Replace(expr, "\"\"");
        text = Braces().Replace(text, " ");
        text = Brackets().Replace(text, " ");
        text = Grouping().Replace(text, " ");
        return Identifier().Matches(text).Where(m => !m.Groups[2].Success && !Keywords.Contains(m.Groups[1].Value))
            .Select(m => m.Groups[1].Value).Distinct().ToList();
    }

    private static readonly HashSet<string> Keywords = ["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"];

    [GeneratedRegex(@"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,")]
    private static partial Regex LabelValues();

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex Grouping();

    [GeneratedRegex(@"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")]
    private static partial Regex Identifier();

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Backticked();

    /// <summary>The body rows of the first table under a Markdown heading (up to the next heading of that level).</summary>
    private static IEnumerable<string> TableRows(string markdown, string heading)
    {
        var start = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"'{heading}' not found");
        var level = heading[..(heading.IndexOf(' ', StringComparison.Ordinal) + 1)];
        var end = markdown.IndexOf("\n" + level, start + heading.Length + 1, StringComparison.Ordinal);
        var section = markdown[start..(end < 0 ? markdown.Length : end)];
        return section.Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal));
    }

    internal static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Audience.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("the repository's root (Audience.sln) is not above " + AppContext.BaseDirectory);
    }

    internal static (int ExitCode, string Text) Run(string program, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException(
                $"'{program}' cannot be run ({e.Message}): the chart's check needs Debian's golang-go, golang-github-masterminds-sprig-dev, " +
                "golang-github-ghodss-yaml-dev, golang-github-xeipuuv-gojsonschema-dev and yamllint, which scripts/test.sh installs", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            Assert.True(process.WaitForExit(120_000), $"{program} did not finish within 2 minutes");
            return (process.ExitCode, output.Result + error.Result);
        }
    }

    /// <summary>
    /// Builds helm/check once (Go in GOPATH mode on Debian's packaged sources: no module download) and renders the chart
    /// once per values file, into a folder of its own.
    /// </summary>
    public sealed class Renderer : IDisposable
    {
        private readonly string _folder = Path.Combine(Path.GetTempPath(), "audience-chart", Guid.NewGuid().ToString("N"));
        private readonly Dictionary<string, Rendering> _renderings = [];
        private readonly string _binary;

        public Renderer()
        {
            Directory.CreateDirectory(_folder);
            _binary = Path.Combine(_folder, "chartcheck");
            var environment = new Dictionary<string, string>
            {
                ["GO111MODULE"] = "off",
                ["GOPATH"] = "/usr/share/gocode",
                ["GOFLAGS"] = "",
                ["GOCACHE"] = Environment.GetEnvironmentVariable("GOCACHE") is { Length: > 0 } cache ? cache : Path.Combine(Path.GetTempPath(), "audience-go-cache"),
            };
            var build = Run("go", ["build", "-o", _binary, "helm/check/main.go"], Root, environment);
            if (build.ExitCode != 0)
            {
                throw new InvalidOperationException("helm/check does not build (Debian's golang-github-* packages that scripts/test.sh installs?):\n" + build.Text);
            }
        }

        /// <summary>The chart rendered with a values file (by name) and, optionally, more values over it.</summary>
        public Rendering Render(string values, string? more = null)
        {
            var key = values + "\n" + more;
            lock (_renderings)
            {
                if (_renderings.TryGetValue(key, out var cached))
                {
                    return cached;
                }

                var folder = Path.Combine(_folder, $"render-{_renderings.Count}");
                Directory.CreateDirectory(folder);
                var arguments = new List<string> { "-chart", Path.Combine(Root, "helm", "audience"), "-out", folder };
                var file = values switch
                {
                    "defaults" => null,
                    "minimal" => Write(folder, "minimal.yaml", "kafka:\n  bootstrapServers: kafka:9092\npostgres:\n  existingSecret: audience-postgres\n"),
                    "demo" => Path.Combine(Root, "helm", "audience", "values-demo.yaml"),
                    "everything" => Path.Combine(Root, "helm", "check", "values-everything.yaml"),
                    _ => throw new ArgumentException("unknown values " + values, nameof(values)),
                };
                if (file is not null)
                {
                    arguments.AddRange(["-f", file]);
                }

                if (more is not null)
                {
                    arguments.AddRange(["-f", Write(folder, "more.yaml", more)]);
                }

                var (exitCode, text) = Run(_binary, arguments, Root);
                var summaryFile = Path.Combine(folder, "summary.json");
                var summary = File.Exists(summaryFile)
                    ? JsonSerializer.Deserialize<ChartSummary>(File.ReadAllText(summaryFile), JsonSerializerOptions.Web)!
                    : new ChartSummary([], [], [], "");
                return _renderings[key] = new Rendering(exitCode, text, folder, summary);
            }
        }

        private static string Write(string folder, string name, string text)
        {
            var path = Path.Combine(folder, name);
            File.WriteAllText(path, text);
            return path;
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
                // Left for the OS to clean.
            }
        }
    }

    public sealed record Rendering(int ExitCode, string Text, string Folder, ChartSummary Summary);

    public sealed record ChartSummary(List<string> Objects, List<ChartContainer> Containers, List<ChartQuery> PromQL, string Notes);

    public sealed record ChartContainer(string Object, string Component, string Name, string Image, List<ChartEnv> Env, Dictionary<string, long> Ports, List<ChartProbe> Probes);

    public sealed record ChartEnv(string Name, string? Value, string? From);

    public sealed record ChartProbe(string Kind, string Path, string Port);

    public sealed record ChartQuery(string Source, string Expr);
}
