namespace Audience.LoadTests;

/// <summary>Everything a run is told on the command line; see <see cref="Cli"/> for the meaning of each.</summary>
internal sealed record LoadOptions
{
    public required string Scenario { get; init; }

    public required string Target { get; init; }

    public double Rate { get; init; } = 100;

    public double? RampTo { get; init; }

    public int? Concurrency { get; init; }

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(5);

    public int Users { get; init; } = 100_000;

    public double ZipfExponent { get; init; } = 1.0;

    public int Segments { get; init; } = 20;

    public int BatchSize { get; init; } = 100;

    public string? Bootstrap { get; init; }

    public string Topic { get; init; } = "user-events";

    public TimeSpan AuthoringInterval { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    public int MaxInFlight { get; init; } = 20_000;

    public string Out { get; init; } = "results";

    public TimeSpan? MaxP99 { get; init; }

    public double? MinRate { get; init; }

    public int Seed { get; init; } = 1;

    public bool Quiet { get; init; }

    public bool IsClosed => Concurrency is not null;
}
