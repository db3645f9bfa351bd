namespace SystemContainers.Engine.Runtime;

/// <summary>
/// Reads a container's global addresses from its network namespace through /proc/&lt;pid&gt;/net,
/// which shows the namespace of that process: no setns, no helper process.
/// </summary>
public static class NetnsAddresses
{
    public static (IReadOnlyList<string> V4, IReadOnlyList<string> V6) Read(int pid)
    {
        try
        {
            return (V4FromFibTrie(File.ReadAllLines($"/proc/{pid}/net/fib_trie")), V6FromIfInet6(File.ReadAllLines($"/proc/{pid}/net/if_inet6")));
        }
        catch (IOException)
        {
            return ([], []);
        }
    }

    /// <summary>Local addresses are the "/32 host LOCAL" leaves of the Local table; loopback ones are left out.</summary>
    internal static IReadOnlyList<string> V4FromFibTrie(IEnumerable<string> lines)
    {
        var result = new List<string>();
        string? last = null;
        foreach (var raw in lines)
        {
            string line = raw.Trim();
            if (line.StartsWith("|-- ", StringComparison.Ordinal)) last = line[4..];
            else if (line == "/32 host LOCAL" && last is not null && !last.StartsWith("127.", StringComparison.Ordinal) && !result.Contains(last))
                result.Add(last);
        }
        return result;
    }

    /// <summary>
    /// Usable global-scope addresses (scope 00) from if_inet6, in the usual compressed form; one
    /// still in duplicate address detection, or that failed it, cannot be used yet and is left out.
    /// </summary>
    internal static IReadOnlyList<string> V6FromIfInet6(IEnumerable<string> lines)
    {
        const int Tentative = 0x40, DadFailed = 0x08;
        var result = new List<string>();
        foreach (var line in lines)
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 6 || f[3] != "00" || f[0].Length != 32) continue;
            if ((Convert.ToInt32(f[4], 16) & (Tentative | DadFailed)) != 0) continue;
            var bytes = Convert.FromHexString(f[0]);
            result.Add(new System.Net.IPAddress(bytes).ToString());
        }
        return result;
    }
}
