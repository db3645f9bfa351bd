BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:stateful = @{ 'migration.stateful' = 'true' }

    # The device of the devpts a terminal belongs to, from the host: a container's own devpts has its own.
    function Get-PtsDevice([string]$Path) { stat -L -c '%d' $Path }

    # A client on the host side of the bridge (the daemon's network namespace), holding one connection open.
    function Start-Client([string]$Address, [int]$Port = 7001) {
        $psi = [Diagnostics.ProcessStartInfo]::new('nsenter', @("--net=/run/netns/$($daemon.Netns)", '--', 'busybox', 'nc', $Address, "$Port"))
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        [Diagnostics.Process]::Start($psi)
    }
    function Send-Line($Client, [string]$Text) {
        $Client.StandardInput.WriteLine($Text)
        $Client.StandardInput.Flush()
        $read = $Client.StandardOutput.ReadLineAsync()
        if (-not $read.Wait(20000)) { throw "no echo of '$Text' within 20 s" }
        $read.Result
    }

    # After a restore: the connection opened before the stop answers on (its server side was
    # restored, not made anew), the listening socket takes new ones, and inside and from the host
    # the NIC has the same MAC and address.
    function Assert-NetworkKept([string]$Name, $Client, [string]$Address, [string]$Mac, $IPv4) {
        $Client.HasExited | Should -BeFalse
        Send-Line $Client 'after' | Should -Be 'after'
        $fresh = Start-Client $Address
        try { Send-Line $fresh 'new' | Should -Be 'new' }
        finally { $fresh.Kill(); $fresh.WaitForExit() }
        (Invoke-SystemContainerCommand $Name -- cat /sys/class/net/eth0/address).Trim() | Should -Be $Mac
        @((Get-SystemContainer $Name).IPv4) | Should -Be @($IPv4)
    }

    # A command of Invoke-SystemContainerCommand that runs on (not below init, so criu cannot take
    # it), from a thread job returned once the sleep runs in the container.
    function Start-HeldExec([string]$Name) {
        $module = Join-Path $PSScriptRoot '../SystemContainers.psd1'
        $job = Start-ThreadJob -ArgumentList $module, $Name { param($m, $n) Import-Module $m; Invoke-SystemContainerCommand $n -- sleep 37 }
        try { Wait-Until -TimeoutSeconds 20 -What 'the exec' { Invoke-SystemContainerCommand $Name -- sh -c 'pidof sleep || true' } }
        catch { $job | Remove-Job -Force; throw }
        $job
    }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'migration.stateful: a container criu can checkpoint' {
    BeforeAll { New-SystemContainer ck1 -Image $image -Config $stateful -Start | Out-Null }
    AfterAll { Remove-SystemContainer ck1 -Force }

    It 'gives init a console of the container''s own devpts, bound over /dev/console' {
        $initPid = (Get-SystemContainer ck1).Pid
        # From the host: init's stdio and /dev/console are terminals of the devpts mounted in the container, not the host's.
        $own = Get-PtsDevice "/proc/$initPid/root/dev/pts/ptmx"
        Get-PtsDevice "/proc/$initPid/fd/0" | Should -Be $own
        Get-PtsDevice "/proc/$initPid/root/dev/console" | Should -Be $own
        $own | Should -Not -Be (Get-PtsDevice /dev/pts/ptmx)
        # Every fd init holds is the container's own: a host fd would be external to a dump.
        foreach ($fd in Get-ChildItem "/proc/$initPid/fd") { Get-PtsDevice $fd.FullName | Should -Be $own -Because "fd $($fd.Name) of init" }
        # From inside: the console is a pts of /dev/pts, and init's stdio is that pts.
        $inside = Invoke-SystemContainerCommand ck1 -- sh -c 'stat -c "%t %T" /dev/console; readlink /proc/1/fd/0; ls /dev/pts'
        $inside[0] | Should -Match '^88 '
        $inside[1] | Should -Match '^/dev/pts/\d+$'
        $inside[2..($inside.Count - 1)] | Should -Contain ($inside[1] -replace '^/dev/pts/', '')
    }
    It 'keeps the console log: what is written to /dev/console reaches Get-SystemContainerLog' {
        Invoke-SystemContainerCommand ck1 -- sh -c 'echo stateful-console-1 > /dev/console; echo stateful-console-2 > /dev/console'
        Wait-Until -TimeoutSeconds 10 -What 'the console lines' { (Get-SystemContainerLog ck1) -contains 'stateful-console-2' }
        Get-SystemContainerLog ck1 | Should -Contain 'stateful-console-1'
    }
    It 'uses one user namespace: init''s map is the host''s ids, not the identity map of a nested one' {
        New-SystemContainer locked1 -Image $image -Network none -Start | Out-Null
        try {
            (Invoke-SystemContainerCommand locked1 -- cat /proc/1/uid_map).Trim() | Should -Match '^0\s+0\s+'
            $map = ((Invoke-SystemContainerCommand ck1 -- cat /proc/1/uid_map).Trim() -split '\s+')
            $map[0] | Should -Be '0'
            [long]$map[1] | Should -BeGreaterThan 0
            # From the host: init's user namespace is the one its mount namespace belongs to (no second one below).
            $initPid = (Get-SystemContainer ck1).Pid
            $hostMap = ((Get-Content "/proc/$initPid/uid_map").Trim() -split '\s+')
            $hostMap[1] | Should -Be $map[1]
        }
        finally { Remove-SystemContainer locked1 -Force }
    }
    It 'runs commands' {
        Invoke-SystemContainerCommand ck1 hostname | Should -Be 'ck1'
        (Invoke-SystemContainerCommand ck1 -PassThru -- sh -c 'exit 4').ExitCode | Should -Be 4
    }
    It 'runs Enter-SystemContainer''s terminal' {
        $root = Join-Path $PSScriptRoot '..'
        $script = "Import-Module '$root/SystemContainers.psd1'; Enter-SystemContainer ck1 -Command sh; exit `$LASTEXITCODE"
        $output = "tty; echo inside-`$(hostname); exit 6`n" | dotnet pwsh -NoProfile -Command $script
        $code = $LASTEXITCODE
        ($output -join "`n") | Should -Match 'inside-ck1'
        ($output -join "`n") | Should -Match '/dev/pts/\d+'
        $code | Should -Be 6
    }
    It 'gets a new console of its own devpts from a restarted daemon' {
        $initPid = (Get-SystemContainer ck1).Pid
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon
        (Get-SystemContainer ck1).Pid | Should -Be $initPid
        Get-PtsDevice "/proc/$initPid/root/dev/console" | Should -Be (Get-PtsDevice "/proc/$initPid/root/dev/pts/ptmx")
        Invoke-SystemContainerCommand ck1 -- sh -c 'echo after-restart > /dev/console'
        Wait-Until -TimeoutSeconds 10 -What 'the console line' { (Get-SystemContainerLog ck1) -contains 'after-restart' }
    }
}

Describe 'migration.stateful refusals' {
    It 'is refused together with security.nesting=false, and nothing is made' {
        New-SystemContainer ck-bad -Image $image -Config @{ 'migration.stateful' = 'true'; 'security.nesting' = 'false' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $err[0].Exception.Message | Should -Match "'migration.stateful=true' needs one user namespace"
        $err[0].Exception.Message | Should -Match 'security.nesting=false'
        Get-SystemContainer ck-bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'cannot be changed after creation: it chooses the namespace layout' {
        New-SystemContainer ck-fixed -Image $image -Network none | Out-Null
        try {
            Set-SystemContainer ck-fixed @{ 'migration.stateful' = 'true' } -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ImmutableConfigKey,*'
            (Get-SystemContainer ck-fixed).Config.Keys | Should -Not -Contain 'migration.stateful'
        }
        finally { Remove-SystemContainer ck-fixed -Force }
    }
    It 'takes only true or false' {
        New-SystemContainer ck-word -Image $image -Config @{ 'migration.stateful' = 'sometimes' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match "config key 'migration.stateful' must be true or false, not 'sometimes'"
    }
}

Describe 'Stop-SystemContainer -Stateful and Start-SystemContainer restoring it' {
    BeforeAll {
        New-SystemContainer cnt1 -Image $image -Config $stateful -Start | Out-Null
        # A counter held only in the shell's memory, written to a file it keeps open. Started in the
        # background of an exec, it is orphaned to the container's init: in the tree criu takes.
        $counter = 'echo $$ > /tmp/counter.pid; exec 3>>/tmp/count.log; i=0; while true; do i=$((i+1)); echo $i >&3; echo $i > /tmp/now.new; mv /tmp/now.new /tmp/now; sleep 0.1; done'
        Invoke-SystemContainerCommand cnt1 -- sh -c "echo '$counter' > /counter.sh; setsid sh /counter.sh </dev/null >/dev/null 2>&1 &"
        function Get-Count { [int](Invoke-SystemContainerCommand cnt1 -- cat /tmp/now) }
        Wait-Until -TimeoutSeconds 20 -What 'the counter' { (Invoke-SystemContainerCommand cnt1 -PassThru -- cat /tmp/now).ExitCode -eq 0 -and (Get-Count) -ge 5 }
    }
    AfterAll { Remove-SystemContainer cnt1 -Force }

    It 'stops with the state saved, shown on the container' {
        $script:before = Get-SystemContainer cnt1
        $script:counterPid = (Invoke-SystemContainerCommand cnt1 -- cat /tmp/counter.pid).Trim()
        $stopped = Stop-SystemContainer cnt1 -Stateful -PassThru
        $stopped.Status | Should -Be 'Stopped'
        $stopped.Stateful | Should -BeTrue
        Test-ProcessAlive $before.Pid | Should -BeFalse
        Test-Path (Join-Path $daemon.StateDir 'containers/cnt1/checkpoint/inventory.img') | Should -BeTrue
    }
    It 'starts from the saved state: the counter goes on from where it was, with the same pid inside' {
        $log = Join-Path $daemon.StateDir 'containers/cnt1/checkpoint'
        $started = Start-SystemContainer cnt1 -PassThru
        $started.Status | Should -Be 'Running'
        $started.Stateful | Should -BeFalse
        $started.Pid | Should -Not -Be $before.Pid
        $first = Get-Count
        Wait-Until -TimeoutSeconds 20 -What 'the counter to go on' { (Get-Count) -gt $first }
        # Restarted it would count from 1; restored, its memory held the count the dump saw.
        $lines = @(Invoke-SystemContainerCommand cnt1 -- cat /tmp/count.log | ForEach-Object { [int]$_ })
        for ($i = 1; $i -lt $lines.Count; $i++) { $lines[$i] | Should -Be ($lines[$i - 1] + 1) }
        (Invoke-SystemContainerCommand cnt1 -- cat /tmp/counter.pid).Trim() | Should -Be $counterPid
        Invoke-SystemContainerCommand cnt1 -- sh -c "cat /proc/$counterPid/cmdline | tr '\0' ' '" | Should -Match 'counter.sh'
        Test-Path $log | Should -BeFalse
    }
}

Describe 'A restored container keeps its network, open connections and limits' {
    BeforeAll {
        New-SystemContainer net1 -Image $image -Config ($stateful + @{ 'limits.memory' = '96MiB'; 'limits.processes' = '200' }) -Start | Out-Null
        Wait-Until -TimeoutSeconds 30 -What 'an address' { @((Get-SystemContainer net1).IPv4).Count -gt 0 }
        # A persistent echo server, orphaned to init: its listening socket and each connection's cat are in the tree.
        Invoke-SystemContainerCommand net1 -- sh -c 'setsid nc -ll -p 7001 -e /bin/cat </dev/null >/dev/null 2>&1 &'
        $script:address = @((Get-SystemContainer net1).IPv4)[0]
        Wait-Until -TimeoutSeconds 20 -What 'the echo server' { Invoke-SystemContainerCommand net1 -- sh -c 'netstat -ltn | grep ":7001 " || true' }
    }
    AfterAll {
        if ($script:client -and -not $client.HasExited) { $client.Kill(); $client.WaitForExit() }
        Remove-SystemContainer net1 -Force
    }

    It 'keeps the address, the MAC, the listening socket, an established connection and the cgroup limits' {
        $script:client = Start-Client $address
        Wait-Until -TimeoutSeconds 20 -What 'the connection' { (Invoke-SystemContainerCommand net1 -- sh -c 'netstat -tn 2>/dev/null | grep -c ESTABLISHED || true') -ge 1 }
        Send-Line $client 'before' | Should -Be 'before'
        $mac = (Invoke-SystemContainerCommand net1 -- cat /sys/class/net/eth0/address).Trim()
        $routes = @(Invoke-SystemContainerCommand net1 -- ip -4 route)
        $before = Get-SystemContainer net1

        (Stop-SystemContainer net1 -Stateful -PassThru).Stateful | Should -BeTrue
        $after = Start-SystemContainer net1 -PassThru

        Assert-NetworkKept net1 $client $address $mac $before.IPv4
        Invoke-SystemContainerCommand net1 -- ip -4 -o addr show eth0 | Should -Match ([regex]::Escape($address))
        @(Invoke-SystemContainerCommand net1 -- ip -4 route) | Should -Be $routes
        # The limits are the container's again, in the cgroup files the host sees for the restored init.
        Get-CgroupMemoryLimit -InitPid $after.Pid | Should -Be (96MB)
        (Get-Content (Get-CgroupFile $after.Pid pids pids.max pids.max)).Trim() | Should -Be '200'
    }
    It 'writes the restored console to the log' {
        Invoke-SystemContainerCommand net1 -- sh -c 'echo restored-console > /dev/console'
        Wait-Until -TimeoutSeconds 10 -What 'the console line' { (Get-SystemContainerLog net1) -contains 'restored-console' }
    }
}

Describe 'Start-SystemContainer -Stateless and failed restores' {
    BeforeEach {
        New-SystemContainer fresh1 -Image $image -Network none -Config $stateful -Start | Out-Null
        Invoke-SystemContainerCommand fresh1 -- sh -c 'setsid sh -c "echo \$\$ > /run/sleeper.pid; exec sleep 1000" </dev/null >/dev/null 2>&1 &'
        Wait-Until -TimeoutSeconds 10 -What 'the sleeper' { (Invoke-SystemContainerCommand fresh1 -PassThru -- cat /run/sleeper.pid).ExitCode -eq 0 }
        Stop-SystemContainer fresh1 -Stateful
    }
    AfterEach { Remove-SystemContainer fresh1 -Force }

    It 'keeps the container from being renamed while the state is saved' {
        Rename-SystemContainer fresh1 fresh2 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'HasSavedState,*'
        (Get-SystemContainer fresh1).Stateful | Should -BeTrue
    }
    It '-Stateless discards the state and boots afresh' {
        $c = Start-SystemContainer fresh1 -Stateless -PassThru
        $c.Stateful | Should -BeFalse
        # /run is the container's tmpfs: a fresh boot has none of the old run's files or processes.
        (Invoke-SystemContainerCommand fresh1 -PassThru -- cat /run/sleeper.pid).ExitCode | Should -Not -Be 0
        Invoke-SystemContainerCommand fresh1 -- sh -c 'pidof sleep || echo none' | Should -Be 'none'
        Test-Path (Join-Path $daemon.StateDir 'containers/fresh1/checkpoint') | Should -BeFalse
    }
    It 'a restore that fails says why, leaves nothing running and keeps the state for another try' {
        $images = Join-Path $daemon.StateDir 'containers/fresh1/checkpoint'
        $pages = Get-ChildItem $images -Filter 'pages-*.img' | Select-Object -First 1
        Move-Item $pages.FullName "$($pages.FullName).aside"
        Start-SystemContainer fresh1 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'RestoreFailed,*'
        $err[0].Exception.Message | Should -Match "cannot restore container 'fresh1' from its saved state: criu restore"
        $err[0].Exception.Message | Should -Match 'the state is kept'
        $c = Get-SystemContainer fresh1
        $c.Status | Should -Be 'Stopped'
        $c.Stateful | Should -BeTrue
        # Nothing of the attempt is left: no cgroup of the container on any hierarchy.
        $group = Get-TestCgroupGroup $daemon
        @(find -L /sys/fs/cgroup -maxdepth 8 -type d -path "*$group*/fresh1" 2>$null) | Should -BeNullOrEmpty
        @(find -L /sys/fs/cgroup -maxdepth 8 -type d -path "*$group*" 2>$null) | Should -Not -BeNullOrEmpty
        # Put right, the same state restores: the sleeper is back with its pid.
        Move-Item "$($pages.FullName).aside" $pages.FullName
        Start-SystemContainer fresh1
        $sleeper = (Invoke-SystemContainerCommand fresh1 -- cat /run/sleeper.pid).Trim()
        Invoke-SystemContainerCommand fresh1 -- sh -c "cat /proc/$sleeper/comm" | Should -Be 'sleep'
    }
}

Describe 'Stop-SystemContainer -Stateful refusals' {
    It 'refuses while a command started by Invoke-SystemContainerCommand runs, and names it' {
        New-SystemContainer busy1 -Image $image -Network none -Config $stateful -Start | Out-Null
        $job = $null
        try {
            $job = Start-HeldExec busy1
            Stop-SystemContainer busy1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ExecRunning,*'
            $err[0].Exception.Message | Should -Match 'pid \d+ \(sleep\)'
            (Get-SystemContainer busy1).Status | Should -Be 'Running'
            (Get-SystemContainer busy1).Stateful | Should -BeFalse
            Test-Path (Join-Path $daemon.StateDir 'containers/busy1/checkpoint') | Should -BeFalse
        }
        finally {
            Remove-SystemContainer busy1 -Force
            if ($job) { $job | Remove-Job -Force }
        }
    }
    It 'a dump that fails leaves the container running with its NIC and address, and nothing saved' {
        New-SystemContainer ghost1 -Image $image -Config $stateful -Start | Out-Null
        try {
            Wait-Until -TimeoutSeconds 30 -What 'an address' { @((Get-SystemContainer ghost1).IPv4).Count -gt 0 }
            $address = @((Get-SystemContainer ghost1).IPv4)[0]
            # An open, deleted 3 MiB file: more than criu copies of a deleted file (1 MiB), so its
            # dump fails after the tree was frozen and its network locked.
            Invoke-SystemContainerCommand ghost1 -- sh -c 'setsid sh -c "exec 3>/run/big; dd if=/dev/zero bs=1M count=3 >&3 2>/dev/null; rm /run/big; exec sleep 1000" </dev/null >/dev/null 2>&1 &'
            Wait-Until -TimeoutSeconds 10 -What 'the holder' { Invoke-SystemContainerCommand ghost1 -- sh -c 'pidof sleep || true' }
            function Get-HostEnd { @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'type', 'veth')) | Where-Object { $_ -match "master" } }
            $hostEnd = @(Get-HostEnd)
            $hostEnd.Count | Should -Be 1
            Stop-SystemContainer ghost1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'CriuFailed,*'
            # criu dumps the veth with the namespace: the NIC was never taken out, its host end is the same link.
            $again = @(Get-HostEnd)
            $again.Count | Should -Be 1
            ($again[0] -split ':')[0] | Should -Be ($hostEnd[0] -split ':')[0]
            $err[0].Exception.Message | Should -Match 'criu dump of pid \d+ failed: see .*checkpoint\.new/dump\.log'
            $c = Get-SystemContainer ghost1
            $c.Status | Should -Be 'Running'
            $c.Stateful | Should -BeFalse
            Test-Path (Join-Path $daemon.StateDir 'containers/ghost1/checkpoint') | Should -BeFalse
            Test-Path (Join-Path $daemon.StateDir 'containers/ghost1/checkpoint.new') | Should -BeFalse
            # The NIC is back with its address, inside and on the bridge side.
            Invoke-SystemContainerCommand ghost1 -- ip -4 -o addr show eth0 | Should -Match ([regex]::Escape($address))
            # busybox's ping (the host has none); its output says, as the exit code stays in the module's scope.
            (Invoke-InNetns $daemon busybox @('ping', '-c', '1', '-W', '5', $address)) -join "`n" | Should -Match ' 0% packet loss'
        }
        finally { Remove-SystemContainer ghost1 -Force }
    }
    It 'refuses a container made without migration.stateful, which keeps running' {
        New-SystemContainer plain1 -Image $image -Network none -Start | Out-Null
        try {
            Stop-SystemContainer plain1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'NotStateful,*'
            $err[0].Exception.Message | Should -Match 'migration.stateful=true'
            (Get-SystemContainer plain1).Status | Should -Be 'Running'
        }
        finally { Remove-SystemContainer plain1 -Force }
    }
    It 'takes no force or timeout, and stateful and stateless only with stop and start (REST)' {
        New-SystemContainer api1 -Image $image -Network none -Config $stateful | Out-Null
        try {
            foreach ($body in '{"action":"stop","stateful":true,"force":true}', '{"action":"stop","stateful":true,"timeout":5}',
                              '{"action":"start","stateful":true}', '{"action":"stop","stateless":true}') {
                $r = Invoke-TestApi $daemon PUT /1.0/containers/api1/state $body
                $r.Status | Should -Be 400 -Because $body
            }
            (Get-SystemContainer api1).Status | Should -Be 'Stopped'
        }
        finally { Remove-SystemContainer api1 -Force }
    }
}

Describe 'Stateful stop without a usable criu' {
    BeforeAll {
        $script:nocriu = Start-TestDaemon -ExtraArguments @('--criu', '/nonexistent/criu')
        New-SystemContainer nc1 -Image (Get-TestImage) -Network none -Config $stateful -Start | Out-Null
    }
    AfterAll {
        Remove-SystemContainer nc1 -Force
        Stop-TestDaemon $nocriu
        $env:SYSTEMCONTAINERS_SOCKET = $daemon.Socket
        $env:SYSTEMCONTAINERS_RUN_DIR = $daemon.RunDir
    }
    It 'says what is needed, and the container runs on with nothing saved' {
        Stop-SystemContainer nc1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CriuMissing,*'
        $err[0].Exception.Message | Should -Match '/nonexistent/criu does not exist'
        $err[0].Exception.Message | Should -Match 'criu >= 4\.2\.1'
        (Get-SystemContainer nc1).Status | Should -Be 'Running'
        Test-Path (Join-Path $nocriu.StateDir 'containers/nc1/checkpoint') | Should -BeFalse
    }
}

Describe 'Checkpoint-SystemContainer -Stateful and Restore-SystemContainerSnapshot -Stateful' {
    BeforeAll {
        New-SystemContainer snap1 -Image $image -Config $stateful -Start | Out-Null
        Wait-Until -TimeoutSeconds 30 -What 'an address' { @((Get-SystemContainer snap1).IPv4).Count -gt 0 }
        # The counter of the stop tests: its count is in memory and, line by line, in a file.
        $counter = 'echo $$ > /tmp/counter.pid; exec 3>>/tmp/count.log; i=0; while true; do i=$((i+1)); echo $i >&3; sleep 0.1; done'
        Invoke-SystemContainerCommand snap1 -- sh -c "echo '$counter' > /counter.sh; setsid sh /counter.sh </dev/null >/dev/null 2>&1 &"
        function Get-Lines { @(Invoke-SystemContainerCommand snap1 -- cat /tmp/count.log | ForEach-Object { [int]$_ }) }
        Wait-Until -TimeoutSeconds 20 -What 'the counter' { (Invoke-SystemContainerCommand snap1 -PassThru -- cat /tmp/count.log).ExitCode -eq 0 -and @(Get-Lines).Count -ge 5 }
        $script:states = Join-Path $daemon.StateDir 'containers/snap1/snapshot-states'
    }
    AfterAll { Remove-SystemContainer snap1 -Force }

    It 'keeps the processes in the snapshot, and the container runs on with its NIC and counter' {
        $before = Get-SystemContainer snap1
        $script:counterPid = (Invoke-SystemContainerCommand snap1 -- cat /tmp/counter.pid).Trim()
        $snap = Checkpoint-SystemContainer snap1 s1 -Stateful -PassThru
        $snap.Stateful | Should -BeTrue
        (Get-SystemContainerSnapshot snap1 s1).Stateful | Should -BeTrue
        Test-Path (Join-Path $states 's1/inventory.img') | Should -BeTrue
        # The same init runs on, its counter going on, its address there inside and reachable from the bridge.
        $c = Get-SystemContainer snap1
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -Be $before.Pid
        $c.Stateful | Should -BeFalse
        $at = @(Get-Lines)[-1]
        Wait-Until -TimeoutSeconds 20 -What 'the counter to go on' { @(Get-Lines)[-1] -gt $at }
        $address = @($before.IPv4)[0]
        Invoke-SystemContainerCommand snap1 -- ip -4 -o addr show eth0 | Should -Match ([regex]::Escape($address))
        # From the bridge side (busybox's ping: the host has none; the output, since the exit code stays in the module's scope).
        (Invoke-InNetns $daemon busybox @('ping', '-c', '1', '-W', '5', $address)) -join "`n" | Should -Match ' 0% packet loss'
        # A plain snapshot beside it says it holds no processes.
        (Checkpoint-SystemContainer snap1 plain -PassThru).Stateful | Should -BeFalse
    }
    It 'copies and exports a stateful snapshot with its files only, warning that its processes are not carried' {
        $file = Join-Path $daemon.Dir 'stateful.tar'
        try {
            Copy-SystemContainer snap1 snapcopy -WarningVariable w -WarningAction SilentlyContinue | Out-Null
            @($w) | Should -HaveCount 1
            "$($w[0])" | Should -Match "^snapshot 's1' of container 'snap1' holds running processes \(-Stateful\), which are not carried: the snapshot of snapcopy holds its files only"
            $copied = @(Get-SystemContainerSnapshot snapcopy)
            $copied.SnapshotName | Should -Be @('s1', 'plain')
            $copied.Stateful | Should -Be @($false, $false)
            Test-Path (Join-Path $daemon.StateDir 'containers/snapcopy/snapshot-states') | Should -BeFalse
            Restore-SystemContainerSnapshot snapcopy s1 -Stateful -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotStateful,*'
            Restore-SystemContainerSnapshot snapcopy s1 -Force
            Start-SystemContainer snapcopy
            Invoke-SystemContainerCommand snapcopy -- cat /counter.sh | Should -Not -BeNullOrEmpty
            Copy-SystemContainer snap1 snapbare -InstanceOnly -WarningVariable w2 | Out-Null
            @($w2) | Should -BeNullOrEmpty
            Export-SystemContainer snap1 -Path $file -IncludeSnapshots -WarningVariable w3 -WarningAction SilentlyContinue | Out-Null
            "$($w3[0])" | Should -Match "^snapshot 's1' of container 'snap1' .* the backup's snapshot holds its files only"
            (Get-SystemContainerSnapshot snap1 s1).Stateful | Should -BeTrue
            Test-Path (Join-Path $states 's1/inventory.img') | Should -BeTrue
        }
        finally {
            Remove-SystemContainer snapcopy, snapbare -Force -ErrorAction SilentlyContinue
            Remove-Item $file -ErrorAction SilentlyContinue
        }
    }
    It 'restores the files and then the processes: the counter goes on from the checkpoint, a later file is gone' {
        Invoke-SystemContainerCommand snap1 -- sh -c 'echo later > /after-checkpoint'
        $at = @(Get-Lines)[-1]
        Wait-Until -TimeoutSeconds 20 -What 'the counter to pass the checkpoint' { @(Get-Lines)[-1] -gt $at + 10 }
        Stop-SystemContainer snap1 -Force
        $restored = Restore-SystemContainerSnapshot snap1 s1 -Stateful -Force -PassThru
        $restored.Status | Should -Be 'Running'
        $restored.Stateful | Should -BeFalse
        (Invoke-SystemContainerCommand snap1 -PassThru -- test -e /after-checkpoint).ExitCode | Should -Not -Be 0
        $first = @(Get-Lines)[-1]
        Wait-Until -TimeoutSeconds 20 -What 'the restored counter to go on' { @(Get-Lines)[-1] -gt $first }
        # The log is the snapshot's and the count the memory saved with it: one run of numbers from
        # 1, no restart and no gap, which also says the files were taken while the tree was frozen.
        $lines = @(Get-Lines)
        $lines[0] | Should -Be 1
        for ($i = 1; $i -lt $lines.Count; $i++) { $lines[$i] | Should -Be ($lines[$i - 1] + 1) }
        (Invoke-SystemContainerCommand snap1 -- cat /tmp/counter.pid).Trim() | Should -Be $counterPid
        # The snapshot keeps its images for another restore; the container has no saved state left.
        Test-Path (Join-Path $states 's1/inventory.img') | Should -BeTrue
        Test-Path (Join-Path $daemon.StateDir 'containers/snap1/checkpoint') | Should -BeFalse
    }
    It 'refuses to restore the processes of a snapshot taken without them, and changes nothing' {
        Stop-SystemContainer snap1 -Force
        Restore-SystemContainerSnapshot snap1 plain -Stateful -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotStateful,*'
        $err[0].Exception.Message | Should -Match 'taken without -Stateful'
        $c = Get-SystemContainer snap1
        $c.Status | Should -Be 'Stopped'
        $c.Stateful | Should -BeFalse
        Restore-SystemContainerSnapshot snap1 nosuch -Stateful -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound,*'
    }
    It 'refuses a stateful snapshot of a stopped container' {
        Checkpoint-SystemContainer snap1 s2 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotRunning,*'
        @(Get-SystemContainerSnapshot snap1).SnapshotName | Should -Not -Contain 's2'
    }
    It 'moves the images with a renamed snapshot, and removes them with it' {
        Rename-SystemContainerSnapshot snap1 s1 s1b
        (Get-SystemContainerSnapshot snap1 s1b).Stateful | Should -BeTrue
        Test-Path (Join-Path $states 's1') | Should -BeFalse
        Remove-SystemContainerSnapshot snap1 s1b -Force
        Test-Path (Join-Path $states 's1b') | Should -BeFalse
        @(Get-SystemContainerSnapshot snap1).SnapshotName | Should -Be @('plain')
    }
    It 'takes a new snapshot as stateless over images a crash left under its name' {
        # A daemon dying between deleting a snapshot and its images leaves them under a free name.
        New-Item -ItemType Directory -Force (Join-Path $states 'orphan') | Out-Null
        Set-Content -Path (Join-Path $states 'orphan/inventory.img') -Value 'left'
        (Checkpoint-SystemContainer snap1 orphan -PassThru).Stateful | Should -BeFalse
        (Get-SystemContainerSnapshot snap1 orphan).Stateful | Should -BeFalse
        Test-Path (Join-Path $states 'orphan') | Should -BeFalse
        Remove-SystemContainerSnapshot snap1 orphan -Force
    }
}

Describe 'Checkpoint-SystemContainer -Stateful refusals' {
    It 'refuses a container made without migration.stateful, and makes no snapshot' {
        New-SystemContainer plain2 -Image $image -Network none -Start | Out-Null
        try {
            Checkpoint-SystemContainer plain2 s1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'NotStateful,*'
            $err[0].Exception.Message | Should -Match 'migration.stateful=true'
            Get-SystemContainerSnapshot plain2 | Should -BeNullOrEmpty
            (Get-SystemContainer plain2).Status | Should -Be 'Running'
        }
        finally { Remove-SystemContainer plain2 -Force }
    }
    It 'refuses while a command started by Invoke-SystemContainerCommand runs, and makes no snapshot' {
        New-SystemContainer busy2 -Image $image -Network none -Config $stateful -Start | Out-Null
        $job = $null
        try {
            $job = Start-HeldExec busy2
            Checkpoint-SystemContainer busy2 s1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ExecRunning,*'
            $err[0].Exception.Message | Should -Match 'pid \d+ \(sleep\)'
            Get-SystemContainerSnapshot busy2 | Should -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/busy2/snapshot-states') | Should -BeFalse
        }
        finally {
            Remove-SystemContainer busy2 -Force
            if ($job) { $job | Remove-Job -Force }
        }
    }
    It 'a dump that fails leaves the container running, with no snapshot and no images' {
        New-SystemContainer ghost2 -Image $image -Network none -Config $stateful -Start | Out-Null
        try {
            # The deleted 3 MiB file of the stop refusals: criu fails after freezing the tree.
            Invoke-SystemContainerCommand ghost2 -- sh -c 'setsid sh -c "exec 3>/run/big; dd if=/dev/zero bs=1M count=3 >&3 2>/dev/null; rm /run/big; exec sleep 1000" </dev/null >/dev/null 2>&1 &'
            Wait-Until -TimeoutSeconds 10 -What 'the holder' { Invoke-SystemContainerCommand ghost2 -- sh -c 'pidof sleep || true' }
            Checkpoint-SystemContainer ghost2 s1 -Stateful -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'CriuFailed,*'
            (Get-SystemContainer ghost2).Status | Should -Be 'Running'
            Invoke-SystemContainerCommand ghost2 -- sh -c 'pidof sleep' | Should -Not -BeNullOrEmpty
            Get-SystemContainerSnapshot ghost2 | Should -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/ghost2/snapshot-states') | Should -BeFalse
        }
        finally { Remove-SystemContainer ghost2 -Force }
    }
}

# The checkpoint drop-in (CheckpointableSystemd) on busybox under systemd's name: the image's
# /sbin/init resolves to a file named systemd, so the engine takes it for a systemd one, and busybox
# init boots it (its argv[0] is /sbin/init). Its stop is -Force: busybox init has no handler for
# systemd's stop signal. The Debian Describe below checks what systemd makes of the file.
Describe 'The checkpoint drop-in of a migration.stateful systemd container' {
    BeforeAll {
        $tree = Join-Path $daemon.Dir 'fake-systemd'
        cp -a (Join-Path $daemon.StateDir "images/$((Get-SystemContainerImage $image).Fingerprint)/rootfs") $tree
        New-Item -ItemType Directory -Force "$tree/lib/systemd", "$tree/etc/systemd/system" | Out-Null
        cp "$tree/bin/busybox" "$tree/lib/systemd/systemd"
        rm -f "$tree/sbin/init"
        ln -s ../lib/systemd/systemd "$tree/sbin/init"
        tar --create --file "$tree.tar" --numeric-owner -C $tree .
        if ($LASTEXITCODE) { throw "cannot pack $tree" }
        $kind = (Import-SystemContainerImage "$tree.tar" -Alias fake-systemd).InitKind
        if ($kind -ne 'systemd') { throw "the fake systemd image is taken for '$kind'" }
        $script:dropIn = '/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'
        $script:outside = Join-Path $daemon.Dir 'outside-dropin'
        New-Item -ItemType Directory $outside | Out-Null
        Set-Content (Join-Path $outside 'target') 'host file'
        # What the host directory holds, its file's text, and both owners and modes; and whether
        # the host's own unit directory has the drop-in (a path resolved against the daemon's root).
        function Get-Outside {
            @(Get-ChildItem -Force -Name $outside) + @(Get-Content (Join-Path $outside 'target')) + @(stat -c '%n %u:%g %a' $outside (Join-Path $outside 'target')) +
                @(Test-Path -LiteralPath "/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf")
        }
        $script:outsideBefore = Get-Outside
        function Get-Upper([string]$Name) { Join-Path $daemon.StateDir "containers/$Name/fs/upper" }
    }
    AfterAll {
        foreach ($n in 'sdf-made', 'sdf-plain', 'sdf-bb', 'sdf-plant', 'sdf-copy') { Remove-SystemContainer $n -Force -ErrorAction SilentlyContinue }
    }

    It 'is written when the container is made, before its first start, owned by its root, and only into a stateful systemd one' {
        New-SystemContainer sdf-made -Image fake-systemd -Network none -Config $stateful | Out-Null
        # From the host, never started: in the upper layer, with the host ids of the container's root as the layer itself.
        $file = Join-Path (Get-Upper sdf-made) $dropIn.TrimStart('/')
        Get-Content $file | Should -Contain 'ProtectHostname=no'
        stat -c '%u:%g %a' $file | Should -Be "$(stat -c '%u:%g' (Get-Upper sdf-made)) 644"
        stat -c '%u:%g' (Split-Path $file) | Should -Be (stat -c '%u:%g' (Get-Upper sdf-made))
        # From inside: the container's root owns it.
        Start-SystemContainer sdf-made
        Invoke-SystemContainerCommand sdf-made -- stat -c '%u:%g %a' $dropIn | Should -Be '0:0 644'
        Invoke-SystemContainerCommand sdf-made -- cat $dropIn | Should -Contain 'ProtectHostname=no'
        Stop-SystemContainer sdf-made -Force
        New-SystemContainer sdf-plain -Image fake-systemd -Network none | Out-Null
        Test-Path (Join-Path (Get-Upper sdf-plain) 'etc/systemd/system/service.d') | Should -BeFalse
        New-SystemContainer sdf-bb -Image $image -Network none -Config $stateful | Out-Null
        Test-Path (Join-Path (Get-Upper sdf-bb) 'etc/systemd') | Should -BeFalse
        Get-Outside | Should -Be $outsideBefore
    }
    It 'is not written again at a start: the container''s root edits or removes it for good' {
        Start-SystemContainer sdf-made
        Invoke-SystemContainerCommand sdf-made -- sh -c "echo '# mine' > $dropIn"
        Stop-SystemContainer sdf-made -Force
        Start-SystemContainer sdf-made
        Invoke-SystemContainerCommand sdf-made -- cat $dropIn | Should -Be '# mine'
        Invoke-SystemContainerCommand sdf-made -- rm $dropIn
        Stop-SystemContainer sdf-made -Force
        Start-SystemContainer sdf-made
        (Invoke-SystemContainerCommand sdf-made -PassThru -- test -e $dropIn).ExitCode | Should -Not -Be 0
        Stop-SystemContainer sdf-made -Force
    }
    It 'planted by the container''s root as <What> is never written or chowned through by a start or a copy' -ForEach @(
        @{ What = 'service.d a symlink to a host directory'; Path = '/etc/systemd/system/service.d'; Plant = 'rm -r /etc/systemd/system/service.d && ln -s OUTSIDE /etc/systemd/system/service.d'; Refused = $true }
        @{ What = 'service.d a symlink up through ../..'; Path = '/etc/systemd/system/service.d'; Plant = 'rm -r /etc/systemd/system/service.d && ln -s UPOUTSIDE /etc/systemd/system/service.d'; Refused = $true }
        @{ What = 'the drop-in a symlink to a host file'; Path = '/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'; Plant = 'ln -sf OUTSIDE/target DROPIN'; Refused = $false }
        @{ What = 'the drop-in a symlink up through ../..'; Path = '/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'; Plant = 'ln -sf UPOUTSIDE/target DROPIN'; Refused = $false }
        @{ What = 'the drop-in a fifo'; Path = '/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'; Plant = 'rm DROPIN && mkfifo DROPIN'; Refused = $false }
        @{ What = 'the unit directory a symlink to a host directory'; Path = '/etc/systemd/system'; Plant = 'rm -r /etc/systemd/system && ln -s OUTSIDE /etc/systemd/system'; Refused = $false }
    ) {
        New-SystemContainer sdf-plant -Image fake-systemd -Network none -Config $stateful -Start | Out-Null
        try {
            # UPOUTSIDE: more '..' than the host path of any root is deep, then the host directory.
            $command = $Plant.Replace('DROPIN', $dropIn).Replace('UPOUTSIDE', ('../' * 24) + $outside.TrimStart('/')).Replace('OUTSIDE', $outside)
            Invoke-SystemContainerCommand sdf-plant -- sh -c $command
            $planted = Invoke-SystemContainerCommand sdf-plant -- stat -c '%F %N %u:%g %a' $Path
            Stop-SystemContainer sdf-plant -Force
            (Start-SystemContainer sdf-plant -PassThru).Status | Should -Be 'Running'
            Invoke-SystemContainerCommand sdf-plant -- stat -c '%F %N %u:%g %a' $Path | Should -Be $planted
            # Nothing was made where the symlink points inside the container's root either.
            (Invoke-SystemContainerCommand sdf-plant -PassThru -- test -e "$outside/10-systemcontainers-checkpoint.conf").ExitCode | Should -Not -Be 0
            Stop-SystemContainer sdf-plant -Force
            Get-Outside | Should -Be $outsideBefore

            Copy-SystemContainer sdf-plant sdf-copy -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
            if ($Refused) {
                $e | Should -HaveCount 1
                $e[0].FullyQualifiedErrorId | Should -BeLike 'CheckpointSetupFailed,*'
                $e[0].Exception.Message | Should -BeLike "*container 'sdf-copy'*cannot open container path /etc/systemd/system/service.d: ENOTDIR*"
                Get-SystemContainer sdf-copy -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
                @(Get-ChildItem -Force -Name (Join-Path $daemon.StateDir 'containers') | Where-Object { $_ -like '*sdf-copy*' }) | Should -BeNullOrEmpty
                Test-Path (Join-Path $daemon.RunDir 'containers/sdf-copy') | Should -BeFalse
            }
            else {
                $e | Should -BeNullOrEmpty
                (Start-SystemContainer sdf-copy -PassThru).Status | Should -Be 'Running'
                Invoke-SystemContainerCommand sdf-copy -- stat -c '%F %N %u:%g %a' $Path | Should -Be $planted
                Stop-SystemContainer sdf-copy -Force
            }
            Get-Outside | Should -Be $outsideBefore
        }
        finally {
            Remove-SystemContainer sdf-copy -Force -ErrorAction SilentlyContinue
            Remove-SystemContainer sdf-plant -Force
        }
    }
}

# A Debian bookworm system (debootstrap, from the cache build.ps1 test fills, as Systemd.Tests) with
# systemd as PID 1, systemd-networkd's DHCP address on the bridge, a counting service and an echo
# service of systemd's own socket activation (one cat per connection, Accept=yes).
Describe 'Stop-SystemContainer -Stateful and Start-SystemContainer of a Debian/systemd container with a NIC' {
    BeforeAll {
        $script:sdSkip = $null
        try { New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm -ErrorAction Stop | Out-Null }
        catch { $script:sdSkip = "the Debian image cannot be built here (no debootstrap cache of bookworm: build.ps1 test fills it): $_" }
        if (-not $sdSkip) {
            $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
            New-SystemContainer sd1 -Image bookworm -Config $stateful -Start | Out-Null
            Wait-SystemContainer sd1 -For SystemdRunning -Timeout (120 * $scale) -ErrorAction Stop -WarningAction SilentlyContinue | Out-Null
            $script:sdAddress = (Wait-SystemContainer sd1 -For IPv4 -Timeout (60 * $scale) -PassThru -ErrorAction Stop).IPv4[0]
            $units = @'
printf '%s\n' '[Service]' 'ExecStart=/bin/sh -c "i=0; while :; do i=$((i+1)); echo $i > /run/count.new; mv /run/count.new /run/count; sleep 0.2; done"' > /etc/systemd/system/counter.service
printf '%s\n' '[Socket]' 'ListenStream=7001' 'Accept=yes' '[Install]' 'WantedBy=sockets.target' > /etc/systemd/system/echo.socket
printf '%s\n' '[Service]' 'ExecStart=/bin/cat' 'StandardInput=socket' > /etc/systemd/system/echo@.service
systemctl daemon-reload && systemctl start counter.service echo.socket
'@
            Invoke-SystemContainerCommand sd1 -- sh -c (($units -split "`n") -join ' && ')
            function Get-SdCount { [int](Invoke-SystemContainerCommand sd1 -- cat /run/count) }
            Wait-Until -TimeoutSeconds 30 -What 'the counter service' { (Invoke-SystemContainerCommand sd1 -PassThru -- cat /run/count).ExitCode -eq 0 -and (Get-SdCount) -ge 3 }
        }
    }
    AfterAll {
        if ($script:sdClient -and -not $sdClient.HasExited) { $sdClient.Kill(); $sdClient.WaitForExit() }
        if (-not $sdSkip) { Remove-SystemContainer sd1 -Force -ErrorAction SilentlyContinue }
    }

    It 'is checkpointable from its first boot: the engine''s drop-in keeps services in the container''s UTS namespace' {
        if ($sdSkip) { Set-ItResult -Skipped -Because $sdSkip; return }
        Invoke-SystemContainerCommand sd1 -- cat /etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf | Should -Contain 'ProtectHostname=no'
        Invoke-SystemContainerCommand sd1 -- systemctl show -p ProtectHostname --value systemd-logind | Should -Be 'no'
        # From the host: no process of the container has a UTS namespace other than init's.
        $initPid = (Get-SystemContainer sd1).Pid
        $uts = readlink "/proc/$initPid/ns/uts"
        $procs = Get-CgroupDirectories -InitPid $initPid | ForEach-Object { Get-ChildItem $_ -Recurse -Filter cgroup.procs } | Get-Content | Sort-Object -Unique
        @($procs).Count | Should -BeGreaterThan 5
        foreach ($p in $procs) {
            $own = readlink "/proc/$p/ns/uts" 2>$null
            if ($own) { $own | Should -Be $uts -Because "pid $p ($(Get-Content /proc/$p/comm -ErrorAction SilentlyContinue))" }
        }
    }
    It 'comes back running: same services, counter and address, and the connection opened before still answers' {
        if ($sdSkip) { Set-ItResult -Skipped -Because $sdSkip; return }
        $script:sdClient = Start-Client $sdAddress
        Send-Line $sdClient 'before' | Should -Be 'before'
        $mac = (Invoke-SystemContainerCommand sd1 -- cat /sys/class/net/eth0/address).Trim()
        $counterPid = (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value counter).Trim()
        $networkdPid = (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value systemd-networkd).Trim()
        $before = Get-SystemContainer sd1
        function Get-BridgePorts { @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'master', 'scbr0')) | ForEach-Object { ($_ -split '[:@]')[1].Trim() } | Sort-Object }
        $ports = Get-BridgePorts
        @($ports).Count | Should -Be 1

        $stopped = Stop-SystemContainer sd1 -Stateful -PassThru
        $stopped.Stateful | Should -BeTrue
        Test-ProcessAlive $before.Pid | Should -BeFalse
        $after = Start-SystemContainer sd1 -PassThru
        $after.Status | Should -Be 'Running'
        $after.Stateful | Should -BeFalse

        # Inside: systemd runs on with nothing failed, the same processes (not restarted), the counter going on.
        (Invoke-SystemContainerCommand sd1 -PassThru -- systemctl is-system-running).Stdout.Trim() |
            Should -Be 'running' -Because (Invoke-SystemContainerCommand sd1 -- systemctl list-units --failed --no-legend --plain)
        @(Invoke-SystemContainerCommand sd1 -- systemctl list-units --failed --no-legend --plain) | Where-Object { $_ } | Should -BeNullOrEmpty
        (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value counter).Trim() | Should -Be $counterPid
        (Invoke-SystemContainerCommand sd1 -- systemctl show -p NRestarts --value counter).Trim() | Should -Be '0'
        (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value systemd-networkd).Trim() | Should -Be $networkdPid
        $first = Get-SdCount
        $first | Should -BeGreaterThan 2
        Wait-Until -TimeoutSeconds 20 -What 'the counter to go on' { (Get-SdCount) -gt $first }
        Assert-NetworkKept sd1 $sdClient $sdAddress $mac $before.IPv4
        Get-BridgePorts | Should -Be $ports
    }
    It 'takes a stateful snapshot while it runs on, and restores the files and then the processes from it' {
        if ($sdSkip) { Set-ItResult -Skipped -Because $sdSkip; return }
        $initPid = (Get-SystemContainer sd1).Pid
        $counterPid = (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value counter).Trim()
        # A connection in the snapshot would come back with a peer that forgot it (the stop below
        # closes it) and its echo unit would fail: the snapshot is taken with none open.
        $sdClient.Kill(); $sdClient.WaitForExit()
        Wait-Until -TimeoutSeconds 20 -What 'the echo unit to end' { -not (Invoke-SystemContainerCommand sd1 -- systemctl list-units --no-legend --plain 'echo@*') }
        (Checkpoint-SystemContainer sd1 sds1 -Stateful -PassThru).Stateful | Should -BeTrue
        # It ran on through the dump: the same init, the NIC untouched, new connections answered.
        (Get-SystemContainer sd1).Pid | Should -Be $initPid
        $fresh = Start-Client $sdAddress
        try { Send-Line $fresh 'after-snapshot' | Should -Be 'after-snapshot' }
        finally { $fresh.Kill(); $fresh.WaitForExit() }
        $atSnapshot = Get-SdCount
        Invoke-SystemContainerCommand sd1 -- sh -c 'echo later > /root/after-checkpoint'
        Wait-Until -TimeoutSeconds 30 -What 'the counter to pass the snapshot' { (Get-SdCount) -gt $atSnapshot + 10 }
        $passed = Get-SdCount
        Stop-SystemContainer sd1 -Force
        $restored = Restore-SystemContainerSnapshot sd1 sds1 -Stateful -Force -PassThru
        $restored.Status | Should -Be 'Running'
        (Invoke-SystemContainerCommand sd1 -PassThru -- systemctl is-system-running).Stdout.Trim() |
            Should -Be 'running' -Because (Invoke-SystemContainerCommand sd1 -- systemctl list-units --failed --no-legend --plain)
        @(Invoke-SystemContainerCommand sd1 -- systemctl list-units --failed --no-legend --plain) | Where-Object { $_ } | Should -BeNullOrEmpty
        (Invoke-SystemContainerCommand sd1 -PassThru -- test -e /root/after-checkpoint).ExitCode | Should -Not -Be 0
        # The counter is the snapshot's process, going on from the count it had then (a fresh one would start at 1).
        (Invoke-SystemContainerCommand sd1 -- systemctl show -p MainPID --value counter).Trim() | Should -Be $counterPid
        $first = Get-SdCount
        $first | Should -BeLessThan $passed
        $first | Should -BeGreaterThan 2
        Wait-Until -TimeoutSeconds 20 -What 'the restored counter to go on' { (Get-SdCount) -gt $first }
        $fresh = Start-Client $sdAddress
        try { Send-Line $fresh 'restored' | Should -Be 'restored' }
        finally { $fresh.Kill(); $fresh.WaitForExit() }
    }
    It 'stops with its state again after the restore, and boots afresh with -Stateless' {
        if ($sdSkip) { Set-ItResult -Skipped -Because $sdSkip; return }
        (Stop-SystemContainer sd1 -Stateful -PassThru).Stateful | Should -BeTrue
        $c = Start-SystemContainer sd1 -Stateless -PassThru
        $c.Stateful | Should -BeFalse
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        Wait-SystemContainer sd1 -For SystemdRunning -Timeout (120 * $scale) -ErrorAction Stop -WarningAction SilentlyContinue | Out-Null
        # Booted afresh: the counter service was only started by hand, so it does not run.
        (Invoke-SystemContainerCommand sd1 -PassThru -- systemctl is-active counter).Stdout.Trim() | Should -Be 'inactive'
    }
}
