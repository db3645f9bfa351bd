# Live moves between two daemons (Move-SystemContainer -Live): each daemon in a network namespace
# of its own, joined by a veth pair for their HTTPS listeners; each has a bridge network "mig" of
# the same subnet, and the two bridges are joined at L2 by a second veth pair, so a container's
# address means the same on either host. A client namespace on the first bridge holds one TCP
# connection to a counting service in the container and sends a request every 10 ms throughout
# (tests/migration-client.py), counting the answers on its end while the service counts the
# requests on its own. The mover pwsh runs in the first daemon's namespace: "local" is the first
# daemon, remote "b" the second. No traffic leaves the three namespaces.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    Import-Module (Join-Path $PSScriptRoot 'MigrationNetwork.psm1') -Force
    $script:a = $null; $script:b = $null; $script:clientNs = $null; $script:veth = $null; $script:link = $null
    $script:a = Start-TestDaemon
    $script:b = Start-TestDaemon
    $script:veth = New-TestVethPair $a $b '10.251.78'
    function script:Use-Daemon($D) {
        $env:SYSTEMCONTAINERS_SOCKET = $D.Socket
        $env:SYSTEMCONTAINERS_RUN_DIR = $D.RunDir
    }
    $script:stateful = @{ 'migration.stateful' = 'true' }
    # The bridges' own addresses differ (both are on one segment); the containers' are fixed.
    foreach ($d in @(@($a, '10.251.78.1', '10.124.0.1/24'), @($b, '10.251.78.2', '10.124.0.254/24'))) {
        Use-Daemon $d[0]
        Set-SystemContainerHost -HttpsAddress "$($d[1]):8443"
        New-SystemContainerNetwork mig -IPv4 $d[2] | Out-Null
    }
    $script:link = Join-TestBridges $a $b '10.124.0.'
    $script:clientNs = New-TestClientNetns $a '10.124.0.' '10.124.0.200/24'

    $script:pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $script:module = Join-Path $PSScriptRoot '../SystemContainers.psd1'
    function script:Invoke-Mover([string]$Script, [hashtable]$Values = @{}) {
        <# Script in a pwsh in the first daemon's namespace, with its own config dir; its exit code and output. #>
        $prelude = "`$ErrorActionPreference = 'Stop'; `$ProgressPreference = 'SilentlyContinue'; Set-StrictMode -Version Latest; Import-Module '$module';"
        $psi = [Diagnostics.ProcessStartInfo]::new('nsenter')
        foreach ($x in @("--net=/run/netns/$($a.Netns)", '--', [Environment]::ProcessPath, $pwshDll, '-NoProfile', '-NonInteractive', '-EncodedCommand')) { $psi.ArgumentList.Add($x) }
        foreach ($k in $Values.Keys) {
            $prelude += " `$$k = `$env:SC_TEST_$k;"
            $psi.Environment["SC_TEST_$k"] = [string]$Values[$k]
        }
        $psi.ArgumentList.Add([Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes("$prelude`n$Script")))
        $psi.Environment['XDG_CONFIG_HOME'] = Join-Path $a.Dir 'mover'
        $psi.Environment['SYSTEMCONTAINERS_SOCKET'] = $a.Socket
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.UseShellExecute = $false
        $p = [Diagnostics.Process]::Start($psi)
        $stderr = $p.StandardError.ReadToEndAsync()
        $stdout = $p.StandardOutput.ReadToEnd()
        if (-not $p.WaitForExit(300000)) { $p.Kill(); throw 'the mover pwsh did not end within 300 s' }
        [pscustomobject]@{ ExitCode = $p.ExitCode; Output = ($stdout.TrimEnd() + $(if ($stderr.Result) { "`n" + $stderr.Result.TrimEnd() })) }
    }
    Use-Daemon $b
    $token = (New-SystemContainerTrustToken -ClientName mover).Token
    $joined = Invoke-Mover 'Add-SystemContainerRemote -Name b -Token $token | Out-Null' @{ token = $token }
    $joined.ExitCode | Should -Be 0 -Because $joined.Output
    # The default (overlay) pool layers a container on its image: the target needs the image.
    Use-Daemon $a
    Get-TestImage | Out-Null
    $copied = Invoke-Mover 'Copy-SystemContainerImage busybox -Destination b'
    $copied.ExitCode | Should -Be 0 -Because $copied.Output

    # A service that answers each line with its own count of the lines it read and the line: the
    # count lives in the shell's memory only, so a restarted service would count from 1 again.
    $script:service = "printf '#!/bin/sh\nn=0\nwhile read l; do n=`$((n+1)); echo `$n `$l; done\n' > /srv/count.sh; chmod +x /srv/count.sh; " +
        'setsid nc -ll -p 7000 -e /srv/count.sh </dev/null >/dev/null 2>&1 &'
    function script:New-Served([string]$Name, [string]$Network, [string]$Address) {
        New-SystemContainer $Name -Image (Get-TestImage) -Network $Network -Config ($stateful + @{ 'nic.eth0.ipv4.address' = $Address }) -Start | Out-Null
        Invoke-SystemContainerCommand $Name -- sh -c "mkdir -p /srv; $service"
        Wait-Until -TimeoutSeconds 20 -What "the service of $Name" { Invoke-SystemContainerCommand $Name -- sh -c 'netstat -ltn | grep ":7000 " || true' }
    }
    # What a failed move must not leave on a target: a container, a state or staging directory, a
    # volume, a snapshot (a btrfs pool's hidden ones too) or a subvolume being received.
    function script:Get-Traces($D) {
        $pools = @(Get-ChildItem -Directory (Join-Path $D.StateDir 'storage-pools') -ErrorAction SilentlyContinue)
        $dirs = @((Join-Path $D.StateDir 'containers')) + @($pools | ForEach-Object { Join-Path $_.FullName 'containers'; Join-Path $_.FullName 'receiving' })
        @(foreach ($dir in $dirs) { if (Test-Path $dir) { Get-ChildItem -Force -Name $dir | ForEach-Object { "$dir/$_" } } }) +
        @(foreach ($pool in $pools) {
                $snapshots = Join-Path $pool.FullName 'containers-snapshots'
                if (Test-Path $snapshots) { Get-ChildItem -Force -Recurse -Depth 1 -Name $snapshots | ForEach-Object { "$snapshots/$_" } }
            }) +
        @((Invoke-TestApi $D GET /1.0/containers).Body.metadata) | Sort-Object
    }
    # The service counts the lines it read; the client counts what it sent and what came back.
    function script:Assert-Unbroken($Counts, [string]$Because) {
        $Counts.reset | Should -BeNullOrEmpty -Because "the connection was never reset ($Because)"
        $Counts.in_order | Should -BeTrue -Because "every answer came once, in order, the service's count one more each time ($Because): $($Counts.bad)"
        $Counts.answers | Should -Be $Counts.sent -Because "no request was lost ($Because)"
        $Counts.first_count | Should -Be 1
        $Counts.last_count | Should -Be $Counts.sent -Because "the service read each request once ($Because)"
    }
    Use-Daemon $b
    $script:bBefore = Get-Traces $b
    Use-Daemon $a
    $script:aBefore = Get-Traces $a
}
AfterAll {
    $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $null
    foreach ($d in @($script:a, $script:b)) { if ($d) { Use-Daemon $d; Remove-TestStorage $d } }
    if ($script:clientNs) { ip netns del $clientNs 2>$null }
    if ($script:a -and $script:veth) {
        Invoke-InNetns $a ip @('link', 'del', $veth) 2>$null
        if ($script:link) { Invoke-InNetns $a ip @('link', 'del', $link) 2>$null }
    }
    Stop-TestDaemon $script:b
    Stop-TestDaemon $script:a
}

Describe 'Move-SystemContainer -Live' {
    BeforeAll {
        Use-Daemon $a
        New-Served web1 mig 10.124.0.50
        $script:mac = (Get-SystemContainer web1).Config['nic.eth0.hwaddr']
        $script:client = Start-TestTcpClient $clientNs 10.124.0.50 7000 $a.Dir
        $client.Process.HasExited | Should -BeFalse -Because "the client's connection is open"
    }
    AfterAll {
        if ($script:client -and -not $client.Process.HasExited) { $client.Process.Kill() }
        foreach ($d in @($a, $b)) { Use-Daemon $d; Remove-SystemContainer web1 -Force -ErrorAction SilentlyContinue }
    }

    It 'refuses a running container without -Live, and a stopped or not stateful one with it, changing nothing' {
        $r = Invoke-Mover 'Move-SystemContainer web1 b'
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'live migration'
        Use-Daemon $a
        New-SystemContainer plain1 -Image (Get-TestImage) -Network none -Start | Out-Null
        try {
            $r = Invoke-Mover 'Move-SystemContainer plain1 b -Live'
            $r.Output | Should -Match 'NotStateful|migration.stateful=true'
            Stop-SystemContainer plain1 -Force
            $r = Invoke-Mover 'Move-SystemContainer plain1 b -Live'
            $r.Output | Should -Match 'a live move is of a running container'
        }
        finally { Use-Daemon $a; Remove-SystemContainer plain1 -Force }
        (Get-SystemContainer web1).Status | Should -Be 'Running'
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBefore
    }
    It 'runs on here, with its network and connection, when the target dies mid-transfer; the target keeps nothing' {
        Use-Daemon $a
        $initPid = (Get-SystemContainer web1).Pid
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'backup-import-part'
        try { Stop-DaemonProcess $b; Start-DaemonProcess $b }
        finally { $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $null }
        $r = Invoke-Mover 'Move-SystemContainer web1 b -Live'
        $r.ExitCode | Should -Not -Be 0
        Get-Content -Raw $b.Log | Should -Match 'SIGKILL at backup-import-part'
        Stop-DaemonProcess $b
        Start-DaemonProcess $b
        Use-Daemon $a
        $c = Get-SystemContainer web1
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -Be $initPid -Because 'criu thawed the tree it had frozen: the same processes run on'
        @($c.IPv4) | Should -Contain '10.124.0.50'
        (Invoke-SystemContainerCommand web1 -- cat /sys/class/net/eth0/address).Trim() | Should -Be $mac
        $client.Process.HasExited | Should -BeFalse -Because 'the connection stays open'
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBefore
    }
    It 'refuses while a command of Invoke-SystemContainerCommand runs in it (criu cannot take it), changing nothing' {
        Use-Daemon $a
        $module = Join-Path $PSScriptRoot '../SystemContainers.psd1'
        $job = Start-ThreadJob -ArgumentList $module, $a.Socket { param($m, $s) $env:SYSTEMCONTAINERS_SOCKET = $s; Import-Module $m; Invoke-SystemContainerCommand web1 -- sleep 3600 }
        try {
            Wait-Until -TimeoutSeconds 20 -What 'the exec' { Invoke-SystemContainerCommand web1 -- sh -c 'pidof sleep || true' }
            $r = Invoke-Mover 'Move-SystemContainer web1 b -Live'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match 'runs commands started by Invoke-SystemContainerCommand'
        }
        # Ended here, not by its own clock: the mover's pwsh alone takes over a minute to start in the v2 lane's emulated guest.
        finally { Invoke-SystemContainerCommand web1 -- sh -c 'kill $(pidof sleep)'; $job | Wait-Job -Timeout 30 | Out-Null; $job | Remove-Job -Force }
        (Get-SystemContainer web1).Status | Should -Be 'Running'
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBefore
    }
    It 'moves there with its address, MAC, processes and connection, and back again' {
        $r = Invoke-Mover 'Move-SystemContainer web1 b -Live | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        ($r.Output | ConvertFrom-Json).Status | Should -Be 'Running'
        Use-Daemon $a
        Get-SystemContainer web1 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty -Because 'the source removed it once the target ran it'
        Get-Traces $a | Should -Be $aBefore
        Use-Daemon $b
        $there = Get-SystemContainer web1
        $there.Status | Should -Be 'Running'
        $there.Config['nic.eth0.hwaddr'] | Should -Be $mac
        @($there.IPv4) | Should -Contain '10.124.0.50'
        (Invoke-SystemContainerCommand web1 -- cat /sys/class/net/eth0/address).Trim() | Should -Be $mac
        # From the host: the restored tree is in this daemon's cgroups of it, in every hierarchy a container it starts
        # is in (several on a v1 host, one under systemd's unit on a v2 one): those of a fresh one, with its name.
        New-SystemContainer probe -Image (Get-TestImage) -Network none -Start | Out-Null
        $fresh = @(Get-Content "/proc/$((Get-SystemContainer probe).Pid)/cgroup")
        Remove-SystemContainer probe -Force
        $lines = @(Get-Content "/proc/$($there.Pid)/cgroup")
        $lines | Should -Be @($fresh | ForEach-Object { $_ -replace '/probe(?=/|$)', '/web1' })
        $lines | Where-Object { $_ -match (Get-TestCgroupGroup $a) } | Should -BeNullOrEmpty
        # From the host: its veth is on this daemon's bridge.
        Invoke-InNetns $b ip @('-o', 'link', 'show', 'master', (Get-TestBridge $b '10.124.0.')) | Should -Match 'veth|sc'
        $client.Process.HasExited | Should -BeFalse -Because "the client's connection is open"

        $r = Invoke-Mover 'Move-SystemContainer -Remote b web1 -DestinationHost local -Live | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        Use-Daemon $b
        Get-SystemContainer web1 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-Traces $b | Should -Be $bBefore
        Use-Daemon $a
        # From the host: this bridge has the MAC on the container's port again, not on the link to
        # the second host where it was: the restored NIC announced it (a RARP from inside).
        $fdb = @(Invoke-InNetns $a bridge @('-j', 'fdb', 'show', 'br', (Get-TestBridge $a '10.124.0.')) | Out-String | ConvertFrom-Json |
            Where-Object { $_.mac -eq $mac })
        $fdb.Count | Should -Be 1 -Because "the bridge learned the MAC on one port: $($fdb | ConvertTo-Json -Compress)"
        $fdb[0].ifname | Should -Not -Be $link
        (Get-SystemContainer web1).Status | Should -Be 'Running'
        (Invoke-SystemContainerCommand web1 -- cat /sys/class/net/eth0/address).Trim() | Should -Be $mac

        $counts = Stop-TestTcpClient $client
        Write-Host "live moves there and back: $($counts.sent) requests, longest wait for an answer $($counts.max_gap_ms) ms (load $((Get-Content /proc/loadavg).Split(' ')[0]))"
        Assert-Unbroken $counts 'through a failed move, a refused one and two live moves'
        $counts.sent | Should -BeGreaterThan 100
    }
}

Describe 'Move-SystemContainer -Live to a host without the network' {
    BeforeAll {
        Use-Daemon $a
        New-SystemContainerNetwork solo -IPv4 10.126.0.1/24 | Out-Null
        New-Served lone1 solo 10.126.0.50
    }
    AfterAll {
        Use-Daemon $a
        Remove-SystemContainer lone1 -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerNetwork solo -Confirm:$false -ErrorAction SilentlyContinue
    }
    It 'runs on here, the same processes with their network, and the target keeps nothing' {
        $initPid = (Get-SystemContainer lone1).Pid
        $r = Invoke-Mover 'Move-SystemContainer lone1 b -Live'
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'solo'
        Use-Daemon $a
        $c = Get-SystemContainer lone1
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -Be $initPid
        @($c.IPv4) | Should -Contain '10.126.0.50'
        # From the daemon's namespace: the service still answers, counting from 1 for a new connection.
        @(Invoke-InNetns $a sh @('-c', '(printf "one\ntwo\n"; sleep 2) | busybox nc 10.126.0.50 7000')) | Should -Be @('1 one', '2 two')
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBefore
    }
}

Describe 'Move-SystemContainer -Live between btrfs pools (the volume sent while it runs, then only what changed)' {
    BeforeAll {
        foreach ($d in @($a, $b)) { Use-Daemon $d; New-SystemContainerStoragePool pbt -Driver btrfs -Size 2GiB | Out-Null }
        Use-Daemon $b
        $script:bBtrfs = Get-Traces $b
        Use-Daemon $a
        $script:aBtrfs = Get-Traces $a
        New-SystemContainer web2 -Image (Get-TestImage) -StoragePool pbt -Network mig -Config ($stateful + @{ 'nic.eth0.ipv4.address' = '10.124.0.51' }) -Start | Out-Null
        Invoke-SystemContainerCommand web2 -- sh -c "mkdir -p /srv; $service"
        # A writer that holds its file open: criu restores it only if the file has the size it had
        # at the dump, so what it wrote after the pre-sync must have come with the frozen part.
        Invoke-SystemContainerCommand web2 -- sh -c 'setsid sh -c ''exec 3>>/srv/ticks; n=0; while :; do n=$((n+1)); echo $n >&3; sleep 0.01; done'' </dev/null >/dev/null 2>&1 &'
        Wait-Until -TimeoutSeconds 20 -What 'the service of web2' { Invoke-SystemContainerCommand web2 -- sh -c 'netstat -ltn | grep ":7000 " || true' }
        function script:Get-Ticks([string]$Name) {
            <# How many lines the writer wrote, and whether each is the one before plus one. #>
            $r = (Invoke-SystemContainerCommand $Name -- awk 'NR != $1 && !bad { bad = NR } END { print NR, bad + 0 }' /srv/ticks).Trim() -split ' '
            [pscustomobject]@{ Lines = [int]$r[0]; FirstBad = [int]$r[1] }
        }
    }
    AfterAll {
        if ($script:client2 -and -not $client2.Process.HasExited) { $client2.Process.Kill() }
        foreach ($d in @($a, $b)) {
            Use-Daemon $d
            Remove-SystemContainer web2 -Force -ErrorAction SilentlyContinue
            Remove-SystemContainerStoragePool pbt -Force -ErrorAction SilentlyContinue
        }
    }

    It 'runs on here when the target dies after receiving the running volume; neither keeps its part' {
        Use-Daemon $a
        $initPid = (Get-SystemContainer web2).Pid
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'live-presync-received'
        try { Stop-DaemonProcess $b; Start-DaemonProcess $b }
        finally { $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $null }
        $r = Invoke-Mover 'Move-SystemContainer web2 b -Live -StoragePool pbt'
        $r.ExitCode | Should -Not -Be 0
        Get-Content -Raw $b.Log | Should -Match 'SIGKILL at live-presync-received'
        Stop-DaemonProcess $b
        Start-DaemonProcess $b
        Use-Daemon $a
        $c = Get-SystemContainer web2
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -Be $initPid -Because 'criu thawed the tree, or never froze it'
        $before = (Get-Ticks web2).Lines
        Wait-Until -TimeoutSeconds 10 -What 'the writer going on' { (Get-Ticks web2).Lines -gt $before }
        # From the host: the source's snapshot for the pre-sync is gone, the target has nothing.
        @(Get-Traces $a | Where-Object { $_ -match '/containers-snapshots/' -and $_ -notmatch '/web2$' }) | Should -BeNullOrEmpty
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBtrfs
    }
    It 'moves there and back with what it wrote after the pre-sync, its processes and connection' {
        Use-Daemon $a
        $script:client2 = Start-TestTcpClient $clientNs 10.124.0.51 7000 $a.Dir
        $r = Invoke-Mover 'Move-SystemContainer web2 b -Live -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        Use-Daemon $b
        (Get-SystemContainer web2).Status | Should -Be 'Running'
        $there = Get-Ticks web2
        $there.FirstBad | Should -Be 0 -Because 'every tick is one more than the line before, none lost or doubled by the move'
        Wait-Until -TimeoutSeconds 10 -What 'the restored writer going on' { (Get-Ticks web2).Lines -gt $there.Lines }
        Use-Daemon $a
        Get-Traces $a | Should -Be $aBtrfs -Because 'the source removed the container, its volume and the pre-sync snapshot'

        $r = Invoke-Mover 'Move-SystemContainer -Remote b web2 -DestinationHost local -Live -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        Use-Daemon $b
        Get-Traces $b | Should -Be $bBtrfs
        Use-Daemon $a
        (Get-SystemContainer web2).Status | Should -Be 'Running'
        (Get-Ticks web2).FirstBad | Should -Be 0
        # From the host: the received volume's hidden pre-sync snapshot was removed once the volume was in.
        @(Get-Traces $a | Where-Object { $_ -match '/containers-snapshots/.*/\.' }) | Should -BeNullOrEmpty
        $counts = Stop-TestTcpClient $client2
        Assert-Unbroken $counts 'two live moves between btrfs pools'
    }
}
