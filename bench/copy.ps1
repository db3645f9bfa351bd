#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Copy, snapshot, restore and publish latency per storage driver, median of repeated runs.
.DESCRIPTION
    For the default pool (overlay), a dir pool in the state directory and a btrfs pool on a loop
    file it makes, with one source container that has written -FileMiB MiB of its own: (a)
    Copy-SystemContainer of the stopped source, (b) of the running source (frozen while its
    volume is copied), (c) Checkpoint-SystemContainer of the running source (frozen meanwhile),
    (d) Restore-SystemContainerSnapshot of the stopped source, (e) Publish-SystemContainer of
    the stopped source (tar of its root and an image import). Each copy, snapshot and image is
    removed after it is timed, outside the timing. The image is busybox unless -Image names
    another the daemon has or can build (bookworm, from the debootstrap cache). Results are
    appended to bench/RESULTS.md with -Record.
#>
param([int]$Runs = 10, [int]$Warmup = 1, [int]$FileMiB = 64, [string]$Image = 'busybox', [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
$rows = @()
try {
    if ($Image -eq 'busybox') { Get-TestImage | Out-Null }
    elseif (-not (Get-SystemContainerImage $Image -ErrorAction SilentlyContinue)) { New-SystemContainerImage -Debootstrap -Release $Image -Alias $Image | Out-Null }
    New-SystemContainerStoragePool bdir -Driver dir | Out-Null
    New-SystemContainerStoragePool bbtrfs -Driver btrfs -Size 4GiB | Out-Null
    foreach ($pool in 'default', 'bdir', 'bbtrfs') {
        $src = "src-$pool"
        New-SystemContainer $src -Image $Image -Network none -StoragePool $pool -Start | Out-Null
        Invoke-SystemContainerCommand $src -- sh -c "dd if=/dev/urandom of=/data bs=1M count=$FileMiB 2>/dev/null; sync" | Out-Null
        $stopped = @(); $running = @(); $snap = @(); $restore = @(); $publish = @()
        for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
            $r = Measure-Ms { Copy-SystemContainer $src "run-$pool-$i" }
            $k = Measure-Ms { Checkpoint-SystemContainer $src -SnapshotName "s$i" }
            Stop-SystemContainer $src -Force
            $s = Measure-Ms { Copy-SystemContainer $src "stop-$pool-$i" }
            $t = Measure-Ms { Restore-SystemContainerSnapshot $src "s$i" -Force }
            $p = Measure-Ms { Publish-SystemContainer $src -Alias "pub-$pool-$i" }
            Remove-SystemContainer "run-$pool-$i", "stop-$pool-$i" -Force
            Remove-SystemContainerSnapshot $src "s$i" -Force
            Remove-SystemContainerImage "pub-$pool-$i" -Force
            Start-SystemContainer $src
            if ($i -lt $Warmup) { continue }
            $stopped += $s; $running += $r; $snap += $k; $restore += $t; $publish += $p
        }
        Remove-SystemContainer $src -Force
        $rows += [pscustomobject]@{
            Driver = (Get-SystemContainerStoragePool $pool).Driver
            'Copy, stopped' = '{0:N1}' -f (Get-Median $stopped); 'Copy, running' = '{0:N1}' -f (Get-Median $running)
            Snapshot = '{0:N1}' -f (Get-Median $snap); Restore = '{0:N1}' -f (Get-Median $restore); Publish = '{0:N1}' -f (Get-Median $publish)
        }
    }
}
finally {
    Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
    Get-SystemContainerStoragePool -ErrorAction SilentlyContinue | Where-Object Name -ne 'default' |
        Remove-SystemContainerStoragePool -Force -ErrorAction SilentlyContinue
    Stop-TestDaemon $daemon
}
$columns = 'Driver', 'Copy, stopped', 'Copy, running', 'Snapshot', 'Restore', 'Publish'
$rows | Format-Table $columns -AutoSize
if ($Record) {
    Add-BenchResult 'copy.ps1' "Median ms of $Runs runs per driver ($Warmup warmup), image $Image with $FileMiB MiB written by the container, machine load $((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 1)." $columns $rows
}
