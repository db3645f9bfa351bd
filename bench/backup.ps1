#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Export and import throughput (MB/s) of a container per storage driver, median of repeated runs.
.DESCRIPTION
    For the default pool (overlay), a dir pool in the state directory and a btrfs pool on a loop file it makes, a busybox
    container holding -DataMB of incompressible data (files of 4 MiB) and 2,000 small files, then:
    Export-SystemContainer to a plain .tar, to a .tar.zst, and on btrfs -Optimized (btrfs send),
    and Import-SystemContainer of the plain tarball into the same pool. MB/s is the tarball's size
    over the cmdlet's wall time, client and daemon on this machine, the file on the state
    directory's disk. Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$Runs = 3, [int]$DataMB = 512, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
$work = Join-Path $daemon.Dir 'bench'
New-Item -ItemType Directory $work | Out-Null
$rows = @()
function Get-Rate([string]$File, [double]$Ms) { '{0:N0}' -f ((Get-Item $File).Length / 1MB / ($Ms / 1000)) }
try {
    $image = Get-TestImage
    New-SystemContainerStoragePool bdir -Driver dir | Out-Null
    New-SystemContainerStoragePool bbtrfs -Driver btrfs -Size "$([math]::Max(4, [math]::Ceiling($DataMB * 5 / 1024)))GiB" | Out-Null
    foreach ($pool in 'default', 'bdir', 'bbtrfs') {
        $name = "data-$pool"
        New-SystemContainer $name -Image $image -Network none -StoragePool $pool | Out-Null
        Start-SystemContainer $name
        $files = [math]::Ceiling($DataMB / 4)
        Invoke-SystemContainerCommand $name -- sh -c "mkdir -p /data/small && i=0; while [ `$i -lt $files ]; do dd if=/dev/urandom of=/data/f`$i bs=1M count=4 2>/dev/null; i=`$((i+1)); done; i=0; while [ `$i -lt 2000 ]; do echo `$i > /data/small/`$i; i=`$((i+1)); done"
        Stop-SystemContainer $name -Force
        # btrfs send needs the data on disk, so the optimized export's snapshot writes back whatever the container left dirty:
        # written back here, the runs time the export, not the disk's writeback of data written a moment ago.
        sync
        $plain = @(); $zst = @(); $opt = @(); $import = @()
        for ($i = 0; $i -lt $Runs; $i++) {
            $tar = Join-Path $work "$name.tar"; $z = Join-Path $work "$name.tar.zst"; $o = Join-Path $work "$name-opt.tar"
            $plain += Get-Rate $tar (Measure-Ms { Export-SystemContainer $name -Path $tar -Force })
            $zst += Get-Rate $z (Measure-Ms { Export-SystemContainer $name -Path $z -Force })
            if ($pool -eq 'bbtrfs') { $opt += Get-Rate $o (Measure-Ms { Export-SystemContainer $name -Path $o -Optimized -Force }) }
            $import += Get-Rate $tar (Measure-Ms { Import-SystemContainer $tar -Name "back-$pool" -StoragePool $pool })
            Remove-SystemContainer "back-$pool" -Force
            Remove-Item $tar, $z -ErrorAction SilentlyContinue
            if ($pool -eq 'bbtrfs') { Remove-Item $o }
        }
        $rows += [pscustomobject]@{
            Driver = (Get-SystemContainerStoragePool $pool).Driver; 'Export tar' = Get-Median $plain; 'Export tar.zst' = Get-Median $zst
            'Export optimized' = if ($opt) { Get-Median $opt } else { '-' }; 'Import tar' = Get-Median $import
        }
        Remove-SystemContainer $name -Force
    }
}
finally {
    Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
    Get-SystemContainerStoragePool -ErrorAction SilentlyContinue | Where-Object Name -ne 'default' |
        Remove-SystemContainerStoragePool -Force -ErrorAction SilentlyContinue
    Remove-TestStorage $daemon
    Stop-TestDaemon $daemon
}
$columns = 'Driver', 'Export tar', 'Export tar.zst', 'Export optimized', 'Import tar'
$rows | Format-Table $columns -AutoSize
if ($Record) {
    Add-BenchResult 'backup.ps1' "Median MB/s (tarball bytes over cmdlet wall time) of $Runs runs, a busybox container with $DataMB MB of random data in 4 MiB files and 2,000 small files, machine load $((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 1)." $columns $rows
}
