using SystemContainers.Engine.Network;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Completes a config's NICs and records the result: a first config without any NIC gets
/// eth0 on the default network; a bridged NIC without a network joins the default one
/// (made now if need be), and one without a MAC gets a random one, kept from then on.
/// </summary>
internal sealed class NicDefaults(EngineOptions options, NetworkManager networks)
{
    public ContainerConfig Complete(ContainerConfig config, bool firstConfig)
    {
        var raw = new Dictionary<string, string>(config.Raw, StringComparer.Ordinal);
        if (firstConfig && !raw.Keys.Any(NicSpec.IsNicKey) && options.DefaultNetwork is not null)
            raw[NicSpec.Key("eth0", "type")] = "bridged";
        foreach (var nic in ContainerConfig.Parse(raw).BridgedNics)
        {
            raw[NicSpec.Key(nic.Device, "type")] = "bridged";
            if (nic.Network is null) raw[NicSpec.Key(nic.Device, "network")] = networks.EnsureDefault();
            else if (nic.Network == options.DefaultNetwork) networks.EnsureDefault();
            if (nic.HwAddr is null) raw[NicSpec.Key(nic.Device, "hwaddr")] = NicSpec.NewMac();
        }
        return ContainerConfig.Parse(raw);
    }
}
