#!/usr/bin/env pwsh
<#
.SYNOPSIS
    How closely a CPU quota holds: the CPU share a busy loop gets under limits.cpu.allowance.
.DESCRIPTION
    Target: within 5 points of the quota, e.g. 20-30 % of one CPU for 25ms/100ms (the tests
    only check that the kernel throttles the loop). A busybox container spins under each
    allowance for -Seconds; its cgroup CPU time over the wall time is the share. With -Record the result is appended to
    bench/RESULTS.md. Run after `./build.ps1 build`.
#>
param([string[]]$Allowances = @('25ms/100ms', '50ms/100ms', '10ms/20ms'), [int]$Seconds = 3, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
$rows = @()
try {
    $image = Get-TestImage
    foreach ($allowance in $Allowances) {
        $quota, $period = $allowance -split '/' | ForEach-Object { [double]($_ -replace 'ms$', '') }
        $c = New-SystemContainer quota -Image $image -Config @{ 'limits.cpu.allowance' = $allowance } -Start
        Invoke-SystemContainerCommand quota -- sh -c 'while :; do :; done > /dev/null 2>&1 &' | Out-Null
        Wait-Until -TimeoutSeconds 20 -What 'the loop to be throttled' { (Get-CgroupThrottledPeriods $c.Pid) -ge 3 }
        $a = Get-CgroupCpuUsage $c.Pid; $watch = [Diagnostics.Stopwatch]::StartNew()
        Start-Sleep -Seconds $Seconds
        $b = Get-CgroupCpuUsage $c.Pid; $elapsed = $watch.Elapsed.TotalSeconds
        $rows += [pscustomobject]@{ Allowance = $allowance; 'Target %' = [math]::Round($quota / $period * 100, 1)
            'Measured %' = [math]::Round(($b - $a) / 1e9 / $elapsed * 100, 1) }
        Remove-SystemContainer quota -Force -Confirm:$false
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        Add-BenchResult 'limits.ps1' "CPU share of a busy loop under limits.cpu.allowance over $Seconds s, from the cgroup's CPU time (cgroup $(Get-CgroupVersion)). Target: within 5 points of the quota." `
            @('Allowance', 'Target %', 'Measured %') $rows
    }
}
finally { Stop-TestDaemon $daemon }
