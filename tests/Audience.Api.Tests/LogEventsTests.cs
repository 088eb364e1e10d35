using System.Reflection;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Api.Tests;

/// <summary>
/// The service's log event ids: each used once across the Api, the Silo and the Aerospike client; the Api's and the
/// Silo's taken from <see cref="LogEvents"/>; every one listed in docs/operations.md (Log events) with its level.
/// </summary>
public sealed class LogEventsTests
{
    private static readonly Assembly[] Assemblies =
        [typeof(Program).Assembly, typeof(LogEvents).Assembly, typeof(Audience.Aerospike.AerospikeClient).Assembly];

    private static List<(int Id, LogLevel Level, string Method)> Used() =>
        [.. Assemblies.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (m.Attribute!.EventId, m.Attribute.Level, $"{m.Method.DeclaringType!.Name}.{m.Method.Name}"))];

    [Fact]
    public void Every_event_id_is_used_once()
    {
        var used = Used();
        Assert.True(used.Count >= 40, $"only {used.Count} log messages found");
        var twice = used.GroupBy(u => u.Id).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(u => u.Method))}").ToList();
        Assert.True(twice.Count == 0, "event ids used more than once: " + string.Join("; ", twice));
    }

    [Fact]
    public void The_Api_and_the_Silo_take_their_ids_from_LogEvents_and_the_docs_list_them_all()
    {
        var registered = typeof(LogEvents).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (int)f.GetRawConstantValue()!).ToHashSet();
        var ours = Used().Where(u => u.Id < 9000).ToList();
        Assert.Equal(registered.Order(), ours.Select(u => u.Id).Order());

        var docs = File.ReadAllText(Path.Combine(Deploy.ChartTests.Root, "docs", "operations.md"));
        var section = docs[docs.IndexOf("## Log events", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 3, StringComparison.Ordinal)];
        var listed = section.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && char.IsDigit(l[2]))
            .Select(l => l.Split('|', StringSplitOptions.TrimEntries)).ToDictionary(c => int.Parse(c[1], System.Globalization.CultureInfo.InvariantCulture), c => c[2]);
        foreach (var (id, level, method) in ours)
        {
            Assert.True(listed.TryGetValue(id, out var documented), $"{id} ({method}) is not in docs/operations.md, Log events");
            Assert.Equal(level.ToString(), documented);
        }

        Assert.Equal(ours.Count, listed.Count);
    }
}
