using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// Keeps every running container's proxy devices listening. It follows the containers' state,
/// not a log of events: after each lifecycle event (start, restart, config change, stop, exit,
/// delete) the container's proxies are made to match its config and its init, so events that
/// race each other still end right. At daemon start, adopted containers get theirs again. A
/// device that cannot listen (a busy port) is logged and tried again at the next change; the
/// container runs on.
/// </summary>
public sealed class ProxyDevices : IDisposable
{
    private readonly ContainerService _containers;
    private readonly Action<string> _log;
    private readonly object _lock = new();
    private readonly Dictionary<string, (int Pid, Dictionary<string, PortProxy> Devices)> _running = new(StringComparer.Ordinal);
    private bool _disposed;

    public ProxyDevices(ContainerService containers, Action<string> log)
    {
        _containers = containers;
        _log = log;
        _containers.Events += OnEvent;
        foreach (var view in _containers.List()) Sync(view.Name);
    }

    private void OnEvent(EngineEvent e)
    {
        if (e.Action.StartsWith("container-", StringComparison.Ordinal)) Sync(e.Source);
    }

    private void Sync(string name)
    {
        lock (_lock)
        {
            if (_disposed) return;
            ContainerView? view;
            try
            {
                view = _containers.Get(name);
            }
            catch (EngineException e) when (e.Kind == FailureKind.NotFound)
            {
                view = null;
            }
            var wanted = view is { Pid: int, Status: ContainerStatus.Running or ContainerStatus.Frozen } ? ContainerConfig.Parse(view.Config).Proxies : [];
            int pid = view?.Pid ?? 0;
            if (_running.TryGetValue(name, out var current) && current.Pid != pid)
            {
                // A new init has a new network namespace: what listened for the old one ends.
                StopAll(current.Devices);
                _running.Remove(name);
                current = default;
            }
            var devices = current.Devices ?? new Dictionary<string, PortProxy>(StringComparer.Ordinal);
            foreach (var (device, proxy) in devices.Where(d => !wanted.Contains(d.Value.Spec)).ToList())
            {
                proxy.Dispose();
                devices.Remove(device);
            }
            foreach (var spec in wanted.Where(s => !devices.ContainsKey(s.Device)))
            {
                SafeFd? netns = null;
                try
                {
                    netns = Sys.Open($"/proc/{pid}/ns/net", Libc.O_RDONLY);
                    devices[spec.Device] = PortProxy.Start(spec, netns);
                    netns = null;
                    _log($"proxy {name}/{spec.Device}: listening on {spec.Listen} for {spec.Connect} in the container");
                }
                catch (Exception e) when (e is EngineException or NativeException)
                {
                    _log($"proxy {name}/{spec.Device}: {e.Message}");
                }
                finally
                {
                    netns?.Dispose();
                }
            }
            if (devices.Count > 0) _running[name] = (pid, devices);
            else _running.Remove(name);
        }
    }

    private static void StopAll(Dictionary<string, PortProxy> devices)
    {
        foreach (var proxy in devices.Values) proxy.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _containers.Events -= OnEvent;
            foreach (var (_, devices) in _running.Values) StopAll(devices);
            _running.Clear();
        }
    }
}
