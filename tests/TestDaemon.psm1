# Test support: a real systemcontainerd per test file, in its own state directory, and raw API access.
# Every test file starts its daemon in BeforeAll and stops it in AfterAll (which runs even when tests fail).
Set-StrictMode -Version Latest

$script:Root = Split-Path -Parent $PSScriptRoot
$script:DaemonBinary = Join-Path $script:Root 'artifacts/SystemContainers/daemon/systemcontainerd'

function Start-TestDaemon {
    <#
    Starts a daemon over a fresh state directory, inside a network namespace of its own (its
    bridges, dnsmasqs and nftables table never touch the host's network), and points the module
    at its socket.
    #>
    param([string[]]$ExtraArguments = @(), [switch]$ImageBuilder)
    if (-not (Test-Path $script:DaemonBinary)) { throw "build first: $script:DaemonBinary is missing" }
    $id = [guid]::NewGuid().ToString('n').Substring(0, 10)
    $dir = Join-Path '/tmp' "sc-test-$id"
    $netns = $null
    if ($ImageBuilder) {
        # Builds images from the network (debootstrap) into the shared cache: in the host's
        # network namespace, and without a default network, so it never touches the host's network.
        $ExtraArguments += @('--default-network', 'none')
    }
    else {
        $netns = "sc-test-$id"
        ip netns add $netns
        if ($LASTEXITCODE) { throw "cannot create network namespace $netns" }
        ip -n $netns link set lo up
    }
    $daemon = [pscustomobject]@{
        Netns    = $netns
        Dir      = $dir
        StateDir = Join-Path $dir 'state'
        RunDir   = Join-Path $dir 'run'
        Socket   = Join-Path $dir 'run/systemcontainerd.sock'
        Log      = Join-Path $dir 'daemon.log'
        Pid      = 0
    }
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    Start-DaemonProcess $daemon $ExtraArguments
    $env:SYSTEMCONTAINERS_SOCKET = $daemon.Socket
    $env:SYSTEMCONTAINERS_RUN_DIR = $daemon.RunDir
    # Should this daemon die, cmdlets must fail, not start one on the host's network and state directory.
    $env:SYSTEMCONTAINERS_NO_AUTOSTART = '1'
    $daemon
}

function Start-DaemonProcess($Daemon, [string[]]$ExtraArguments = @()) {
    $arguments = @('--state-dir', $Daemon.StateDir, '--run-dir', $Daemon.RunDir, '--socket', $Daemon.Socket,
        '--cache-dir', '/var/cache/systemcontainers', '--log-file', $Daemon.Log) + $ExtraArguments
    # nsenter execs the daemon in place, so the pid is the daemon's.
    $p = if ($Daemon.Netns) { Start-Process -FilePath nsenter -ArgumentList (@("--net=/run/netns/$($Daemon.Netns)", '--', $script:DaemonBinary) + $arguments) -PassThru }
         else { Start-Process -FilePath $script:DaemonBinary -ArgumentList $arguments -PassThru }
    $Daemon.Pid = $p.Id
    try {
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while ([DateTime]::UtcNow -lt $deadline) {
            if ((Test-Path $Daemon.Socket) -and (Invoke-TestApi $Daemon GET /1.0).Status -eq 200) { return }
            if ($p.HasExited) { throw "daemon exited with $($p.ExitCode): $(Get-Content -Raw $Daemon.Log -ErrorAction SilentlyContinue)" }
            Start-Sleep -Milliseconds 50
        }
        throw "daemon did not answer on $($Daemon.Socket)"
    }
    catch {
        Stop-DaemonProcess $Daemon
        throw
    }
}

function Stop-DaemonProcess($Daemon) {
    <# Ends the daemon we started, by its pid; containers keep running (as after a daemon crash or upgrade). #>
    if ($Daemon.Pid -le 0) { return }
    $p = Get-Process -Id $Daemon.Pid -ErrorAction SilentlyContinue
    if ($p) {
        kill -TERM $Daemon.Pid
        if (-not $p.WaitForExit(10000)) { kill -KILL $Daemon.Pid; $p.WaitForExit(5000) | Out-Null }
    }
    $Daemon.Pid = 0
}

function Stop-TestDaemon($Daemon) {
    <# Removes every container the tests left, ends the daemon and deletes its directories. #>
    if (-not $Daemon) { return }
    # A daemon that died in a test is started again: it adopts what it left, so that can be removed.
    if ($Daemon.Pid -le 0 -or -not (Test-ProcessAlive $Daemon.Pid) -or (Invoke-TestApi $Daemon GET /1.0).Status -ne 200) {
        try { Stop-DaemonProcess $Daemon; Start-DaemonProcess $Daemon }
        catch { Write-Warning "cannot start the test daemon again to clean up: $_" }
    }
    if ($Daemon.Pid -gt 0) {
        $list = Invoke-TestApi $Daemon GET '/1.0/containers'
        if ($list.Status -eq 200) {
            foreach ($url in $list.Body.metadata) {
                $r = Invoke-TestApi $Daemon DELETE "$($url)?force=1"
                if ($r.Body.operation) { Invoke-TestApi $Daemon GET "$($r.Body.operation)/wait?timeout=60" | Out-Null }
            }
        }
    }
    Stop-DaemonProcess $Daemon
    foreach ($dnsmasq in Get-TestDnsmasq $Daemon) { kill -TERM $dnsmasq }
    Wait-Until { -not (Get-TestDnsmasq $Daemon) } -TimeoutSeconds 10 -What 'dnsmasq to exit'
    if ($Daemon.Netns) { ip netns del $Daemon.Netns }
    Remove-Item -Recurse -Force $Daemon.Dir -ErrorAction SilentlyContinue
    Remove-Item Env:SYSTEMCONTAINERS_SOCKET, Env:SYSTEMCONTAINERS_RUN_DIR, Env:SYSTEMCONTAINERS_NO_AUTOSTART -ErrorAction SilentlyContinue
}

function Get-TestDnsmasq($Daemon) {
    <# The dnsmasq processes the daemon started: those whose command line names its state directory. #>
    Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | ForEach-Object {
        $cmdline = Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue
        if ($cmdline -and $cmdline.StartsWith("dnsmasq`0") -and $cmdline.Contains($Daemon.StateDir) -and (Test-ProcessAlive $_.Name)) { [int]$_.Name }
    }
}

function Invoke-InNetns($Daemon, [string]$Command, [string[]]$Arguments) {
    <# Runs a host tool (ip, nft) in the test daemon's network namespace; returns its output. #>
    & nsenter "--net=/run/netns/$($Daemon.Netns)" -- $Command @Arguments
}

function Invoke-TestApi {
    <# One HTTP/1.0 request over the daemon's unix socket, as any client could send it. #>
    param($Daemon, [string]$Method, [string]$Path, [string]$Body)
    $socket = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Unspecified)
    try {
        $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($Daemon.Socket))
        $payload = [byte[]]::new(0)
        if ($Body) { $payload = [Text.Encoding]::UTF8.GetBytes($Body) }
        $head = "$Method $Path HTTP/1.0`r`nHost: systemcontainers`r`nContent-Type: application/json`r`nContent-Length: $($payload.Length)`r`n`r`n"
        $socket.Send([Text.Encoding]::ASCII.GetBytes($head)) | Out-Null
        if ($payload.Length) { $socket.Send($payload) | Out-Null }
        $stream = [System.Net.Sockets.NetworkStream]::new($socket)
        $text = [IO.StreamReader]::new($stream).ReadToEnd()
        $status = [int]($text -split ' ')[1]
        $json = $text.Substring($text.IndexOf("`r`n`r`n") + 4)
        [pscustomobject]@{ Status = $status; Body = if ($json) { $json | ConvertFrom-Json } else { $null } }
    }
    catch [System.Net.Sockets.SocketException], [System.IO.IOException] {
        # Refused, or reset by a daemon that is starting or dying: no answer.
        [pscustomobject]@{ Status = 0; Body = $null }
    }
    finally { $socket.Dispose() }
}

function Get-TestImage {
    <# The busybox image, built once per daemon. #>
    if (-not (Get-SystemContainerImage busybox -ErrorAction SilentlyContinue)) { New-SystemContainerImage -Busybox -Alias busybox | Out-Null }
    'busybox'
}

function Wait-Until([scriptblock]$Condition, [int]$TimeoutSeconds = 60, [string]$What = 'condition') {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (& $Condition) { return }
        Start-Sleep -Milliseconds 200
    }
    throw "timed out after $TimeoutSeconds s waiting for $What"
}

function Test-ProcessAlive([int]$ProcessId) {
    <# A zombie has exited: an adopted init is reaped by its real parent (the host's init), not by us. #>
    $stat = Get-Content "/proc/$ProcessId/stat" -ErrorAction SilentlyContinue
    if (-not $stat) { return $false }
    $stat.Substring($stat.LastIndexOf(')') + 2, 1) -ne 'Z'
}

function Get-CgroupDirectories {
    <# The container's cgroup directories on the host, found from its init's /proc/<pid>/cgroup. #>
    param([int]$InitPid)
    Get-Content "/proc/$InitPid/cgroup" | ForEach-Object {
        $id, $controllers, $path = $_ -split ':', 3
        $mount = if ($controllers -eq '') { '/sys/fs/cgroup/unified' } elseif ($controllers -like 'name=*') { '/sys/fs/cgroup/' + $controllers.Substring(5) } else { "/sys/fs/cgroup/$controllers" }
        Join-Path $mount $path
    }
}

Export-ModuleMember -Function Get-TestDnsmasq, Invoke-InNetns, Test-ProcessAlive, Start-TestDaemon, Stop-TestDaemon, Start-DaemonProcess, Stop-DaemonProcess, Invoke-TestApi, Get-TestImage, Wait-Until, Get-CgroupDirectories
