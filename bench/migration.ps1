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
    wire, the pull's wall time (request to the target's operation done) and MB/s, median of -Runs
    pulls after a first one; the first (fresh daemons, whose framework code the JIT is still
    compiling, and a source whose new data btrfs has not yet written back) is reported on its own.
    Results are appended to bench/RESULTS.md with -Record.

    With -Live, a live move instead (Move-SystemContainer -Live; issue 13 target: busybox <= 150 ms
    downtime): both daemons have a btrfs pool and a network of one subnet, their bridges joined at
    L2, and a client namespace on the first bridge. A running busybox container
    (migration.stateful=true) with a counting service is moved -Runs times there and back, each
    move with a fresh TCP connection sending a request every 10 ms (tests/migration-client.py).
    Reported per direction, median of the runs: the downtime the client saw (its longest wait
    between two answers), the move's wall time (the source's migration request to the target's
    operation done), the bytes sent (root as btrfs send, then criu's images), and whether every
    request was answered once and in order without a reset. Each move is also listed on its own
    (what the client counted, where its longest wait was). With -Trace the daemons run with
    SYSTEMCONTAINERS_TRACE=1 and the steps of both, with the client's longest wait, are listed as
    the median milliseconds from the freeze (criu's network-lock step on the source).
#>
param([int]$SizeMB = 1024, [int]$Runs = 3, [switch]$Record, [switch]$Live, [switch]$Trace)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $root 'tests/MigrationNetwork.psm1') -Force

function Use-Daemon($D) { $env:SYSTEMCONTAINERS_SOCKET = $D.Socket; $env:SYSTEMCONTAINERS_RUN_DIR = $D.RunDir }
function Wait-Operation($D, [string]$Url) {
    $op = (Invoke-TestApi $D GET "$Url/wait?timeout=3600").Body.metadata
    if ($op.status -ne 'Success') { throw "$Url ended $($op.status): $($op.err)" }
    $op
}

function Get-MonotonicUs { [long]([Diagnostics.Stopwatch]::GetTimestamp() * 1e6 / [Diagnostics.Stopwatch]::Frequency) }

function Get-TraceMarks($D, [string]$Role) {
    <# The daemon's trace marks (StepTrace), named by the daemon's role in the move; requests only for the stream, its control and the pull. #>
    foreach ($line in Get-Content $D.Log) {
        if ($line -notmatch '^trace (\d+) \d+ (.*)$') { continue }
        $step = $Matches[2] -replace '[0-9a-f]{8}-[0-9a-f-]{27}', '{id}' -replace '\?.*', ''
        if ($step -match '^(request|response) ' -and $step -notmatch '/stream|/control|POST /1.0/containers$') { continue }
        [pscustomobject]@{ Us = [long]$Matches[1]; Step = "$Role $step"; D = $D }
    }
}

function Get-MoveTrace($Moves, $Daemons) {
    <# Per step, the median ms from the source's freeze over the moves (first occurrence of the step in each move). #>
    $all = @(foreach ($d in $Daemons) { Get-TraceMarks $d '' }) | Sort-Object Us
    $offsets = [ordered]@{}
    for ($i = 0; $i -lt $Moves.Count; $i++) {
        $m = $Moves[$i]
        $end = if ($i + 1 -lt $Moves.Count) { $Moves[$i + 1].StartUs } else { [long]::MaxValue }
        $marks = @($all | Where-Object { $_.Us -ge $m.StartUs -and $_.Us -lt $end } | ForEach-Object {
                [pscustomobject]@{ Us = $_.Us; Step = "$(if ($_.D -eq $m.From) { 'source:' } else { 'target:' })$($_.Step)" } })
        $marks += [pscustomobject]@{ Us = $m.GapFromUs; Step = 'client: last answer before its longest wait' }
        $marks += [pscustomobject]@{ Us = $m.GapToUs; Step = 'client: first answer after it' }
        $freeze = $marks | Where-Object Step -eq 'source: criu dump: network-lock' | Select-Object -First 1
        if (-not $freeze) { continue }
        $seen = @{}
        foreach ($x in $marks | Sort-Object Us) {
            if ($seen[$x.Step]) { continue }
            $seen[$x.Step] = $true
            if (-not $offsets.Contains($x.Step)) { $offsets[$x.Step] = [Collections.Generic.List[double]]::new() }
            $offsets[$x.Step].Add(($x.Us - $freeze.Us) / 1000)
        }
    }
    $offsets.Keys | ForEach-Object { [pscustomobject]@{ step = $_; 'ms from the freeze (median)' = [math]::Round((Get-Median $offsets[$_]), 1); moves = $offsets[$_].Count } } |
        Sort-Object 'ms from the freeze (median)'
}

function Invoke-LiveBench {
    if ($Trace) { $env:SYSTEMCONTAINERS_TRACE = '1' }
    try {
        $first = Start-TestDaemon
        $second = Start-TestDaemon
    }
    finally { Remove-Item Env:SYSTEMCONTAINERS_TRACE -ErrorAction SilentlyContinue }
    $veth = $null; $link = $null; $clientNs = $null
    $load = (Get-Content /proc/loadavg) -split ' ' | Select-Object -First 3
    try {
        $veth = New-TestVethPair $first $second '10.251.79'
        $hosts = @(@{ D = $first; Https = '10.251.79.1:8443'; Bridge = '10.124.0.1/24' }, @{ D = $second; Https = '10.251.79.2:8443'; Bridge = '10.124.0.254/24' })
        foreach ($h in $hosts) {
            Use-Daemon $h.D
            Set-SystemContainerHost -HttpsAddress $h.Https
            $h.Certificate = (Get-SystemContainerHost).ServerFingerprint
            New-SystemContainerStoragePool pbt -Driver btrfs -Size 2GiB | Out-Null
            New-SystemContainerNetwork mig -IPv4 $h.Bridge | Out-Null
        }
        $link = Join-TestBridges $first $second '10.124.0.'
        $clientNs = New-TestClientNetns $first '10.124.0.' '10.124.0.200/24'
        Use-Daemon $first
        New-SystemContainer web1 -Image (Get-TestImage) -StoragePool pbt -Network mig -Config @{ 'migration.stateful' = 'true'; 'nic.eth0.ipv4.address' = '10.124.0.60' } -Start | Out-Null
        $service = "mkdir -p /srv; printf '#!/bin/sh\nn=0\nwhile read l; do n=`$((n+1)); echo `$n `$l; done\n' > /srv/count.sh; chmod +x /srv/count.sh; " +
            'setsid nc -ll -p 7000 -e /srv/count.sh </dev/null >/dev/null 2>&1 &'
        Invoke-SystemContainerCommand web1 -- sh -c $service
        Wait-Until -TimeoutSeconds 20 -What 'the service' { Invoke-SystemContainerCommand web1 -- sh -c 'netstat -ltn | grep ":7000 " || true' }
        $results = @{ 0 = @(); 1 = @() }
        $moves = @()
        foreach ($i in 1..$Runs) {
            foreach ($way in 0, 1) {
                $from = $hosts[$way]; $to = $hosts[1 - $way]
                $client = Start-TestTcpClient $clientNs 10.124.0.60 7000 $first.Dir
                $startUs = Get-MonotonicUs
                $sw = [Diagnostics.Stopwatch]::StartNew()
                $send = (Invoke-TestApi $from.D POST /1.0/containers/web1 '{"migration": true, "live": true}').Body
                $body = @{ name = 'web1'; storage_pool = 'pbt'; source = @{ type = 'migration'; mode = 'pull'; operation = "https://$($from.Https)$($send.operation)"
                        certificate = $from.Certificate; secrets = @{ fs = $send.metadata.metadata.secret }; move = $true; live = $true } } | ConvertTo-Json -Depth 4
                $pull = (Invoke-TestApi $to.D POST /1.0/containers $body).Body
                Wait-Operation $to.D $pull.operation | Out-Null
                $seconds = $sw.Elapsed.TotalSeconds
                $bytes = (Wait-Operation $from.D $send.operation).metadata.result.bytes
                Start-Sleep -Milliseconds 500
                $counts = Stop-TestTcpClient $client
                $whole = -not $counts.reset -and $counts.in_order -and $counts.answers -eq $counts.sent -and $counts.first_count -eq 1 -and $counts.last_count -eq $counts.sent
                $results[$way] += [pscustomobject]@{ Downtime = $counts.max_gap_ms; Seconds = $seconds; Bytes = $bytes; Whole = $whole }
                $moves += [pscustomobject]@{ run = $i; move = @('there', 'back')[$way]; 'downtime ms' = [math]::Round($counts.max_gap_ms, 0); 'move s' = [math]::Round($seconds, 2)
                    sent = $counts.sent; answers = $counts.answers; 'in order' = $counts.in_order; 'first/last count' = "$($counts.first_count)/$($counts.last_count)"
                    reset = "$($counts.reset)"; 'first bad answer' = "$($counts.bad)"; 'longest wait before answer' = $counts.gap_at
                    StartUs = $startUs; GapFromUs = [long]$counts.gap_from_us; GapToUs = [long]$counts.gap_to_us; From = $from.D }
            }
        }
        $perMove = @('run', 'move', 'downtime ms', 'move s', 'sent', 'answers', 'in order', 'first/last count', 'reset', 'first bad answer', 'longest wait before answer')
        $moves | Format-Table -AutoSize -Property $perMove | Out-String | Write-Host
        $traced = if ($Trace) { @(Get-MoveTrace $moves @($first, $second)) }
        if ($traced) { $traced | Format-Table -AutoSize | Out-String | Write-Host }
        $rows = foreach ($way in 0, 1) {
            $r = $results[$way]
            [pscustomobject]@{ move = @('there', 'back')[$way]; 'downtime ms (median; target <= 150)' = [math]::Round((Get-Median $r.Downtime), 0)
                'downtime ms (max)' = [math]::Round(($r.Downtime | Measure-Object -Maximum).Maximum, 0); 'move s (median)' = [math]::Round((Get-Median $r.Seconds), 2)
                'MB sent' = [math]::Round((Get-Median $r.Bytes) / 1MB, 2); 'every request answered once' = "$(@($r | Where-Object Whole).Count)/$($r.Count)" }
        }
        $rows | Format-Table -AutoSize | Out-String | Write-Host
        if ($Record) {
            $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
            Add-BenchResult 'migration.ps1 -Live' ("$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), a running busybox container (migration.stateful=true) moved live " +
                "between two daemons (btrfs pools on loop files, bridges joined at L2) and back, $Runs times, plain criu dump; a fresh TCP connection per move " +
                "sending a request every 10 ms; load average $($load -join ' ') at the start (other helpers' runs).") `
                @('move', 'downtime ms (median; target <= 150)', 'downtime ms (max)', 'move s (median)', 'MB sent', 'every request answered once') $rows
            Add-BenchResult 'migration.ps1 -Live, each move' 'The moves above one by one: what the client counted, and the answer its longest wait ended at.' $perMove $moves
            if ($traced) { Add-BenchResult 'migration.ps1 -Live -Trace' 'Where the moves above spent their time: each step, source and target, as the median ms from the freeze.' @('step', 'ms from the freeze (median)', 'moves') $traced }
        }
    }
    finally {
        if ($clientNs) { ip netns del $clientNs 2>$null }
        foreach ($d in $first, $second) { Use-Daemon $d; Get-SystemContainer | ForEach-Object { Remove-SystemContainer $_.Name -Force }; Remove-TestStorage $d }
        if ($link) { Invoke-InNetns $first ip @('link', 'del', $link) 2>$null }
        if ($veth) { Invoke-InNetns $first ip @('link', 'del', $veth) 2>$null }
        Stop-TestDaemon $first
        Stop-TestDaemon $second
    }
}
if ($Live) { Invoke-LiveBench; return }

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
        $times = @(); $bytes = 0; $first = 0
        # Pull 0 is a fresh daemon's first (its framework code still jitting) and is reported on its own.
        foreach ($i in 0..$Runs) {
            $send = (Invoke-TestApi $source POST "/1.0/containers/$name" '{"migration": true, "instance_only": true}').Body
            $body = @{ name = "copy$i"; storage_pool = 'pbt'; source = @{ type = 'migration'; mode = 'pull'; operation = "https://10.251.78.2:8443$($send.operation)"
                    certificate = $certificate; secrets = @{ fs = $send.metadata.metadata.secret } } } | ConvertTo-Json -Depth 4
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $pull = (Invoke-TestApi $target POST /1.0/containers $body).Body
            Wait-Operation $target $pull.operation | Out-Null
            if ($i -eq 0) { $first = $sw.Elapsed.TotalSeconds } else { $times += $sw.Elapsed.TotalSeconds }
            $bytes = (Wait-Operation $source $send.operation).metadata.result.bytes
            Use-Daemon $target
            Remove-SystemContainer "copy$i" -Force
            # btrfs frees a removed subvolume's space in the background, and the next pull may unpack only the pool's free space.
            foreach ($m in Get-MountsUnder $target.Dir) { if ((stat -f -c %T $m) -eq 'btrfs') { btrfs subvolume sync $m | Out-Null } }
        }
        $seconds = Get-Median $times
        [pscustomobject]@{ stream = $case.Stream; 'MB sent' = [math]::Round($bytes / 1MB, 1); 'seconds (median)' = [math]::Round($seconds, 2)
            'MB/s (target >= 300)' = [math]::Round($bytes / 1MB / $seconds, 1); 'first pull MB/s' = [math]::Round($bytes / 1MB / $first, 1) }
        Use-Daemon $source
        Remove-SystemContainer $name -Force
    }
    $rows | Format-Table -AutoSize | Out-String | Write-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        Add-BenchResult 'migration.ps1' ("$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), a stopped busybox container with $SizeMB MB of random data, " +
            "pulled by a second daemon over TLS 1.3 across a veth pair into its btrfs pool (loop file), median of $Runs runs after a first pull (the fresh daemons' first, reported on its own); load average $($load -join ' ') at the start (other helpers' runs).") `
            @('stream', 'MB sent', 'seconds (median)', 'MB/s (target >= 300)', 'first pull MB/s') $rows
    }
}
finally {
    foreach ($d in $source, $target) { Use-Daemon $d; Remove-TestStorage $d }
    if ($veth) { Invoke-InNetns $target ip @('link', 'del', $veth) 2>$null }
    Stop-TestDaemon $source
    Stop-TestDaemon $target
}
