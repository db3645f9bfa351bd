# Rename-SystemContainer: a stopped container takes a new name with its config, devices, snapshots,
# MAC and address; a refused rename leaves it as it was; a daemon killed mid-rename finishes it.
# btrfs runs on a loop file the pool makes; AfterAll unmounts and detaches it even when tests fail.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage

    function Get-StateDir([string]$Name) { Join-Path $daemon.StateDir "containers/$Name" }
    function Get-PoolsDir { Join-Path $daemon.StateDir 'storage-pools' }
    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    function Wait-IPv4([string]$Name) {
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        (Wait-SystemContainer $Name -For IPv4 -Timeout (20 * $scale) -PassThru -ErrorAction Stop).IPv4[0]
    }
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'Renaming a stopped container with a NIC on the default network' {
    It 'keeps its config, devices, MAC and address; its hostname is the new name' {
        $plug = Join-Path $daemon.Dir 'plug'
        New-Item -ItemType Directory $plug -Force | Out-Null
        New-SystemContainer web1 -Image $image -Config @{ 'limits.memory' = '128MiB'; 'user.note' = 'kept' } -Start | Out-Null
        Add-SystemContainerDevice web1 data disk -Properties @{ source = $plug; path = '/srv/data' }
        $address = Wait-IPv4 web1
        Invoke-In web1 'echo mine > /owned'
        Stop-SystemContainer web1 -Force
        $before = Get-SystemContainer web1

        $r = Rename-SystemContainer web1 web2 -PassThru
        $r.Name | Should -Be 'web2'
        $r.Status | Should -Be 'Stopped'
        @(Get-SystemContainer | ForEach-Object Name) | Should -Be @('web2')
        Get-SystemContainer web1 -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
        $after = Get-SystemContainer web2
        ($after.Config | ConvertTo-Json -Compress) | Should -Be ($before.Config | ConvertTo-Json -Compress)
        $after.Config['nic.eth0.hwaddr'] | Should -Not -BeNullOrEmpty
        $after.Config['disk.data.source'] | Should -Be $plug
        (Get-SystemContainerDevice web2 | Where-Object Device -eq 'data').Properties['path'] | Should -Be '/srv/data'
        Test-Path (Get-StateDir web1) | Should -BeFalse
        Test-Path (Join-Path $daemon.RunDir 'containers/web1') | Should -BeFalse
        Test-Path (Join-Path (Get-StateDir web2) 'renaming') | Should -BeFalse

        Start-SystemContainer web2
        Invoke-In web2 'hostname' | Should -Be 'web2'
        Invoke-In web2 'cat /owned' | Should -Be 'mine'
        Invoke-In web2 'cat /sys/class/net/eth0/address' | Should -Be $before.Config['nic.eth0.hwaddr']
        Wait-IPv4 web2 | Should -Be $address
        (Get-SystemContainerNetworkLease $after.Config['nic.eth0.network'] | Where-Object Address -eq $address).Hostname | Should -Be 'web2'
        Remove-SystemContainer web2 -Force
    }
}

Describe 'Renaming a container on a btrfs pool' {
    BeforeAll {
        New-SystemContainerStoragePool prename -Driver btrfs -Size 300MiB | Out-Null
        $script:pool = Join-Path (Get-PoolsDir) 'prename'
    }
    AfterAll {
        Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerStoragePool prename -Force -ErrorAction SilentlyContinue
    }
    It 'moves the volume and its snapshots, which list and restore under the new name' {
        New-SystemContainer snapa -Image $image -Network none -StoragePool prename -Start | Out-Null
        Invoke-In snapa 'echo before > /before'
        Checkpoint-SystemContainer snapa -SnapshotName keep
        Invoke-In snapa 'echo after > /after'
        Stop-SystemContainer snapa -Force

        Rename-SystemContainer snapa snapb
        (Get-SystemContainer snapb).StoragePool | Should -Be 'prename'
        (Get-SystemContainerSnapshot snapb).SnapshotName | Should -Be @('keep')
        @(Get-ChildItem -Force (Join-Path $pool 'containers')).Name | Should -Be @('snapb')
        @(Get-ChildItem -Force (Join-Path $pool 'containers-snapshots')).Name | Should -Be @('snapb')
        (Get-SystemContainerStoragePool prename).UsedBy | Should -Be @('snapb')

        Restore-SystemContainerSnapshot snapb keep -Force
        Start-SystemContainer snapb
        Invoke-In snapb 'cat /before' | Should -Be 'before'
        Invoke-In snapb 'test -e /after && echo there || echo absent' | Should -Be 'absent'
        Invoke-In snapb 'hostname' | Should -Be 'snapb'
        Remove-SystemContainer snapb -Force
        @(Get-ChildItem -Force (Join-Path $pool 'containers')) | Should -BeNullOrEmpty
    }
    It 'puts everything back when a step fails: here a volume no container owns has the new name' {
        New-SystemContainer vola -Image $image -Network none -StoragePool prename | Out-Null
        Checkpoint-SystemContainer vola -SnapshotName s0
        New-Item -ItemType Directory (Join-Path $pool 'containers/volb') | Out-Null
        Rename-SystemContainer vola volb -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'VolumeExists,*'
        @(Get-SystemContainer | ForEach-Object Name) | Should -Be @('vola')
        Test-Path (Join-Path (Get-StateDir vola) 'config.json') | Should -BeTrue
        Test-Path (Join-Path (Get-StateDir vola) 'renaming') | Should -BeFalse
        Test-Path (Get-StateDir volb) | Should -BeFalse
        (Get-SystemContainerSnapshot vola).SnapshotName | Should -Be @('s0')
        Remove-Item (Join-Path $pool 'containers/volb')
        Start-SystemContainer vola
        Invoke-In vola 'hostname' | Should -Be 'vola'
        Remove-SystemContainer vola -Force
    }
}

Describe 'A refused rename' {
    BeforeAll {
        New-SystemContainer keep1 -Image $image -Network none | Out-Null
        New-SystemContainer other1 -Image $image -Network none | Out-Null
    }
    AfterAll {
        Remove-SystemContainer keep1, other1 -Force -ErrorAction SilentlyContinue
    }
    It 'refuses <What> with <Id>, and leaves the container as it was' -ForEach @(
        @{ What = 'a running container'; NewName = 'fresh1'; Id = 'ContainerRunning'; Running = $true }
        @{ What = 'a taken name'; NewName = 'other1'; Id = 'ContainerExists'; Running = $false }
        @{ What = 'a bad name'; NewName = 'bad_name!'; Id = 'InvalidName'; Running = $false }
    ) {
        if ($Running) { Start-SystemContainer keep1 }
        $before = Get-SystemContainer keep1
        Rename-SystemContainer keep1 $NewName -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        if ($Running) { $e[0].Exception.Message | Should -Match 'stop it first' }
        $after = Get-SystemContainer keep1
        $after.Status | Should -Be $before.Status
        $after.Id | Should -Be $before.Id
        Test-Path (Join-Path (Get-StateDir keep1) 'config.json') | Should -BeTrue
        Test-Path (Join-Path (Get-StateDir keep1) 'renaming') | Should -BeFalse
        if ($NewName -ne 'other1') { Test-Path (Get-StateDir $NewName) | Should -BeFalse }
        (Get-SystemContainer other1).Status | Should -Be 'Stopped'
        if ($Running) { Stop-SystemContainer keep1 -Force }
    }
    It 'says a missing container is not found' {
        Rename-SystemContainer nosuch fresh2 -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
        Test-Path (Get-StateDir fresh2) | Should -BeFalse
        Test-Path (Get-StateDir keep1) | Should -BeTrue
    }
    It 'changes nothing with -WhatIf' {
        Rename-SystemContainer keep1 fresh3 -WhatIf
        (Get-SystemContainer keep1).Name | Should -Be 'keep1'
        Test-Path (Get-StateDir fresh3) | Should -BeFalse
    }
}

Describe 'A daemon killed during a rename' {
    It 'finishes the rename killed at <Point> when it starts again' -ForEach @(
        @{ Point = 'rename-volume-moved' }
        @{ Point = 'rename-moved' }
    ) {
        if (-not (Get-SystemContainerStoragePool pcrash -ErrorAction SilentlyContinue)) {
            New-SystemContainerStoragePool pcrash -Driver btrfs -Size 300MiB | Out-Null
        }
        New-SystemContainer crash1 -Image $image -Network none -StoragePool pcrash -Start | Out-Null
        Invoke-In crash1 'echo survived > /mark'
        Checkpoint-SystemContainer crash1 -SnapshotName s1
        Stop-SystemContainer crash1 -Force

        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $Point
        try { Start-DaemonProcess $daemon }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Rename-SystemContainer crash1 crash2 -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What "the daemon to die at $Point"
        Get-Content -Raw $daemon.Log | Should -Match "test hook: SIGKILL at $Point"
        $daemon.Pid = 0
        Start-DaemonProcess $daemon

        @(Get-SystemContainer | ForEach-Object Name) | Should -Be @('crash2')
        (Get-SystemContainer crash2).Status | Should -Be 'Stopped'
        Test-Path (Get-StateDir crash1) | Should -BeFalse
        Test-Path (Join-Path (Get-StateDir crash2) 'renaming') | Should -BeFalse
        (Get-SystemContainerSnapshot crash2).SnapshotName | Should -Be @('s1')
        Start-SystemContainer crash2
        Invoke-In crash2 'cat /mark' | Should -Be 'survived'
        Invoke-In crash2 'hostname' | Should -Be 'crash2'
        Remove-SystemContainer crash2 -Force
    }
}
