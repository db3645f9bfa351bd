#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Streamed exec: first-byte latency, and throughput of 100 MB through stdout and through stdin.
.DESCRIPTION
    Issue 10 asks for both beside exec latency (bench/launch.ps1). First byte: the time from
    calling Invoke-SystemContainerCommand until its first line reaches the pipeline, for a
    command that prints at once and then runs on (median of -Runs), beside the same pipeline fed
    by the same command run on the host, and the whole exec of `true`. Throughput: 100 MB as 100,000 lines of 1,000 bytes, out of `cat` in the
    container into the pipeline, and from the pipeline into `wc -c`; beside each the same lines
    through a host pipe into the same pwsh pipeline (pwsh's own ceiling), so the ratio is what
    the container path costs. The daemon runs in a network namespace of its own. With -Record
    the result is appended to bench/RESULTS.md. Run after `./build.ps1 build`.
#>
param([int]$Runs = 25, [int]$Megabytes = 100, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$lines = $Megabytes * 1000
$daemon = Start-TestDaemon -ExtraArguments @('--default-network', 'none')
try {
    Get-TestImage | Out-Null
    New-SystemContainer streamer -Image busybox -Start | Out-Null
    Invoke-SystemContainerCommand streamer -- sh -c "head -c $($lines * 999) /dev/zero | tr '\0' a | fold -w 999 > /tmp/lines"
    $firstByte = foreach ($i in 1..($Runs + 3)) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $first = $null
        Invoke-SystemContainerCommand streamer -- sh -c 'echo first; sleep 0.2' | ForEach-Object { if ($null -eq $first) { $first = $sw.Elapsed.TotalMilliseconds } }
        if ($i -gt 3) { $first }
    }
    # The same pipeline fed by the same command on the host: what pwsh itself takes to the first line.
    $hostFirst = foreach ($i in 1..($Runs + 3)) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $first = $null
        & sh -c 'echo first; sleep 0.2' | ForEach-Object { if ($null -eq $first) { $first = $sw.Elapsed.TotalMilliseconds } }
        if ($i -gt 3) { $first }
    }
    $recorded = foreach ($i in 1..($Runs + 3)) {
        $ms = Measure-Ms { Invoke-SystemContainerCommand streamer true }
        if ($i -gt 3) { $ms }
    }
    $out = Measure-Ms { Invoke-SystemContainerCommand streamer -- cat /tmp/lines | Measure-Object | Out-Null }
    $outHost = Measure-Ms { & sh -c "head -c $($lines * 999) /dev/zero | tr '\0' a | fold -w 999" | Measure-Object | Out-Null }
    $line = 'a' * 999
    $count = $null
    $in = Measure-Ms { $script:count = (1..$lines | ForEach-Object { $line } | Invoke-SystemContainerCommand streamer -- wc -c) }
    $inHost = Measure-Ms { 1..$lines | ForEach-Object { $line } | & wc -c | Out-Null }
    if ([long]"$count".Trim() -ne [long]$lines * 1000) { throw "wc -c counted $count bytes, not $($lines * 1000)" }
    $mbps = { param($ms) [math]::Round($Megabytes / ($ms / 1000), 1) }
    $rows = @(
        [pscustomobject]@{ Measure = 'first byte of a streamed exec'; Ours = '{0:N1} ms' -f (Get-Median $firstByte); Reference = '{0:N1} ms (host sh, same pipeline); whole exec of true {1:N1} ms' -f (Get-Median $hostFirst), (Get-Median $recorded); Ratio = '' }
        [pscustomobject]@{ Measure = "$Megabytes MB out (cat in the container to the pipeline)"; Ours = "$(& $mbps $out) MB/s"; Reference = "$(& $mbps $outHost) MB/s (host pipe)"; Ratio = [math]::Round($outHost / $out, 2) }
        [pscustomobject]@{ Measure = "$Megabytes MB in (the pipeline to wc -c in the container)"; Ours = "$(& $mbps $in) MB/s"; Reference = "$(& $mbps $inHost) MB/s (host pipe)"; Ratio = [math]::Round($inHost / $in, 2) }
    )
    $rows | Format-Table -AutoSize | Out-Host
    if ($Record) {
        $load = (Get-Content /proc/loadavg).Split(' ')[0]
        Add-BenchResult 'stream.ps1' "Streamed exec into a busybox container: first byte (median of $Runs), and $Megabytes MB as 1000-byte lines each way through the cmdlet, beside the same lines through a host pipe in the same pwsh (Ratio: host time / ours; 1 means the container path costs nothing over pwsh's own). Load average $load." `
            @('Measure', 'Ours', 'Reference', 'Ratio') $rows
    }
}
finally { Stop-TestDaemon $daemon }
