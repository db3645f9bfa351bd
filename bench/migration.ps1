#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Throughput of a stopped container's transfer between two daemons (issue 12 target: >= 300 MB/s over the veth pair).
.DESCRIPTION
    Two test daemons, each in its own network namespace, joined by a veth pair; each has a btrfs
    pool on a sparse loop file. A busybox container with -SizeMB of random data is made on the
    source twice: in the overlay default pool (sent as a tar stream) and in the btrfs pool (sent
    as a btrfs send stream). The target pulls each into its btrfs pool over TLS 1.3, as
    Copy-SystemContainer -DestinationHost has it do, driven here through the two unix sockets
    (the target pulls as an untrusted daemon with the source's secret). Reported: bytes on the
    wire, the pull's wall time (request to the target's operation done) and MB/s, median of -Runs.
    Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$SizeMB = 1024, [int]$Runs = 3, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force

function Use-Daemon($D) { $env:SYSTEMCONTAINERS_SOCKET = $D.Socket; $env:SYSTEMCONTAINERS_RUN_DIR = $D.RunDir }
function Wait-Operation($D, [string]$Url) {
    $op = (Invoke-TestApi $D GET "$Url/wait?timeout=3600").Body.metadata
    if ($op.status -ne 'Success') { throw "$Url ended $($op.status): $($op.err)" }
    $op
}

$source = Start-TestDaemon
$target = Start-TestDaemon
$veth = $null
$load = (Get-Content /proc/loadavg) -split ' ' | Select-Object -First 3
try {
    $veth = New-TestVethPair $target $source '10.251.78'
    $poolSize = [math]::Max(4, [math]::Ceiling($SizeMB * ($Runs + 2) / 1024)) * 1GB
    foreach ($d in $source, $target) { Use-Daemon $d; New-SystemContainerStoragePool pbt -Driver btrfs -Size $poolSize | Out-Null }
    Use-Daemon $source
    Set-SystemContainerHost -HttpsAddress 10.251.78.2:8443
    $certificate = (Get-SystemContainerHost).ServerFingerprint
    $image = Get-TestImage
    $rows = foreach ($case in @(@{ Pool = 'default'; Stream = 'tar (overlay to btrfs)' }, @{ Pool = 'pbt'; Stream = 'btrfs send (btrfs to btrfs)' })) {
        Use-Daemon $source
        $name = "big-$($case.Pool)"
        New-SystemContainer $name -Image $image -Network none -StoragePool $case.Pool | Out-Null
        Start-SystemContainer $name
        Invoke-SystemContainerCommand $name -- sh -c "head -c $($SizeMB * 1MB) /dev/urandom > /big"
        Stop-SystemContainer $name -Force
        $times = @(); $bytes = 0
        foreach ($i in 1..$Runs) {
            $send = (Invoke-TestApi $source POST "/1.0/containers/$name" '{"migration": true, "instance_only": true}').Body
            $body = @{ name = "copy$i"; storage_pool = 'pbt'; source = @{ type = 'migration'; mode = 'pull'; operation = "https://10.251.78.2:8443$($send.operation)"
                    certificate = $certificate; secrets = @{ fs = $send.metadata.metadata.secret } } } | ConvertTo-Json -Depth 4
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $pull = (Invoke-TestApi $target POST /1.0/containers $body).Body
            Wait-Operation $target $pull.operation | Out-Null
            $times += $sw.Elapsed.TotalSeconds
            $bytes = (Wait-Operation $source $send.operation).metadata.result.bytes
            Use-Daemon $target
            Remove-SystemContainer "copy$i" -Force
        }
        $seconds = Get-Median $times
        [pscustomobject]@{ stream = $case.Stream; 'MB sent' = [math]::Round($bytes / 1MB, 1); 'seconds (median)' = [math]::Round($seconds, 2)
            'MB/s (target >= 300)' = [math]::Round($bytes / 1MB / $seconds, 1) }
        Use-Daemon $source
        Remove-SystemContainer $name -Force
    }
    $rows | Format-Table -AutoSize | Out-String | Write-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        Add-BenchResult 'migration.ps1' ("$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), a stopped busybox container with $SizeMB MB of random data, " +
            "pulled by a second daemon over TLS 1.3 across a veth pair into its btrfs pool (loop file), median of $Runs runs; load average $($load -join ' ') at the start (other helpers' runs).") `
            @('stream', 'MB sent', 'seconds (median)', 'MB/s (target >= 300)') $rows
    }
}
finally {
    foreach ($d in $source, $target) { Use-Daemon $d; Remove-TestStorage $d }
    if ($veth) { Invoke-InNetns $target ip @('link', 'del', $veth) 2>$null }
    Stop-TestDaemon $source
    Stop-TestDaemon $target
}
