#!/usr/bin/env pwsh
<#
.SYNOPSIS
    What lxcfs's views cost at container start: cold launch with security.lxcfs true (the default) and false, median of repeated runs.
.DESCRIPTION
    Each run makes a busybox container without a NIC, starts it and runs `true` in it (as launch.ps1's
    bare launch), once with the lxcfs files bound over /proc and /sys and once without, alternating so
    that both see the same machine load. Also: the first read of /proc/meminfo inside (an lxcfs read
    goes through FUSE to the daemon's lxcfs). Results are appended to bench/RESULTS.md with -Record.
    Run after `./build.ps1 build`.
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
    $lxcfs = (Get-SystemContainerHost).Lxcfs
    if ($lxcfs -notin 'daemon', 'system') { throw "no lxcfs serves this daemon ($lxcfs): nothing to measure" }
    $times = @{ $true = @(); $false = @() }
    $reads = @{ $true = @(); $false = @() }
    for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
        foreach ($on in $true, $false) {
            $name = "lx$i-$($on.ToString().ToLower())"
            $config = @{ 'security.lxcfs' = $on.ToString().ToLower(); 'limits.memory' = '256MiB' }
            $l = Measure-Ms { New-SystemContainer $name -Image busybox -Network none -Config $config -Start; Invoke-SystemContainerCommand $name true }
            $r = Measure-Ms { Invoke-SystemContainerCommand $name cat /proc/meminfo }
            Remove-SystemContainer $name -Force -Confirm:$false
            if ($i -ge $Warmup) { $times[$on] += $l; $reads[$on] += $r }
        }
    }
    $rows = @(
        [pscustomobject]@{ measure = 'launch'; 'lxcfs (ms)' = '{0:N2}' -f (Get-Median $times[$true]); 'without (ms)' = '{0:N2}' -f (Get-Median $times[$false]); 'cost (ms)' = '{0:N2}' -f ((Get-Median $times[$true]) - (Get-Median $times[$false])) }
        [pscustomobject]@{ measure = 'exec cat /proc/meminfo'; 'lxcfs (ms)' = '{0:N2}' -f (Get-Median $reads[$true]); 'without (ms)' = '{0:N2}' -f (Get-Median $reads[$false]); 'cost (ms)' = '{0:N2}' -f ((Get-Median $reads[$true]) - (Get-Median $reads[$false])) }
    )
    $rows | Format-Table -AutoSize | Out-String | Write-Host
    if ($Record) {
        $cpu = (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.*)' | Select-Object -First 1).Matches.Groups[1].Value
        Add-BenchResult 'lxcfs.ps1' ("$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), cgroup $((Get-SystemContainerHost).CgroupVersion), " +
            "lxcfs: $lxcfs, median of $Runs runs after $Warmup warm-up runs, alternating security.lxcfs true and false.") `
            @('measure', 'lxcfs (ms)', 'without (ms)', 'cost (ms)') $rows
    }
}
finally { Stop-TestDaemon $daemon }
