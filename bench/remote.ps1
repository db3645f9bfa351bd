#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Exec latency over mutual TLS against the unix socket (issue 12 target: TLS at most 2x).
.DESCRIPTION
    One test daemon in its own network namespace listens for HTTPS on 127.0.0.1 there; a busybox
    container runs. A pwsh in that namespace joins the daemon as a remote with a trust token, then
    runs `Invoke-SystemContainerCommand b1 -- true` and `Get-SystemContainer b1` alternately over the
    unix socket and over TLS (-Remote), after warm-up runs, then execs alone in a row on each, and
    reports the medians and their ratio. Connections are kept alive between runs, as in an interactive session.
    Then -Fleet stopped containers are made at once (New-SystemContainer -Count; stopped, so the
    listing has no running state to gather) and `Get-SystemContainer` lists them all, alternately over
    the unix socket and over TLS, -ListRuns times after 3 warm-up runs each; -Fleet 0 skips this.
    Results are appended to bench/RESULTS.md with -Record.
#>
param([int]$Runs = 40, [int]$Fleet = 500, [int]$ListRuns = 15, [switch]$Record, [string]$Token, [switch]$Inner, [switch]$List)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

if ($List) {
    # In the daemon's namespace again, the remote already joined: the whole listing each way.
    foreach ($i in 1..3) { Get-SystemContainer | Out-Null; Get-SystemContainer -Remote bench | Out-Null }
    $unix = @(); $tls = @()
    foreach ($i in 1..$ListRuns) {
        $unix += Measure-Ms { Get-SystemContainer }
        $tls += Measure-Ms { Get-SystemContainer -Remote bench }
    }
    $count = @(Get-SystemContainer -Remote bench).Count
    @{ unix = Get-Median $unix; tls = Get-Median $tls; count = $count } | ConvertTo-Json -Compress
    return
}

if ($Inner) {
    # In the daemon's network namespace: join, warm both paths, then alternate.
    Add-SystemContainerRemote -Name bench -Token $Token | Out-Null
    foreach ($i in 1..5) { Invoke-SystemContainerCommand b1 -- true; Invoke-SystemContainerCommand -Remote bench b1 -- true }
    $unix = @(); $tls = @(); $unixGet = @(); $tlsGet = @()
    foreach ($i in 1..$Runs) {
        $unix += Measure-Ms { Invoke-SystemContainerCommand b1 -- true }
        $tls += Measure-Ms { Invoke-SystemContainerCommand -Remote bench b1 -- true }
        $unixGet += Measure-Ms { Get-SystemContainer b1 }
        $tlsGet += Measure-Ms { Get-SystemContainer -Remote bench b1 }
    }
    # Execs in a row, as a script runs them: nothing in between leaves a connection idle for the next.
    $unixRow = @(foreach ($i in 1..$Runs) { Measure-Ms { Invoke-SystemContainerCommand b1 -- true } })
    $tlsRow = @(foreach ($i in 1..$Runs) { Measure-Ms { Invoke-SystemContainerCommand -Remote bench b1 -- true } })
    @{ unix = Get-Median $unix; tls = Get-Median $tls; unixGet = Get-Median $unixGet; tlsGet = Get-Median $tlsGet
        unixRow = Get-Median $unixRow; tlsRow = Get-Median $tlsRow } | ConvertTo-Json -Compress
    return
}

Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
$daemon = Start-TestDaemon
$config = Join-Path $daemon.Dir 'client-config'
try {
    Get-TestImage | Out-Null
    New-SystemContainer b1 -Image busybox -Network none -Start | Out-Null
    Set-SystemContainerHost -HttpsAddress 127.0.0.1:8443
    $t = (New-SystemContainerTrustToken -ClientName bench).Token
    $env:XDG_CONFIG_HOME = $config
    $out = & nsenter "--net=/run/netns/$($daemon.Netns)" -- ([Environment]::ProcessPath) (Join-Path $PSHOME 'pwsh.dll') -NoProfile -NonInteractive `
        -File $PSCommandPath -Inner -Token $t -Runs $Runs
    if ($LASTEXITCODE) { throw "the client in the daemon's namespace failed: $out" }
    $m = $out | Select-Object -Last 1 | ConvertFrom-Json
    $ratio = [math]::Round($m.tls / $m.unix, 2)
    $rows = @([pscustomobject]@{ measure = 'exec true'; 'unix socket (ms)' = [math]::Round($m.unix, 2); 'TLS (ms)' = [math]::Round($m.tls, 2); 'ratio (target <= 2)' = $ratio },
        [pscustomobject]@{ measure = 'exec true, execs in a row'; 'unix socket (ms)' = [math]::Round($m.unixRow, 2); 'TLS (ms)' = [math]::Round($m.tlsRow, 2); 'ratio (target <= 2)' = [math]::Round($m.tlsRow / $m.unixRow, 2) },
        # A plain request on a kept-alive connection: what TLS costs without a handshake.
        [pscustomobject]@{ measure = 'Get-SystemContainer'; 'unix socket (ms)' = [math]::Round($m.unixGet, 2); 'TLS (ms)' = [math]::Round($m.tlsGet, 2); 'ratio (target <= 2)' = [math]::Round($m.tlsGet / $m.unixGet, 2) })
    $listed = ''
    if ($Fleet -gt 0) {
        New-SystemContainer 'f%d' -Count $Fleet -Image busybox -Network none | Out-Null
        $out = & nsenter "--net=/run/netns/$($daemon.Netns)" -- ([Environment]::ProcessPath) (Join-Path $PSHOME 'pwsh.dll') -NoProfile -NonInteractive `
            -File $PSCommandPath -List -ListRuns $ListRuns
        if ($LASTEXITCODE) { throw "the listing client in the daemon's namespace failed: $out" }
        $l = $out | Select-Object -Last 1 | ConvertFrom-Json
        $rows += [pscustomobject]@{ measure = "Get-SystemContainer, $($l.count) containers ($Fleet stopped)"; 'unix socket (ms)' = [math]::Round($l.unix, 2)
            'TLS (ms)' = [math]::Round($l.tls, 2); 'ratio (target <= 2)' = [math]::Round($l.tls / $l.unix, 2) }
        $listed = " The listing: $($l.count) containers ($Fleet made stopped with New-SystemContainer -Count, and b1 running), median of $ListRuns runs after 3 warm-up runs, alternating."
    }
    $rows | Format-Table -AutoSize | Out-String -Width 240 | Write-Host
    if ($Record) {
        $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '.*:\s*', ''
        $load = ((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 3) -join ' '
        Add-BenchResult 'remote.ps1' "$([Environment]::ProcessorCount) cores ($cpu), kernel $(uname -r), median of $Runs runs after 5 warm-up runs, alternating unix socket and TLS 1.3 to 127.0.0.1 in the daemon's namespace, then $Runs execs in a row on each.$listed Load average $load at the end." `
            @('measure', 'unix socket (ms)', 'TLS (ms)', 'ratio (target <= 2)') $rows
    }
}
finally {
    Remove-Item Env:XDG_CONFIG_HOME -ErrorAction SilentlyContinue
    Stop-TestDaemon $daemon
}
