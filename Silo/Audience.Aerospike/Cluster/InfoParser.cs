using System.Text;

namespace Audience.Aerospike.Cluster;

/// <summary>Parses "host:port" strings, including bracketed IPv6 ("[::1]:3000").</summary>
internal static class HostParser
{
    public static (string Host, int Port) Parse(string text, int defaultPort)
    {
        text = text.Trim();
        string host;
        string? port = null;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new ArgumentException($"Bad Aerospike host '{text}': an IPv6 address needs a closing ']'.");
            }

            host = text[1..close];
            if (close + 1 < text.Length && text[close + 1] == ':')
            {
                port = text[(close + 2)..];
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            host = colon < 0 ? text : text[..colon];
            port = colon < 0 ? null : text[(colon + 1)..];
        }

        if (host.Length == 0)
        {
            throw new ArgumentException($"Bad Aerospike host '{text}': no host name.");
        }

        if (port is null)
        {
            return (host, defaultPort);
        }

        return int.TryParse(port, out var p) && p is > 0 and < 65536
            ? (host, p)
            : throw new ArgumentException($"Bad Aerospike host '{text}': the port must be 1..65535.");
    }
}

/// <summary>The info protocol's text answers (AEROSPIKE.md §8.8).</summary>
internal static class InfoParser
{
    /// <summary>Splits "name\tvalue\n" lines into a dictionary; a name with no tab maps to "".</summary>
    public static Dictionary<string, string> ParseResponse(ReadOnlySpan<byte> body)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab < 0)
            {
                result[line] = "";
            }
            else
            {
                result[line[..tab]] = line[(tab + 1)..];
            }
        }

        return result;
    }

    /// <summary>
    /// Parses <c>peers-clear-std</c>: <c>gen,default-port,[[name,tls-name,[host[:port],...]],...]</c>.
    /// Returns the generation and each peer's node name with its first address.
    /// </summary>
    public static (long Generation, List<(string Name, string Host, int Port)> Peers) ParsePeers(string text)
    {
        var peers = new List<(string, string, int)>();
        var first = text.IndexOf(',', StringComparison.Ordinal);
        var second = text.IndexOf(',', first + 1);
        if (first < 0 || second < 0)
        {
            throw new AerospikeException(ResultCode.ParseError, $"Bad peers response '{text}'.");
        }

        var generation = long.Parse(text.AsSpan(0, first));
        var defaultPort = text[(first + 1)..second].Length == 0 ? 3000 : int.Parse(text.AsSpan(first + 1, second - first - 1));
        var list = text[(second + 1)..].Trim();
        if (list.Length < 2 || list[0] != '[' || list[^1] != ']')
        {
            throw new AerospikeException(ResultCode.ParseError, $"Bad peers list '{list}'.");
        }

        var position = 1;
        while (position < list.Length - 1)
        {
            if (list[position] == ',')
            {
                position++;
                continue;
            }

            // One peer: [name,tls-name,[hosts]]
            var end = FindClosing(list, position);
            var peer = list[(position + 1)..end];
            var c1 = peer.IndexOf(',', StringComparison.Ordinal);
            var c2 = peer.IndexOf(',', c1 + 1);
            var name = peer[..c1];
            var hosts = peer[(c2 + 1)..];
            hosts = hosts.Length >= 2 ? hosts[1..^1] : "";
            if (hosts.Length > 0)
            {
                var firstHost = SplitHosts(hosts)[0];
                var (host, port) = HostParser.Parse(firstHost, defaultPort);
                peers.Add((name, host, port));
            }

            position = end + 1;
        }

        return (generation, peers);
    }

    /// <summary>
    /// Parses <c>replicas</c>: <c>ns:regime,count,b64-r0,b64-r1,...;ns2:...</c>, calling <paramref name="owns"/>
    /// for every (namespace, replica index, partition) whose bit is set.
    /// </summary>
    public static void ParseReplicas(string text, Action<string, int, int, int> owns)
    {
        Span<byte> bitmap = stackalloc byte[Partitions.Count / 8];
        foreach (var entry in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new AerospikeException(ResultCode.ParseError, $"Bad replicas entry '{entry}'.");
            }

            var ns = entry[..colon];
            var parts = entry[(colon + 1)..].Split(',');
            if (parts.Length < 2 || !int.TryParse(parts[1], out var replicaCount) || parts.Length != 2 + replicaCount)
            {
                throw new AerospikeException(ResultCode.ParseError, $"Bad replicas entry for namespace '{ns}'.");
            }

            for (var replica = 0; replica < replicaCount; replica++)
            {
                if (!Convert.TryFromBase64String(parts[2 + replica], bitmap, out var written) || written != bitmap.Length)
                {
                    throw new AerospikeException(ResultCode.ParseError, $"Bad partition bitmap for namespace '{ns}' replica {replica}.");
                }

                for (var partition = 0; partition < Partitions.Count; partition++)
                {
                    if ((bitmap[partition >> 3] & (0x80 >> (partition & 7))) != 0)
                    {
                        owns(ns, replicaCount, replica, partition);
                    }
                }
            }
        }
    }

    private static int FindClosing(string text, int open)
    {
        var depth = 0;
        for (var i = open; i < text.Length; i++)
        {
            if (text[i] == '[')
            {
                depth++;
            }
            else if (text[i] == ']' && --depth == 0)
            {
                return i;
            }
        }

        throw new AerospikeException(ResultCode.ParseError, $"Unbalanced brackets in '{text}'.");
    }

    private static List<string> SplitHosts(string hosts)
    {
        // Commas separate hosts; bracketed IPv6 addresses contain colons but no commas.
        return [.. hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
    }
}
