namespace SystemContainers.Engine.Spec;

/// <summary>The host ids that container uid/gid 0.. map to: a contiguous range, the same for users and groups.</summary>
public sealed record IdMap(long UidBase, long GidBase, long Size)
{
    public const long DefaultBase = 1_000_000, DefaultSize = 65536;

    /// <summary>
    /// The range for root's containers: the config, else root's first /etc/subuid and /etc/subgid
    /// entries of at least 65536 ids (the convention newuidmap follows), else 1000000+65536.
    /// </summary>
    public static IdMap ForConfig(ContainerConfig config, string etc = "/etc")
    {
        long size = config.IdmapSizeValue ?? DefaultSize;
        if (config.IdmapBaseValue is long b) return new IdMap(b, b, size);
        long uid = SubordinateBase(Path.Combine(etc, "subuid"), size) ?? DefaultBase;
        long gid = SubordinateBase(Path.Combine(etc, "subgid"), size) ?? DefaultBase;
        return new IdMap(uid, gid, size);
    }

    /// <summary>The start of root's first range in a subordinate id file (/etc/subuid, /etc/subgid) of at least size ids.</summary>
    public static long? SubordinateBase(string file, long size)
    {
        if (!File.Exists(file)) return null;
        foreach (var line in File.ReadLines(file))
        {
            var parts = line.Split(':');
            if (parts.Length == 3 && (parts[0] == "root" || parts[0] == "0") &&
                long.TryParse(parts[1], out long start) && long.TryParse(parts[2], out long count) && count >= size)
                return start;
        }
        return null;
    }

    public int RootUid => (int)UidBase;
    public int RootGid => (int)GidBase;
}
