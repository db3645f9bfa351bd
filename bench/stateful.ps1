#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Stateful stop and start of a busybox and of a Debian/systemd container: dump, restore and the gap a TCP client sees.
.DESCRIPTION
    A migration.stateful container with a NIC runs an echo server (busybox: nc; Debian/systemd:
    a socket unit with Accept=yes and cat, under systemd, networkd, resolved, logind, journald
    and dbus), and a client in the daemon's network namespace holds one connection to it. Each
    run is Stop-SystemContainer -Stateful then Start-SystemContainer, timed as the cmdlets' wall
    time, and the gap is from the last echo answered before the stop to the first answered after
    the start (the client sends as soon as the start returned). Medians of -Runs runs (1 warmup)
    and the size of the saved state, one row per -Workload; appended to bench/RESULTS.md with
    -Record. The Debian image is built from the debootstrap cache build.ps1 test fills.
#>
param([int]$Runs = 5, [ValidateSet('busybox', 'systemd')][string[]]$Workload = @('busybox', 'systemd'), [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'Bench.psm1') -Force

# Makes the workload's container with its echo server on port 7001; returns its address.
function New-Workload([string]$Kind) {
    if ($Kind -eq 'busybox') {
        New-SystemContainer st -Image (Get-TestImage) -Config @{ 'migration.stateful' = 'true' } -Start | Out-Null
        Wait-Until -TimeoutSeconds 30 -What 'an address' { @((Get-SystemContainer st).IPv4).Count -gt 0 }
        Invoke-SystemContainerCommand st -- sh -c 'setsid nc -ll -p 7001 -e /bin/cat </dev/null >/dev/null 2>&1 &'
        Wait-Until -TimeoutSeconds 20 -What 'the echo server' { Invoke-SystemContainerCommand st -- sh -c 'netstat -ltn | grep ":7001 " || true' }
    }
    else {
        New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm | Out-Null
        New-SystemContainer st -Image bookworm -Config @{ 'migration.stateful' = 'true' } -Start | Out-Null
        Wait-SystemContainer st -For SystemdRunning -Timeout 180 -WarningAction SilentlyContinue | Out-Null
        Wait-SystemContainer st -For IPv4 -Timeout 60 | Out-Null
        $units = @'
printf '%s\n' '[Socket]' 'ListenStream=7001' 'Accept=yes' > /etc/systemd/system/echo.socket
printf '%s\n' '[Service]' 'ExecStart=/bin/cat' 'StandardInput=socket' > /etc/systemd/system/echo@.service
systemctl daemon-reload && systemctl start echo.socket
'@
        Invoke-SystemContainerCommand st -- sh -c (($units -split "`n") -join ' && ')
    }
    @((Get-SystemContainer st).IPv4)[0]
}

$daemon = Start-TestDaemon
$client = $null
$rows = @()
try {
    foreach ($kind in $Workload) {
        $address = New-Workload $kind
        $psi = [Diagnostics.ProcessStartInfo]::new('nsenter', @("--net=/run/netns/$($daemon.Netns)", '--', 'busybox', 'nc', $address, '7001'))
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $client = [Diagnostics.Process]::Start($psi)
        function Send-Echo([string]$Text) {
            $client.StandardInput.WriteLine($Text)
            $client.StandardInput.Flush()
            $read = $client.StandardOutput.ReadLineAsync()
            if (-not $read.Wait(30000) -or $read.Result -ne $Text) { throw "the connection did not echo '$Text'" }
        }
        $stops = @(); $starts = @(); $gaps = @(); $sizes = @()
        for ($i = 0; $i -le $Runs; $i++) {
            Send-Echo "before-$i"
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $stop = Measure-Ms { Stop-SystemContainer st -Stateful }
            $size = (Get-ChildItem (Join-Path $daemon.StateDir 'containers/st/checkpoint') -File | Measure-Object Length -Sum).Sum
            $start = Measure-Ms { Start-SystemContainer st }
            Send-Echo "after-$i"
            $gap = $sw.Elapsed.TotalMilliseconds
            if ($i -eq 0) { continue }
            $stops += $stop; $starts += $start; $gaps += $gap; $sizes += $size
        }
        $rows += [pscustomobject]@{
            'Workload' = $kind; 'Stop -Stateful' = '{0:N0}' -f (Get-Median $stops); 'Start (restore)' = '{0:N0}' -f (Get-Median $starts)
            'Client gap' = '{0:N0}' -f (Get-Median $gaps); 'State' = '{0:N1} MB' -f ((Get-Median $sizes) / 1MB)
        }
        $client.Kill(); $client.WaitForExit(); $client = $null
        Remove-SystemContainer st -Force
    }
    $load = (Get-Content /proc/loadavg).Split(' ')[0]
    $rows | Format-Table | Out-String | Write-Host
    if ($Record) {
        Add-BenchResult 'stateful.ps1' "Median ms of $Runs runs (1 warmup), a container with a NIC and an echo server holding one TCP connection from the bridge side (busybox: nc; systemd: Debian bookworm, a socket unit), machine load $load." `
            @('Workload', 'Stop -Stateful', 'Start (restore)', 'Client gap', 'State') $rows
    }
}
finally {
    if ($client -and -not $client.HasExited) { $client.Kill(); $client.WaitForExit() }
    Remove-SystemContainer st -Force -ErrorAction SilentlyContinue
    Stop-TestDaemon $daemon
}
