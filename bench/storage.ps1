#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Create, start, snapshot, restore and remove latency per storage driver, median of repeated runs.
.DESCRIPTION
    For the default pool (overlay), a dir pool in the state directory and a btrfs pool on a
    loop file it makes: (a) New-SystemContainer -Network none (the volume: an empty upper, a copy
    of the image, a snapshot of the image's subvolume), (b) Start-SystemContainer +
    Invoke-SystemContainerCommand true, (c) Remove-SystemContainer -Force of the running
    container (its volume too). On btrfs also (d) Checkpoint-SystemContainer of a running
    container (frozen meanwhile) and (e) Restore-SystemContainerSnapshot of a stopped one. The
    first container of a btrfs pool also makes the image's subvolume; it is a warmup run. The
    image is busybox unless -Image names another the daemon has or can build (bookworm, from
    the debootstrap cache). Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$Runs = 10, [int]$Warmup = 2, [string]$Image = 'busybox', [switch]$Record)
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
        $create = @(); $start = @(); $snap = @(); $restore = @(); $remove = @()
        for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
            $name = "$pool-$i"
            $c = Measure-Ms { New-SystemContainer $name -Image $Image -Network none -StoragePool $pool }
            $s = Measure-Ms { Start-SystemContainer $name; Invoke-SystemContainerCommand $name true }
            if ($pool -eq 'bbtrfs') {
                $k = Measure-Ms { Checkpoint-SystemContainer $name -SnapshotName s }
                Stop-SystemContainer $name -Force
                $r = Measure-Ms { Restore-SystemContainerSnapshot $name s -Force }
                Start-SystemContainer $name
            }
            $d = Measure-Ms { Remove-SystemContainer $name -Force }
            if ($i -lt $Warmup) { continue }
            $create += $c; $start += $s; $remove += $d
            if ($pool -eq 'bbtrfs') { $snap += $k; $restore += $r }
        }
        $driver = (Get-SystemContainerStoragePool $pool).Driver
        $rows += [pscustomobject]@{
            Driver = $driver; Create = '{0:N1}' -f (Get-Median $create); 'Start+exec' = '{0:N1}' -f (Get-Median $start)
            Snapshot = if ($snap) { '{0:N1}' -f (Get-Median $snap) } else { '-' }
            Restore = if ($restore) { '{0:N1}' -f (Get-Median $restore) } else { '-' }
            Remove = '{0:N1}' -f (Get-Median $remove)
        }
    }
}
finally {
    Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
    Get-SystemContainerStoragePool -ErrorAction SilentlyContinue | Where-Object Name -ne 'default' |
        Remove-SystemContainerStoragePool -Force -ErrorAction SilentlyContinue
    Stop-TestDaemon $daemon
}
$columns = 'Driver', 'Create', 'Start+exec', 'Snapshot', 'Restore', 'Remove'
$rows | Format-Table $columns -AutoSize
if ($Record) {
    Add-BenchResult 'storage.ps1' "Median ms of $Runs runs per driver ($Warmup warmup), image $Image, machine load $((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 1)." $columns $rows
}
