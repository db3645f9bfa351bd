namespace SystemContainers.Engine.Images;

/// <summary>Looks inside an unpacked rootfs without following links out of it.</summary>
public static class RootfsInspector
{
    /// <summary>
    /// Resolves a path inside root one component at a time, as the container would see it:
    /// absolute links restart at root and ".." never climbs above it. Null when it does not exist.
    /// </summary>
    public static string? Resolve(string root, string path)
    {
        var pending = new LinkedList<string>(path.Split('/'));
        var resolved = new List<string>();
        int hops = 0;
        while (pending.Count > 0)
        {
            string c = pending.First!.Value;
            pending.RemoveFirst();
            if (c is "" or ".") continue;
            if (c == "..")
            {
                if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            string candidate = Path.Combine(root, string.Join('/', resolved.Append(c)));
            var info = new FileInfo(candidate);
            if (info.LinkTarget is string target)
            {
                if (++hops > 40) return null;
                if (target.StartsWith('/')) resolved.Clear();
                foreach (var part in target.Split('/').Reverse()) pending.AddFirst(part);
                continue;
            }
            if (!info.Exists && !Directory.Exists(candidate)) return null;
            resolved.Add(c);
        }
        return Path.Combine(root, string.Join('/', resolved));
    }

    public static string InitKind(string root)
    {
        string? init = Resolve(root, "sbin/init");
        if (init is null) return "";
        return Path.GetFileName(init) switch
        {
            "systemd" => InitKinds.Systemd,
            "busybox" => InitKinds.Busybox,
            _ => InitKinds.Other,
        };
    }
}
