# Test support: a real systemcontainerd per test file, in its own state directory, and raw API access.
# Every test file starts its daemon in BeforeAll and stops it in AfterAll (which runs even when tests fail).
Set-StrictMode -Version Latest

$script:Root = Split-Path -Parent $PSScriptRoot
$script:DaemonBinary = Join-Path $script:Root 'artifacts/SystemContainers/daemon/systemcontainerd'
# A slower machine (the v2 lane's emulated guest) stretches every deadline of the harness by this factor.
$script:TimeScale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1.0 }
# SYSTEMCONTAINERS_TEST_DAEMON_UNIT=1 (the v2 lane sets it): each test daemon runs as a systemd
# service with the installed unit's properties (Delegate=yes, KillMode=process, Type=notify), as
# on a real host; otherwise as a child of the test run.
$script:AsUnit = $env:SYSTEMCONTAINERS_TEST_DAEMON_UNIT -eq '1'

function Start-TestDaemon {
    <#
    Starts a daemon over a fresh state directory, inside a network namespace of its own (its
    bridges, dnsmasqs and nftables table never touch the host's network), and points the module
    at its socket.
    #>
    param([string[]]$ExtraArguments = @(), [switch]$HostNetwork)
    if (-not (Test-Path $script:DaemonBinary)) { throw "build first: $script:DaemonBinary is missing" }
    $id = [guid]::NewGuid().ToString('n').Substring(0, 10)
    $dir = Join-Path '/tmp' "sc-test-$id"
    $netns = $null
    if ($HostNetwork) {
        # In the host's network namespace (to build images from the archive, or to see the host's
        # own network settings), without a default network, so it never changes the host's network.
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
        Unit     = "sc-test-$id.service"
        TestFile = [IO.Path]::GetFileNameWithoutExtension($MyInvocation.PSCommandPath)
    }
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    Start-DaemonProcess $daemon $ExtraArguments
    $env:SYSTEMCONTAINERS_SOCKET = $daemon.Socket
    $env:SYSTEMCONTAINERS_RUN_DIR = $daemon.RunDir
    # Should this daemon die, cmdlets must fail, not start one on the host's network and state directory.
    $env:SYSTEMCONTAINERS_NO_AUTOSTART = '1'
    $daemon
}

function Get-TestCriu {
    <#
    The criu test daemons run: what build.ps1 test installed (SYSTEMCONTAINERS_CRIU), else the newest
    criu `./build.ps1 criu` unpacked under the cache, else the packaged one.
    #>
    if ($env:SYSTEMCONTAINERS_CRIU) { return $env:SYSTEMCONTAINERS_CRIU }
    $unpacked = @(Get-ChildItem -Path /var/cache/systemcontainers/criu -Directory -ErrorAction SilentlyContinue | Where-Object { -not $_.Name.StartsWith('.') } |
        ForEach-Object { Join-Path $_.FullName 'criu' } | Where-Object { Test-Path $_ } | Sort-Object -Descending)
    if ($unpacked) { return $unpacked[0] }
    '/usr/sbin/criu'
}

function Start-DaemonProcess($Daemon, [string[]]$ExtraArguments = @()) {
    $arguments = @('--state-dir', $Daemon.StateDir, '--run-dir', $Daemon.RunDir, '--socket', $Daemon.Socket,
        '--cache-dir', '/var/cache/systemcontainers') + $ExtraArguments
    if ($ExtraArguments -notcontains '--criu') { $arguments += @('--criu', (Get-TestCriu)) }
    # nsenter execs the daemon in place, so the pid is the daemon's.
    $command = if ($Daemon.Netns) { @('nsenter', "--net=/run/netns/$($Daemon.Netns)", '--', $script:DaemonBinary) + $arguments }
               else { @($script:DaemonBinary) + $arguments }
    if ($script:AsUnit) { Start-DaemonUnit $Daemon $command; return }
    $p = Start-Process -FilePath $command[0] -ArgumentList ($command[1..($command.Count - 1)] + @('--log-file', $Daemon.Log)) -PassThru
    $Daemon.Pid = $p.Id
    try {
        $deadline = [DateTime]::UtcNow.AddSeconds(30 * $script:TimeScale)
        while ([DateTime]::UtcNow -lt $deadline) {
            if ((Test-Path $Daemon.Socket) -and (Invoke-TestApi $Daemon GET /1.0).Status -eq 200) { return }
            if ($p.HasExited) { throw "daemon exited with $($p.ExitCode): $(Get-Content -Raw $Daemon.Log -ErrorAction SilentlyContinue)" }
            Start-Sleep -Milliseconds 50
        }
        throw "daemon did not answer on $($Daemon.Socket) within $(30 * $script:TimeScale) s"
    }
    catch {
        Stop-DaemonProcess $Daemon
        throw
    }
}

function Start-DaemonUnit($Daemon, [string[]]$Command) {
    <#
    The installed unit with this daemon's command line and log, as a runtime unit of the same
    name on every restart (so a restarted daemon finds its containers in the same cgroup subtree).
    #>
    $template = Get-Content (Join-Path (Split-Path $script:DaemonBinary) 'systemcontainerd.service')
    # A spawned daemon inherits the test's SYSTEMCONTAINERS_* variables (test hooks such as
    # SYSTEMCONTAINERS_TEST_CRASH_AT); a unit gets only what it names, so it names them.
    $environment = @(Get-ChildItem Env: | Where-Object Name -like 'SYSTEMCONTAINERS_*' | Sort-Object Name | ForEach-Object {
        'Environment="{0}={1}"' -f $_.Name, ($_.Value -replace '\\', '\\' -replace '"', '\"' -replace '%', '%%')
    })
    # A test daemon that dies stays dead (the tests restart it themselves); it has its own run directory.
    $unit = foreach ($line in $template) {
        if ($line -match '^ExecStart=') { 'ExecStart=' + (($Command | ForEach-Object { "`"$_`"" }) -join ' '); "StandardOutput=append:$($Daemon.Log)"; 'StandardError=inherit'; $environment }
        elseif ($line -match '^RuntimeDirectory') { }
        elseif ($line -match '^Restart=') { 'Restart=no' }
        elseif ($line -match '^TimeoutStartSec=') { "TimeoutStartSec=$([int](30 * $script:TimeScale))" }
        else { $line }
    }
    $path = "/run/systemd/system/$($Daemon.Unit)"
    if (-not (Test-Path $path) -or ((Get-Content $path) -join "`n") -ne ($unit -join "`n")) {
        Set-Content -Path $path -Value $unit
        systemctl daemon-reload
    }
    # Type=notify: systemctl start returns once the daemon said READY=1, or fails.
    $out = systemctl start $Daemon.Unit 2>&1
    if ($LASTEXITCODE) {
        $log = Get-Content -Raw $Daemon.Log -ErrorAction SilentlyContinue
        systemctl reset-failed $Daemon.Unit 2>$null
        throw "cannot start $($Daemon.Unit): $out $log"
    }
    $Daemon.Pid = [int](systemctl show --property MainPID --value $Daemon.Unit)
    if ((Invoke-TestApi $Daemon GET /1.0).Status -ne 200) { throw "$($Daemon.Unit) said it was ready, but nothing answers on $($Daemon.Socket)" }
}

function Stop-DaemonProcess($Daemon) {
    <# Ends the daemon we started, by its pid; containers keep running (as after a daemon crash or upgrade). #>
    if ($Daemon.Pid -le 0) { return }
    $p = Get-Process -Id $Daemon.Pid -ErrorAction SilentlyContinue
    if ($p) {
        kill -TERM $Daemon.Pid
        if (-not $p.WaitForExit([int](10000 * $script:TimeScale))) { kill -KILL $Daemon.Pid; $p.WaitForExit(5000) | Out-Null }
    }
    $Daemon.Pid = 0
    if ($Daemon.PSObject.Properties['Unit'] -and $script:AsUnit) { systemctl reset-failed $Daemon.Unit 2>$null }
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
    Stop-TestLxcfs $Daemon
    if ($script:AsUnit -and (Test-Path "/run/systemd/system/$($Daemon.Unit)")) {
        systemctl stop $Daemon.Unit 2>$null
        Remove-Item "/run/systemd/system/$($Daemon.Unit)"
        systemctl daemon-reload
    }
    # SYSTEMCONTAINERS_TEST_LOG_DIR keeps every daemon's log (the v2 lane brings them back from its guest).
    if ($env:SYSTEMCONTAINERS_TEST_LOG_DIR -and (Test-Path $Daemon.Log)) {
        Copy-Item $Daemon.Log (Join-Path $env:SYSTEMCONTAINERS_TEST_LOG_DIR "$($Daemon.TestFile)-$(Split-Path -Leaf $Daemon.Dir).log")
    }
    Stop-TestLeftovers $Daemon
    if ($Daemon.Netns) { ip netns del $Daemon.Netns }
    Remove-Item -Recurse -Force $Daemon.Dir -ErrorAction SilentlyContinue
    Remove-Item Env:SYSTEMCONTAINERS_SOCKET, Env:SYSTEMCONTAINERS_RUN_DIR, Env:SYSTEMCONTAINERS_NO_AUTOSTART -ErrorAction SilentlyContinue
}

function Get-TestCgroupGroup($Daemon) {
    <# The daemon's cgroup group, as it derives it from its state directory (DaemonOptions). #>
    $hash = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes([System.IO.Path]::GetFullPath($Daemon.StateDir)))
    'systemcontainers-' + [System.Convert]::ToHexStringLower($hash).Substring(0, 8)
}

function Stop-TestLeftovers($Daemon) {
    <#
    Kills what is still in the daemon's cgroup subtree once it is gone: a container its restarted
    daemon could not adopt (and so not remove) would otherwise outlive the test run. Says so, since
    such a leftover is a bug worth seeing.
    #>
    $pattern = '/' + [regex]::Escape((Get-TestCgroupGroup $Daemon)) + '(\.scope)?(/|$)'
    $left = @(Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | Where-Object {
        $lines = Get-Content "/proc/$($_.Name)/cgroup" -ErrorAction SilentlyContinue
        $lines | Where-Object { ($_ -split ':', 3)[2] -match $pattern }
    } | ForEach-Object { [int]$_.Name })
    if ($left.Count -eq 0) { return }
    $named = $left | ForEach-Object {
        $state = (Get-Content "/proc/$_/stat" -ErrorAction SilentlyContinue) -replace '^\d+ \((.*)\) (\S) (\d+).*$', '$1, state $2, parent $3'
        $group = (Get-Content "/proc/$_/cgroup" -ErrorAction SilentlyContinue | Select-Object -Last 1) -replace '^[^:]*:[^:]*:', ''
        "$_ ($state, in $group)"
    }
    Write-Warning "$($left.Count) process(es) were left in the cgroup subtree of the daemon in $($Daemon.Dir): $($named -join '; '); killing them"
    foreach ($p in $left) { kill -KILL $p 2>$null }
    Wait-Until { -not ($left | Where-Object { Test-ProcessAlive $_ }) } -TimeoutSeconds 10 -What 'leftover container processes to exit'
}

function Get-TestDnsmasq($Daemon) {
    <# The dnsmasq processes the daemon started: those whose command line names its state directory. #>
    Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | ForEach-Object {
        $cmdline = Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue
        if ($cmdline -and $cmdline.StartsWith("dnsmasq`0") -and $cmdline.Contains($Daemon.StateDir) -and (Test-ProcessAlive $_.Name)) { [int]$_.Name }
    }
}

function Get-TestLxcfs($Daemon) {
    <# The lxcfs the daemon started and recorded in its run directory ("pid starttime"), while it runs. #>
    $record = Join-Path $Daemon.RunDir 'lxcfs/lxcfs.pid'
    if (-not (Test-Path $record)) { return }
    $f = (Get-Content -Raw $record).Trim() -split ' '
    $stat = Get-Content -Raw "/proc/$($f[0])/stat" -ErrorAction SilentlyContinue
    # Field 22 (start time) after the parenthesised command name.
    if ($stat -and ($stat.Substring($stat.LastIndexOf(')') + 2) -split ' ')[19] -eq $f[1]) { [int]$f[0] }
}

function Get-TestMounts($Daemon) {
    <# The host's mountinfo lines that name the daemon's directory, but that of the lxcfs mount it keeps for every container. #>
    $lxcfs = Join-Path $Daemon.RunDir 'lxcfs/mnt'
    Get-Content /proc/self/mountinfo | Where-Object { $_ -match [regex]::Escape($Daemon.Dir) -and ($_ -split ' ')[4] -ne $lxcfs }
}

function Get-MountsUnder([string]$Dir) {
    <# The mount points below Dir, as the host sees them. #>
    @(Get-Content /proc/self/mountinfo | ForEach-Object { ($_ -split ' ')[4] } | Where-Object { $_ -like "$Dir/*" })
}

function Remove-TestStorage($Daemon) {
    <#
    After a storage test, even a failed one: its containers and pools removed through the daemon
    (while it runs), then whatever is still mounted under the run's directory unmounted and the
    loop devices behind its files detached.
    #>
    if ($Daemon -and $Daemon.Pid -gt 0) {
        Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
        Get-SystemContainerStoragePool -ErrorAction SilentlyContinue | Where-Object Name -ne 'default' |
            Remove-SystemContainerStoragePool -Force -ErrorAction SilentlyContinue
    }
    foreach ($m in Get-MountsUnder $Daemon.Dir | Sort-Object -Descending) { umount -l $m }
    foreach ($line in @(losetup --list --noheadings --output NAME,BACK-FILE)) {
        $name, $file = -split $line
        if ($file -like "$($Daemon.Dir)/*") { losetup -d $name }
    }
}

function Stop-TestLxcfs($Daemon) {
    <#
    Ends every lxcfs mounted under the test's directory (its daemon's, and those of daemons a test
    started there with a run directory of their own): each unmounts itself on SIGTERM; a mount a
    killed one left is detached, so the directory can be removed.
    #>
    $prefix = "$($Daemon.Dir)/"
    $ours = @(Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | ForEach-Object {
        $argv = (Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue) -split "`0" | Where-Object { $_ }
        if ($argv -and $argv[0] -eq 'lxcfs' -and $argv[-1].StartsWith($prefix)) { [int]$_.Name }
    })
    foreach ($lxcfs in $ours) { kill -TERM $lxcfs }
    foreach ($lxcfs in $ours) { Wait-Until { -not (Test-ProcessAlive $lxcfs) } -TimeoutSeconds 10 -What "lxcfs $lxcfs to exit" }
    Get-Content /proc/self/mountinfo | ForEach-Object { ($_ -split ' ')[4] } | Where-Object { $_.StartsWith($prefix) -and $_.EndsWith('/lxcfs/mnt') } |
        ForEach-Object { umount -l $_ }
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

function Initialize-TestImageCache {
    <#
    Fills the shared debootstrap cache from the archive, before and outside the tests (build.ps1
    test calls it): a daemon in the host's network namespace without a default network builds the
    Debian image, so the tests, in network namespaces of their own, build it from the cache.
    #>
    $builder = Start-TestDaemon -HostNetwork
    try { New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm -ErrorAction Stop | Out-Null }
    finally { Stop-TestDaemon $builder }
}

function New-TestVethPair($First, $Second, [string]$Subnet) {
    <#
    Joins two test daemons' network namespaces by a veth pair named after the second's directory:
    the first gets $Subnet.1/30, the second $Subnet.2/30. Returns the first end's name; deleting it
    in the first namespace removes the pair.
    #>
    $veth = "scv$((Split-Path -Leaf $Second.Dir).Substring(8, 8))"
    ip link add $veth type veth peer name "$($veth)p"
    if ($LASTEXITCODE) { throw "cannot make the veth pair $veth" }
    try {
        ip link set $veth netns $First.Netns
        if ($LASTEXITCODE) { throw "cannot move $veth into $($First.Netns)" }
        ip link set "$($veth)p" netns $Second.Netns
        if ($LASTEXITCODE) { throw "cannot move $($veth)p into $($Second.Netns)" }
        Invoke-InNetns $First ip @('addr', 'add', "$Subnet.1/30", 'dev', $veth)
        Invoke-InNetns $First ip @('link', 'set', $veth, 'up')
        Invoke-InNetns $Second ip @('addr', 'add', "$Subnet.2/30", 'dev', "$($veth)p")
        Invoke-InNetns $Second ip @('link', 'set', "$($veth)p", 'up')
    }
    catch {
        # The pair is wherever the failed step left it: deleting either end, there, removes both.
        ip link del $veth 2>$null
        Invoke-InNetns $First ip @('link', 'del', $veth) 2>$null
        throw
    }
    $veth
}

function Wait-Until([scriptblock]$Condition, [int]$TimeoutSeconds = 60, [string]$What = 'condition') {
    $TimeoutSeconds = [int]($TimeoutSeconds * $script:TimeScale)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (& $Condition) { return }
        Start-Sleep -Milliseconds 200
    }
    throw "timed out after $TimeoutSeconds s waiting for $What"
}

function Test-InSubnet([string]$Address, [string]$Cidr) {
    <# Whether an IPv4 address is inside the subnet of a bridge address in CIDR form (10.1.16.1/20). #>
    $base, $prefix = $Cidr -split '/'
    $mask = [uint32](([uint64]4294967295 -shl (32 - [int]$prefix)) -band 4294967295)
    $value = { param($a) $b = ([ipaddress]$a).GetAddressBytes(); [array]::Reverse($b); [BitConverter]::ToUInt32($b, 0) }
    ((& $value $Address) -band $mask) -eq ((& $value $base) -band $mask)
}

function Test-ProcessAlive([int]$ProcessId) {
    <# A zombie has exited: an adopted init is reaped by its real parent (the host's init), not by us. #>
    $stat = Get-Content "/proc/$ProcessId/stat" -ErrorAction SilentlyContinue
    if (-not $stat) { return $false }
    $stat.Substring($stat.LastIndexOf(')') + 2, 1) -ne 'Z'
}

# ---- cgroup files, on whatever the host mounts (v1, hybrid or pure v2) -------------------------

function Get-CgroupMounts {
    <# The cgroup and cgroup2 mounts of the host's hierarchy roots, from /proc/self/mountinfo. #>
    Get-Content /proc/self/mountinfo | ForEach-Object {
        $head, $tail = $_ -split ' - ', 2
        $h = $head -split ' '; $t = $tail -split ' '
        if ($t[0] -in 'cgroup', 'cgroup2' -and $h[3] -eq '/') {
            [pscustomobject]@{ MountPoint = $h[4] -replace '\\040', ' '; Type = $t[0]; Options = $t[2] -split ',' }
        }
    }
}

function Get-CgroupVersion {
    <# 'v1' where any v1 hierarchy is mounted (legacy or hybrid), 'v2' on a pure cgroup2 host. #>
    if (Get-CgroupMounts | Where-Object Type -eq 'cgroup') { 'v1' } else { 'v2' }
}

function Get-CgroupHierarchies([int]$InitPid) {
    <# Each hierarchy a process is in: its controllers and its directory on the host, from /proc/<pid>/cgroup. #>
    $mounts = @(Get-CgroupMounts)
    Get-Content "/proc/$InitPid/cgroup" | ForEach-Object {
        $null, $controllers, $path = $_ -split ':', 3
        $wanted = @($controllers -split ',' | Where-Object { $_ })
        $mount = if ($wanted.Count -eq 0) { $mounts | Where-Object Type -eq 'cgroup2' | Select-Object -First 1 }
                 else { $mounts | Where-Object { $m = $_; $m.Type -eq 'cgroup' -and -not ($wanted | Where-Object { $_ -notin $m.Options }) } | Select-Object -First 1 }
        if ($mount) { [pscustomobject]@{ Controllers = $wanted; Directory = Join-Path $mount.MountPoint $path } }
    }
}

function Get-CgroupDirectories {
    <# The container's cgroup directories on the host, found from its init's /proc/<pid>/cgroup. #>
    param([int]$InitPid)
    (Get-CgroupHierarchies $InitPid).Directory
}

function Get-CgroupFile {
    <#
    The path of a cgroup interface file of the process: on v1 in the hierarchy that carries
    Controller (file V1), on v2 in its cgroup2 directory (file V2, the same name unless given).
    #>
    param([int]$InitPid, [string]$Controller, [string]$V1, [string]$V2 = $V1)
    $hierarchies = @(Get-CgroupHierarchies $InitPid)
    $dir = if ((Get-CgroupVersion) -eq 'v2') { ($hierarchies | Where-Object { $_.Controllers.Count -eq 0 }).Directory }
           else { ($hierarchies | Where-Object { $Controller -in $_.Controllers } | Select-Object -First 1).Directory }
    if (-not $dir) { throw "process $InitPid is in no cgroup with the $Controller controller" }
    Join-Path $dir $(if ((Get-CgroupVersion) -eq 'v2') { $V2 } else { $V1 })
}

function Get-CgroupKeyedValue([string]$File, [string]$Key) {
    <# One "key value" line of a flat-keyed cgroup file (cpu.stat, memory.events, cgroup.events). #>
    $line = Get-Content $File | Where-Object { $_ -like "$Key *" } | Select-Object -First 1
    if (-not $line) { throw "$File has no '$Key' line" }
    [long]($line -split ' ')[1]
}

function Get-CgroupMemoryLimit([int]$InitPid, [switch]$Soft) {
    <# The hard (or with -Soft the soft) memory limit in bytes; $null for none (v2 "max", v1's page-counter maximum). #>
    $file = if ($Soft) { Get-CgroupFile $InitPid memory memory.soft_limit_in_bytes memory.high } else { Get-CgroupFile $InitPid memory memory.limit_in_bytes memory.max }
    $value = (Get-Content $file).Trim()
    if ($value -eq 'max' -or [decimal]$value -ge [decimal][math]::Pow(2, 62)) { return $null }
    [long]$value
}

function Get-CgroupCpuMax([int]$InitPid) {
    <# The CPU bandwidth limit as cpu.max writes it: "<quota µs|max> <period µs>". #>
    if ((Get-CgroupVersion) -eq 'v2') { return (Get-Content (Get-CgroupFile $InitPid cpu cpu.max)).Trim() }
    $quota = [long](Get-Content (Get-CgroupFile $InitPid cpu cpu.cfs_quota_us))
    $period = [long](Get-Content (Get-CgroupFile $InitPid cpu cpu.cfs_period_us))
    "$(if ($quota -lt 0) { 'max' } else { $quota }) $period"
}

function Get-CgroupCpuUsage([int]$InitPid) {
    <# CPU time used by the cgroup, in nanoseconds (v1 cpuacct.usage, v2 cpu.stat usage_usec). #>
    if ((Get-CgroupVersion) -eq 'v2') { return 1000 * (Get-CgroupKeyedValue (Get-CgroupFile $InitPid cpu cpu.stat) usage_usec) }
    [long](Get-Content (Get-CgroupFile $InitPid cpuacct cpuacct.usage))
}

function Get-CgroupThrottledPeriods([int]$InitPid) {
    <# How many CPU bandwidth periods the cgroup was throttled in (cpu.stat nr_throttled, both versions). #>
    Get-CgroupKeyedValue (Get-CgroupFile $InitPid cpu cpu.stat) nr_throttled
}

function Get-CgroupMemoryUsage([int]$InitPid) {
    [long](Get-Content (Get-CgroupFile $InitPid memory memory.usage_in_bytes memory.current))
}

function Get-CgroupMemoryLimitHits([int]$InitPid) {
    <# How often the memory limit was hit: v2 memory.events max; v1 memory.failcnt, or memory+swap's when swap is off. #>
    if ((Get-CgroupVersion) -eq 'v2') { return Get-CgroupKeyedValue (Get-CgroupFile $InitPid memory memory.events) max }
    $memsw = Get-CgroupFile $InitPid memory memory.memsw.failcnt
    [math]::Max([long](Get-Content (Get-CgroupFile $InitPid memory memory.failcnt)), $(if (Test-Path $memsw) { [long](Get-Content $memsw) } else { 0 }))
}

function Test-CgroupFrozen([int]$InitPid) {
    <# What the kernel says of the freeze: v1 freezer.state FROZEN, v2 cgroup.events "frozen 1". #>
    if ((Get-CgroupVersion) -eq 'v2') { return (Get-CgroupKeyedValue (Get-CgroupFile $InitPid freezer cgroup.events) frozen) -eq 1 }
    (Get-Content (Get-CgroupFile $InitPid freezer freezer.state)).Trim() -eq 'FROZEN'
}

function Get-ContainerIdMap([int]$InitPid) {
    <# The host ids container uid and gid 0 map to, and the range size, from the container's /proc/<pid>/uid_map and gid_map. #>
    $uid = @(Get-Content "/proc/$InitPid/uid_map"); $gid = @(Get-Content "/proc/$InitPid/gid_map")
    if ($uid.Count -ne 1 -or $gid.Count -ne 1) { throw "process $InitPid has $($uid.Count) uid_map and $($gid.Count) gid_map lines, expected one each" }
    $u = -split $uid[0]; $g = -split $gid[0]
    [pscustomobject]@{ Inside = [long]$u[0]; UidBase = [long]$u[1]; GidBase = [long]$g[1]; Size = [long]$u[2]; GidSize = [long]$g[2] }
}

function Start-TmuxPwsh {
    <#
    An interactive pwsh (PSReadLine loaded, as a person has it) in a tmux session of its own, on
    the test daemon's socket, in the repository; waits for its prompt. Returns the session name.
    #>
    param($Daemon, [int]$Width = 100, [int]$Height = 30)
    $session = "sc-test-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $root = Split-Path -Parent $PSScriptRoot
    # The last session's end takes its tmux server down with it; a new session that reaches that
    # server while it exits fails ("server exited unexpectedly"), and the next attempt starts a new one.
    foreach ($attempt in 1..3) {
        $err = tmux new-session -d -s $session -x $Width -y $Height "cd '$root' && SYSTEMCONTAINERS_SOCKET='$($Daemon.Socket)' SYSTEMCONTAINERS_NO_AUTOSTART=1 dotnet pwsh -NoProfile -NoLogo" 2>&1
        if (-not $LASTEXITCODE) { break }
        if ($attempt -eq 3) { throw "cannot start tmux session ${session}: $err" }
        Start-Sleep -Milliseconds 300
    }
    $script:TmuxDaemons[$session] = $Daemon
    try { Wait-TmuxScreen $session 'the pwsh prompt' $script:PwshPrompt 90 }
    catch { tmux kill-session -t $session 2>$null; throw }
    $session
}

# pwsh's empty prompt as the screen's last non-blank line: pwsh is reading a line.
$script:PwshPrompt = '(^|\n)PS [^\n]*> ?\s*$'

function Wait-TmuxPrompt([string]$Session, [string]$What, [int]$TimeoutSeconds = 30) {
    <#
    Waits until pwsh reads a line again ($PwshPrompt). Keys typed before that (while a cmdlet
    still runs) meet the terminal in cooked mode, whose ICRNL makes Enter a newline that
    PSReadLine reads as an unbound Ctrl+Enter.
    #>
    Wait-TmuxScreen $Session "the pwsh prompt after $What" $script:PwshPrompt $TimeoutSeconds
}

# The daemon each Start-TmuxPwsh session talks to, for Wait-TmuxScreen's failure message.
$script:TmuxDaemons = @{}

function Get-TmuxScreen([string]$Session) { (tmux capture-pane -t $Session -p) -join "`n" }

function Send-TmuxLine([string]$Session, [string]$Keys) {
    <#
    Types the keys as they are (-l), then Enter. Into pwsh, type a line only once its prompt is
    back, as a person would: while pwsh runs a native program (clear, say) the terminal is in that
    program's cooked mode, whose ICRNL turns Enter into a newline, which PSReadLine then reads as
    Ctrl+Enter and does not run.
    #>
    tmux send-keys -t $Session -l $Keys
    tmux send-keys -t $Session Enter
}

function Wait-TmuxScreen([string]$Session, [string]$What, [string]$Pattern, [int]$TimeoutSeconds = 10) {
    <#
    Waits for the screen to match. A failure shows what the screen showed and, for a session of
    Start-TmuxPwsh, the daemon's operations and the tail of its log: whether a command was started
    at all tells a line that never ran from a session that never answered.
    #>
    try { Wait-Until -TimeoutSeconds $TimeoutSeconds -What $What { (Get-TmuxScreen $Session) -match $Pattern } }
    catch {
        $detail = ''
        if ($script:TmuxDaemons.ContainsKey($Session)) {
            $d = $script:TmuxDaemons[$Session]
            $ops = @((Invoke-TestApi $d GET '/1.0/operations').Body.metadata | ForEach-Object { "$($_.created_at) $($_.status): $($_.description)" })
            $log = if (Test-Path $d.Log) { @(Get-Content $d.Log -Tail 15) } else { @("(no log at $($d.Log))") }
            $detail = "`nthe daemon's operations:`n$(if ($ops) { $ops -join "`n" } else { '(none)' })`nthe daemon's log, last lines:`n$($log -join "`n")"
        }
        throw "$_; the screen:`n$((Get-TmuxScreen $Session).TrimEnd())$detail"
    }
}

Export-ModuleMember -Function New-TestVethPair, Get-TestCriu, Get-MountsUnder, Remove-TestStorage, Start-TmuxPwsh, Get-TmuxScreen, Send-TmuxLine, Wait-TmuxScreen, Wait-TmuxPrompt, Get-TestDnsmasq, Get-TestLxcfs, Get-TestMounts, Invoke-InNetns, Test-InSubnet, Test-ProcessAlive, Start-TestDaemon, Stop-TestDaemon, Start-DaemonProcess, Stop-DaemonProcess, Invoke-TestApi, Get-TestImage, Initialize-TestImageCache, Wait-Until,
    Get-CgroupMounts, Get-CgroupVersion, Get-CgroupHierarchies, Get-CgroupDirectories, Get-CgroupFile, Get-CgroupKeyedValue, Get-CgroupMemoryLimit, Get-CgroupCpuMax,
    Get-CgroupCpuUsage, Get-CgroupThrottledPeriods, Get-CgroupMemoryUsage, Get-CgroupMemoryLimitHits, Test-CgroupFrozen, Get-ContainerIdMap, Get-TestCgroupGroup
