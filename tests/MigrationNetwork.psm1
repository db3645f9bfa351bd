# The network of a live move between two test daemons (tests/Migration.Tests.ps1, bench/migration.ps1
# -Live): their bridges of one subnet joined at L2, a client namespace on one of them, and the TCP
# client of tests/migration-client.py holding a connection to a container's counting service.
Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1')

function Get-TestBridge($Daemon, [string]$Prefix) {
    <# The daemon's bridge whose IPv4 address starts with Prefix ("10.124.0."). #>
    $bridge = @(Invoke-InNetns $Daemon ip @('-j', 'link', 'show', 'type', 'bridge') | ConvertFrom-Json | ForEach-Object ifname |
        Where-Object { (Invoke-InNetns $Daemon ip @('-4', '-o', 'addr', 'show', 'dev', $_)) -match [regex]::Escape($Prefix) })
    if ($bridge.Count -ne 1) { throw "no single bridge of $Prefix* in $($Daemon.Netns): $bridge" }
    $bridge[0]
}

function Join-TestBridges($First, $Second, [string]$Prefix) {
    <# Joins the two daemons' bridges of Prefix at L2 by a veth pair; returns the first end's name (deleting it in the first namespace removes both). #>
    $link = "scl$((Split-Path -Leaf $Second.Dir).Substring(8, 8))"
    ip link add $link type veth peer name "$($link)p"
    if ($LASTEXITCODE) { throw "cannot make the veth pair $link" }
    ip link set $link netns $First.Netns
    ip link set "$($link)p" netns $Second.Netns
    Invoke-InNetns $First ip @('link', 'set', $link, 'master', (Get-TestBridge $First $Prefix), 'up')
    Invoke-InNetns $Second ip @('link', 'set', "$($link)p", 'master', (Get-TestBridge $Second $Prefix), 'up')
    $link
}

function New-TestClientNetns($Daemon, [string]$Prefix, [string]$Cidr) {
    <# A network namespace of its own with address Cidr on the daemon's bridge of Prefix; returns its name (ip netns del removes it and its veth). #>
    $id = (Split-Path -Leaf $Daemon.Dir).Substring(8, 8)
    $netns = "sc-migc-$id"
    ip netns add $netns
    if ($LASTEXITCODE) { throw "cannot create network namespace $netns" }
    ip -n $netns link set lo up
    $veth = "scc$id"
    ip link add $veth type veth peer name "$($veth)p"
    ip link set $veth netns $netns
    ip link set "$($veth)p" netns $Daemon.Netns
    ip -n $netns addr add $Cidr dev $veth
    ip -n $netns link set $veth up
    Invoke-InNetns $Daemon ip @('link', 'set', "$($veth)p", 'master', (Get-TestBridge $Daemon $Prefix), 'up')
    $netns
}

function Start-TestTcpClient([string]$Netns, [string]$Address, [int]$Port, [string]$Dir) {
    <# The connection and its 10 ms requests (tests/migration-client.py), returned once 20 are sent. #>
    $id = [guid]::NewGuid().ToString('n').Substring(0, 8)
    $stop = Join-Path $Dir "client-$id.stop"; $ready = Join-Path $Dir "client-$id.ready"
    $psi = [Diagnostics.ProcessStartInfo]::new('ip', @('netns', 'exec', $Netns, '/usr/bin/python3', (Join-Path $PSScriptRoot 'migration-client.py'), $Address, "$Port", $stop, $ready))
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $p = [Diagnostics.Process]::Start($psi)
    $client = [pscustomobject]@{ Process = $p; Stop = $stop; Stdout = $p.StandardOutput.ReadToEndAsync(); Stderr = $p.StandardError.ReadToEndAsync() }
    Wait-Until -TimeoutSeconds 20 -What 'the client''s first requests' { (Test-Path $ready) -or $p.HasExited }
    $client
}

function Stop-TestTcpClient($Client) {
    <# Its counts: sent, answers, in_order, bad, reset, first_count, last_count, max_gap_ms. #>
    New-Item -ItemType File -Path $Client.Stop -Force | Out-Null
    if (-not $Client.Process.WaitForExit(60000)) { $Client.Process.Kill(); throw 'the client did not end within 60 s' }
    if (-not $Client.Stdout.Result) { throw "the client printed nothing: $($Client.Stderr.Result)" }
    $Client.Stdout.Result | ConvertFrom-Json
}

Export-ModuleMember -Function Get-TestBridge, Join-TestBridges, New-TestClientNetns, Start-TestTcpClient, Stop-TestTcpClient
