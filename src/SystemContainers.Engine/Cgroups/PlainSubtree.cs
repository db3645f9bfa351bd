namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// A subtree the daemon makes itself, as &lt;parent&gt;/&lt;group&gt;: at the root of a pure cgroup v2 host
/// without systemd (the root has no rule against processes of its own, so controllers can always be
/// enabled there), or under the daemon's own cgroup in the controller-less cgroup2 tree of a hybrid host.
/// </summary>
public sealed class PlainSubtree(string root, string parent, string group, bool enableControllers) : CgroupSubtree
{
    private readonly object _lock = new();
    private readonly string _parentDir = System.IO.Path.Join(root, parent);
    private bool _enabled;

    public override string Path => System.IO.Path.Combine(_parentDir, group);

    public override void Ensure()
    {
        lock (_lock)
        {
            if (_enabled && Directory.Exists(Path)) return;
            if (enableControllers) CgroupFs.EnableControllers(_parentDir);
            CgroupFs.MakeDir(Path);
            if (enableControllers) CgroupFs.EnableControllers(Path);
            _enabled = true;
        }
    }

    public override void Release()
    {
        lock (_lock) CgroupFs.TryRemoveEmpty(Path);
    }
}
