#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Copy-SystemContainerFile throughput: one 200 MB file and 10,000 small files, each way, beside `tar | tar`.
.DESCRIPTION
    Issue 11's target: a file copy within 1.5x of `tar | tar` on the same data. Each measure is
    the median of -Runs after a warm-up run, the three interleaved, each after a sync: a push (local to a running busybox container) and a pull (back to a
    local directory) of one random file of -Megabytes, and of -Files files of 1 KiB in 100
    directories; the reference is `tar -cf - | tar -xf -` of the same tree on the host, into a
    directory on the file system the container's files are on. The daemon runs in a network
    namespace of its own. With -Record the result is appended to bench/RESULTS.md. Run after
    `./build.ps1 build`.
#>
param([int]$Runs = 3, [int]$Megabytes = 200, [int]$Files = 10000, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$daemon = Start-TestDaemon -ExtraArguments @('--default-network', 'none')
$work = (New-Item -ItemType Directory (Join-Path '/tmp' "sc-bench-files-$([guid]::NewGuid().ToString('n'))")).FullName
try {
    Get-TestImage | Out-Null
    New-SystemContainer copier -Image busybox -Start | Out-Null
    New-Item -ItemType Directory "$work/big", "$work/small" | Out-Null
    head -c "$($Megabytes)M" /dev/urandom > "$work/big/big.bin"
    $kib = [byte[]]::new(1024)
    foreach ($d in 0..99) {
        $dir = New-Item -ItemType Directory "$work/small/d$d"
        foreach ($f in 0..($Files / 100 - 1)) { [IO.File]::WriteAllBytes("$dir/f$f", $kib) }
    }
    # The reference writes where the container's files are: the daemon's state directory.
    $refDir = Join-Path $daemon.StateDir 'bench-tar'
    # Run 0 warms up. Then each run pushes, pulls and runs the reference in turn, each after a sync and with the
    # previous one's output removed, so no copy pays for another's writeback.
    $measure = {
        param([string]$Source, [string]$Name, [switch]$Recurse)
        $push = @(); $pull = @(); $tar = @()
        foreach ($i in 0..$Runs) {
            sync
            $p = Measure-Ms { Copy-SystemContainerFile copier -Path $Source -Destination "/root/$Name-$i" -ToContainer -Recurse:$Recurse }
            sync
            $q = Measure-Ms { Copy-SystemContainerFile copier -Path "/root/$Name-$i" -Destination "$work/back-$Name-$i" -FromContainer -Recurse:$Recurse }
            Remove-Item -Recurse -Force "$work/back-$Name-$i"
            Invoke-SystemContainerCommand copier -- rm -rf "/root/$Name-$i"
            New-Item -ItemType Directory $refDir | Out-Null
            sync
            $t = Measure-Ms { sh -c "tar -C '$(Split-Path $Source)' -cf - '$(Split-Path -Leaf $Source)' | tar -C '$refDir' -xf -" }
            Remove-Item -Recurse -Force $refDir
            if ($i -gt 0) { $push += $p; $pull += $q; $tar += $t }
        }
        [pscustomobject]@{ Push = Get-Median $push; Pull = Get-Median $pull; Tar = Get-Median $tar }
    }
    $big = & $measure "$work/big/big.bin" big
    $small = & $measure "$work/small" small -Recurse
    $rows = foreach ($m in @(@{ What = "one $Megabytes MB file"; R = $big }, @{ What = "$Files files of 1 KiB"; R = $small })) {
        foreach ($dir in 'Push', 'Pull') {
            [pscustomobject]@{
                Measure   = "$($m.What), $($dir.ToLowerInvariant())"
                Ours      = '{0:N0} ms' -f $m.R.$dir
                Reference = '{0:N0} ms (tar -c piped to tar -x on the host)' -f $m.R.Tar
                Ratio     = [math]::Round($m.R.$dir / $m.R.Tar, 2)
            }
        }
    }
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $load = (Get-Content /proc/loadavg).Split(' ')[0]
        Add-BenchResult 'files.ps1' "Copy-SystemContainerFile, median of $Runs, load average $load" @('Measure', 'Ours', 'Reference', 'Ratio') $rows
    }
}
finally {
    Stop-TestDaemon $daemon
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}
