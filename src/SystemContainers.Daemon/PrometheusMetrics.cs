using System.Globalization;
using System.Text;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>/1.0/metrics: every container's stats in the Prometheus text exposition format.</summary>
public static class PrometheusMetrics
{
    public static string Render(IEnumerable<ContainerStats> all)
    {
        var samples = all.ToList();
        var text = new StringBuilder();
        void Family(string name, string type, string help, Func<ContainerStats, IEnumerable<(string Labels, double Value)>> values)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var s in samples)
                foreach (var (labels, value) in values(s))
                    text.Append(name).Append("{name=\"").Append(s.Name).Append('"').Append(labels).Append("} ")
                        .Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        IEnumerable<(string, double)> One(double v) => [("", v)];
        IEnumerable<(string, double)> Running(ContainerStats s, Func<Engine.Cgroups.CgroupStats, double> v) =>
            s.Cgroup is null ? [] : One(v(s.Cgroup));
        Family("systemcontainers_up", "gauge", "1 when the container is running or frozen", s => One(s.Status is ContainerStatus.Running or ContainerStatus.Frozen ? 1 : 0));
        Family("systemcontainers_cpu_seconds_total", "counter", "CPU time used", s => Running(s, c => c.CpuUsageNanoseconds / 1e9));
        Family("systemcontainers_memory_usage_bytes", "gauge", "memory in use, page cache included", s => Running(s, c => c.MemoryUsageBytes));
        Family("systemcontainers_memory_limit_bytes", "gauge", "memory limit (absent when unlimited)",
            s => s.Cgroup?.MemoryLimitBytes is long l ? One(l) : []);
        Family("systemcontainers_oom_kills_total", "counter", "processes killed for memory", s => Running(s, c => c.OomKills));
        Family("systemcontainers_processes", "gauge", "processes", s => Running(s, c => c.Processes));
        Family("systemcontainers_disk_usage_bytes", "gauge", "bytes written to the root file system", s => One(s.DiskUsageBytes));
        Family("systemcontainers_network_receive_bytes_total", "counter", "bytes received per interface",
            s => s.Network.Select(n => ($",interface=\"{n.Name}\"", (double)n.RxBytes)));
        Family("systemcontainers_network_transmit_bytes_total", "counter", "bytes sent per interface",
            s => s.Network.Select(n => ($",interface=\"{n.Name}\"", (double)n.TxBytes)));
        return text.ToString();
    }
}
