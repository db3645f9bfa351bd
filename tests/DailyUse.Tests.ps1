# The cmdlets people use to watch and script containers (host facts, waits, console log, events)
# and the consistency rules every cmdlet follows (wildcards, pipelines, idempotent states, CSV).
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon -ExtraArguments @('--default-network', 'none')
    $script:image = Get-TestImage
    $script:scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
    function Start-Shell([string]$Script) {
        <# A shell script in a process of its own, running while a cmdlet in this one waits. #>
        $info = [Diagnostics.ProcessStartInfo]::new('sh')
        $info.ArgumentList.Add('-c'); $info.ArgumentList.Add($Script)
        [Diagnostics.Process]::Start($info)
    }
    function Start-Later([string]$Name, [double]$Seconds) {
        <# Starts a container through the raw API from another client after a pause. #>
        Start-Shell "sleep $Seconds; curl -s -o /dev/null --unix-socket '$($daemon.Socket)' -X PUT -d '{`"action`":`"start`"}' http://sc/1.0/containers/$Name/state"
    }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Get-SystemContainerHost' {
    It 'reports the daemon, the kernel, the state dir and the counts as the host sees them' {
        New-SystemContainer h1 -Image $image -Start | Out-Null
        New-SystemContainer h2 -Image $image | Out-Null
        $h = Get-SystemContainerHost
        $h | Should -BeOfType ([SystemContainers.Api.SystemContainerHost])
        $h.Pid | Should -Be $daemon.Pid
        $h.Kernel | Should -Be (uname -r)
        $h.StateDir | Should -Be $daemon.StateDir
        $h.StateDirFilesystem | Should -Be (findmnt -n -o FSTYPE -T $daemon.StateDir)
        $blocks = (stat -f -c '%b %S' $daemon.StateDir) -split ' '
        $h.StateDirSize | Should -Be ([long]$blocks[0] * [long]$blocks[1])
        $h.StateDirFree | Should -BeGreaterThan 0
        $h.StateDirFree | Should -BeLessOrEqual $h.StateDirSize
        $h.Containers | Should -Be @(Get-SystemContainer).Count
        $h.Running | Should -Be @(Get-SystemContainer | Where-Object Status -eq 'Running').Count
        $h.Images | Should -Be @(Get-SystemContainerImage).Count
        $h.Networks | Should -Be 0
        $h.CgroupVersion | Should -Be (Get-CgroupVersion)
        $h.StartedAt | Should -BeLessThan ([DateTimeOffset]::UtcNow)
        Remove-SystemContainer h1, h2 -Force
    }
}

Describe 'Wait-SystemContainer' {
    It 'waits until another client starts the container, then passes it on' {
        New-SystemContainer w1 -Image $image | Out-Null
        $starter = Start-Later w1 1
        try {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $ready = Wait-SystemContainer w1 -Timeout (30 * $scale) -PassThru
            $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 0.5 -Because 'the container was stopped when the wait began'
            $ready.Status | Should -Be 'Running'
            (Get-Content "/proc/$($ready.Pid)/comm") | Should -Be 'init'
        }
        finally { $starter.WaitForExit(); $starter.Dispose() }
    }
    It 'gives a WaitTimeout error naming the state when the time runs out, and goes on to the next' {
        New-SystemContainer w2 -Image $image | Out-Null
        $out = @(Wait-SystemContainer w2, w1 -Timeout 0.5 -PassThru -ErrorVariable err -ErrorAction SilentlyContinue)
        $err[0].FullyQualifiedErrorId | Should -BeLike 'WaitTimeout,*'
        $err[0].Exception.Message | Should -Match "container 'w2' was not running within 0.5 s \(it is Stopped\)"
        $out.Name | Should -Be 'w1'
    }
    It 'refuses to wait for systemd in a container whose init is not systemd' {
        Wait-SystemContainer w1 -For SystemdRunning -Timeout 5 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'NotSystemd,*'
        $err[0].Exception.Message | Should -Match 'its init is busybox'
    }
    It 'takes wildcards and piped containers, and reports a missing name' {
        @(Get-SystemContainer w1 | Wait-SystemContainer -PassThru).Name | Should -Be 'w1'
        @(Wait-SystemContainer 'w*' -Timeout 0.2 -PassThru -ErrorAction SilentlyContinue).Name | Should -Be 'w1'
        Wait-SystemContainer nosuch -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
        Remove-SystemContainer w* -Force
    }
}

Describe 'Get-SystemContainerLog' {
    BeforeAll { New-SystemContainer talk -Image $image -Start | Out-Null }
    AfterAll { Remove-SystemContainer talk -Force }
    It 'reads what the container wrote to its console, as the log file on the host holds it' {
        Invoke-SystemContainerCommand talk -- sh -c 'for i in 1 2 3; do echo "console line $i" > /dev/console; done'
        Wait-Until -TimeoutSeconds 10 -What 'the console lines' { (Get-SystemContainerLog talk) -contains 'console line 3' }
        $lines = @(Get-SystemContainerLog talk)
        $file = Get-Content (Join-Path $daemon.RunDir 'containers/talk/console.log')
        $lines | Should -Be @($file | ForEach-Object { $_.TrimEnd("`r") })
        @(Get-SystemContainerLog talk -Tail 2) | Should -Be @('console line 2', 'console line 3')
    }
    It 'follows new lines as they come, until the timeout' {
        $writer = Start-Shell "sleep 1; nsenter -t $((Get-SystemContainer talk).Pid) -a sh -c 'echo followed-1 > /dev/console; sleep 0.5; echo followed-2 > /dev/console'"
        try {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $seen = @(Get-SystemContainerLog talk -Follow -Timeout (4 * $scale) | Where-Object { $_ -like 'followed-*' })
            $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 3.5
            $seen | Should -Be @('followed-1', 'followed-2')
        }
        finally { $writer.WaitForExit(); $writer.Dispose() }
    }
    It 'reads from an offset over the REST API and says when the log began anew' {
        $all = (Invoke-TestApi $daemon GET '/1.0/containers/talk/console?from=0').Body.metadata
        $all.text | Should -Match 'console line 1'
        $all.restarted | Should -BeFalse
        $tail = (Invoke-TestApi $daemon GET "/1.0/containers/talk/console?from=$($all.next)").Body.metadata
        $tail.text | Should -Be ''
        $tail.next | Should -Be $all.next
        $past = (Invoke-TestApi $daemon GET "/1.0/containers/talk/console?from=$($all.next + 100000)").Body.metadata
        $past.restarted | Should -BeTrue
        $past.text | Should -Be $all.text
        (Invoke-TestApi $daemon GET '/1.0/containers/talk/console?from=-1').Status | Should -Be 400
    }
}

Describe 'Get-SystemContainerEvent' {
    It 'lists the kept lifecycle events of one container in order, with rising ids' {
        New-SystemContainer ev1 -Image $image -Start | Out-Null
        Stop-SystemContainer ev1 -Force
        $events = @(Get-SystemContainerEvent ev1 -Type lifecycle)
        $events | Should -Not -BeNullOrEmpty
        $events[0] | Should -BeOfType ([SystemContainers.Api.SystemContainerEvent])
        @($events.Action) | Should -Be @('container-created', 'container-started', 'container-exited', 'container-stopped')
        @($events.Source | Select-Object -Unique) | Should -Be '/1.0/containers/ev1'
        for ($i = 1; $i -lt $events.Count; $i++) { $events[$i].Id | Should -BeGreaterThan $events[$i - 1].Id }
        $raw = (Invoke-TestApi $daemon GET '/1.0/events/recent?type=lifecycle').Body.metadata
        @($raw | Where-Object { $_.metadata.source -eq '/1.0/containers/ev1' }).Count | Should -Be 4
    }
    It 'follows events as they happen, with nothing lost or doubled between the kept and the new' {
        $starter = Start-Later ev1 1.5
        try {
            $seen = @(Get-SystemContainerEvent ev1 -Type lifecycle -Follow -Timeout (5 * $scale))
            @($seen.Action) | Should -Be @('container-created', 'container-started', 'container-exited', 'container-stopped', 'container-started')
            @($seen.Id | Select-Object -Unique).Count | Should -Be $seen.Count
        }
        finally { $starter.WaitForExit(); $starter.Dispose() }
    }
    It 'shows operations with their status and resource' {
        $ops = @(Get-SystemContainerEvent -Type operation)
        $ops | Should -Not -BeNullOrEmpty
        $ops[0].Operation | Should -BeOfType ([SystemContainers.Api.Operation])
        @($ops.Action | Select-Object -Unique) | Should -Contain 'Success'
        Remove-SystemContainer ev1 -Force
    }
}

Describe 'Autostart' {
    It 'starts the boot.autostart containers when the daemon starts, by priority with their delays, and leaves the others' {
        New-SystemContainer auto-low -Image $image -Config @{ 'boot.autostart' = $true; 'boot.autostart.priority' = 1 } | Out-Null
        New-SystemContainer auto-high -Image $image -Config @{ 'boot.autostart' = $true; 'boot.autostart.priority' = 10; 'boot.autostart.delay' = 1 } | Out-Null
        New-SystemContainer auto-mid -Image $image -Config @{ 'boot.autostart' = 'true'; 'boot.autostart.priority' = 5 } | Out-Null
        New-SystemContainer manual -Image $image | Out-Null
        $kept = New-SystemContainer auto-running -Image $image -Config @{ 'boot.autostart' = $true } -Start
        New-SystemContainer bad-prio -Image $image -Config @{ 'boot.autostart.priority' = 'high' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon @('--default-network', 'none')
        Wait-Until -TimeoutSeconds 30 -What 'the autostart containers to run' {
            @(Get-SystemContainer auto-* | Where-Object Status -eq 'Running').Count -eq 4
        }
        $started = Get-SystemContainer auto-high, auto-mid, auto-low
        foreach ($c in $started) { (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init' }
        @($started | Sort-Object StartedAt).Name | Should -Be @('auto-high', 'auto-mid', 'auto-low')
        ($started[1].StartedAt - $started[0].StartedAt).TotalSeconds | Should -BeGreaterOrEqual 1 -Because "auto-high's delay is 1 s"
        (Get-SystemContainer auto-running).Pid | Should -Be $kept.Pid -Because 'a running container is adopted, not started again'
        (Get-SystemContainer manual).Status | Should -Be 'Stopped'
        (Get-Content $daemon.Log -Raw) | Should -Match 'autostart: started auto-high \(priority 10\)'
        Remove-SystemContainer auto-*, manual -Force
    }
}

Describe 'Proxy devices' {
    BeforeAll {
        $script:px = New-SystemContainer px -Image $image -Start
        Invoke-SystemContainerCommand px -- sh -c 'mkdir -p /www && echo hello-through-the-proxy > /www/index.html && busybox httpd -p 127.0.0.1:8080 -h /www'
        function Get-Page { Invoke-InNetns $daemon curl @('-s', '--max-time', '5', 'http://127.0.0.1:18080/index.html') }
        function Get-Listeners { (Invoke-InNetns $daemon ss @('-Hltn')) -join "`n" }
    }
    AfterAll { Remove-SystemContainer px -Force }
    It 'carries a host port to a port on the loopback inside the container, plugged into the running container' {
        # The server listens on the container's own loopback only: nothing on the host reaches it without the proxy.
        Get-Page | Should -BeNullOrEmpty
        $d = Add-SystemContainerDevice px web proxy -Properties @{ listen = 'tcp:127.0.0.1:18080'; connect = 'tcp:127.0.0.1:8080' } -PassThru
        $d.Type | Should -Be 'proxy'
        $d.Properties['connect'] | Should -Be 'tcp:127.0.0.1:8080'
        (Get-SystemContainer px).Config['proxy.web.listen'] | Should -Be 'tcp:127.0.0.1:18080'
        Get-Listeners | Should -Match '127\.0\.0\.1:18080'
        Get-Page | Should -Be 'hello-through-the-proxy'
        # Inside, the connection came to 127.0.0.1:8080 from the container's own loopback (the
        # server closed first, so its end waits in TIME_WAIT, state 06); the host never had one to 8080.
        (Invoke-SystemContainerCommand px -- cat /proc/net/tcp) -join "`n" | Should -Match '0100007F:1F90 0100007F:[0-9A-F]{4} 06'
        (Invoke-InNetns $daemon ss @('-Htn', 'dport = :8080')) | Should -BeNullOrEmpty
        @(Get-SystemContainerDevice px).Device | Should -Be @('web')
        Get-SystemContainerDevice px -Device 'w*' | ForEach-Object Container | Should -Be 'px'
    }
    It 'refuses a bad address, a second device of the same name and a busy port, changing nothing' {
        Add-SystemContainerDevice px bad proxy -Properties @{ listen = 'tcp:1.2.3:80'; connect = 'tcp:127.0.0.1:80' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $err[0].Exception.Message | Should -Match 'proxy.bad.listen'
        Add-SystemContainerDevice px half proxy -Properties @{ listen = 'tcp:127.0.0.1:18081' } -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].Exception.Message | Should -Match 'needs proxy.half.connect'
        Add-SystemContainerDevice px web proxy -Properties @{ listen = 'tcp:127.0.0.1:18082'; connect = 'tcp:127.0.0.1:80' } -ErrorVariable err3 -ErrorAction SilentlyContinue
        $err3[0].FullyQualifiedErrorId | Should -BeLike 'DeviceExists,*'
        @((Get-SystemContainer px).Config.Keys | Where-Object { $_ -like 'proxy.*' }) | Sort-Object | Should -Be @('proxy.web.connect', 'proxy.web.listen')
        # A port another device already holds: the container keeps running, the daemon log says why.
        Add-SystemContainerDevice px twin proxy -Properties @{ listen = 'tcp:127.0.0.1:18080'; connect = 'tcp:127.0.0.1:8080' }
        Wait-Until -TimeoutSeconds 10 -What 'the busy port in the log' { (Get-Content $daemon.Log -Raw) -match 'proxy px/twin: cannot listen on tcp:127.0.0.1:18080' }
        Get-Page | Should -Be 'hello-through-the-proxy'
        Remove-SystemContainerDevice px twin
    }
    It 'listens again after a daemon restart, and stops when the device is removed or the container stops' {
        Stop-DaemonProcess $daemon
        Get-Listeners | Should -Not -Match '127\.0\.0\.1:18080' -Because 'the daemon carried the port'
        Start-DaemonProcess $daemon @('--default-network', 'none')
        Wait-Until -TimeoutSeconds 10 -What 'the proxy after the restart' { (Get-Page) -eq 'hello-through-the-proxy' }
        Get-SystemContainerDevice px web | Remove-SystemContainerDevice
        Get-Listeners | Should -Not -Match '127\.0\.0\.1:18080'
        Get-Page | Should -BeNullOrEmpty
        (Get-SystemContainer px).Config.Keys | Where-Object { $_ -like 'proxy.*' } | Should -BeNullOrEmpty
        Add-SystemContainerDevice px web proxy -Properties @{ listen = 'tcp:127.0.0.1:18080'; connect = 'tcp:127.0.0.1:8080' }
        Get-Page | Should -Be 'hello-through-the-proxy'
        Stop-SystemContainer px -Force
        Get-Listeners | Should -Not -Match '127\.0\.0\.1:18080'
    }
    It 'carries UDP datagrams to a port inside the container and each reply back to the client that sent it' {
        Start-SystemContainer px
        # busybox has no UDP server: an echo server runs as a host process in the container's network namespace.
        $ready = Join-Path $TestDrive 'udp-ready'
        $server = Join-Path $TestDrive 'udp-echo.ps1'
        Set-Content $server @'
param([int]$Port, [string]$Ready)
$u = [System.Net.Sockets.UdpClient]::new([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, $Port))
Set-Content $Ready ready
for (;;) {
    $from = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, 0)
    $data = $u.Receive([ref]$from)
    $reply = [Text.Encoding]::ASCII.GetBytes("echo from $($from.Address): " + [Text.Encoding]::ASCII.GetString($data))
    [void]$u.Send($reply, $reply.Length, $from)
}
'@
        # pwsh.dll itself, not the dotnet tool's shim, which would leave its pwsh child behind when ended.
        $echo = Start-Process nsenter -ArgumentList "--net=/proc/$((Get-SystemContainer px).Pid)/ns/net", '--', ([Environment]::ProcessPath), (Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-File', $server, 9053, $ready -PassThru
        try {
            Wait-Until -TimeoutSeconds 60 -What 'the echo server inside' { Test-Path $ready }
            # One datagram out, one read of one datagram back (dd reads it whole; a shell's read would cut it).
            function Send-Datagram([string]$Text) {
                Invoke-InNetns $daemon timeout @('10', 'bash', '-c', "exec 3<>/dev/udp/127.0.0.1/18053; printf '$Text' >&3; dd bs=65535 count=1 <&3 2>/dev/null")
            }
            Add-SystemContainerDevice px dns proxy -Properties @{ listen = 'udp:127.0.0.1:18053'; connect = 'udp:127.0.0.1:9053' }
            (Invoke-InNetns $daemon ss @('-Hlun')) -join "`n" | Should -Match '127\.0\.0\.1:18053'
            # Each client, a port of its own, gets its own reply; the server saw them come from the container's loopback.
            Send-Datagram 'first' | Should -Be 'echo from 127.0.0.1: first'
            Send-Datagram 'second' | Should -Be 'echo from 127.0.0.1: second'
            Remove-SystemContainerDevice px dns
            (Invoke-InNetns $daemon ss @('-Hlun')) -join "`n" | Should -Not -Match '127\.0\.0\.1:18053'
        }
        finally {
            Stop-Process -Id $echo.Id -Force -ErrorAction SilentlyContinue
            $echo.WaitForExit(10000) | Out-Null
        }
    }
    It 'refuses a device that listens on one protocol and connects with the other' {
        Add-SystemContainerDevice px mixed proxy -Properties @{ listen = 'udp:127.0.0.1:18054'; connect = 'tcp:127.0.0.1:80' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $err[0].Exception.Message | Should -Match "proxy device 'mixed' listens on udp but connects with tcp"
        (Get-SystemContainer px).Config.Keys | Where-Object { $_ -like 'proxy.mixed.*' } | Should -BeNullOrEmpty
    }
}

Describe '-AsJob' {
    It 'starts and stops containers in a job that Get-Job, Wait-Job and Receive-Job know' {
        New-SystemContainer aj1 -Image $image | Out-Null
        New-SystemContainer aj2 -Image $image | Out-Null
        $job = Start-SystemContainer aj* -AsJob -PassThru
        $job | Should -BeOfType ([System.Management.Automation.Job])
        (Get-Job -Id $job.Id).Name | Should -Be 'Start-SystemContainer aj1, aj2'
        Wait-Job $job -Timeout (30 * $scale) | Out-Null
        $job.State | Should -Be 'Completed'
        $started = @(Receive-Job $job)
        @($started.Name) | Should -Be @('aj1', 'aj2')
        foreach ($c in $started) { (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init' }
        Remove-Job $job
        $stop = Stop-SystemContainer aj1, aj2 -Force -AsJob
        Wait-Job $stop -Timeout (30 * $scale) | Out-Null
        $stop.State | Should -Be 'Completed'
        @(Receive-Job $stop) | Should -BeNullOrEmpty -Because 'without -PassThru the job writes nothing, as the cmdlet would'
        @(Get-SystemContainer aj*).Status | Should -Be @('Stopped', 'Stopped')
        Remove-Job $stop
    }
    It 'fails the job with the error of the target that failed, and goes on with the others' {
        $job = Start-SystemContainer nosuch, aj1 -AsJob -PassThru
        Wait-Job $job -Timeout (30 * $scale) | Out-Null
        $job.State | Should -Be 'Failed'
        $out = @(Receive-Job $job -ErrorVariable err -ErrorAction SilentlyContinue)
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound*'
        $out.Name | Should -Be 'aj1'
        Remove-Job $job
        Remove-SystemContainer aj* -Force
    }
    It 'imports an image in a job' {
        $root = Join-Path $daemon.Dir 'jobimage'
        New-Item -ItemType Directory -Path "$root/bin", "$root/sbin" | Out-Null
        Copy-Item /bin/busybox "$root/bin/busybox"
        New-Item -ItemType SymbolicLink -Path "$root/sbin/init" -Target ../bin/busybox | Out-Null
        Set-Content "$root/marker" 'job'
        tar --create --file "$root.tar" --numeric-owner -C $root .
        $job = Import-SystemContainerImage "$root.tar" -Alias jobimg -AsJob
        Wait-Job $job -Timeout (60 * $scale) | Out-Null
        $job.State | Should -Be 'Completed'
        $img = Receive-Job $job
        $img.Aliases | Should -Be @('jobimg')
        Test-Path (Join-Path $daemon.StateDir "images/$($img.Fingerprint)") | Should -BeTrue
        Remove-Job $job
        Remove-SystemContainerImage jobimg -Force
    }
}

Describe 'Views' {
    It 'fits the default tables in 80 columns, keeping whole names and dates, and lists everything with Format-List' {
        $long = 'view-' + ('x' * 18)
        $c = New-SystemContainer $long -Image $image -Config @{ 'proxy.web.listen' = 'tcp:127.0.0.1:18090'; 'proxy.web.connect' = 'tcp:127.0.0.1:80' }
        New-SystemContainerNetwork viewnet -IPv4 10.92.1.1/24 -Domain views | Out-Null
        $tables = [ordered]@{
            container = Get-SystemContainer $long | Format-Table | Out-String -Width 79
            image     = Get-SystemContainerImage $image | Format-Table | Out-String -Width 79
            network   = Get-SystemContainerNetwork viewnet | Format-Table | Out-String -Width 79
            event     = Get-SystemContainerEvent $long | Format-Table | Out-String -Width 79
            device    = Get-SystemContainerDevice $long | Format-Table | Out-String -Width 79
        }
        foreach ($kind in $tables.Keys) {
            foreach ($line in ($tables[$kind] -split "`n")) { $line.TrimEnd().Length | Should -BeLessOrEqual 79 -Because "the $kind table must fit an 80-column terminal, which pwsh fills to 79: '$line'" }
        }
        # Free text (an image's description, a device's properties) may be cut short at 80 columns; names and dates never.
        foreach ($kind in 'container', 'event', 'device') { $tables[$kind] | Should -Match ([regex]::Escape($long)) -Because "the $kind table keeps the whole name" }
        $tables.image | Should -Match "(?m)^$image\s+[0-9a-f]{12} .* \d{4}-\d{2}-\d{2}\s*$"
        $tables.container | Should -Match ([regex]::Escape($long))
        $tables.container | Should -Match ([regex]::Escape($c.Created.LocalDateTime.ToString('yyyy-MM-dd')))
        $tables.container | Should -Not -Match 'IPv6'
        $tables.network | Should -Match 'UsedBy'
        $tables.device | Should -Match 'connect=tcp:127.0.0.1:80'
        $tables.network | Should -Match '10\.92\.1\.1/24'
        $list = Get-SystemContainer $long | Format-List | Out-String
        foreach ($property in 'Name', 'Status', 'ImageFingerprint', 'IPv6', 'Config', 'Id', 'InitKind', 'Created') { $list | Should -Match "(?m)^$property\s+:" }
        Remove-SystemContainer $long -Force
        Remove-SystemContainerNetwork viewnet -Force
    }
}

Describe 'Consistency' {
    It 'samples every container when Get-ContainerStats has no name' {
        New-SystemContainer s1 -Image $image -Start | Out-Null
        New-SystemContainer s2 -Image $image | Out-Null
        $all = @(Get-ContainerStats)
        @($all.Name | Sort-Object) | Should -Be @(Get-SystemContainer | ForEach-Object Name | Sort-Object)
        ($all | Where-Object Name -eq 's1').Processes | Should -BeGreaterThan 0
        ($all | Where-Object Name -eq 's2').Status | Should -Be 'Stopped'
    }
    It 'takes config keys in any case, stores the listed spelling and applies them' {
        $c = New-SystemContainer cased -Image $image -Config @{ 'Limits.Memory' = '64MiB'; 'Environment.Greeting' = 'hi'; 'USER.Note' = 'x' } -Start
        $c.Config.Keys | Sort-Object | Should -Be @('environment.Greeting', 'limits.memory', 'user.Note')
        Get-CgroupMemoryLimit -InitPid $c.Pid | Should -Be (64MB)
        Set-SystemContainer cased @{ 'LIMITS.MEMORY' = '96MiB' }
        Get-CgroupMemoryLimit -InitPid $c.Pid | Should -Be (96MB)
        (Get-SystemContainer cased).Config['limits.memory'] | Should -Be '96MiB'
        Invoke-SystemContainerCommand cased -- sh -c 'echo $Greeting' | Should -Be 'hi'
        Set-SystemContainer cased @{ 'Security.Privileged' = 'true' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImmutableConfigKey,*'
        # Two spellings of one key in a raw request are refused, never resolved by order.
        $r = Invoke-TestApi $daemon POST /1.0/containers '{"name":"twice","image":"busybox","config":{"limits.memory":"64MiB","Limits.Memory":"128MiB"}}'
        $r.Status | Should -Be 400
        $r.Body.error_id | Should -Be 'InvalidConfigKey'
        Test-Path (Join-Path $daemon.StateDir 'containers/twice') | Should -BeFalse
        Remove-SystemContainer cased -Force
    }
    It 'says with -Verbose what the daemon did, and the daemon log records it' {
        $out = New-SystemContainer verb1 -Image $image -Start -Verbose 4>&1
        $c = $out | Where-Object { $_ -is [SystemContainers.Api.SystemContainer] }
        $said = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
        $said | Should -Match "verb1: created from image $image \([0-9a-f]{12}\)"
        $said | Should -Match "verb1: running, init pid $($c.Pid)"
        (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init'
        $said = @(Stop-SystemContainer verb1 -Force -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
        $said | Should -Match 'verb1: stopped, last exit signal 9'
        $said = @(Remove-SystemContainer verb1 -Force -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
        $said | Should -Match 'verb1: removed with its files'
        $log = Get-Content $daemon.Log -Raw
        foreach ($action in 'container-created', 'container-started', 'container-stopped', 'container-deleted') {
            $log | Should -Match "$action /1.0/containers/verb1"
        }
    }
    It 'has a State alias of Status on containers and samples' {
        $c = Get-SystemContainer s1
        $c.State | Should -Be 'Running'
        $c.State | Should -Be $c.Status
        (Get-ContainerStats s2).State | Should -Be 'Stopped'
    }
    It 'creates a container from a piped image, bound by fingerprint' {
        $img = Get-SystemContainerImage $image
        $c = $img | New-SystemContainer piped1
        $c.ImageFingerprint | Should -Be $img.Fingerprint
        $config = Get-Content (Join-Path $daemon.StateDir 'containers/piped1/config.json') -Raw | ConvertFrom-Json
        $config | ConvertTo-Json -Depth 5 | Should -Match $img.Fingerprint
    }
    It 'flattens lists for Export-Csv and ToString' {
        Add-SystemContainerImageAlias $image csv-a, csv-b
        $csv = Join-Path $daemon.Dir 'images.csv'
        Get-SystemContainerImage csv-a | Export-Csv $csv
        (Import-Csv $csv).Aliases | Should -Be "$image, csv-a, csv-b"
        (Get-SystemContainerImage csv-a).Aliases.ToString() | Should -Be "$image, csv-a, csv-b"
        Remove-SystemContainerImageAlias 'csv-*'
        (Get-SystemContainerImage $image).Aliases | Should -Be @($image)
    }
    It 'removes images by pattern only when the pattern names them wholly' {
        function New-TinyImage([string]$Alias) {
            $root = Join-Path $daemon.Dir "tiny-$Alias"
            New-Item -ItemType Directory -Path "$root/bin", "$root/sbin" | Out-Null
            Copy-Item /bin/busybox "$root/bin/busybox"
            New-Item -ItemType SymbolicLink -Path "$root/sbin/init" -Target ../bin/busybox | Out-Null
            Set-Content "$root/marker" $Alias
            tar --create --file "$root.tar" --numeric-owner -C $root .
            Import-SystemContainerImage "$root.tar" -Alias $Alias
        }
        $whole = New-TinyImage wc-whole
        $part = New-TinyImage wc-part
        $part.Fingerprint | Should -Not -Be $whole.Fingerprint
        Add-SystemContainerImageAlias wc-part keep-me
        Remove-SystemContainerImage 'wc-*' -Force -ErrorVariable err -ErrorAction SilentlyContinue
        # The image named wholly by the pattern is gone; the one with another alias stays, with an error.
        Get-SystemContainerImage $whole.Fingerprint -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.StateDir "images/$($whole.Fingerprint)") | Should -BeFalse
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImageHasOtherAliases,*'
        $err[0].Exception.Message | Should -Match "'keep-me'"
        (Get-SystemContainerImage keep-me).Fingerprint | Should -Be $part.Fingerprint
        Remove-SystemContainerImageAlias 'wc-*'
        Remove-SystemContainerImage 'keep-*' -Force
        Test-Path (Join-Path $daemon.StateDir "images/$($part.Fingerprint)") | Should -BeFalse
        Get-SystemContainerImage keep-me -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-SystemContainerImage $image | Should -Not -BeNullOrEmpty
    }
    It 'takes wildcards in network and lease cmdlets' {
        New-SystemContainerNetwork wnet1 -IPv4 10.91.1.1/24 | Out-Null
        New-SystemContainerNetwork wnet2 -IPv4 10.91.2.1/24 | Out-Null
        Set-SystemContainerNetwork 'wnet*' -Domain wild -Confirm:$false
        @(Get-SystemContainerNetwork 'wnet*').Domain | Should -Be @('wild', 'wild')
        @(Get-SystemContainerNetworkLease 'wnet*') | Should -BeNullOrEmpty
        Remove-SystemContainerNetwork 'wnet*' -Force
        Get-SystemContainerNetwork 'wnet*' | Should -BeNullOrEmpty
        (Invoke-InNetns $daemon ip @('-o', 'link', 'show')) -join "`n" | Should -Not -Match 'wnet'
        Remove-SystemContainer s1, s2, piped1 -Force
    }
}

Describe 'Config keys as KEY=VALUE, completed on Tab' {
    BeforeAll {
        function Get-Completion([string]$Line) { (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches | ForEach-Object CompletionText }
    }
    AfterAll { Remove-SystemContainer kv* -Force -ErrorAction SilentlyContinue }
    It 'completes container and network config keys from the daemon' {
        Get-Completion 'New-SystemContainer x -Image busybox -Config limits.mem' | Should -Be @('limits.memory=', 'limits.memory.enforce=', 'limits.memory.swap=')
        Get-Completion 'Set-SystemContainer x BOOT.AUTOSTART.' | Should -Be @('boot.autostart.delay=', 'boot.autostart.priority=')
        Get-Completion 'New-SystemContainer x -Image busybox -Config limits.cpu=1, us' | Should -Be @('user.')
        Get-Completion 'New-SystemContainerNetwork n -Config ipv4.n' | Should -Be @('ipv4.nat=')
        # A value is the user's: nothing is offered after the =.
        Get-Completion 'New-SystemContainer x -Image busybox -Config limits.memory=' | Should -BeNullOrEmpty
        (Get-SystemContainerHost).ContainerConfigKeys | Should -Contain 'security.nesting'
    }
    It 'takes KEY=VALUE strings where it takes a hashtable, keys in any case' {
        $c = New-SystemContainer kv1 -Image $image -Config LIMITS.MEMORY=64MiB, boot.autostart=true, user.note=a=b
        $c.Config['limits.memory'] | Should -Be '64MiB'
        $c.Config['boot.autostart'] | Should -Be 'true'
        $c.Config['user.note'] | Should -Be 'a=b' -Because 'the value is everything after the first ='
        Set-SystemContainer kv1 limits.memory=128MiB, user.note= -PassThru | ForEach-Object { $_.Config['limits.memory'] } | Should -Be '128MiB'
        (Get-SystemContainer kv1).Config.Keys | Should -Not -Contain 'user.note' -Because 'an empty value removes the key'
    }
    It 'refuses a string without = and a key given twice, creating nothing' {
        { New-SystemContainer kv2 -Image $image -Config limits.memory } | Should -Throw "*config 'limits.memory' must be KEY=VALUE*"
        { New-SystemContainer kv2 -Image $image -Config limits.cpu=1, LIMITS.CPU=2 } | Should -Throw "*config key 'LIMITS.CPU' is given twice*"
        Get-SystemContainer kv2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.StateDir 'containers/kv2') | Should -BeFalse
    }
    It 'completes a key on Tab in an interactive pwsh (tmux)' {
        $root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
        $session = Start-TmuxPwsh $daemon -Width 120
        try {
            Send-TmuxLine $session "Import-Module '$root/SystemContainers.psd1'; 'module=' + 'loaded'"
            Wait-TmuxScreen $session 'the module' '(?m)^module=loaded' 60
            Wait-TmuxPrompt $session 'the module'
            tmux send-keys -t $session -l 'Set-SystemContainer kv1 -Config security.idmap.iso'
            tmux send-keys -t $session Tab
            Wait-TmuxScreen $session 'the completed key' 'Set-SystemContainer kv1 -Config security\.idmap\.isolated=' 30
            tmux send-keys -t $session -l 'false -WhatIf'
            tmux send-keys -t $session Enter
            Wait-TmuxScreen $session 'the answer' 'What if: .*security\.idmap\.isolated=false' 30
        }
        finally {
            tmux kill-session -t $session 2>$null
        }
    }
}
