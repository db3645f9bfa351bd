using System.Text;

namespace SystemContainers.Engine.Runtime;

/// <summary>The "key value" lines sc-init reads on fd 3 (see src/native/sc-init.c).</summary>
public sealed class LaunchPlan
{
    private readonly StringBuilder _text = new();

    public LaunchPlan Add(string key, string value)
    {
        if (value.Contains('\n') || value.Contains('\0'))
            throw EngineException.Invalid("InvalidArgument", $"'{key}' must not contain a newline or NUL character");
        _text.Append(key).Append(' ').Append(value).Append('\n');
        return this;
    }

    public LaunchPlan Add(string key, long value) => Add(key, value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>"cgroup" lines name v1 tasks files to write; "cgroup2" the directory to clone into.</summary>
    public LaunchPlan Add(Cgroups.CgroupJoin join)
    {
        AddAll("cgroup", join.TaskFiles);
        return join.Unified is null ? this : Add("cgroup2", join.Unified);
    }

    /// <summary>A disk device: its "disk" line (the source) and the lines that describe it.</summary>
    public LaunchPlan Add(Spec.DiskSpec disk) =>
        Add("disk", disk.Source).Add("disk.path", disk.Path).Add("disk.readonly", disk.ReadOnly ? 1 : 0).Add("disk.shift", disk.Shift ? 1 : 0);

    /// <summary>The container's id map: the "uidmap" and "gidmap" lines of its user namespace.</summary>
    public LaunchPlan Add(Spec.IdMap map) => Add("uidmap", $"0 {map.UidBase} {map.Size}").Add("gidmap", $"0 {map.GidBase} {map.Size}");

    /// <summary>The mounts of the root file system, in order: a "root" line (the type) and the lines that describe it.</summary>
    public LaunchPlan AddAll(IEnumerable<Storage.RootMount> mounts)
    {
        foreach (var m in mounts)
        {
            Add("root", m.Type).Add("root.source", m.Source).Add("root.target", m.Target).Add("root.idmap", m.Idmap ? 1 : 0);
            if (m.Data is not null) Add("root.data", m.Data);
            if (m.Transient) Add("root.transient", 1);
        }
        return this;
    }

    public LaunchPlan AddAll(string key, IEnumerable<string> values)
    {
        foreach (var v in values) Add(key, v);
        return this;
    }

    public override string ToString() => _text + "end\n";
}
