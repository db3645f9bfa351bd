using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine;

/// <summary>
/// Starts the stopped containers with boot.autostart=true when the daemon starts (at host boot,
/// once it runs as a service): by boot.autostart.priority, highest first, then by name, waiting
/// boot.autostart.delay after each. Running containers were adopted and are left as they are;
/// one container that fails to start is logged and the rest still start.
/// </summary>
public static class Autostart
{
    public static async Task RunAsync(ContainerService containers, Action<string> log, CancellationToken ct)
    {
        var order = containers.List()
            .Where(v => v.Status == ContainerStatus.Stopped)
            .Select(v => (v.Name, Config: ContainerConfig.Parse(v.Config)))
            .Where(c => c.Config.IsAutostart)
            .OrderByDescending(c => c.Config.AutostartPriorityValue).ThenBy(c => c.Name, StringComparer.Ordinal)
            .ToList();
        foreach (var (name, config) in order)
        {
            try
            {
                await containers.StartAsync(name, ct);
                log($"autostart: started {name} (priority {config.AutostartPriorityValue})");
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                log($"autostart: cannot start {name}: {e.Message}");
                continue;
            }
            if (config.AutostartDelayValue > TimeSpan.Zero)
            {
                try { await Task.Delay(config.AutostartDelayValue, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }
}
