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
    another the daemon has or can build (bookworm, from the debootstrap cache). Where LXC is
    installed (lxc-copy on PATH), the same copies of a stopped busybox LXC container holding the
    same -FileMiB MiB run in the same session, in an lxcpath of the run's own: lxc-copy -s -B
    overlayfs (beside our overlay copy), a full lxc-copy (rsync, beside our dir copy) and
    lxc-copy -s of a container made with -B btrfs on a btrfs loop file the run makes (beside our
    btrfs copy). Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$Runs = 10, [int]$Warmup = 1, [int]$FileMiB = 64, [string]$Image = 'busybox', [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon
$rows = @()
$lxcDir = $null
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
    if (Get-Command lxc-copy -ErrorAction SilentlyContinue) {
        $lxcDir = Join-Path $daemon.Dir 'lxc'
        $lxcBtrfs = Join-Path $daemon.Dir 'lxc-btrfs'
        $lxcImage = Join-Path $daemon.Dir 'lxc-btrfs.img'
        New-Item -ItemType Directory $lxcDir, $lxcBtrfs | Out-Null
        truncate -s 2G $lxcImage
        mkfs.btrfs -q $lxcImage | Out-Null
        mount -o loop $lxcImage $lxcBtrfs
        if ($LASTEXITCODE) { throw "cannot mount $lxcImage" }
        $conf = Join-Path $lxcDir 'bench.conf'
        Set-Content $conf "lxc.net.0.type = empty`nlxc.apparmor.profile = unconfined"
        $kinds = [ordered]@{
            'LXC lxc-copy -s -B overlayfs' = @{ Path = $lxcDir; Create = @(); Copy = @('-s', '-B', 'overlayfs') }
            'LXC lxc-copy (full)' = @{ Path = $lxcDir; Create = @(); Copy = @() }
            'LXC lxc-copy -s (btrfs)' = @{ Path = $lxcBtrfs; Create = @('-B', 'btrfs'); Copy = @('-s') }
        }
        foreach ($kind in $kinds.Keys) {
            $k = $kinds[$kind]
            $base = 'lxcbase'
            if (-not (Test-Path (Join-Path $k.Path $base))) {
                & lxc-create -P $k.Path -n $base @($k.Create) -t busybox -f $conf 2>&1 | Out-Null
                if ($LASTEXITCODE) { throw "lxc-create in $($k.Path) failed with exit code $LASTEXITCODE" }
                dd if=/dev/urandom of=(Join-Path $k.Path "$base/rootfs/data") bs=1M count=$FileMiB 2>$null
                sync
            }
            $times = @()
            for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
                $t = Measure-Ms { & lxc-copy -P $k.Path -n $base -N "copy-$i" @($k.Copy) 2>&1 | Out-Null }
                if ($LASTEXITCODE) { throw "lxc-copy $($k.Copy) failed with exit code $LASTEXITCODE" }
                & lxc-destroy -P $k.Path -n "copy-$i" 2>&1 | Out-Null
                if ($i -ge $Warmup) { $times += $t }
            }
            $rows += [pscustomobject]@{ Driver = $kind; 'Copy, stopped' = '{0:N1}' -f (Get-Median $times); 'Copy, running' = 'n/a'; Snapshot = 'n/a'; Restore = 'n/a'; Publish = 'n/a' }
        }
    }
}
finally {
    if ($lxcDir) {
        foreach ($path in $lxcDir, $lxcBtrfs) {
            if (-not (Test-Path $path)) { continue }
            foreach ($c in Get-ChildItem -Directory $path | Sort-Object { $_.Name -eq 'lxcbase' }) { & lxc-destroy -P $path -n $c.Name -f 2>&1 | Out-Null }
        }
        if (Get-Content /proc/self/mountinfo | Select-String -SimpleMatch " $lxcBtrfs ") { umount $lxcBtrfs }
        Remove-Item -Recurse -Force $lxcDir, $lxcBtrfs, $lxcImage -ErrorAction SilentlyContinue
    }
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
