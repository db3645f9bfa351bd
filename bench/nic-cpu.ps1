# NIC starts one after another on one network, and what each hundred cost in CPU ticks (1/100 s) of
# the daemon and of the network's dnsmasq: unlike wall times, ticks barely move with the load of a
# shared machine. Issue 14: dnsmasq's ticks per hundred grew with the number of containers while it
# served DHCPv4. Prints one line per hundred; -Record appends the table to RESULTS.md.
param([int]$Count = 1000, [switch]$Record)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
$env:SYSTEMCONTAINERS_SC_INIT = "$root/artifacts/SystemContainers/daemon/sc-init"
Import-Module "$root/SystemContainers.psd1" -Force
Import-Module "$root/tests/TestDaemon.psm1" -Force
Import-Module "$PSScriptRoot/Bench.psm1" -Force

function Get-Ticks([int]$ProcessId) {
    if (-not $ProcessId) { return 0 }
    $f = (Get-Content "/proc/$ProcessId/stat") -replace '^.*\) ', '' -split ' '
    [long]$f[11] + [long]$f[12]
}

$daemon = Start-TestDaemon
$names = 0..($Count - 1) | ForEach-Object { "g$_" }
$rows = @()
try {
    Get-TestImage | Out-Null
    $dnsmasq = (New-SystemContainerNetwork densenet -IPv4 10.251.0.1/16).DnsmasqPid
    $walls = @()
    $d0 = Get-Ticks $daemon.Pid
    $m0 = Get-Ticks $dnsmasq
    for ($i = 1; $i -le $Count; $i++) {
        $walls += Measure-Ms { New-SystemContainer $names[$i - 1] -Image busybox -Network densenet -Start }
        if ($i % 100 -eq 0) {
            $d = Get-Ticks $daemon.Pid
            $m = Get-Ticks $dnsmasq
            $row = [pscustomobject]@{
                Containers = $i; 'Median start ms' = [math]::Round((Get-Median $walls), 1)
                'Daemon ticks' = $d - $d0; 'dnsmasq ticks' = $m - $m0; Load = (Get-Content /proc/loadavg).Split(' ')[0]
            }
            $row | Format-Table -HideTableHeaders | Out-String | Write-Host -NoNewline
            $rows += $row
            $d0 = $d; $m0 = $m; $walls = @()
        }
    }
    # Every container has its address by DHCP (the last ones' clients may still be asking).
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    do { $without = @(Get-SystemContainer | Where-Object { -not $_.IPv4 }).Count } while ($without -and [DateTime]::UtcNow -lt $deadline)
    Write-Host "containers without an IPv4 address: $without"
}
finally {
    Remove-SystemContainer $names -Force -ErrorAction SilentlyContinue
    Stop-TestDaemon $daemon
}
if ($Record) {
    Add-BenchResult 'nic-cpu.ps1' "$Count busybox containers with a NIC started one after another on a /16; CPU ticks (1/100 s) per hundred starts." `
        @('Containers', 'Median start ms', 'Daemon ticks', 'dnsmasq ticks', 'Load') $rows
}
