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
    machine by -Count (issue 14 aims at 1,000). Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$Count = 50, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

function Get-DaemonRssMiB($Daemon) {
    $kb = (Get-Content "/proc/$($Daemon.Pid)/status" | Where-Object { $_ -like 'VmRSS:*' }) -replace '\D', ''
    [math]::Round([double]$kb / 1024, 1)
}

$daemon = Start-TestDaemon
$results = [ordered]@{}
try {
    Get-TestImage | Out-Null
    New-SystemContainerNetwork densenet -IPv4 10.251.0.1/16 | Out-Null
    # A fresh daemon's first starts are its JIT's: warmed up here, the first 10 measure a start, not the compiler.
    foreach ($network in 'densenet', 'none') {
        foreach ($i in 1..5) { New-SystemContainer "dense-warm-$i" -Image busybox -Network $network -Start | Out-Null }
        Remove-SystemContainer (1..5 | ForEach-Object { "dense-warm-$_" }) -Force
    }
    $results['daemon RSS before, MiB'] = @{ NIC = Get-DaemonRssMiB $daemon; none = '' }
    foreach ($kind in 'NIC', 'none') {
        $network = if ($kind -eq 'NIC') { 'densenet' } else { 'none' }
        $names = 0..($Count - 1) | ForEach-Object { "dense-$kind-$_".ToLower() }
        $total = [Diagnostics.Stopwatch]::StartNew()
        $starts = foreach ($name in $names) { Measure-Ms { New-SystemContainer $name -Image busybox -Network $network -Start } }
        $totalMs = $total.Elapsed.TotalMilliseconds
        $first = Get-Median $starts[0..9]
        $last = Get-Median $starts[($Count - 10)..($Count - 1)]
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
        $measured = [ordered]@{
            'total start of all, s'                      = [math]::Round($totalMs / 1000, 2)
            'start, first 10 (median ms)'                = [math]::Round($first, 2)
            'start, last 10 (median ms)'                 = [math]::Round($last, 2)
            'last 10 / first 10'                         = [math]::Round($last / $first, 2)
            'NICs with a DHCP address'                   = $addressed
            'memory per container, MiB (cgroup sum / N)' = [math]::Round($memory, 2)
            'daemon RSS with all running, MiB'           = $rss
            'exec with all running (median ms)'          = [math]::Round($exec, 2)
            'Get-SystemContainer of all (median ms)'     = [math]::Round($list, 2)
            'Get-ContainerStats -All (median ms)'        = [math]::Round($stats, 2)
            'stop + remove of all, s'                    = [math]::Round($teardown / 1000, 2)
        }
        foreach ($key in $measured.Keys) {
            if (-not $results.Contains($key)) { $results[$key] = @{} }
            $results[$key][$kind] = $measured[$key]
        }
    }
    $rows = foreach ($k in $results.Keys) { [pscustomobject]@{ Measure = $k; 'with a NIC' = $results[$k].NIC; 'without a NIC' = $results[$k].none } }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $load = ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' '
        Add-BenchResult 'density.ps1' "$Count busybox containers of each kind started one after another and kept running; $([Environment]::ProcessorCount) cores, kernel $(uname -r), load average $load at the end. LXC not run in this script." `
            @('Measure', 'with a NIC', 'without a NIC') $rows
    }
}
finally { Stop-TestDaemon $daemon }
