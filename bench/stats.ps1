#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Time of Get-ContainerStats -All with 100 and 500 running busybox containers (median of 10).
.DESCRIPTION
    Target (issue 3): at most 1 ms per container, so 500 containers in 0.5 s. Containers are
    started in a daemon of its own (in a network namespace made for the run), each with a NIC
    on a /16 managed network, then measured (per-NIC counters included), then removed. With
    -Record the result is appended to bench/RESULTS.md. Run after `./build.ps1 build`.
#>
param([int[]]$Sizes = @(100, 500), [int]$Runs = 10, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
$rows = @()
try {
    Get-TestImage | Out-Null
    New-SystemContainerNetwork statsnet -IPv4 10.251.0.1/16 | Out-Null
    $running = 0
    foreach ($size in $Sizes | Sort-Object) {
        for (; $running -lt $size; $running++) { New-SystemContainer "st$running" -Image busybox -Network statsnet -Start | Out-Null }
        Get-ContainerStats -All | Out-Null
        $times = foreach ($i in 1..$Runs) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $samples = Get-ContainerStats -All
            $sw.Elapsed.TotalMilliseconds
            if ($samples.Count -ne $size) { throw "expected $size samples, got $($samples.Count)" }
        }
        $median = Get-Median $times
        $rows += [pscustomobject]@{ Containers = $size; 'Median ms' = [math]::Round($median, 1); 'ms per container' = [math]::Round($median / $size, 3) }
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        Add-BenchResult 'stats.ps1' "Get-ContainerStats -All over running busybox containers with a bridged NIC each, median of $Runs runs. Target: at most 1 ms per container." `
            @('Containers', 'Median ms', 'ms per container') $rows
    }
}
finally { Stop-TestDaemon $daemon }
