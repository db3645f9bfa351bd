namespace SystemContainers.Engine.Storage;

/// <summary>
/// One mount of a container's root file system, made by sc-init in plan order: Type "bind"
/// attaches a detached copy of Source at Target (idmapped through the container's user namespace
/// when Idmap), any other Type is a file system mounted from Source with Data. A Transient mount
/// only feeds a later one (an overlay's idmapped lower) and is detached once all are made.
/// </summary>
public sealed record RootMount(string Type, string Source, string Target, string? Data = null, bool Idmap = false, bool Transient = false)
{
    public static RootMount Bind(string source, string target, bool idmap) => new("bind", source, target, Idmap: idmap);
}

/// <summary>Where a container's root goes at start: Target is its root, Layers a private directory for attach points.</summary>
public sealed record RootTarget(string Target, string Layers);
