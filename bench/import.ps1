#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Time of Import-SystemContainerImage for the cached debootstrap tarball, and of its unpack step
    alone against GNU tar (median of N runs each).
.DESCRIPTION
    Each import goes into a daemon of its own and the image is removed again, so every run hashes
    and unpacks the whole tree (about 8700 entries, 280 MB for Debian bookworm minbase with
    systemd). The unpack step is then timed in this process, alternating the engine's
    RootfsExtractor with the `tar --extract` the import ran before it had its own parser, into
    fresh directories on the same file system. With -Record the result is appended to
    bench/RESULTS.md. Run after `./build.ps1 build` and after the debootstrap cache is filled
    (tests/TestDaemon.psm1 fills it for the test suite).
#>
param([int]$Runs = 5, [string]$Tarball, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force
Add-Type -Path (Join-Path $root 'artifacts/SystemContainers/daemon/SystemContainers.Engine.dll')

if (-not $Tarball) {
    $Tarball = Get-ChildItem /var/cache/systemcontainers/debootstrap -Filter *.tar | Sort-Object LastWriteTime | Select-Object -Last 1 -ExpandProperty FullName
}
if (-not $Tarball) { throw 'no debootstrap tarball in /var/cache/systemcontainers/debootstrap: build one first' }
$daemon = Start-TestDaemon
try {
    $imports = foreach ($i in 1..$Runs) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $img = Import-SystemContainerImage $Tarball -Alias "bench$i"
        $sw.Elapsed.TotalMilliseconds
        Remove-SystemContainerImage $img.Fingerprint -Confirm:$false
    }
}
finally {
    Stop-TestDaemon $daemon
}

$scratch = Join-Path $daemon.Dir 'unpack'
$engine = [Collections.Generic.List[double]]::new()
$gnu = [Collections.Generic.List[double]]::new()
try {
    foreach ($i in 1..$Runs) {
        $target = Join-Path $scratch "engine-$i"
        New-Item -ItemType Directory -Force $target | Out-Null
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $stream = [IO.File]::OpenRead($Tarball)
        try { [SystemContainers.Engine.Images.RootfsExtractor]::Extract([SystemContainers.Engine.Images.TarballReader]::new($stream, [SystemContainers.Engine.Images.ImportLimits]::Default), $target) | Out-Null }
        finally { $stream.Dispose() }
        $engine.Add($sw.Elapsed.TotalMilliseconds)
        $target = Join-Path $scratch "gnu-$i"
        New-Item -ItemType Directory -Force $target | Out-Null
        $sw = [Diagnostics.Stopwatch]::StartNew()
        tar --extract --file $Tarball --directory $target --numeric-owner --same-owner --same-permissions --xattrs '--xattrs-include=*' --acls
        if ($LASTEXITCODE) { throw 'tar --extract failed' }
        $gnu.Add($sw.Elapsed.TotalMilliseconds)
    }
}
finally {
    [SystemContainers.Engine.State.TreeRemover]::Remove($daemon.Dir)
}

$entries = @(tar --list --file $Tarball).Count
$rows = @(
    [pscustomobject]@{ Measure = 'Import-SystemContainerImage (hash + unpack + record)'; ms = [math]::Round((Get-Median $imports), 0) },
    [pscustomobject]@{ Measure = 'unpack: RootfsExtractor'; ms = [math]::Round((Get-Median $engine), 0) },
    [pscustomobject]@{ Measure = 'unpack: GNU tar --extract (the old path, before its validator pass)'; ms = [math]::Round((Get-Median $gnu), 0) }
)
$rows | Format-Table -AutoSize | Out-String | Write-Host
if ($Record) {
    Add-BenchResult 'import.ps1' "$([Environment]::ProcessorCount) cores, median of $Runs runs, a debootstrap tarball of $entries entries ($([int]((Get-Item $Tarball).Length / 1MB)) MB)." `
        @('Measure', 'ms') $rows
}
