BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    New-SystemContainer run1 -Image (Get-TestImage) -Start | Out-Null
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Invoke-SystemContainerCommand' {
    It 'returns stdout as lines' {
        $out = Invoke-SystemContainerCommand run1 -- sh -c 'echo one; echo two'
        $out | Should -Be @('one', 'two')
        $LASTEXITCODE | Should -Be 0
    }
    It 'makes a non-zero exit a non-terminating error carrying the code' {
        # Everything after -- is the command, so the common parameters come first.
        $out = Invoke-SystemContainerCommand run1 -ErrorVariable err -ErrorAction SilentlyContinue -InformationVariable info -- sh -c 'echo partial; echo broke >&2; exit 3'
        $out | Should -Be 'partial'
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CommandFailed,*'
        $err[0].Exception.ExitCode | Should -Be 3
        $err[0].Exception.Message | Should -Match 'exited with code 3: broke'
        $LASTEXITCODE | Should -Be 3
        @($info | ForEach-Object { "$($_.MessageData)" }) | Should -Contain 'broke'
    }
    It 'returns one object with -PassThru' {
        $r = Invoke-SystemContainerCommand run1 -PassThru -- sh -c 'echo out; echo err >&2; exit 4'
        $r | Should -BeOfType ([SystemContainers.Api.SystemContainerCommandResult])
        $r.ExitCode | Should -Be 4
        $r.Stdout | Should -Be "out`n"
        $r.Stderr | Should -Be "err`n"
        $r.Container | Should -Be 'run1'
    }
    It 'passes environment, working directory and user' {
        Invoke-SystemContainerCommand run1 -Environment @{ GREETING = 'hello there' } -- sh -c 'echo $GREETING' | Should -Be 'hello there'
        Invoke-SystemContainerCommand run1 -WorkingDirectory /etc pwd | Should -Be '/etc'
        # No supplementary groups are kept: id prints none.
        Invoke-SystemContainerCommand run1 -User 1000 -Group 1000 -- id | Should -Be 'uid=1000 gid=1000'
    }
    It 'starts in / when the home directory is missing, but refuses a missing -WorkingDirectory' {
        Invoke-SystemContainerCommand run1 -- rmdir /root
        Invoke-SystemContainerCommand run1 pwd | Should -Be '/'
        $r = Invoke-SystemContainerCommand run1 -WorkingDirectory /nowhere -PassThru pwd
        $r.ExitCode | Should -Be 127
        $r.Stderr | Should -Match 'cannot chdir /nowhere: ENOENT'
    }
    It 'finds programs through the container''s PATH, sbin included, and follows a PATH it is given' {
        Invoke-SystemContainerCommand run1 -- ip link show lo | Select-Object -First 1 | Should -Match '^1: lo:'
        Invoke-SystemContainerCommand run1 -- sh -c 'mkdir -p /opt/tools && printf "#!/bin/sh\necho custom\n" > /opt/tools/mytool && chmod +x /opt/tools/mytool'
        Invoke-SystemContainerCommand run1 -Environment @{ PATH = '/opt/tools:/bin' } -- mytool | Should -Be 'custom'
    }
    It 'reports a missing program with exit code 127' {
        $r = Invoke-SystemContainerCommand run1 /no/such/program -PassThru
        $r.ExitCode | Should -Be 127
        $r.Stderr | Should -Match 'cannot exec /no/such/program: ENOENT'
    }
    It 'streams output as it is made: a line reaches the pipeline while the command still runs' {
        # The command ends only once the test, having seen its first line, lets it: collected
        # output would instead wait the command's 15 s out and then show the timeout.
        Invoke-SystemContainerCommand run1 -- rm -f /tmp/go
        $lines = Invoke-SystemContainerCommand run1 -- sh -c 'echo ready; i=0; while [ ! -e /tmp/go ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; [ -e /tmp/go ] && echo released || echo timed-out' |
            ForEach-Object { if ($_ -eq 'ready') { Invoke-SystemContainerCommand run1 -- touch /tmp/go }; $_ }
        $lines | Should -Be @('ready', 'released')
    }
    It 'forwards output made just after the command ends, however long it was quiet before' {
        # The daemon stops waiting for output once its readers have sat idle for a second after
        # the end; idle time from before the end once counted, and such a line was dropped.
        Invoke-SystemContainerCommand run1 -- sh -c 'echo first; sleep 1.2; (sleep 0.2; echo last) & exit 0' | Should -Be @('first', 'last')
        Invoke-SystemContainerCommand run1 -- sh -c 'echo first; sleep 1.2; echo last' | Should -Be @('first', 'last')
    }
    It 'feeds pipeline input and -InputObject to the command''s stdin' {
        'hello', 'world' | Invoke-SystemContainerCommand run1 -- cat | Should -Be @('hello', 'world')
        1..3 | Invoke-SystemContainerCommand run1 -- wc -l | ForEach-Object Trim | Should -Be '3'
        Invoke-SystemContainerCommand run1 -InputObject 'one line' -- tr a-z A-Z | Should -Be 'ONE LINE'
        # Without input, stdin is at its end at once: cat returns.
        Invoke-SystemContainerCommand run1 -- cat | Should -BeNullOrEmpty
    }
    It 'passes options through to the native command after --, as an array to -Command, and where they match no parameter' {
        Invoke-SystemContainerCommand run1 -- sh -c 'printf "a\nb\n" > /tmp/opts'
        Invoke-SystemContainerCommand run1 -- grep -v a /tmp/opts | Should -Be 'b'
        Invoke-SystemContainerCommand run1 -Command grep, -v, b, /tmp/opts | Should -Be 'a'
        # As the README's demo runs it: -a names no parameter of the cmdlet, so it stays uname's.
        Invoke-SystemContainerCommand run1 uname -a | Should -Match '^Linux run1 '
    }
    It 'ends the command when its operation is cancelled (DELETE /1.0/operations/{id})' {
        $r = Invoke-TestApi $daemon POST /1.0/containers/run1/exec '{"command":["sh","-c","echo $$ > /tmp/cancelled.pid; exec sleep 300"]}'
        $r.Status | Should -Be 202
        $id = $r.Body.metadata.id
        Wait-Until -TimeoutSeconds 30 -What 'the command to start' { (Invoke-SystemContainerCommand run1 -ErrorAction SilentlyContinue -- cat /tmp/cancelled.pid) -match '^\d+$' }
        $pid1 = Invoke-SystemContainerCommand run1 -- cat /tmp/cancelled.pid
        (Invoke-TestApi $daemon DELETE "/1.0/operations/$id").Status | Should -Be 200
        $op = (Invoke-TestApi $daemon GET "/1.0/operations/$id/wait?timeout=20").Body.metadata
        $op.status | Should -Not -Be 'Running'
        Invoke-SystemContainerCommand run1 -- sh -c "kill -0 $pid1 2>/dev/null && echo alive || echo gone" | Should -Be 'gone'
    }
    It 'ends an interactive command nobody attaches to within 30 s, and refuses the websocket that comes after' {
        $r = Invoke-TestApi $daemon POST /1.0/containers/run1/exec '{"command":["sh","-c","echo $$ > /tmp/unattached.pid; exec sleep 300"],"interactive":true,"width":80,"height":24}'
        $r.Status | Should -Be 202
        $op = $r.Body.operation
        $secret = $r.Body.metadata.metadata.secret
        Wait-Until -TimeoutSeconds 30 -What 'the command to start' { (Invoke-SystemContainerCommand run1 -ErrorAction SilentlyContinue -- cat /tmp/unattached.pid) -match '^\d+$' }
        $inner = Invoke-SystemContainerCommand run1 -- cat /tmp/unattached.pid
        # The daemon waits its 30 s for a websocket, then ends the command (sleep, which sh became).
        $done = (Invoke-TestApi $daemon GET "$op/wait?timeout=120").Body.metadata
        $done.status | Should -Be 'Failure'
        $done.err | Should -Match 'no websocket attached within 30 s, so the command was ended'
        Invoke-SystemContainerCommand run1 -- sh -c "kill -0 $inner 2>/dev/null && echo alive || echo gone" | Should -Be 'gone'
        # The late websocket is told so, not taken and left without output (the guest lane's hang).
        $socket = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        try {
            $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($daemon.Socket))
            $stream = [System.Net.Sockets.NetworkStream]::new($socket)
            $stream.ReadTimeout = 10000
            $key = [Convert]::ToBase64String([byte[]](1..16))
            $stream.Write([Text.Encoding]::ASCII.GetBytes("GET $op/websocket?secret=$secret HTTP/1.1`r`nHost: x`r`nUpgrade: websocket`r`nConnection: Upgrade`r`nSec-WebSocket-Key: $key`r`nSec-WebSocket-Version: 13`r`n`r`n"))
            # The answer is chunked: read to its last, empty chunk.
            $text = ''
            while (-not $text.EndsWith("`r`n0`r`n`r`n")) { $text += [char]$stream.ReadByte() }
            $text | Should -Match '^HTTP/1.1 409'
            $answer = [regex]::Match($text, '(?s)\{.*\}').Value | ConvertFrom-Json
            $answer.error_id | Should -Be 'AttachExpired'
            $answer.error | Should -Match 'its command was ended'
        }
        finally { $socket.Dispose() }
    }
    It 'runs in every container a wildcard names, from the pipeline' {
        New-SystemContainer run2 -Image busybox -Start | Out-Null
        (Get-SystemContainer run* | Invoke-SystemContainerCommand -Command hostname) | Sort-Object | Should -Be @('run1', 'run2')
    }
}

Describe 'Enter-SystemContainer' {
    It 'runs a shell on a terminal inside the container and passes input through' {
        $root = Join-Path $PSScriptRoot '..'
        $script = "Import-Module '$root/SystemContainers.psd1'; Enter-SystemContainer run1 -Command sh; exit `$LASTEXITCODE"
        $output = "tty; echo inside-`$(hostname); exit 7`n" | dotnet pwsh -NoProfile -Command $script
        $code = $LASTEXITCODE
        ($output -join "`n") | Should -Match 'inside-run1'
        ($output -join "`n") | Should -Match '/dev/pts/\d+'
        $code | Should -Be 7
    }
    It 'works on a real terminal: raw input, its size, resizes and the exit code (tmux)' {
        $session = "sc-test-$PID"
        $root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
        $out = Join-Path $daemon.Dir 'enter-exit'
        $inner = "Import-Module '$root/SystemContainers.psd1'; Enter-SystemContainer run1 -Command sh; Set-Content '$out' `$LASTEXITCODE"
        $env:SC_ENTER_SCRIPT = $inner
        tmux new-session -d -s $session -x 100 -y 30 "cd '$root' && SYSTEMCONTAINERS_SOCKET='$($daemon.Socket)' dotnet pwsh -NoProfile -Command 'Invoke-Expression `$env:SC_ENTER_SCRIPT'"
        try {
            function Screen { (tmux capture-pane -t $session -p) -join "`n" }
            # The wait takes in a cold pwsh's start, given 90 s as in Start-TmuxPwsh (a loaded guest lane took 140).
            Wait-Until -TimeoutSeconds 90 -What 'a shell prompt' { (Screen) -match '#\s*$' }
            tmux send-keys -t $session 'stty size; tty' Enter
            Wait-Until -TimeoutSeconds 10 -What 'the terminal size' { (Screen) -match '30 100' }
            (Screen) | Should -Match '/dev/pts/\d+'
            tmux resize-window -t $session -x 120 -y 40
            Start-Sleep -Milliseconds 700
            tmux send-keys -t $session 'stty size' Enter
            Wait-Until -TimeoutSeconds 10 -What 'the new size' { (Screen) -match '40 120' }
            tmux send-keys -t $session 'exit 5' Enter
            # Set-Content makes the file before it writes: wait for the line, not the file.
            Wait-Until -TimeoutSeconds 20 -What 'the exit code' { (Get-Content $out -ErrorAction SilentlyContinue) -ne $null }
            Get-Content $out | Should -Be '5'
        }
        finally {
            tmux kill-session -t $session 2>$null
            Remove-Item Env:SC_ENTER_SCRIPT -ErrorAction SilentlyContinue
        }
    }
    It 'works in an interactive pwsh with PSReadLine: Tab, Ctrl-C, top, resize, exit code and the prompt back (tmux)' {
        $root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
        $session = Start-TmuxPwsh $daemon -Width 100
        try {
            Send-TmuxLine $session "Import-Module '$root/SystemContainers.psd1'; 'readline=' + (Get-Module PSReadLine).Name"
            Wait-TmuxScreen $session 'the module' '(?m)^readline=PSReadLine' 60
            # The next line only once clear has ended and the prompt is back (see Send-TmuxLine).
            Send-TmuxLine $session 'clear'
            Wait-TmuxScreen $session 'the prompt on a cleared screen' '^\s*PS [^\n]*> ?\s*$' 30
            Send-TmuxLine $session 'Enter-SystemContainer run1'
            Wait-TmuxScreen $session 'the container shell' '(?m)^\S* #\s*$' 60

            # Tab completes inside the container: each key goes through as it is typed.
            Send-TmuxLine $session 'mkdir -p /tmp/tabdir && touch /tmp/tabdir/completed-by-tab'
            tmux send-keys -t $session -l 'ls /tmp/tabdir/comp'
            tmux send-keys -t $session Tab
            Wait-TmuxScreen $session 'the completion' 'ls /tmp/tabdir/completed-by-tab' 30
            tmux send-keys -t $session Enter
            Wait-TmuxScreen $session 'ls of the completed name' '(?m)^/tmp/tabdir/completed-by-tab\s*$' 30
            # Echoed once, by the container's shell, not also by the local terminal.
            ([regex]::Matches((Get-TmuxScreen $session), 'mkdir -p /tmp/tabdir')).Count | Should -Be 1

            # Ctrl-C interrupts the container's foreground process, not pwsh.
            Send-TmuxLine $session 'sleep 300'
            Start-Sleep -Milliseconds 500
            tmux send-keys -t $session C-c
            Send-TmuxLine $session 'echo "after-$?"'
            Wait-TmuxScreen $session 'sleep to be interrupted' '(?m)^after-130' 30

            # A full-screen program takes single keys.
            Send-TmuxLine $session 'top'
            Wait-TmuxScreen $session 'top' '(?s)PID.*|Mem.*PID' 30
            tmux send-keys -t $session q
            Send-TmuxLine $session 'echo top-quit'
            Wait-TmuxScreen $session 'top to quit on q' '(?m)^top-quit' 30

            tmux resize-window -t $session -x 120 -y 40
            Start-Sleep -Milliseconds 700
            Send-TmuxLine $session 'stty size'
            Wait-TmuxScreen $session 'the new size inside' '(?m)^40 120' 30

            Send-TmuxLine $session 'exit 3'
            Wait-TmuxPrompt $session 'exit' 20
            Send-TmuxLine $session '"code=$LASTEXITCODE"'
            Wait-TmuxScreen $session '$LASTEXITCODE' '(?m)^code=3' 30
            Wait-TmuxPrompt $session '$LASTEXITCODE'
            # The prompt reads keys again: PSReadLine edits the line (Ctrl-U clears it) and runs it.
            tmux send-keys -t $session -l 'junk'
            tmux send-keys -t $session C-u
            Send-TmuxLine $session '"prompt-" + "works"'
            Wait-TmuxScreen $session 'pwsh to take input again' '(?m)^prompt-works' 30
            (Get-TmuxScreen $session) | Should -Not -Match 'junk'
        }
        finally {
            tmux kill-session -t $session 2>$null
        }
    }
    It 'Ctrl-C on Invoke-SystemContainerCommand in an interactive pwsh ends the command in the container (tmux)' {
        $root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
        $session = Start-TmuxPwsh $daemon -Width 120
        try {
            Send-TmuxLine $session "Import-Module '$root/SystemContainers.psd1'; Invoke-SystemContainerCommand run1 -- sh -c 'echo `$`$ > /tmp/ctrlc.pid; echo started; exec sleep 300'"
            Wait-TmuxScreen $session 'the command to start' '(?m)^started' 30
            $inner = Invoke-SystemContainerCommand run1 -- cat /tmp/ctrlc.pid
            tmux send-keys -t $session C-c
            Wait-TmuxPrompt $session 'Ctrl-C' 20
            Send-TmuxLine $session '"back-" + "at-prompt"'
            Wait-TmuxScreen $session 'the prompt after Ctrl-C' '(?m)^back-at-prompt' 20
            Wait-Until -TimeoutSeconds 15 -What 'the command to end in the container' {
                (Invoke-SystemContainerCommand run1 -- sh -c "kill -0 $inner 2>/dev/null && echo alive || echo gone") -eq 'gone'
            }
            Wait-Until -TimeoutSeconds 15 -What 'the operation to end' {
                @((Invoke-TestApi $daemon GET '/1.0/operations').Body.metadata | Where-Object { $_.status -eq 'Running' -and $_.description -like '*command in run1' }).Count -eq 0
            }
        }
        finally {
            tmux kill-session -t $session 2>$null
        }
    }
    It 'reports a stopped container' {
        New-SystemContainer parked -Image busybox | Out-Null
        Enter-SystemContainer parked -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'NotRunning,*'
    }
}
