# Publish-SystemContainer: a stopped container, or a snapshot of one, becomes an image that
# launches with the files written in the source, owned as they were inside, on overlay (the upper
# layer over its image, read through a detached read-only overlay), dir and btrfs (the volume itself);
# refused publishes leave no image and no scratch files. btrfs runs on a loop file the pool makes.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage

    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    # No image but the ones there before, no scratch directory, no mount left of a publish.
    function Assert-NoPublishLeft([string[]]$Images) {
        @(Get-SystemContainerImage | ForEach-Object Fingerprint | Sort-Object) | Should -Be @($Images | Sort-Object)
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'images') -Filter '.*') | Should -BeNullOrEmpty
        Get-MountsUnder (Join-Path $daemon.StateDir 'images') | Should -BeNullOrEmpty
    }
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'Publishing a container on a <Driver> pool' -ForEach @(
    @{ Driver = 'overlay'; Pool = 'default' }
    @{ Driver = 'dir'; Pool = 'pubdir' }
    @{ Driver = 'btrfs'; Pool = 'pubbtrfs' }
) {
    BeforeAll {
        if ($Driver -eq 'dir') { New-SystemContainerStoragePool $Pool -Driver dir | Out-Null }
        if ($Driver -eq 'btrfs') { New-SystemContainerStoragePool $Pool -Driver btrfs -Size 300MiB | Out-Null }
        $script:src = "pub-$Driver"
        New-SystemContainer $src -Image $image -Network none -StoragePool $Pool -Start | Out-Null
        Invoke-In $src 'echo published > /published; chown 1000:1001 /published; chmod 4750 /published; rm /bin/ls; mkdir -p /srv/data; echo deep > /srv/data/f'
    }
    AfterAll {
        Get-SystemContainer | Where-Object Name -like "from-$Driver*" | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
        Remove-SystemContainer $src -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerImage "pub-$Driver", "pub-$Driver-s1" -Force -ErrorAction SilentlyContinue
        if ($Pool -ne 'default') { Remove-SystemContainerStoragePool $Pool -Force -ErrorAction SilentlyContinue }
    }
    It 'refuses a running container, and publishes no image' {
        $before = @(Get-SystemContainerImage | ForEach-Object Fingerprint)
        Publish-SystemContainer $src -Alias "pub-$Driver" -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ContainerRunning,*'
        Assert-NoPublishLeft $before
    }
    It 'publishes a stopped container as an image that launches with its files, owners and modes' {
        Stop-SystemContainer $src -Force
        $i = Publish-SystemContainer $src -Alias "pub-$Driver"
        $i.Aliases | Should -Be @("pub-$Driver")
        $i.Fingerprint | Should -Match '^[0-9a-f]{64}$'
        $i.Description | Should -Be "published from container $src"
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'images') -Filter '.*') | Should -BeNullOrEmpty
        Get-MountsUnder (Join-Path $daemon.StateDir 'images') | Should -BeNullOrEmpty
        New-SystemContainer "from-$Driver" -Image "pub-$Driver" -Network none -Start | Out-Null
        Invoke-In "from-$Driver" 'cat /published /srv/data/f; stat -c "%u:%g %a" /published /bin/busybox' | Should -Be @('published', 'deep', '1000:1001 4750', '0:0 755')
        Invoke-In "from-$Driver" 'test -e /bin/ls && echo there || echo absent' | Should -Be 'absent'
        (Get-SystemContainer "from-$Driver").ImageFingerprint | Should -Be $i.Fingerprint
    }
    It 'publishes a snapshot of a running container, as it was at the snapshot' {
        Start-SystemContainer $src
        Invoke-In $src 'echo at-s1 > /at-s1'
        Checkpoint-SystemContainer $src -SnapshotName s1
        Invoke-In $src 'echo later > /later'
        $i = Publish-SystemContainer $src -Snapshot s1 -Alias "pub-$Driver-s1" -Description 'at s1'
        $i.Description | Should -Be 'at s1'
        (Get-SystemContainer $src).Status | Should -Be 'Running'
        New-SystemContainer "from-$Driver-s1" -Image "pub-$Driver-s1" -Network none -Start | Out-Null
        Invoke-In "from-$Driver-s1" 'cat /published /at-s1; test -e /later && echo there || echo absent' | Should -Be @('published', 'at-s1', 'absent')
    }
}

Describe 'A refused publish' {
    BeforeAll {
        New-SystemContainer pubbad -Image $image -Network none | Out-Null
        $script:before = @(Get-SystemContainerImage | ForEach-Object Fingerprint)
        $script:taken = (Get-SystemContainerImage)[0].Aliases[0]
    }
    AfterAll { Remove-SystemContainer pubbad -Force -ErrorAction SilentlyContinue }
    It 'refuses <What> with <Id>, and leaves no image and no scratch files' -ForEach @(
        @{ What = 'a taken alias'; Name = 'pubbad'; Alias = $null; Extra = @{}; Id = 'AliasInUse' }
        @{ What = 'a bad alias'; Name = 'pubbad'; Alias = 'bad alias!'; Extra = @{}; Id = 'InvalidAlias' }
        @{ What = 'a missing container'; Name = 'nosuch'; Alias = 'fresh'; Extra = @{}; Id = 'ContainerNotFound' }
        @{ What = 'a missing snapshot'; Name = 'pubbad'; Alias = 'fresh'; Extra = @{ Snapshot = 'nosuch' }; Id = 'SnapshotNotFound' }
        @{ What = 'a bad snapshot name'; Name = 'pubbad'; Alias = 'fresh'; Extra = @{ Snapshot = '../x' }; Id = 'InvalidSnapshotName' }
    ) {
        $a = if ($Alias) { $Alias } else { $taken }
        Publish-SystemContainer $Name -Alias $a @Extra -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        Assert-NoPublishLeft $before
    }
    It 'answers the REST request without a container or an alias with 400' {
        (Invoke-TestApi $daemon POST '/1.0/images' '{"source":"container","alias":"x"}').Status | Should -Be 400
        (Invoke-TestApi $daemon POST '/1.0/images' '{"source":"container","container":"pubbad"}').Status | Should -Be 400
        Assert-NoPublishLeft $before
    }
    It 'changes nothing with -WhatIf' {
        Publish-SystemContainer pubbad -Alias fresh -WhatIf
        Assert-NoPublishLeft $before
    }
}

Describe 'A daemon killed during a publish' {
    It 'leaves no mount and no scratch files of an overlay publish killed while it reads the root through its detached overlay' {
        New-SystemContainer pubmount -Image $image -Network none | Out-Null
        $before = @(Get-SystemContainerImage | ForEach-Object Fingerprint)
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'overlay-send-mounted'
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Publish-SystemContainer pubmount -Alias pubmount -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die at overlay-send-mounted'
        Get-Content -Raw $daemon.Log | Should -Match 'test hook: SIGKILL at overlay-send-mounted'
        Get-MountsUnder $daemon.StateDir | Where-Object { $_ -notlike '*/storage-pools/*' } | Should -BeNullOrEmpty -Because 'the overlay was never attached, and went with the daemon'
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'images') -Filter '.publish-*') | Should -HaveCount 1 -Because 'the daemon died writing the tarball'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Assert-NoPublishLeft $before
        Start-SystemContainer pubmount
        Invoke-In pubmount 'echo ok' | Should -Be 'ok'
        Remove-SystemContainer pubmount -Force
    }
    It 'leaves no image and no scratch files of an overlay publish killed with its tarball written, and the alias can be used again' {
        New-SystemContainer pubkill -Image $image -Network none | Out-Null
        $before = @(Get-SystemContainerImage | ForEach-Object Fingerprint)
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'publish-written'
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Publish-SystemContainer pubkill -Alias pubkill -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die at publish-written'
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'images') -Filter '.publish-*') | Should -HaveCount 1 -Because 'the daemon died with the tarball written'
        Get-MountsUnder (Join-Path $daemon.StateDir 'images') | Should -BeNullOrEmpty
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Assert-NoPublishLeft $before
        (Publish-SystemContainer pubkill -Alias pubkill).Aliases | Should -Be @('pubkill')
        Remove-SystemContainer pubkill -Force
        Remove-SystemContainerImage pubkill -Force
    }
}
