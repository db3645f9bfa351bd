namespace SystemContainers.Engine.Tests;

/// <summary>Looks at the host from outside a container: owners, namespaces.</summary>
public static unsafe class Host
{
    public static (uint Uid, uint Gid) Owner(string path)
    {
        Tmds.Linux.stat st;
        byte[] p = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* bp = p)
            if (Tmds.Linux.LibC.lstat(bp, &st) != 0) throw new IOException($"lstat {path} failed");
        return (st.st_uid, st.st_gid);
    }

    public static string Namespace(int pid, string kind) => new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget!;

    /// <summary>The host uid and gid that container root (id 0) of pid's user namespace maps to.</summary>
    public static (uint Uid, uint Gid) RootIds(int pid)
    {
        static uint HostIdOfZero(string map)
        {
            var fields = File.ReadAllLines(map).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Single(f => f[0] == "0");
            return uint.Parse(fields[1]);
        }
        return (HostIdOfZero($"/proc/{pid}/uid_map"), HostIdOfZero($"/proc/{pid}/gid_map"));
    }
}
