namespace Audience.Aerospike;

/// <summary>Per-command timing; null members take the client defaults.</summary>
public record Policy
{
    public TimeSpan? TotalTimeout { get; init; }

    public TimeSpan? SocketTimeout { get; init; }

    public int? MaxRetries { get; init; }
}

/// <summary>What a write does when the record exists or not.</summary>
public enum RecordExistsAction
{
    /// <summary>Create or merge bins into the record.</summary>
    Update,

    /// <summary>Merge bins; fail with KeyNotFound if the record is missing.</summary>
    UpdateOnly,

    /// <summary>Create, or replace all bins.</summary>
    Replace,

    /// <summary>Replace all bins; fail with KeyNotFound if the record is missing.</summary>
    ReplaceOnly,

    /// <summary>Create; fail with RecordExists if the record is there.</summary>
    CreateOnly,
}

/// <summary>How the expected generation is checked.</summary>
public enum GenerationPolicy
{
    None,

    /// <summary>Write only if the record's generation equals <see cref="WritePolicy.Generation"/> (check-and-set).</summary>
    ExpectEqual,

    /// <summary>Write only if the given generation is greater than the record's.</summary>
    ExpectGreater,
}

/// <summary>Write settings: existence action, generation check and TTL.</summary>
public sealed record WritePolicy : Policy
{
    public static WritePolicy Default { get; } = new();

    public RecordExistsAction RecordExistsAction { get; init; }

    public GenerationPolicy GenerationPolicy { get; init; }

    public int Generation { get; init; }

    /// <summary>TTL in seconds: -2 keeps the current TTL, -1 never expires, 0 the namespace default, &gt; 0 seconds.</summary>
    public int Ttl { get; init; }

    /// <summary>Wait for the master only, not the replicas.</summary>
    public bool CommitMasterOnly { get; init; }

    /// <summary>Shorthand for a check-and-set on <paramref name="generation"/>.</summary>
    public static WritePolicy ExpectGeneration(int generation) => new() { GenerationPolicy = GenerationPolicy.ExpectEqual, Generation = generation };
}
