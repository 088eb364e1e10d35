using Microsoft.Extensions.Configuration;

namespace Audience.Silo.Hosting;

/// <summary>
/// Configuration section <c>Rules</c>: which engine decides segment memberships in the user grains. Both give the
/// same memberships and the same changes; <c>compiled</c> (each rule compiled to delegates, the default) is about
/// 120 times faster per event than <c>nrules</c> (each rule translated into an NRules rule) at a hundred or a
/// thousand segments: docs/performance.md.
/// </summary>
public sealed record RulesOptions
{
    public const string Compiled = "compiled";
    public const string NRules = "nrules";

    public string Engine { get; init; } = Compiled;

    public static RulesOptions Read(IConfiguration configuration)
    {
        var engine = configuration["Rules:Engine"];
        return engine switch
        {
            null or Compiled => new RulesOptions(),
            NRules => new RulesOptions { Engine = NRules },
            _ => throw new ConfigurationException("Rules:Engine",
                $"'compiled' (the default: rules compiled to delegates) or 'nrules' (rules evaluated by NRules), not '{engine}'"),
        };
    }
}
