#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Soak: N create/start/exec/stop/remove cycles against one daemon, then every kind of leftover.
.DESCRIPTION
    Each cycle makes a busybox container with a bridged NIC on the default network, starts it,
    runs `true` in it, stops it (forced) and removes it. The daemon's open fds and RSS are sampled
    after the warm-up cycles and every tenth of the run; at the end the script counts what is
    left: container cgroups, processes in them, mounts under the run directory, veths, dnsmasqs
    beyond one per network, staging entries and temp files in the state directory, run
    directories. Every leftover count should be 0. Results go to bench/RESULTS.md with -Record.
#>
param([int]$Cycles = 1000, [int]$Warmup = 20, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

function Get-DaemonSample($Daemon, [int]$Cycle) {
    $rss = (Get-Content "/proc/$($Daemon.Pid)/status" | Where-Object { $_ -like 'VmRSS:*' }) -replace '\D', ''
    [pscustomobject]@{ Cycle = $Cycle; Fds = @(Get-ChildItem "/proc/$($Daemon.Pid)/fd").Count; RssMiB = [math]::Round([long]$rss / 1024, 1) }
}

function Get-Leftovers($Daemon) {
    $group = 'systemcontainers-' + [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($Daemon.StateDir))).ToLower().Substring(0, 8)
    $groups = Get-CgroupDirectories $Daemon.Pid | ForEach-Object { Join-Path $_ $group } | Where-Object { Test-Path $_ }
    $cgroups = @($groups | ForEach-Object { Get-ChildItem -Directory $_ })
    $state = $Daemon.StateDir
    [ordered]@{
        'container cgroups'       = $cgroups.Count
        'processes in them'       = @($cgroups | ForEach-Object { Get-ChildItem -Recurse -Filter cgroup.procs $_.FullName | Get-Content }).Count
        'mounts under run dir'    = @(Get-Content /proc/self/mountinfo | Where-Object { $_ -match [regex]::Escape($Daemon.RunDir) }).Count
        'veths'                   = @(Invoke-InNetns $Daemon ip @('-o', 'link', 'show', 'type', 'veth')).Count
        'extra dnsmasqs'          = @(Get-TestDnsmasq $Daemon).Count - @(Get-SystemContainerNetwork).Count
        'container directories'   = @(Get-ChildItem -Force (Join-Path $state 'containers')).Count
        'staging entries'         = @(Get-ChildItem -Force (Join-Path $state 'images'), (Join-Path $state 'containers') | Where-Object Name -like '.*').Count
        'temp files'              = @(Get-ChildItem -Force -Recurse -File $state -ErrorAction SilentlyContinue | Where-Object Name -like '.*.tmp').Count
        'run directories'         = @(Get-ChildItem -Force (Join-Path $Daemon.RunDir 'containers')).Count
    }
}

$daemon = Start-TestDaemon
try {
    Get-TestImage | Out-Null
    $samples = @()
    $sw = [Diagnostics.Stopwatch]::StartNew()
    for ($i = 0; $i -lt $Warmup + $Cycles; $i++) {
        $name = "soak$i"
        New-SystemContainer $name -Image busybox -Start | Out-Null
        Invoke-SystemContainerCommand $name true | Out-Null
        Stop-SystemContainer $name -Force
        Remove-SystemContainer $name -Confirm:$false
        if ($i -eq $Warmup - 1) { $sw.Restart(); $samples += Get-DaemonSample $daemon 0 }
        elseif ($i -ge $Warmup -and ($i - $Warmup + 1) % [math]::Max(1, [int]($Cycles / 10)) -eq 0) { $samples += Get-DaemonSample $daemon ($i - $Warmup + 1) }
    }
    $perCycle = $sw.Elapsed.TotalMilliseconds / $Cycles
    # Detached veths are deleted in the background; give them a moment before counting.
    Start-Sleep -Seconds 2
    $left = Get-Leftovers $daemon
    $samples | Format-Table -AutoSize | Out-Host
    $left.GetEnumerator() | ForEach-Object { [pscustomobject]@{ Leftover = $_.Key; Count = $_.Value } } | Format-Table -AutoSize | Out-Host
    "{0} cycles, {1:N1} ms per cycle" -f $Cycles, $perCycle | Out-Host
    if ($Record) {
        $first, $last = $samples[0], $samples[-1]
        $rows = @(
            [pscustomobject]@{ Measure = 'daemon fds (after warm-up -> end)'; Value = "$($first.Fds) -> $($last.Fds)" }
            [pscustomobject]@{ Measure = 'daemon RSS MiB (after warm-up -> end)'; Value = "$($first.RssMiB) -> $($last.RssMiB)" }
            [pscustomobject]@{ Measure = 'ms per cycle'; Value = [math]::Round($perCycle, 1) }
        ) + @($left.GetEnumerator() | ForEach-Object { [pscustomobject]@{ Measure = "left: $($_.Key)"; Value = $_.Value } })
        Add-BenchResult 'soak.ps1' "$Cycles create/start/exec/stop/remove cycles after $Warmup warm-up cycles, bridged NIC on the default network, kernel $(uname -r)." @('Measure', 'Value') $rows
    }
}
finally { Stop-TestDaemon $daemon }
