BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Restarting the daemon while a container runs' {
    It 'keeps the container running, shows it, execs in it and stops it' {
        $c = New-SystemContainer survivor -Image $image -Start
        $consoleBefore = Invoke-SystemContainerCommand survivor -- sh -c 'grep " /dev/console " /proc/self/mountinfo'
        Stop-DaemonProcess $daemon
        Test-ProcessAlive $c.Pid | Should -BeTrue -Because 'containers outlive their daemon'
        Start-DaemonProcess $daemon

        $again = Get-SystemContainer survivor
        $again.Status | Should -Be 'Running'
        $again.Pid | Should -Be $c.Pid
        Invoke-SystemContainerCommand survivor hostname | Should -Be 'survivor'
        # The console came back on a fresh pty rather than the hung-up one.
        $consoleAfter = Invoke-SystemContainerCommand survivor -- sh -c 'grep " /dev/console " /proc/self/mountinfo'
        $consoleAfter | Should -Not -Match 'deleted'
        Test-Path (Join-Path $daemon.RunDir 'containers/survivor/console.log') | Should -BeTrue
        (Stop-SystemContainer survivor -Force -PassThru).Status | Should -Be 'Stopped'
        Test-ProcessAlive $c.Pid | Should -BeFalse
    }
    It 'marks a container whose init died while the daemon was away as stopped' {
        $c = New-SystemContainer casualty -Image $image -Start
        Stop-DaemonProcess $daemon
        kill -KILL $c.Pid
        Start-DaemonProcess $daemon
        (Get-SystemContainer casualty).Status | Should -Be 'Stopped'
        Start-SystemContainer casualty -PassThru | ForEach-Object Status | Should -Be 'Running'
    }
}

Describe 'Starting the daemon on first use' {
    It 'starts the bundled daemon when nothing answers on the socket' {
        $dir = Join-Path $daemon.Dir 'auto'
        $saved = $env:SYSTEMCONTAINERS_SOCKET, $env:SYSTEMCONTAINERS_RUN_DIR, $env:SYSTEMCONTAINERS_STATE_DIR
        $env:SYSTEMCONTAINERS_RUN_DIR = Join-Path $dir 'run'
        $env:SYSTEMCONTAINERS_SOCKET = Join-Path $dir 'run/systemcontainerd.sock'
        $env:SYSTEMCONTAINERS_STATE_DIR = Join-Path $dir 'state'
        $auto = [pscustomobject]@{ Socket = $env:SYSTEMCONTAINERS_SOCKET; Pid = 0 }
        try {
            # Test runs forbid it; asked to, the module refuses instead of starting one.
            Get-SystemContainer -ErrorAction SilentlyContinue -ErrorVariable refused | Should -BeNullOrEmpty
            $refused[0].FullyQualifiedErrorId | Should -BeLike 'DaemonNotRunning,*'
            Test-Path $env:SYSTEMCONTAINERS_SOCKET | Should -BeFalse
            $env:SYSTEMCONTAINERS_NO_AUTOSTART = $null
            Get-SystemContainer | Should -BeNullOrEmpty
            $info = (Invoke-TestApi $auto GET /1.0).Body.metadata
            $info.state_dir | Should -Be (Join-Path $dir 'state')
            $auto.Pid = $info.pid
            $auto.Pid | Should -BeGreaterThan 0
        }
        finally {
            if ($auto.Pid) { Stop-DaemonProcess $auto }
            $env:SYSTEMCONTAINERS_NO_AUTOSTART = '1'
            $env:SYSTEMCONTAINERS_SOCKET, $env:SYSTEMCONTAINERS_RUN_DIR, $env:SYSTEMCONTAINERS_STATE_DIR = $saved
            if (-not $env:SYSTEMCONTAINERS_STATE_DIR) { Remove-Item Env:SYSTEMCONTAINERS_STATE_DIR -ErrorAction SilentlyContinue }
        }
    }
    It 'runs in / and watches no files (no inotify instance, whatever directory started it)' {
        (Get-Item "/proc/$($daemon.Pid)/cwd").LinkTarget | Should -Be '/'
        @(Get-ChildItem "/proc/$($daemon.Pid)/fd" | Where-Object { $_.LinkTarget -eq 'anon_inode:inotify' }).Count | Should -Be 0
    }
    It 'refuses to start a second daemon on a live socket' {
        $out = & (Join-Path $PSScriptRoot '../artifacts/SystemContainers/daemon/systemcontainerd') --socket $daemon.Socket --state-dir (Join-Path $daemon.Dir 'other') 2>&1
        $LASTEXITCODE | Should -Be 1
        "$out" | Should -Match 'another daemon answers'
    }
    It 'refuses in one line to run where no cgroup hierarchy is mounted, and makes no socket' {
        # ip netns exec mounts a fresh /sys for the namespace, which hides every cgroup mount.
        $ns = "sc-nocg-$PID"
        $dir = Join-Path $daemon.Dir 'nocgroup'
        ip netns add $ns
        try {
            $out = & ip netns exec $ns (Join-Path $PSScriptRoot '../artifacts/SystemContainers/daemon/systemcontainerd') `
                --socket (Join-Path $dir 'run/s.sock') --state-dir (Join-Path $dir 'state') --run-dir (Join-Path $dir 'run') --default-network none 2>&1
            $LASTEXITCODE | Should -Be 1
            "$out" | Should -Match '^systemcontainerd: cannot find a mounted cgroup hierarchy'
            "$out" | Should -Not -Match 'Unhandled exception'
            Test-Path (Join-Path $dir 'run/s.sock') | Should -BeFalse
        }
        finally { ip netns del $ns }
    }
}

Describe 'REST API' {
    It 'answers /1.0 with the server facts' {
        $r = Invoke-TestApi $daemon GET /1.0
        $r.Status | Should -Be 200
        $r.Body.type | Should -Be 'sync'
        $r.Body.metadata.cgroup_version | Should -BeIn 'v1', 'v2'
    }
    It 'lists containers as URLs and, with recursion, as objects' {
        (Invoke-TestApi $daemon GET /1.0/containers).Body.metadata | Should -Contain '/1.0/containers/casualty'
        ((Invoke-TestApi $daemon GET '/1.0/containers?recursion=1').Body.metadata | Where-Object name -eq casualty).status | Should -Be 'Running'
    }
    It 'returns an operation for state changes, and waits on it' {
        $r = Invoke-TestApi $daemon PUT /1.0/containers/casualty/state '{"action":"stop","force":true}'
        $r.Status | Should -Be 202
        $r.Body.type | Should -Be 'async'
        $done = Invoke-TestApi $daemon GET "$($r.Body.operation)/wait?timeout=30"
        $done.Body.metadata.status | Should -Be 'Success'
        $done.Body.metadata.metadata.result.status | Should -Be 'Stopped'
    }
    It 'creates and starts in one request, and answers an operation once it has ended when asked to wait' {
        $r = Invoke-TestApi $daemon POST '/1.0/containers?wait=60' "{`"name`":`"onestep`",`"image`":`"$image`",`"start`":true}"
        $r.Status | Should -Be 202
        $r.Body.metadata.status | Should -Be 'Success'
        $r.Body.metadata.metadata.result.status | Should -Be 'Running'
        $init = $r.Body.metadata.metadata.result.pid
        (readlink "/proc/$init/ns/pid") | Should -Not -Be (readlink /proc/self/ns/pid) -Because 'the init runs in a pid namespace of its own'
        Invoke-SystemContainerCommand onestep hostname | Should -Be 'onestep'
        $running = Invoke-TestApi $daemon POST /1.0/containers/onestep/exec '{"command":["sh","-c","sleep 1; exit 3"]}'
        $running.Body.metadata.status | Should -Be 'Running' -Because 'without wait the answer does not wait for the command'
        $ended = Invoke-TestApi $daemon POST '/1.0/containers/onestep/exec?wait=60' '{"command":["sh","-c","sleep 1; exit 3"]}'
        $ended.Body.metadata.status | Should -Be 'Success'
        $ended.Body.metadata.metadata.result.return | Should -Be 3
        Remove-SystemContainer onestep -Force -Confirm:$false
    }
    It 'refuses <what> with <status> <id>' -ForEach @(
        @{ what = 'a body that is not JSON'; method = 'POST'; path = '/1.0/containers'; body = '{not json'; status = 400; id = 'InvalidRequest' },
        @{ what = 'a create without a name'; method = 'POST'; path = '/1.0/containers'; body = '{"image":"busybox"}'; status = 400; id = 'InvalidRequest' },
        @{ what = 'an unknown state action'; method = 'PUT'; path = '/1.0/containers/casualty/state'; body = '{"action":"explode"}'; status = 400; id = 'InvalidAction' },
        @{ what = 'a negative timeout'; method = 'PUT'; path = '/1.0/containers/casualty/state'; body = '{"action":"stop","timeout":-1}'; status = 400; id = 'InvalidTimeout' },
        @{ what = 'an empty command'; method = 'POST'; path = '/1.0/containers/casualty/exec'; body = '{"command":[]}'; status = 400; id = 'InvalidCommand' },
        @{ what = 'exec in a stopped container'; method = 'POST'; path = '/1.0/containers/casualty/exec'; body = '{"command":["true"]}'; status = 409; id = 'NotRunning' },
        @{ what = 'an unknown container'; method = 'GET'; path = '/1.0/containers/nosuch'; body = $null; status = 404; id = 'ContainerNotFound' },
        @{ what = 'an unknown image source'; method = 'POST'; path = '/1.0/images'; body = '{"source":"ftp"}'; status = 400; id = 'InvalidSource' },
        @{ what = 'an unknown operation'; method = 'GET'; path = '/1.0/operations/nope'; body = $null; status = 404; id = 'OperationNotFound' }
    ) {
        $r = Invoke-TestApi $daemon $method $path $body
        $r.Status | Should -Be $status
        $r.Body.type | Should -Be 'error'
        $r.Body.error_id | Should -Be $id
        $r.Body.error | Should -Not -BeNullOrEmpty
    }
    It 'attaches an interactive command''s websocket only with its secret' {
        New-SystemContainer secretive -Image $image -Start | Out-Null
        $r = Invoke-TestApi $daemon POST /1.0/containers/secretive/exec '{"command":["sleep","60"],"interactive":true}'
        $r.Status | Should -Be 202
        $op = $r.Body.operation
        $secret = $r.Body.metadata.metadata.secret
        $secret | Should -Not -BeNullOrEmpty
        foreach ($query in '', '?secret=', "?secret=$($secret.Substring(1))x") {
            $refused = Invoke-TestApi $daemon GET "$op/websocket$query"
            $refused.Status | Should -Be 400 -Because "secret query '$query' is wrong"
            $refused.Body.error_id | Should -Be 'InvalidSecret'
        }
        # The right secret passes the check: what fails then is only the missing websocket upgrade.
        $plain = Invoke-TestApi $daemon GET "$op/websocket?secret=$secret"
        $plain.Status | Should -Be 400
        $plain.Body.error_id | Should -Be 'NotWebSocket'
        Remove-SystemContainer secretive -Force -Confirm:$false
    }
    It 'serves the console log' {
        New-SystemContainer talker -Image $image -Start | Out-Null
        Invoke-SystemContainerCommand talker -- sh -c 'echo from-the-console > /dev/console'
        Wait-Until -TimeoutSeconds 10 -What 'console output' { ((Invoke-TestApi $daemon GET /1.0/containers/talker/console).Body.metadata) -match 'from-the-console' }
    }
    It 'streams lifecycle events over the /1.0/events websocket' {
        # A minimal websocket client on the raw socket: handshake, then unmasked server frames.
        $socket = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($daemon.Socket))
        $stream = [System.Net.Sockets.NetworkStream]::new($socket, $true)
        $key = [Convert]::ToBase64String([byte[]](1..16))
        $request = "GET /1.0/events?type=lifecycle HTTP/1.1`r`nHost: x`r`nUpgrade: websocket`r`nConnection: Upgrade`r`nSec-WebSocket-Key: $key`r`nSec-WebSocket-Version: 13`r`n`r`n"
        $stream.Write([Text.Encoding]::ASCII.GetBytes($request))
        $head = ''
        while (-not $head.EndsWith("`r`n`r`n")) { $head += [char]$stream.ReadByte() }
        $head | Should -Match '^HTTP/1.1 101'
        New-SystemContainer eventful -Image $image | Out-Null
        $stream.ReadTimeout = [int](10000 * ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE ?? 1))
        $b0 = $stream.ReadByte(); $len = $stream.ReadByte() -band 0x7f
        if ($len -eq 126) { $len = $stream.ReadByte() * 256 + $stream.ReadByte() }
        $payload = [byte[]]::new($len); $read = 0
        while ($read -lt $len) { $read += $stream.Read($payload, $read, $len - $read) }
        $stream.Dispose()
        ($b0 -band 0x0f) | Should -Be 1
        $event = [Text.Encoding]::UTF8.GetString($payload) | ConvertFrom-Json
        $event.type | Should -Be 'lifecycle'
        $event.metadata.action | Should -Be 'container-created'
        $event.metadata.source | Should -Be '/1.0/containers/eventful'
    }
    It 'completes container names on Tab without starting anything' {
        $r = TabExpansion2 -inputScript 'Get-SystemContainer eventf' -cursorColumn 'Get-SystemContainer eventf'.Length
        $r.CompletionMatches.CompletionText | Should -Contain 'eventful'
        $r = TabExpansion2 -inputScript 'New-SystemContainer x -Image busy' -cursorColumn 'New-SystemContainer x -Image busy'.Length
        $r.CompletionMatches.CompletionText | Should -Contain 'busybox'
    }
    It 'keeps the socket for root only' {
        (stat -c '%a %U' $daemon.Socket) | Should -Be '600 root'
    }
}
