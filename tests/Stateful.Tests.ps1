BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:stateful = @{ 'migration.stateful' = 'true' }

    # The device of the devpts a terminal belongs to, from the host: a container's own devpts has its own.
    function Get-PtsDevice([string]$Path) { stat -L -c '%d' $Path }
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
