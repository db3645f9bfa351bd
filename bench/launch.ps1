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
    lxc-start / lxc-attach / lxc-stop -k / lxc-destroy runs interleaved with ours (each of our
    runs is followed by LXC's), without a network and with a veth NIC on a Linux bridge, timed
    in the shell that runs the lxc-* commands (Start-LxcDriver in Bench.psm1, so LXC's column
    holds no wrapper of ours), and is printed as a ratio. Ours and LXC each run in a network namespace
    made for the run. Results are appended to bench/RESULTS.md with -Record.
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
    $lxc = Start-LxcDriver
    # Without and then with a NIC, each in a loop of its own: a stopped container's network
    # namespace is torn down by the kernel afterwards, which would weigh on the next launch.
    # LXC's run follows each of ours, so both see the same machine at the same time.
    $ours = @{ bare = @(); launch = @(); dhcp = @(); exec = @(); teardown = @() }
    $theirs = @{ bare = @(); launch = @(); exec = @(); teardown = @() }
    try {
        for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
            $name = "bare$i"
            $b = Measure-Ms { New-SystemContainer $name -Image busybox -Network none -Start; Invoke-SystemContainerCommand $name true }
            $e = Measure-Ms { Invoke-SystemContainerCommand $name true }
            Remove-SystemContainer $name -Force
            if ($i -ge $Warmup) { $ours.bare += $b; $ours.exec += $e }
            if ($lxc) {
                $n = "$($lxc.Tag)-b$i"
                $b = Invoke-LxcLaunch $lxc empty $n
                $e = Invoke-LxcStep $lxc "lxc-attach -n $n -- true"
                Invoke-LxcTeardown $lxc $n | Out-Null
                if ($i -ge $Warmup) { $theirs.bare += $b; $theirs.exec += $e }
            }
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
            if ($i -ge $Warmup) { $ours.launch += $l; $ours.dhcp += $d; $ours.teardown += $t }
            if ($lxc) {
                $n = "$($lxc.Tag)-$i"
                $l = Invoke-LxcLaunch $lxc veth $n
                $t = Invoke-LxcTeardown $lxc $n
                if ($i -ge $Warmup) { $theirs.launch += $l; $theirs.teardown += $t }
            }
        }
    }
    finally { Stop-LxcDriver $lxc }
    # The medians of each measure's runs, and the NIC's share of a launch.
    function Get-Medians($Samples) {
        $m = [ordered]@{}
        foreach ($k in $Samples.Keys) { $m[$k] = Get-Median $Samples[$k] }
        $m.nic = $m.launch - $m.bare
        $m
    }
    $oursMs = Get-Medians $ours
    $lxcMs = if ($lxc) { Get-Medians $theirs } else { $null }

    $labels = [ordered]@{
        bare = 'launch, no NIC'; launch = 'launch, bridged NIC'; nic = 'NIC overhead (target <= 15)'
        dhcp = 'launch until DHCP address'; exec = 'exec'; teardown = 'stop + remove (with NIC)'
    }
    $rows = foreach ($k in $labels.Keys) {
        $us = $oursMs[$k]
        $them = if ($lxcMs -and $lxcMs.Contains($k)) { $lxcMs[$k] } else { $null }
        [pscustomobject]@{
            Measure               = $labels[$k]
            'SystemContainers ms' = [math]::Round($us, 2)
            'LXC ms'              = if ($them) { [math]::Round($them, 2) } elseif ($lxc) { 'n/a' } else { 'not installed' }
            'LXC / ours'          = if ($them -gt 0 -and $us -gt 0) { [math]::Round($them / $us, 1) } else { '' }
            'ours / LXC'          = if ($them -gt 0 -and $us -gt 0) { [math]::Round($us / $them, 2) } else { '' }
        }
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        $cgroup = (Invoke-TestApi $daemon GET /1.0).Body.metadata.cgroup_version
        $load = ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' '
        Add-BenchResult 'launch.ps1' "$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), cgroup $cgroup, median of $Runs runs after $Warmup warm-up runs, load average $load at the end; NICs on a Linux bridge in a network namespace made for the run; LXC $(if ($lxc) { (lxc-start --version) + ' interleaved run by run, timed in its own shell' } else { 'not installed' })." `
            @('Measure', 'SystemContainers ms', 'LXC ms', 'LXC / ours', 'ours / LXC') $rows
    }
}
finally { Stop-TestDaemon $daemon }
