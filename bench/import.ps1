#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Time of Import-SystemContainerImage for the cached debootstrap tarball (median of N imports).
.DESCRIPTION
    Each run imports the tarball into a daemon of its own and removes the image again, so every
    run unpacks the whole tree (about 8700 entries, 280 MB for Debian bookworm minbase with systemd).
    With -Record the result is appended to bench/RESULTS.md. Run after `./build.ps1 build` and
    after the debootstrap cache is filled (tests/TestDaemon.psm1 fills it for the test suite).
#>
param([int]$Runs = 5, [string]$Tarball, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

if (-not $Tarball) {
    $Tarball = Get-ChildItem /var/cache/systemcontainers/debootstrap -Filter *.tar | Sort-Object LastWriteTime | Select-Object -Last 1 -ExpandProperty FullName
}
if (-not $Tarball) { throw 'no debootstrap tarball in /var/cache/systemcontainers/debootstrap: build one first' }
$daemon = Start-TestDaemon
try {
    $times = foreach ($i in 1..$Runs) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $img = Import-SystemContainerImage $Tarball -Alias "bench$i"
        $sw.Elapsed.TotalMilliseconds
        Remove-SystemContainerImage $img.Fingerprint -Confirm:$false
    }
}
finally {
    Stop-TestDaemon $daemon
}
$entries = @(tar --list --file $Tarball).Count
$median = [math]::Round((Get-Median $times), 0)
Write-Host "import of $Tarball ($entries entries, $((Get-Item $Tarball).Length / 1MB -as [int]) MB): median $median ms of $Runs ($($times -join ', '))"
if ($Record) {
    Add-BenchResult 'import.ps1' "$([Environment]::ProcessorCount) cores, median of $Runs imports of a debootstrap tarball ($entries entries, hashing included)." `
        @('Measure', 'ms') @([pscustomobject]@{ Measure = 'Import-SystemContainerImage, debootstrap tarball'; ms = $median })
}
