#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Density: N busybox containers started one after another and kept running, with a NIC each and without.
.DESCRIPTION
    For each kind (a bridged NIC on a managed network, then no NIC): N containers are started one
    after another (New-SystemContainer -Start, after five warm-up starts of each kind) and all kept running; then the total time, the
    median start time of the first 10 and of the last 10 (and their ratio: flat is 1), how many
    NICs got a DHCP address, the host memory per container (the sum of the containers' cgroup
    memory over N), the daemon's RSS, the latency of an exec, of Get-SystemContainer and of
    Get-ContainerStats -All with all running, and the stop + remove of all (one Stop- and one Remove-SystemContainer of every name: bulk requests). Scaled to the
    machine by -Count (issue 14 aims at 1,000).
    With -SystemdCount N (issue 14 aims at 100), then N Debian/systemd containers (bookworm, built by
    debootstrap from the test image cache, with a NIC) are started one after another and kept
    running, each timed until `systemctl is-system-running` says running or degraded (polled every
    50 ms); reported with the failed units of all, the memory per container and the stop + remove of
    all. The host's limits are raised first by Test-SystemContainerHost -Containers (2 N) -Fix (into
    a sysctl file of the run's, so /etc is not changed) and put back after it. Where LXC is installed, the same busybox containers of
    LXC's start interleaved with ours (Start-LxcDriver in Bench.psm1: timed in the shell that runs
    lxc-*, without wrappers of ours) and its figures follow ours in parentheses. Results are appended
    to bench/RESULTS.md with -Record.
#>
param([int]$Count = 50, [int]$SystemdCount = 0, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

function Get-DaemonRssMiB($Daemon) {
    $kb = (Get-Content "/proc/$($Daemon.Pid)/status" | Where-Object { $_ -like 'VmRSS:*' }) -replace '\D', ''
    [math]::Round([double]$kb / 1024, 1)
}

# The memory of LXC's containers as their cgroups count it (v1 memory controller, or the v2 tree), in bytes.
function Get-LxcMemory([string[]]$Names) {
    $sum = 0
    foreach ($n in $Names) {
        foreach ($file in "/sys/fs/cgroup/memory/lxc.payload.$n/memory.usage_in_bytes", "/sys/fs/cgroup/lxc.payload.$n/memory.current") {
            if (Test-Path $file) { $sum += [long](Get-Content $file); break }
        }
    }
    $sum
}

# Until systemctl is-system-running says running or degraded, asked every 50 ms as LXC's is (Wait-SystemContainer asks every 500 ms); returns the state.
function Wait-SystemdBooted([string]$Name) {
    $deadline = [DateTime]::UtcNow.AddSeconds(180)
    while ($true) {
        $state = try { "$((Invoke-SystemContainerCommand $Name -PassThru -ErrorAction Stop -- systemctl is-system-running).Stdout)".Trim() } catch { '' }
        if ($state -in 'running', 'degraded') { return $state }
        if ([DateTime]::UtcNow -gt $deadline) { throw "$Name did not boot within 180 s (systemctl: '$state')" }
        Start-Sleep -Milliseconds 50
    }
}

# What Wait-SystemdBooted asks, for LXC's container, in its shell (a subshell: its exit must not end the driver's).
function Get-LxcBootWait([string]$Name) {
    "(for i in `$(seq 3600); do case `$(lxc-attach -n $Name -- systemctl is-system-running 2>/dev/null) in running|degraded) exit 0;; esac; sleep 0.05; done; exit 1)"
}

$sysctlFile = Join-Path ([IO.Path]::GetTempPath()) "scbench-$PID-sysctl.conf"
# What -Fix may raise host-wide, put back after the run.
$hostLimits = [ordered]@{}
foreach ($key in 'fs.inotify.max_user_instances', 'fs.inotify.max_user_watches', 'kernel.keys.maxkeys', 'kernel.pid_max', 'vm.max_map_count') { $hostLimits[$key] = (sysctl -n $key) }
if ($SystemdCount -gt 0) { Initialize-TestImageCache }
$daemon = Start-TestDaemon -ExtraArguments @('--sysctl-file', $sysctlFile)
$results = [ordered]@{}
$lxc = $null
try {
    Get-TestImage | Out-Null
    New-SystemContainerNetwork densenet -IPv4 10.251.0.1/16 | Out-Null
    $lxc = Start-LxcDriver
    # A fresh daemon's first starts are its JIT's: warmed up here, the first 10 measure a start, not the compiler.
    foreach ($network in 'densenet', 'none') {
        foreach ($i in 1..5) { New-SystemContainer "dense-warm-$i" -Image busybox -Network $network -Start | Out-Null }
        Remove-SystemContainer (1..5 | ForEach-Object { "dense-warm-$_" }) -Force
    }
    if ($lxc) {
        foreach ($kind in 'veth', 'empty') {
            $warm = 1..5 | ForEach-Object { "$($lxc.Tag)-warm-$_" }
            foreach ($n in $warm) { Invoke-LxcLaunch $lxc $kind $n -Then '' | Out-Null }
            Invoke-LxcTeardown $lxc $warm | Out-Null
        }
    }
    $results['daemon RSS before, MiB'] = @{ NIC = Get-DaemonRssMiB $daemon; none = '' }
    foreach ($kind in 'NIC', 'none') {
        $network = if ($kind -eq 'NIC') { 'densenet' } else { 'none' }
        $names = 0..($Count - 1) | ForEach-Object { "dense-$kind-$_".ToLower() }
        $lxcNames = 0..($Count - 1) | ForEach-Object { "$($lxc.Tag)-$kind-$_".ToLower() }
        # Each of our starts is followed by LXC's, so both meet the same number of containers running.
        $starts = [Collections.Generic.List[double]]::new(); $lxcStarts = [Collections.Generic.List[double]]::new()
        for ($i = 0; $i -lt $Count; $i++) {
            $starts.Add((Measure-Ms { New-SystemContainer $names[$i] -Image busybox -Network $network -Start }))
            if ($lxc) { $lxcStarts.Add((Invoke-LxcLaunch $lxc $(if ($kind -eq 'NIC') { 'veth' } else { 'empty' }) $lxcNames[$i] -Then '')) }
        }
        $addressed = ''
        if ($kind -eq 'NIC') {
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            do { $addressed = @(Get-SystemContainer | Where-Object { $_.Name -like 'dense-nic-*' -and $_.IPv4 }).Count }
            while ($addressed -lt $Count -and [DateTime]::UtcNow -lt $deadline -and -not (Start-Sleep -Milliseconds 200))
        }
        $exec = Get-Median @(1..10 | ForEach-Object { Measure-Ms { Invoke-SystemContainerCommand $names[$_ * 7 % $Count] true } })
        $list = Get-Median @(1..10 | ForEach-Object { Measure-Ms { Get-SystemContainer } })
        $stats = Get-Median @(1..5 | ForEach-Object { Measure-Ms { Get-ContainerStats -All } })
        $memory = (Get-ContainerStats -All | Where-Object Name -in $names | Measure-Object MemoryUsage -Sum).Sum / $Count / 1MB
        $rss = Get-DaemonRssMiB $daemon
        $teardown = Measure-Ms { Stop-SystemContainer $names -Force; Remove-SystemContainer $names -Force }
        $measured = Get-StartSummary $starts
        $measured += [ordered]@{
            'NICs with a DHCP address'                   = $addressed
            'memory per container, MiB (cgroup sum / N)' = [math]::Round($memory, 2)
            'daemon RSS with all running, MiB'           = $rss
            'exec with all running (median ms)'          = [math]::Round($exec, 2)
            'Get-SystemContainer of all (median ms)'     = [math]::Round($list, 2)
            'Get-ContainerStats -All (median ms)'        = [math]::Round($stats, 2)
            'stop + remove of all, s'                    = [math]::Round($teardown / 1000, 2)
        }
        if ($lxc) {
            # LXC's side, measured with ours still running as ours was with LXC's: lxc-attach, lxc-ls -f, its cgroups' memory.
            $lxcMeasured = Get-StartSummary $lxcStarts
            $lxcMeasured += [ordered]@{
                'memory per container, MiB (cgroup sum / N)' = [math]::Round((Get-LxcMemory $lxcNames) / $Count / 1MB, 2)
                'exec with all running (median ms)'          = [math]::Round((Get-Median @(1..10 | ForEach-Object { Invoke-LxcStep $lxc "lxc-attach -n $($lxcNames[$_ * 7 % $Count]) -- true" })), 2)
                'Get-SystemContainer of all (median ms)'     = [math]::Round((Get-Median @(1..10 | ForEach-Object { Invoke-LxcStep $lxc 'lxc-ls -f' })), 2)
                'stop + remove of all, s'                    = [math]::Round((Invoke-LxcTeardown $lxc $lxcNames) / 1000, 2)
            }
            foreach ($key in $lxcMeasured.Keys) { $measured[$key] = "$($measured[$key]) (LXC $($lxcMeasured[$key]))" }
        }
        foreach ($key in $measured.Keys) {
            if (-not $results.Contains($key)) { $results[$key] = @{} }
            $results[$key][$kind] = $measured[$key]
        }
    }
    if ($SystemdCount -gt 0) {
        Test-SystemContainerHost -Containers (2 * $SystemdCount) -Fix -Confirm:$false | Out-Null
        $image = New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm -ErrorAction Stop
        if ($lxc) { New-LxcSystemdBase $lxc (Join-Path $daemon.StateDir "images/$($image.Fingerprint)/rootfs") }
        $names = 1..$SystemdCount | ForEach-Object { "dense-deb-$_" }
        $lxcNames = 1..$SystemdCount | ForEach-Object { "$($lxc.Tag)-deb-$_" }
        $starts = [Collections.Generic.List[double]]::new(); $lxcStarts = [Collections.Generic.List[double]]::new()
        $degraded = 0
        for ($i = 0; $i -lt $SystemdCount; $i++) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            New-SystemContainer $names[$i] -Image bookworm -Network densenet -Start | Out-Null
            if ((Wait-SystemdBooted $names[$i]) -eq 'degraded') { $degraded++ }
            $starts.Add($sw.Elapsed.TotalMilliseconds)
            if ($lxc) { $lxcStarts.Add((Invoke-LxcLaunch $lxc systemd $lxcNames[$i] -Then (Get-LxcBootWait $lxcNames[$i]))) }
        }
        $failed = @(foreach ($n in $names) { Invoke-SystemContainerCommand $n -- systemctl --failed --no-legend --plain | ForEach-Object { "$n " + ($_ -split '\s+')[0] } })
        $memory = (Get-ContainerStats -All | Where-Object Name -in $names | Measure-Object MemoryUsage -Sum).Sum / $SystemdCount / 1MB
        $teardown = Measure-Ms { Stop-SystemContainer $names -Force; Remove-SystemContainer $names -Force }
        $measured = Get-StartSummary $starts booted
        $measured += [ordered]@{
            'booted degraded / failed units of all'      = "$degraded / $($failed.Count)"
            'memory per container, MiB (cgroup sum / N)' = [math]::Round($memory, 2)
            'stop + remove of all, s'                    = [math]::Round($teardown / 1000, 2)
        }
        if ($failed) { Write-Host "failed units (ours): $($failed -join ', ')" }
        if ($lxc) {
            $lxcFailed = @(Invoke-LxcQuery $lxc "for n in $($lxcNames -join ' '); do lxc-attach -n `$n -- systemctl --failed --no-legend --plain | sed `"s/^/`$n /`"; done" | Where-Object { $_ })
            if ($lxcFailed) { Write-Host "failed units (LXC): $($lxcFailed -join ', ')" }
            $lxcMeasured = Get-StartSummary $lxcStarts booted
            $lxcMeasured += [ordered]@{
                'booted degraded / failed units of all'      = "$($lxcFailed.Count) failed"
                'memory per container, MiB (cgroup sum / N)' = [math]::Round((Get-LxcMemory $lxcNames) / $SystemdCount / 1MB, 2)
                'stop + remove of all, s'                    = [math]::Round((Invoke-LxcTeardown $lxc $lxcNames) / 1000, 2)
            }
            foreach ($key in $lxcMeasured.Keys) { $measured[$key] = "$($measured[$key]) (LXC $($lxcMeasured[$key]))" }
            $ratio = ($starts | Measure-Object -Sum).Sum / ($lxcStarts | Measure-Object -Sum).Sum
            $measured['ours / LXC, total until booted (target <= 0.8)'] = [math]::Round($ratio, 2)
        }
        foreach ($key in $measured.Keys) { $results["Debian/systemd ($SystemdCount): $key"] = @{ NIC = $measured[$key]; none = '' } }
    }
    $rows = foreach ($k in $results.Keys) { [pscustomobject]@{ Measure = $k; 'with a NIC' = $results[$k].NIC; 'without a NIC' = $results[$k].none } }
    $rows | Format-Table -AutoSize -Wrap | Out-String -Width 300 | Out-Host
    if ($Record) {
        $load = ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' '
        $withLxc = if ($lxc) { "LXC $(lxc-start --version) in parentheses: its busybox containers (lxc-copy -s -B overlayfs, lxc-start; a veth on a bridge without DHCP, or no network) started interleaved with ours, one of theirs after each of ours, timed in its own shell; its list is lxc-ls -f, its exec lxc-attach." } else { 'LXC not installed.' }
        Add-BenchResult 'density.ps1' "$Count busybox containers of each kind$(if ($SystemdCount) { ", then $SystemdCount Debian/systemd containers with a NIC," }) started one after another and kept running; $([Environment]::ProcessorCount) cores, kernel $(uname -r), load average $load at the end. $withLxc" `
            @('Measure', 'with a NIC', 'without a NIC') $rows
    }
}
finally {
    Stop-LxcDriver $lxc
    Stop-TestDaemon $daemon
    Remove-Item $sysctlFile -ErrorAction SilentlyContinue
    foreach ($key in $hostLimits.Keys) { if ((sysctl -n $key) -ne $hostLimits[$key]) { sysctl -q -w "$key=$($hostLimits[$key])" } }
}
