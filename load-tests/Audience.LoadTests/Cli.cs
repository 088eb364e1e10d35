using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Audience.LoadTesting;

namespace Audience.LoadTests;

/// <summary>
/// The command line: <c>Audience.LoadTests &lt;scenario&gt; --target ... --rate ... --duration 30s --warmup 5s --out dir</c>.
/// Exit codes: 0 done and thresholds met, 1 a threshold missed, 2 bad arguments or a failed set-up.
/// </summary>
internal static class Cli
{
    private static readonly (string Name, string Help)[] ScenarioNames =
    [
        ("ingest", "single-event POSTs to /api/events (target: the Api's URL)"),
        ("ingest-batch", "batch POSTs to /api/events/batch (target: the Api's URL; --batch-size)"),
        ("qualify", "end to end: a new user's purchase until its entry into a segment is observed, on the Api's SSE stream, or on user-segments with --bootstrap"),
        ("kafka-ingest", "events produced straight to user-events, bypassing the Api (target: Kafka bootstrap servers)"),
        ("authoring", "segments created and edited every --authoring-interval while events flow at --rate; time until each backfill completes"),
    ];

    public static Task<int> RunAsync(string[] args)
    {
        Silo.Kafka.KafkaNative.Use();
        var target = new Option<string>("--target") { Description = "The Api's base URL (http://host:port), or for kafka-ingest the Kafka bootstrap servers.", Required = true };
        var rate = new Option<double>("--rate") { Description = "Open model: operations started per second (at the start of a ramp).", DefaultValueFactory = _ => 100 };
        var rampTo = new Option<double?>("--ramp-to") { Description = "Open model with a ramp: the rate at the end of the run, reached linearly from --rate." };
        var concurrency = new Option<int?>("--concurrency") { Description = "Closed model instead: this many workers, each starting its next operation when the last one ends." };
        var duration = Time("--duration", "How long to measure, after the warm-up (e.g. 30s, 2m, 500ms).", TimeSpan.FromSeconds(30));
        var warmup = Time("--warmup", "How long to run before measuring; those operations are not in the results.", TimeSpan.FromSeconds(5));
        var users = new Option<int>("--users") { Description = "Population the users are drawn from (Zipf).", DefaultValueFactory = _ => 100_000 };
        var zipf = new Option<double>("--zipf") { Description = "Zipf exponent of user activity (0 = uniform).", DefaultValueFactory = _ => 1.0 };
        var segments = new Option<int>("--segments") { Description = "Segments of the kinds in docs/rules.md created before the run (ids lt-segment-N).", DefaultValueFactory = _ => 20 };
        var batchSize = new Option<int>("--batch-size") { Description = "Events per request in ingest-batch.", DefaultValueFactory = _ => 100 };
        var bootstrap = new Option<string?>("--bootstrap") { Description = "qualify in Kafka mode: the bootstrap servers to watch user-segments on." };
        var topic = new Option<string>("--topic") { Description = "kafka-ingest: the topic to produce to.", DefaultValueFactory = _ => "user-events" };
        var authoringInterval = Time("--authoring-interval", "authoring: time between segment changes.", TimeSpan.FromSeconds(2));
        var timeout = Time("--timeout", "How long one operation may take before it counts as an error.", TimeSpan.FromSeconds(10));
        var maxInFlight = new Option<int>("--max-in-flight") { Description = "Open model: operations outstanding at most; beyond it, starts are counted as errors instead of queued.", DefaultValueFactory = _ => 20_000 };
        var output = new Option<string>("--out") { Description = "Results directory: report.md, report.json, per-second.csv, latency.html.", DefaultValueFactory = _ => "results" };
        var maxP99 = new Option<TimeSpan?>("--max-p99") { Description = "Threshold: exit 1 if p99 latency is above it (e.g. 25ms).", CustomParser = r => ParseTime(r) };
        var minRate = new Option<double?>("--min-rate") { Description = "Threshold: exit 1 if fewer events per second succeeded." };
        var seed = new Option<int>("--seed") { Description = "Random seed of the traffic.", DefaultValueFactory = _ => 1 };
        var quiet = new Option<bool>("--quiet") { Description = "No live progress view." };
        Option[] options = [target, rate, rampTo, concurrency, duration, warmup, users, zipf, segments, batchSize, bootstrap, topic,
            authoringInterval, timeout, maxInFlight, output, maxP99, minRate, seed, quiet];

        var root = new RootCommand("Audience load tests: throughput and latency of the service under open or closed load models, " +
            "with reports and thresholds (NBomber's bar, built here because NBomber cannot be installed).");
        foreach (var (name, help) in ScenarioNames)
        {
            var command = new Command(name, help);
            foreach (var option in options)
            {
                command.Options.Add(option);
            }

            command.SetAction((result, cancellationToken) => RunScenario(new LoadOptions
            {
                Scenario = name,
                Target = result.GetValue(target)!,
                Rate = result.GetValue(rate),
                RampTo = result.GetValue(rampTo),
                Concurrency = result.GetValue(concurrency),
                Duration = result.GetValue(duration),
                Warmup = result.GetValue(warmup),
                Users = result.GetValue(users),
                ZipfExponent = result.GetValue(zipf),
                Segments = result.GetValue(segments),
                BatchSize = result.GetValue(batchSize),
                Bootstrap = result.GetValue(bootstrap),
                Topic = result.GetValue(topic)!,
                AuthoringInterval = result.GetValue(authoringInterval),
                Timeout = result.GetValue(timeout),
                MaxInFlight = result.GetValue(maxInFlight),
                Out = result.GetValue(output)!,
                MaxP99 = result.GetValue(maxP99),
                MinRate = result.GetValue(minRate),
                Seed = result.GetValue(seed),
                Quiet = result.GetValue(quiet),
            }, cancellationToken));
            root.Subcommands.Add(command);
        }

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                Console.Error.WriteLine(error.Message);
            }

            Console.Error.WriteLine("See --help.");
            return Task.FromResult(2);
        }

        return parsed.InvokeAsync();
    }

    private static Option<TimeSpan> Time(string name, string description, TimeSpan value) =>
        new(name) { Description = description, DefaultValueFactory = _ => value, CustomParser = r => ParseTime(r) ?? value };

    /// <summary>Durations as <c>500ms</c>, <c>30s</c>, <c>2m</c> or <c>1h</c>.</summary>
    private static TimeSpan? ParseTime(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value.Trim();
        var unit = text.EndsWith("ms", StringComparison.Ordinal) ? "ms" : text.Length > 0 ? text[^1..] : "";
        var number = text[..^unit.Length];
        if (unit is "ms" or "s" or "m" or "h" && double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0)
        {
            return unit switch
            {
                "ms" => TimeSpan.FromMilliseconds(value),
                "s" => TimeSpan.FromSeconds(value),
                "m" => TimeSpan.FromMinutes(value),
                _ => TimeSpan.FromHours(value),
            };
        }

        result.AddError($"'{text}' is not a duration such as 500ms, 30s, 2m or 1h.");
        return null;
    }

    /// <summary>What is wrong with the options, or null.</summary>
    private static string? Check(LoadOptions o) =>
        o.Rate <= 0 || o.RampTo is <= 0 ? "--rate and --ramp-to must be above 0."
        : o.Concurrency is < 1 ? "--concurrency must be at least 1."
        : o.Users < 1 ? "--users must be at least 1."
        : o.BatchSize is < 1 or > 1000 ? "--batch-size must be 1 to 1000 (the Api's batch limit)."
        : o.Segments is < 0 or > 1000 ? "--segments must be 0 to 1000."
        : o.MaxInFlight < 1 ? "--max-in-flight must be at least 1."
        : o.Scenario != "kafka-ingest" && !Uri.TryCreate(o.Target, UriKind.Absolute, out _) ? $"--target must be the Api's URL, such as http://localhost:5000, not '{o.Target}'."
        : null;

    private static async Task<int> RunScenario(LoadOptions options, CancellationToken cancellationToken)
    {
        if (Check(options) is { } problem)
        {
            Console.Error.WriteLine(problem + " See --help.");
            return 2;
        }

        using var traffic = new Traffic(options.Users, options.ZipfExponent, options.Seed);
        var runner = LoadRunner.RegisterScenarios(Configure(BuiltInScenario(options, traffic), options)).WithReportFolder(options.Out);
        var result = await (options.Quiet ? runner.WithoutProgress() : runner).RunAsync(cancellationToken);
        return result.ExitCode;
    }

    private static Scenario BuiltInScenario(LoadOptions options, Traffic traffic) => options.Scenario switch
    {
        "ingest" => new IngestScenario(options, traffic, batch: false).Build(),
        "ingest-batch" => new IngestScenario(options, traffic, batch: true).Build(),
        "qualify" => new QualifyScenario(options).Build(),
        "kafka-ingest" => new KafkaIngestScenario(options, traffic).Build(),
        _ => new AuthoringScenario(options, traffic).Build(),
    };

    /// <summary>
    /// The command line's load, warm-up and thresholds as the library's: <c>--concurrency</c> a closed model,
    /// else <c>--rate</c> (or one segment change per <c>--authoring-interval</c>) ramping to <c>--ramp-to</c> over the
    /// whole run, warm-up included, whose first <c>--warmup</c> is not measured.
    /// </summary>
    internal static Scenario Configure(Scenario scenario, LoadOptions options)
    {
        var total = options.Warmup + options.Duration;
        var second = TimeSpan.FromSeconds(1);
        var rate = options.Scenario == "authoring" ? 1 / options.AuthoringInterval.TotalSeconds : options.Rate;
        var simulation = options.Concurrency is { } copies ? Simulation.KeepConstant(copies, total)
            : options.RampTo is { } end && end != rate ? Simulation.RampingInject(end, second, total, from: rate)
            : Simulation.Inject(rate, second, total);
        var thresholds = new List<Threshold>();
        if (options.MaxP99 is { } maxP99)
        {
            thresholds.Add(Threshold.P99Below(maxP99));
        }

        if (options.MinRate is { } minRate)
        {
            thresholds.Add(Threshold.RateAtLeast(minRate));
        }

        return scenario.WithTarget(options.Target)
            .WithLoadSimulations(simulation)
            .WithWarmUpDuration(options.Warmup)
            .WithThresholds([.. thresholds])
            .WithMaxInFlight(options.MaxInFlight);
    }
}
