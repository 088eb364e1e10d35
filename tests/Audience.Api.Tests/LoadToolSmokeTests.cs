using System.Text.Json;
using Audience.LoadTests;

namespace Audience.Api.Tests;

/// <summary>A few seconds of the load-test tool at a low rate against the embedded service, so the tool keeps working.</summary>
[Collection(AloneCollection.Name)]
public sealed class LoadToolSmokeTests : IClassFixture<AudienceFactory>
{
    private readonly AudienceFactory _service;

    public LoadToolSmokeTests(AudienceFactory service) => _service = service;

    [Theory]
    [InlineData("ingest", "--rate", "50")]
    [InlineData("ingest-batch", "--concurrency", "2")]
    [InlineData("qualify", "--rate", "20")]
    public async Task A_short_run_reports_what_it_measured(string scenario, string model, string value)
    {
        var output = Path.Combine(_service.DataDirectory, "load-" + scenario);
        var code = await Cli.RunAsync([scenario, "--target", _service.Http.BaseAddress!.ToString().TrimEnd('/'), model, value,
            "--duration", "2s", "--warmup", "500ms", "--batch-size", "10", "--segments", "8", "--users", "500", "--out", output, "--quiet", "--max-p99", "5s"]);
        Assert.Equal(0, code);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "report.json")));
        var root = report.RootElement;
        Assert.Equal(scenario, root.GetProperty("scenario").GetString());
        Assert.True(root.GetProperty("succeeded").GetInt64() > 0);
        Assert.Equal(root.GetProperty("operations").GetInt64(), root.GetProperty("succeeded").GetInt64());
        Assert.True(root.GetProperty("latency").GetProperty("p99").GetDouble() > 0);
        Assert.True(File.ReadAllLines(Path.Combine(output, "per-second.csv")).Length >= 2);
        Assert.Contains("<svg", await File.ReadAllTextAsync(Path.Combine(output, "latency.html")), StringComparison.Ordinal);
        Assert.Contains("| operations |", await File.ReadAllTextAsync(Path.Combine(output, "report.md")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missed_threshold_gives_exit_code_1_and_bad_options_2()
    {
        var target = _service.Http.BaseAddress!.ToString().TrimEnd('/');
        var output = Path.Combine(_service.DataDirectory, "load-threshold");
        Assert.Equal(1, await Cli.RunAsync(["ingest", "--target", target, "--rate", "10", "--duration", "1s", "--warmup", "200ms", "--segments", "0",
            "--min-rate", "1000000", "--out", output, "--quiet"]));
        Assert.Equal(2, await Cli.RunAsync(["ingest", "--target", target, "--duration", "soon"]));
        Assert.Equal(2, await Cli.RunAsync(["ingest", "--target", "not a url", "--quiet"]));
    }
}
