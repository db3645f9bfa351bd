using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Changes config keys (a null or empty value removes one). The whole result is validated
/// first; the root disk size (limits.disk) changes at once, running or not; on a running
/// container the NICs, disks and limits change at once too, and whatever the
/// kernel refuses puts back what was changed before it. Only then is config.json replaced.
/// </summary>
internal sealed class UpdateContainer(EngineParts parts, ContainerCleanup cleanup, NicDefaults nicDefaults)
{
    public void Run(Container c, IReadOnlyDictionary<string, string?> changes)
    {
        if (!c.State.CanUpdate()) throw c.Damaged();
        string name = c.Name;
        var merged = new Dictionary<string, string>(c.Record.Config, StringComparer.Ordinal);
        foreach (var (given, value) in changes)
        {
            string key = ContainerConfig.CanonicalKey(given);
            // migration.stateful chooses the namespace layout, as security.nesting does.
            if (key.StartsWith("security.", StringComparison.OrdinalIgnoreCase) || key == ContainerConfig.Stateful)
                throw EngineException.Invalid("ImmutableConfigKey", $"config key '{key}' can only be set when the container is created");
            if (string.IsNullOrEmpty(value)) merged.Remove(key);
            else merged[key] = value;
        }
        var config = ContainerConfig.Parse(merged);
        bool nicsChanged = changes.Keys.Select(ContainerConfig.CanonicalKey).Any(NicSpec.IsNicKey);
        var old = c.Spec;
        foreach (var disk in config.Disks.Except(old.Disks)) disk.CheckSource();
        using var revert = new Reverter();
        if (config.Limits.DiskBytes != old.Limits.DiskBytes)
        {
            parts.Storage.CheckRootSize(c.Record, config.Limits.DiskBytes);
            parts.Storage.SetRootSize(c.Record, parts.Store.DirectoryOf(name), config.Limits.DiskBytes);
            revert.Add($"the root disk size of '{name}'", () => parts.Storage.SetRootSize(c.Record, parts.Store.DirectoryOf(name), old.Limits.DiskBytes));
        }
        if (nicsChanged)
        {
            config = nicDefaults.Complete(config, firstConfig: false);
            revert.Add($"the NICs of '{name}'", () => parts.Networks.Register(name, old.Nics));
            parts.Networks.Register(name, config.Nics);
        }
        var live = c.Live;
        if (nicsChanged && live is not null) PlugAdded(c, live, old, config, revert);
        if (live is not null && ChangeDisks(c, live, old, config))
            revert.Add($"the disks of '{name}'", () => ChangeDisks(c, live, config, old));
        ApplyAndSave(c, live, config);
        revert.Success();
        if (nicsChanged && live is not null) UnplugRemoved(c, live, old, config);
    }

    /// <summary>Hot-plugs and unplugs a running container's disks from before to after; false when they are the same.</summary>
    private bool ChangeDisks(Container c, LiveInit live, ContainerConfig before, ContainerConfig after)
    {
        if (before.Disks.SequenceEqual(after.Disks)) return false;
        DiskPlug.Change(parts.ScInit, live.Pidfd, c.Record.IdMap, locked: c.Record.IdMap is not null && !after.IsNesting, c.Name, before, after);
        return true;
    }

    /// <summary>
    /// Hot-plugs the bridged NICs a running container's new config adds. A device whose network,
    /// names or MAC change keeps its current NIC until the next start.
    /// </summary>
    private void PlugAdded(Container c, LiveInit live, ContainerConfig before, ContainerConfig after, Reverter revert)
    {
        var had = before.BridgedNics.Select(n => n.Device).ToHashSet(StringComparer.Ordinal);
        foreach (var nic in after.BridgedNics.Where(n => !had.Contains(n.Device)))
        {
            HostInterface host;
            try
            {
                host = parts.Networks.Plug(c.Name, nic, live.Pid);
            }
            catch (NativeException e)
            {
                throw new EngineException(FailureKind.Failed, "HotplugFailed",
                    $"cannot add NIC {nic.Device} to running container '{c.Name}': {e.Message}", e);
            }
            lock (live.HostInterfaces) live.HostInterfaces.Add(host);
            revert.Add($"NIC {nic.Device} of '{c.Name}'", () =>
            {
                lock (live.HostInterfaces) live.HostInterfaces.Remove(host);
                cleanup.DetachAll([host]);
            });
        }
    }

    /// <summary>Unplugs the bridged NICs a running container's new config no longer has (the peer goes with its host end).</summary>
    private void UnplugRemoved(Container c, LiveInit live, ContainerConfig before, ContainerConfig after)
    {
        var keeps = after.BridgedNics.Select(n => n.Device).ToHashSet(StringComparer.Ordinal);
        var gone = before.BridgedNics.Where(n => !keeps.Contains(n.Device)).Select(n => n.HostNameFor(c.Name)).ToHashSet(StringComparer.Ordinal);
        List<HostInterface> unplugged;
        lock (live.HostInterfaces)
        {
            unplugged = live.HostInterfaces.Where(h => gone.Contains(h.Name)).ToList();
            live.HostInterfaces.RemoveAll(unplugged.Contains);
        }
        cleanup.DetachAll(unplugged);
    }

    /// <summary>A validated config: limits applied to a running container (or put back if the kernel refuses), then saved.</summary>
    private void ApplyAndSave(Container c, LiveInit? live, ContainerConfig config)
    {
        if (live is not null)
        {
            var old = c.Spec.Limits;
            string? oldSet = live.CpuSet;
            try
            {
                live.CpuSet = parts.Cpus.Choose(config.Limits, parts.Registry.CpuSetsExcept(c));
                parts.Cgroups.Apply(live.Cgroup, config.Limits, live.CpuSet);
            }
            catch (Exception e) when (e is NativeException or IOException)
            {
                live.CpuSet = oldSet;
                parts.Cgroups.Apply(live.Cgroup, old, oldSet);
                throw new EngineException(FailureKind.Failed, "LimitRefused", $"cannot apply limits to container '{c.Name}': {e.Message}", e);
            }
        }
        var record = c.Record with { Config = config.Raw };
        parts.Store.WriteConfig(parts.Store.DirectoryOf(c.Name), record);
        c.Replace(record, config);
    }
}
