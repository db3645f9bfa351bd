#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Where a launch and an exec spend their time: the median time between consecutive steps, client and daemon side.
.DESCRIPTION
    Starts a test daemon with SYSTEMCONTAINERS_TRACE=1 (its steps go to its log on the monotonic
    clock) and runs New-SystemContainer -Start, Invoke-SystemContainerCommand true twice and
    Remove-SystemContainer, marking the client's side on the same clock. For each pair of
    consecutive steps it prints the median time between them over the runs. A debug aid; the
    timing targets are launch.ps1's. -Network names a managed network to give the containers a NIC.
#>
param([int]$Runs = 20, [int]$Warmup = 3, [string]$Network = 'none')
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

$clock = [Diagnostics.Stopwatch]
$marks = [Collections.Generic.List[object]]::new()
function Mark([string]$Step) { $marks.Add([pscustomobject]@{ Us = [long]($clock::GetTimestamp() * 1e6 / $clock::Frequency); Step = "client: $Step" }) }

$env:SYSTEMCONTAINERS_TRACE = '1'
try { $daemon = Start-TestDaemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TRACE }
try {
    Get-TestImage | Out-Null
    if ($Network -ne 'none') { New-SystemContainerNetwork $Network -IPv4 10.250.0.1/16 | Out-Null }
    for ($i = 0; $i -lt $Warmup + $Runs; $i++) {
        $name = "trace$i"
        Mark 'New-SystemContainer -Start'
        New-SystemContainer $name -Image busybox -Network $Network -Start | Out-Null
        Mark 'Invoke-SystemContainerCommand (1)'
        Invoke-SystemContainerCommand $name true | Out-Null
        Mark 'Invoke-SystemContainerCommand (2)'
        Invoke-SystemContainerCommand $name true | Out-Null
        Mark 'end'
        Remove-SystemContainer $name -Force
    }
}
finally {
    $log = Get-Content $daemon.Log
    Stop-TestDaemon $daemon
}

foreach ($line in $log) {
    if ($line -match '^trace (\d+) \d+ (.*)$') {
        $step = $Matches[2] -replace '[0-9a-f]{8}-[0-9a-f-]{27}', '{id}' -replace 'trace\d+', '{name}'
        $marks.Add([pscustomobject]@{ Us = [long]$Matches[1]; Step = $step })
    }
}
# One run is the steps from one launch mark to the next; a step that repeats in a run is numbered.
$byRun = @(); $current = $null
foreach ($m in $marks | Sort-Object Us) {
    if ($m.Step -eq 'client: New-SystemContainer -Start') { $current = [Collections.Generic.List[object]]::new(); $byRun += , $current }
    if ($null -ne $current) { $current.Add($m) }
}
$gaps = [ordered]@{}
foreach ($run in $byRun[$Warmup..($byRun.Count - 1)]) {
    $seen = @{}
    for ($j = 1; $j -lt $run.Count; $j++) {
        $step = $run[$j].Step
        $seen[$step] = 1 + $seen[$step]
        $key = "$($run[$j - 1].Step) -> $step$(if ($seen[$step] -gt 1) { " ($($seen[$step]))" })"
        if (-not $gaps.Contains($key)) { $gaps[$key] = [Collections.Generic.List[double]]::new() }
        $gaps[$key].Add(($run[$j].Us - $run[$j - 1].Us) / 1000)
    }
}
$gaps.Keys | Where-Object { $gaps[$_].Count -ge $Runs / 2 } | ForEach-Object {
    [pscustomobject]@{ 'ms (median)' = [math]::Round((Get-Median $gaps[$_]), 2); Runs = $gaps[$_].Count; Step = $_ }
} | Format-Table -AutoSize | Out-Host
