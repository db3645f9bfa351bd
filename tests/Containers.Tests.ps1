BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    function Get-ContainerDirs { @(Get-ChildItem (Join-Path $daemon.StateDir 'containers') -Force | ForEach-Object Name) }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'New-SystemContainer and Get-SystemContainer' {
    It 'creates a stopped container as a typed object' {
        $c = New-SystemContainer life1 -Image $image
        $c | Should -BeOfType ([SystemContainers.Api.SystemContainer])
        $c.Status | Should -Be 'Stopped'
        $c.Image | Should -Be 'busybox'
        $c.InitKind | Should -Be 'busybox'
        Test-Path (Join-Path $daemon.StateDir 'containers/life1/config.json') | Should -BeTrue
    }
    It 'starts it with -Start, and the init runs on the host' {
        $c = New-SystemContainer life2 -Image $image -Start
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -BeGreaterThan 0
        (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init'
    }
    It 'creates nothing with -WhatIf' {
        New-SystemContainer ghost -Image $image -WhatIf
        Get-SystemContainer ghost -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-ContainerDirs | Should -Not -Contain 'ghost'
    }
    It 'gets by wildcard and by piped name, and reports a missing literal name' {
        @(Get-SystemContainer life*).Name | Should -Be @('life1', 'life2')
        @('life1' | Get-SystemContainer).Name | Should -Be 'life1'
        Get-SystemContainer nosuch -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}

Describe 'Start, Stop, Restart and Remove' {
    It 'starts and stops with -PassThru, recording how init ended' {
        $started = Start-SystemContainer life1 -PassThru
        $started.Status | Should -Be 'Running'
        $stopped = Stop-SystemContainer life1 -Timeout 20 -PassThru
        $stopped.Status | Should -Be 'Stopped'
        $stopped.StoppedAt | Should -Not -BeNullOrEmpty
        Test-Path "/proc/$($started.Pid)" | Should -BeFalse
    }
    It 'kills at once with -Force' {
        Start-SystemContainer life1
        (Stop-SystemContainer life1 -Force -PassThru).LastExitSignal | Should -Be 9
    }
    It 'restarts with a new init' {
        $before = (Get-SystemContainer life2).Pid
        $after = Restart-SystemContainer life2 -Force -PassThru
        $after.Status | Should -Be 'Running'
        $after.Pid | Should -Not -Be $before
    }
    It 'stops every container a wildcard pipeline names' {
        New-SystemContainer pipe-a -Image $image -Start | Out-Null
        New-SystemContainer pipe-b -Image $image -Start | Out-Null
        Get-SystemContainer pipe-* | Stop-SystemContainer -Force
        (Get-SystemContainer pipe-*).Status | Should -Be @('Stopped', 'Stopped')
        Start-SystemContainer pipe-*
        (Get-SystemContainer pipe-*).Status | Should -Be @('Running', 'Running')
        Remove-SystemContainer pipe-* -Force -Confirm:$false
        Get-SystemContainer pipe-* | Should -BeNullOrEmpty
    }
    It 'refuses to remove a running container without -Force, and keeps it' {
        Remove-SystemContainer life2 -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerRunning,*'
        (Get-SystemContainer life2).Status | Should -Be 'Running'
    }
    It 'removes with -Force and leaves no state behind' {
        $pid2 = (Get-SystemContainer life2).Pid
        Remove-SystemContainer life2 -Force -Confirm:$false
        Remove-SystemContainer life1 -Confirm:$false
        Get-SystemContainer life* | Should -BeNullOrEmpty
        Get-ContainerDirs | Should -BeNullOrEmpty
        Test-Path "/proc/$pid2" | Should -BeFalse
        Test-Path (Join-Path $daemon.RunDir 'containers/life2') | Should -BeFalse
    }
}

Describe 'Bad input gets a clear error and leaves nothing behind' {
    BeforeAll { $script:keeper = New-SystemContainer keeper -Image $image -Start }

    It 'refuses the name <name>' -ForEach @(
        @{ name = 'a/b' }, @{ name = '..' }, @{ name = 'has space' }, @{ name = ('x' * 64) }, @{ name = '-x' }
    ) {
        $before = Get-ContainerDirs
        New-SystemContainer $name -Image $image -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidName,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        Get-ContainerDirs | Should -Be $before
    }
    It 'refuses a duplicate name and leaves the original running' {
        New-SystemContainer keeper -Image $image -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerExists,*'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        (Get-SystemContainer keeper).Pid | Should -Be $keeper.Pid
    }
    It 'refuses an unknown image' {
        New-SystemContainer noimg -Image does-not-exist -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImageNotFound,*'
        $err[0].Exception.Message | Should -Match "image 'does-not-exist' not found"
        Get-ContainerDirs | Should -Not -Contain 'noimg'
    }
    It 'refuses an unknown config key and a bad value' {
        New-SystemContainer badcfg -Image $image -Config @{ 'limits.bogus' = 1 } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'UnknownConfigKey,*'
        $err[0].Exception.Message | Should -Match 'limits.bogus'
        New-SystemContainer badcfg -Image $image -Config @{ 'boot.stop.timeout' = 'soon' } -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        Get-ContainerDirs | Should -Not -Contain 'badcfg'
    }
    It 'starts a running container without an error or a change, as Start-VM does; the REST API still says AlreadyRunning' {
        $again = Start-SystemContainer keeper -PassThru -ErrorVariable err -Verbose 4>&1
        $err | Should -BeNullOrEmpty
        @($again | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n" | Should -Match "container 'keeper' is already running: nothing to do"
        ($again | Where-Object { $_ -is [SystemContainers.Api.SystemContainer] }).Pid | Should -Be $keeper.Pid
        (Get-SystemContainer keeper).Pid | Should -Be $keeper.Pid
        $r = Invoke-TestApi $daemon PUT '/1.0/containers/keeper/state?wait=30' '{"action":"start"}'
        $r.Body.metadata.status | Should -Be 'Failure'
        $r.Body.metadata.status_code | Should -Be 409
        $r.Body.metadata.err_id | Should -Be 'AlreadyRunning'
    }
    It 'refuses to exec into a stopped container; stopping it again is no error' {
        New-SystemContainer idle -Image $image | Out-Null
        Invoke-SystemContainerCommand idle true -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'NotRunning,*'
        $err[0].Exception.Message | Should -Match "container 'idle' is not running"
        $stopped = Stop-SystemContainer idle -PassThru -ErrorVariable err2
        $err2 | Should -BeNullOrEmpty
        $stopped.Status | Should -Be 'Stopped'
        Suspend-SystemContainer keeper
        Suspend-SystemContainer keeper -ErrorVariable err3
        Resume-SystemContainer keeper
        Resume-SystemContainer keeper -ErrorVariable err4
        @($err3) + @($err4) | Should -BeNullOrEmpty
        (Get-SystemContainer keeper).Status | Should -Be 'Running'
    }
    It 'restarts a stopped container by starting it, as Restart-Service does' {
        $c = Restart-SystemContainer idle -PassThru
        $c.Status | Should -Be 'Running'
        (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init'
        Stop-SystemContainer idle -Force
    }
    It 'asks before removing, in an interactive pwsh: No keeps the container, Yes removes it (tmux)' {
        New-SystemContainer keepme -Image busybox | Out-Null
        $root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
        $session = Start-TmuxPwsh $daemon -Width 150
        try {
            Send-TmuxLine $session "Import-Module '$root/SystemContainers.psd1'; Remove-SystemContainer keepme"
            # Answered only once the choice line ends the screen: pwsh reads the answer right after writing it.
            Wait-TmuxScreen $session 'the confirmation prompt' '(?s)Are you sure you want to perform this action\?.*\(default is "Y"\):\s*$' 60
            (Get-TmuxScreen $session) | Should -Match 'on target "keepme"'
            Send-TmuxLine $session 'n'
            Wait-TmuxPrompt $session 'the answer No' 60
            Send-TmuxLine $session '"after-" + "no"'
            Wait-TmuxScreen $session 'the answer No' '(?m)^after-no' 60
            Get-SystemContainer keepme | Should -Not -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/keepme') | Should -BeTrue
            Send-TmuxLine $session 'clear; Remove-SystemContainer keepme'
            Wait-TmuxScreen $session 'the confirmation prompt again' '(?s)Are you sure you want to perform this action\?.*\(default is "Y"\):\s*$' 60
            Send-TmuxLine $session 'y'
            Wait-TmuxPrompt $session 'the answer Yes' 60
            Send-TmuxLine $session '"after-" + "yes"'
            Wait-TmuxScreen $session 'the answer Yes' '(?m)^after-yes' 60
            Get-SystemContainer keepme -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/keepme') | Should -BeFalse
        }
        finally {
            tmux kill-session -t $session 2>$null
            Remove-SystemContainer keepme -Force -ErrorAction SilentlyContinue
        }
    }
    It '-Force answers the confirmation, but -WhatIf still only tells' {
        New-SystemContainer forced -Image busybox | Out-Null
        Remove-SystemContainer forced -Force -WhatIf
        Get-SystemContainer forced | Should -Not -BeNullOrEmpty
        Remove-SystemContainer forced -Force
        Get-SystemContainer forced -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'reports a missing container on every action' {
        foreach ($cmd in 'Start-SystemContainer', 'Stop-SystemContainer', 'Restart-SystemContainer', 'Remove-SystemContainer') {
            & $cmd nosuch -ErrorVariable err -ErrorAction SilentlyContinue -Confirm:$false
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
        }
    }
}
