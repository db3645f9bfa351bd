#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Launch, exec and teardown latency, with and without a NIC, median of repeated runs in one warm pwsh session.
.DESCRIPTION
    (a) cold launch without a NIC: New-SystemContainer -Network none from the busybox image + start + Invoke-SystemContainerCommand true
    (b) cold launch with a bridged NIC on a managed network: the same; the NIC is made and up before init runs
    (c) NIC overhead: (b) - (a); the target is at most 15 ms
    (d) launch until the container's own DHCP client (udhcpc) has its address (polling Get-SystemContainer)
    (e) exec: Invoke-SystemContainerCommand true in a running container
    (f) teardown: Stop-SystemContainer -Force + Remove-SystemContainer (with the NIC)
    Where LXC is installed (lxc-start on PATH), the same work with lxc-copy -s -B overlayfs /
    lxc-start / lxc-attach / lxc-stop -k / lxc-destroy runs in the same session, without a
    network and with a veth NIC on a Linux bridge, and is printed as a ratio. Everything runs in
    a network namespace made for the run. Results are appended to bench/RESULTS.md with -Record.
    Run through `./build.ps1 bench` (which builds first) or directly after a build.
#>
param([int]$Runs = 25, [int]$Warmup = 3, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
try {
    Get-TestImage | Out-Null
    New-SystemContainerNetwork benchnet -IPv4 10.250.0.1/16 | Out-Null
    # Without and then with a NIC, each in a loop of its own: a stopped container's network
    # namespace is torn down by the kernel afterwards, which would weigh on the next launch.
    $bare = @(); $launch = @(); $dhcp = @(); $exec = @(); $teardown = @()
    for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
        $name = "bare$i"
        $b = Measure-Ms { New-SystemContainer $name -Image busybox -Network none -Start; Invoke-SystemContainerCommand $name true }
        $e = Measure-Ms { Invoke-SystemContainerCommand $name true }
        Remove-SystemContainer $name -Force
        if ($i -ge $Warmup) { $bare += $b; $exec += $e }
    }
    for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
        $name = "bench$i"
        $sw = [Diagnostics.Stopwatch]::StartNew()
        New-SystemContainer $name -Image busybox -Network benchnet -Start | Out-Null
        Invoke-SystemContainerCommand $name true | Out-Null
        $l = $sw.Elapsed.TotalMilliseconds
        while (-not (Get-SystemContainer $name).IPv4) { }
        $d = $sw.Elapsed.TotalMilliseconds
        $t = Measure-Ms { Stop-SystemContainer $name -Force; Remove-SystemContainer $name -Confirm:$false }
        if ($i -ge $Warmup) { $launch += $l; $dhcp += $d; $teardown += $t }
    }
    $ours = [ordered]@{ bare = Get-Median $bare; launch = Get-Median $launch; dhcp = Get-Median $dhcp; exec = Get-Median $exec; teardown = Get-Median $teardown }
    $ours.nic = $ours.launch - $ours.bare

    $lxc = $null
    if (Get-Command lxc-start -ErrorAction SilentlyContinue) {
        # LXC runs in the same network namespace (its monitor socket is an abstract one, so every
        # lxc-* command does); its veth NICs go on a bridge of their own there. lxc-start looks
        # for the bridge in /sys, which must show that namespace's devices.
        $ns = @("--net=/run/netns/$($daemon.Netns)", '--')
        $sysfs = Join-Path ([IO.Path]::GetTempPath()) "scbench-sysfs-$PID"
        New-Item -ItemType Directory $sysfs | Out-Null
        $startIn = "mount -t sysfs none $sysfs && mount --bind $sysfs/class/net /sys/class/net && mount --bind $sysfs/devices/virtual/net /sys/devices/virtual/net && exec lxc-start -n `"`$0`""
        function Start-Lxc([string]$Name) { nsenter @ns unshare -m --propagation private sh -c $startIn $Name }
        Invoke-InNetns $daemon ip @('link', 'add', 'lxcbench0', 'type', 'bridge')
        Invoke-InNetns $daemon ip @('link', 'set', 'lxcbench0', 'up')
        $bases = @{}
        foreach ($kind in 'empty', 'veth') {
            $base = "scbench-$kind-$PID"
            $conf = Join-Path ([IO.Path]::GetTempPath()) "$base.conf"
            $net = if ($kind -eq 'veth') { "lxc.net.0.type = veth`nlxc.net.0.link = lxcbench0`nlxc.net.0.flags = up" } else { 'lxc.net.0.type = empty' }
            Set-Content $conf "$net`nlxc.apparmor.profile = unconfined"
            & lxc-create -n $base -t busybox -f $conf 2>&1 | Out-Null
            Remove-Item $conf
            if ($LASTEXITCODE) { throw "lxc-create failed with exit code $LASTEXITCODE" }
            $bases[$kind] = $base
        }
        $lb = @(); $l = @(); $e = @(); $t = @()
        try {
            for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
                $n = "scbench-$PID-b$i"
                $a = Measure-Ms { lxc-copy -n $bases.empty -N $n -s -B overlayfs; Start-Lxc $n; nsenter @ns lxc-attach -n $n -- true }
                $b = Measure-Ms { nsenter @ns lxc-attach -n $n -- true }
                nsenter @ns lxc-stop -n $n -k; lxc-destroy -n $n
                if ($i -ge $Warmup) { $lb += $a; $e += $b }
            }
            for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
                $n = "scbench-$PID-$i"
                $a = Measure-Ms { lxc-copy -n $bases.veth -N $n -s -B overlayfs; Start-Lxc $n; nsenter @ns lxc-attach -n $n -- true }
                $c = Measure-Ms { nsenter @ns lxc-stop -n $n -k; lxc-destroy -n $n }
                if ($i -ge $Warmup) { $l += $a; $t += $c }
            }
        }
        finally {
            foreach ($base in $bases.Values) { & lxc-destroy -n $base -f 2>&1 | Out-Null }
            Remove-Item $sysfs
        }
        $lxc = [ordered]@{ bare = Get-Median $lb; launch = Get-Median $l; exec = Get-Median $e; teardown = Get-Median $t }
        $lxc.nic = $lxc.launch - $lxc.bare
    }

    $labels = [ordered]@{
        bare = 'launch, no NIC'; launch = 'launch, bridged NIC'; nic = 'NIC overhead (target <= 15)'
        dhcp = 'launch until DHCP address'; exec = 'exec'; teardown = 'stop + remove (with NIC)'
    }
    $rows = foreach ($k in $labels.Keys) {
        $theirs = if ($lxc -and $lxc.Contains($k)) { $lxc[$k] } else { $null }
        [pscustomobject]@{
            Measure               = $labels[$k]
            'SystemContainers ms' = [math]::Round($ours[$k], 2)
            'LXC ms'              = if ($theirs) { [math]::Round($theirs, 2) } elseif ($lxc) { 'n/a' } else { 'not installed' }
            'LXC / ours'          = if ($theirs -gt 0 -and $ours[$k] -gt 0) { [math]::Round($theirs / $ours[$k], 1) } else { '' }
        }
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        $cgroup = (Invoke-TestApi $daemon GET /1.0).Body.metadata.cgroup_version
        $load = ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' '
        Add-BenchResult 'launch.ps1' "$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), cgroup $cgroup, median of $Runs runs after $Warmup warm-up runs, load average $load at the end; NICs on a Linux bridge in a network namespace made for the run." `
            @('Measure', 'SystemContainers ms', 'LXC ms', 'LXC / ours') $rows
    }
}
finally { Stop-TestDaemon $daemon }
