#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Launch, exec and teardown latency, median of repeated runs in one warm pwsh session.
.DESCRIPTION
    (a) cold launch: New-SystemContainer from the busybox image + start + Invoke-SystemContainerCommand true
    (b) exec: Invoke-SystemContainerCommand true in a running container
    (c) teardown: Stop-SystemContainer -Force + Remove-SystemContainer
    Where LXC is installed (lxc-start on PATH), the same work with lxc-copy -s -B overlayfs /
    lxc-start / lxc-attach / lxc-stop -k / lxc-destroy runs in the same session and is printed as
    a ratio. Results are appended to bench/RESULTS.md with -Record.
    Run through `./build.ps1 bench` (which builds first) or directly after a build.
#>
param([int]$Runs = 25, [int]$Warmup = 3, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

function Measure-Ms([scriptblock]$Block) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    & $Block | Out-Null
    $sw.Elapsed.TotalMilliseconds
}

$daemon = Start-TestDaemon
try {
    Get-TestImage | Out-Null
    $launch = @(); $exec = @(); $teardown = @()
    for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
        $name = "bench$i"
        $l = Measure-Ms { New-SystemContainer $name -Image busybox -Start; Invoke-SystemContainerCommand $name true }
        $e = Measure-Ms { Invoke-SystemContainerCommand $name true }
        $t = Measure-Ms { Stop-SystemContainer $name -Force; Remove-SystemContainer $name -Confirm:$false }
        if ($i -ge $Warmup) { $launch += $l; $exec += $e; $teardown += $t }
    }
    $ours = [ordered]@{ launch = Get-Median $launch; exec = Get-Median $exec; teardown = Get-Median $teardown }

    $lxc = $null
    if (Get-Command lxc-start -ErrorAction SilentlyContinue) {
        # A busybox container with no network, the same work as ours (LXC's busybox template is privileged).
        $base = "scbench-base-$PID"
        $conf = Join-Path ([IO.Path]::GetTempPath()) "$base.conf"
        Set-Content $conf "lxc.net.0.type = empty`nlxc.apparmor.profile = unconfined"
        & lxc-create -n $base -t busybox -f $conf 2>&1 | Out-Null
        Remove-Item $conf
        if ($LASTEXITCODE) { throw "lxc-create failed with exit code $LASTEXITCODE" }
        $l = @(); $e = @(); $t = @()
        try {
            for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
                $n = "scbench-$PID-$i"
                $a = Measure-Ms { lxc-copy -n $base -N $n -s -B overlayfs; lxc-start -n $n; lxc-attach -n $n -- true }
                $b = Measure-Ms { lxc-attach -n $n -- true }
                $c = Measure-Ms { lxc-stop -n $n -k; lxc-destroy -n $n }
                if ($i -ge $Warmup) { $l += $a; $e += $b; $t += $c }
            }
        }
        finally { & lxc-destroy -n $base -f 2>&1 | Out-Null }
        $lxc = [ordered]@{ launch = Get-Median $l; exec = Get-Median $e; teardown = Get-Median $t }
    }

    $rows = foreach ($k in 'launch', 'exec', 'teardown') {
        [pscustomobject]@{
            Measure          = $k
            'SystemContainers ms' = [math]::Round($ours[$k], 2)
            'LXC ms'         = if ($lxc) { [math]::Round($lxc[$k], 2) } else { 'not installed' }
            'LXC / ours'     = if ($lxc) { [math]::Round($lxc[$k] / $ours[$k], 1) } else { '' }
        }
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        $cgroup = (Invoke-TestApi $daemon GET /1.0).Body.metadata.cgroup_version
        Add-BenchResult 'launch.ps1' "$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), cgroup $cgroup, median of $Runs runs after $Warmup warm-up runs." `
            @('Measure', 'SystemContainers ms', 'LXC ms', 'LXC / ours') $rows
    }
}
finally { Stop-TestDaemon $daemon }
