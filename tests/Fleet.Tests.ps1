# Fleets: many containers made, changed and removed at once, in bulk requests the daemon runs a
# bounded number at a time, each container answered on its own.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon -ExtraArguments @('--default-network', 'none')
    $script:image = Get-TestImage
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Fleets: many containers changed in parallel' {
    BeforeAll { $script:fleet = 1..10 | ForEach-Object { "fl$_" } }
    AfterAll { Remove-SystemContainer fl* -Force -ErrorAction SilentlyContinue }
    It 'starts, stops and removes many at once, writing results in the order of the names' {
        foreach ($n in $fleet) { New-SystemContainer $n -Image $image | Out-Null }
        $started = Start-SystemContainer $fleet -ThrottleLimit 4 -PassThru
        $started.Name | Should -Be $fleet
        foreach ($c in $started) {
            $c.Status | Should -Be 'Running'
            (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init'
        }
        # One bulk request for all ten: one operation naming every container, none of one's own.
        $ops = @((Invoke-TestApi $daemon GET '/1.0/operations').Body.metadata)
        @($ops | Where-Object { $_.description -like 'start container fl*' }).Count | Should -Be 0
        $bulk = @($ops | Where-Object { $_.description -eq 'start 10 containers' })
        $bulk.Count | Should -Be 1
        @($bulk[0].resources.containers | Sort-Object) | Should -Be @($fleet | ForEach-Object { "/1.0/containers/$_" } | Sort-Object)
        Stop-SystemContainer fl* -Force -ThrottleLimit 3
        (Get-SystemContainer fl*).Status | Sort-Object -Unique | Should -Be 'Stopped'
        Remove-SystemContainer fl* -Force -ThrottleLimit 5
        Get-SystemContainer fl* | Should -BeNullOrEmpty
        foreach ($n in $fleet) { Test-Path (Join-Path $daemon.StateDir "containers/$n") | Should -BeFalse }
    }
    It 'makes a numbered fleet with -Count, started, and refuses a name without one %d' {
        New-SystemContainer nc3 -Image $image | Out-Null
        $made = New-SystemContainer nc%d -Image $image -Count 5 -Start -ErrorVariable err -ErrorAction SilentlyContinue
        $made.Name | Should -Be @('nc1', 'nc2', 'nc4', 'nc5')
        foreach ($c in $made) { (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init' }
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerExists,*'
        $err[0].TargetObject | Should -Be 'nc3'
        (Get-SystemContainer nc3).Status | Should -Be 'Stopped' -Because 'the container that existed is left as it was'
        { New-SystemContainer nc -Image $image -Count 2 } | Should -Throw '*needs one %d*'
        { New-SystemContainer nc%d-%d -Image $image -Count 2 } | Should -Throw '*needs one %d*'
        { New-SystemContainer nc%d -Image $image } | Should -Throw '*only -Count fills in*'
        @(Get-SystemContainer nc*).Count | Should -Be 5
        Remove-SystemContainer nc* -Force
    }
    It 'reports each failure about its own container and carries on with the rest' {
        foreach ($n in 'fl1', 'fl2', 'fl3') { New-SystemContainer $n -Image $image | Out-Null }
        # fl2 cannot start: an overlay whiteout in its upper layer hides /sbin/init.
        $upper = Join-Path $daemon.StateDir 'containers/fl2/fs/upper'
        New-Item -ItemType Directory (Join-Path $upper 'sbin') -Force | Out-Null
        mknod (Join-Path $upper 'sbin/init') c 0 0
        $r = Start-SystemContainer fl1, fl2, fl3 -PassThru -ErrorVariable err -ErrorAction SilentlyContinue
        $r.Name | Should -Be @('fl1', 'fl3')
        @($err).Count | Should -Be 1
        $err[0].TargetObject | Should -Be 'fl2'
        $err[0].Exception.Message | Should -Match 'init'
        (Get-SystemContainer fl2).Status | Should -Be 'Stopped'
    }
    It 'batches a pipeline of objects, changes nothing with -WhatIf, and reports a missing name in the batch' {
        foreach ($n in 'fp1', 'fp2', 'fp3') { New-SystemContainer $n -Image $image | Out-Null }
        Get-SystemContainer fp* | Start-SystemContainer -WhatIf
        (Get-SystemContainer fp*).Status | Sort-Object -Unique | Should -Be 'Stopped'
        $r = Get-SystemContainer fp* | Start-SystemContainer -PassThru
        $r.Name | Should -Be @('fp1', 'fp2', 'fp3')
        foreach ($c in $r) { (Get-Content "/proc/$($c.Pid)/comm") | Should -Be 'init' }
        # Already running is no error; a name gone is an error about that name only.
        $r = Start-SystemContainer -Name fp1, fp2 -PassThru
        $r.Status | Should -Be @('Running', 'Running')
        $answer = Invoke-TestApi $daemon PUT '/1.0/containers/state?wait=30' '{"names":["fp1","nosuch"],"action":"stop","force":true}'
        $result = @($answer.Body.metadata.metadata.result)
        $result.name | Should -Be @('fp1', 'nosuch')
        $result[0].container.status | Should -Be 'Stopped'
        $result[1].error_code | Should -Be 404
        (Get-SystemContainer fp2).Status | Should -Be 'Running'
        Get-SystemContainer fp* | Remove-SystemContainer -Force -WhatIf
        @(Get-SystemContainer fp*).Count | Should -Be 3
        Get-SystemContainer fp* | Remove-SystemContainer -Force
        Get-SystemContainer fp* | Should -BeNullOrEmpty
        foreach ($n in 'fp1', 'fp2', 'fp3') { Test-Path (Join-Path $daemon.StateDir "containers/$n") | Should -BeFalse }
        $none = Invoke-TestApi $daemon DELETE '/1.0/containers' '{"names":[]}'
        $none.Status | Should -Be 400
        $twice = Invoke-TestApi $daemon DELETE '/1.0/containers' '{"names":["a","a"]}'
        $twice.Status | Should -Be 400
    }
}
