# Storage pools: dir (a copy of the image per container) and btrfs (a snapshot of the image's
# read-only subvolume per container), each mounted idmapped as the container's root; the default
# pool keeps today's overlay layout. btrfs runs on a loop file this file makes, and on one a pool
# makes; AfterAll unmounts and detaches both even when tests fail.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:fingerprint = (Get-SystemContainerImage busybox).Fingerprint

    # A btrfs of the test's own, as an "existing btrfs directory" source.
    $script:btrfsFile = Join-Path $daemon.Dir 'own-btrfs.img'
    $script:btrfsDir = Join-Path $daemon.Dir 'own-btrfs'
    $script:loopDevice = $null
    truncate -s 1G $btrfsFile
    mkfs.btrfs -q $btrfsFile | Out-Null
    if ($LASTEXITCODE) { throw "cannot make a btrfs on $btrfsFile" }
    $script:loopDevice = losetup --find --show $btrfsFile
    if ($LASTEXITCODE) { throw "cannot attach $btrfsFile to a loop device" }
    New-Item -ItemType Directory $btrfsDir | Out-Null
    mount -t btrfs $loopDevice $btrfsDir
    if ($LASTEXITCODE) { throw "cannot mount $loopDevice on $btrfsDir" }

    function Get-PoolsDir { Join-Path $daemon.StateDir 'storage-pools' }
    # Where a pool keeps a container's volume: <root>/containers/<name>.
    function Get-VolumePath([string]$Pool, [string]$Name) {
        $p = Get-SystemContainerStoragePool $Pool
        $root = if ($p.Driver -eq 'dir' -or -not $p.Config.ContainsKey('size')) { $p.Source } else { Join-Path (Get-PoolsDir) $Pool }
        Join-Path $root "containers/$Name"
    }
    function Get-HostRootUid([int]$ProcessId) { [long](-split (Get-Content "/proc/$ProcessId/uid_map" | Select-Object -First 1))[1] }
    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    function Assert-PoolFilesGone([string]$Name) {
        Test-Path (Join-Path (Get-PoolsDir) "$Name.json") | Should -BeFalse
        Test-Path (Join-Path (Get-PoolsDir) $Name) | Should -BeFalse
    }
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'The default pool' {
    It 'is the overlay layout every container had, and cannot be removed' {
        $p = Get-SystemContainerStoragePool default
        $p.Driver | Should -Be 'overlay'
        $p.Source | Should -Be (Join-Path $daemon.StateDir 'containers')
        $p.FreeBytes | Should -BeGreaterThan 0
        $c = New-SystemContainer plain -Image $image -Network none
        $c.StoragePool | Should -Be 'default'
        Test-Path (Join-Path $daemon.StateDir 'containers/plain/fs/upper') | Should -BeTrue
        (Get-SystemContainerStoragePool default).UsedBy | Should -Contain 'plain'
        Remove-SystemContainerStoragePool default -Force -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'DefaultPool,*'
        Remove-SystemContainer plain -Force
    }
}

Describe 'A <Driver> pool' -ForEach @(
    @{ Driver = 'dir'; Pool = 'pdir'; OwnSource = $false }
    @{ Driver = 'btrfs'; Pool = 'pbtrfs'; OwnSource = $true }
) {
    BeforeAll {
        $script:source = if ($OwnSource) { $btrfsDir } else { $null }
    }
    It 'is made with its driver, source and space' {
        $p = New-SystemContainerStoragePool $Pool -Driver $Driver -Source $source -Description 'for tests'
        $p.Name | Should -Be $Pool
        $p.Driver | Should -Be $Driver
        $p.Description | Should -Be 'for tests'
        $p.UsedBy | Should -BeNullOrEmpty
        $p.FreeBytes | Should -BeGreaterThan 0
        $p.TotalBytes | Should -BeGreaterOrEqual $p.FreeBytes
        if ($OwnSource) { $p.Source | Should -Be $btrfsDir } else { $p.Source | Should -Be (Join-Path (Get-PoolsDir) $Pool) }
        Test-Path (Join-Path (Get-PoolsDir) "$Pool.json") | Should -BeTrue
        (Invoke-TestApi $daemon GET '/1.0/storage-pools').Body.metadata | Should -Contain "/1.0/storage-pools/$Pool"
        (Set-SystemContainerStoragePool $Pool -Description 'changed' -PassThru).Description | Should -Be 'changed'
    }
    It 'holds a container''s root: a write to / lands in its volume, not in the image, owned unshifted on disk and shifted through the mount' {
        $c = New-SystemContainer "$Pool-a" -Image $image -Network none -StoragePool $Pool -Start
        $c.StoragePool | Should -Be $Pool
        Invoke-In "$Pool-a" 'id -u; id -g' | Should -Be @('0', '0')
        Invoke-In "$Pool-a" 'echo kept > /made-here && chown 1000:1000 /made-here && cat /made-here' | Should -Be 'kept'
        $volume = Get-VolumePath $Pool "$Pool-a"
        Get-Content (Join-Path $volume 'made-here') | Should -Be 'kept'
        Test-Path (Join-Path $daemon.StateDir "images/$fingerprint/rootfs/made-here") | Should -BeFalse
        Test-Path (Join-Path $daemon.StateDir "containers/$Pool-a/fs") | Should -BeFalse
        # The volume keeps the image's owners (idmapped, like the image lower of overlay); the
        # container's mount shows them as its own host ids.
        $hostRoot = Get-HostRootUid $c.Pid
        $hostRoot | Should -BeGreaterThan 0
        stat -c '%u:%g' (Join-Path $volume 'made-here') | Should -Be '1000:1000'
        stat -c '%u' (Join-Path $volume 'bin') | Should -Be '0'
        stat -c '%u:%g' "/proc/$($c.Pid)/root/made-here" | Should -Be "$($hostRoot + 1000):$($hostRoot + 1000)"
        stat -c '%u' "/proc/$($c.Pid)/root/bin" | Should -Be "$hostRoot"
        # No overlay: the root is the volume itself, idmapped.
        $root = Get-Content "/proc/$($c.Pid)/mountinfo" | Where-Object { ($_ -split ' ')[4] -eq '/' } | Select-Object -Last 1
        $root | Should -Match 'idmapped'
        $root | Should -Not -Match ' - overlay '
        if ($Driver -eq 'btrfs') {
            $root | Should -Match ' - btrfs '
            stat -c '%i' $volume | Should -Be '256'   # a subvolume's root inode
            btrfs property get -ts (Join-Path $source "images/$fingerprint") ro | Should -Be 'ro=true'
        }
    }
    It 'keeps the file over a restart' {
        Restart-SystemContainer "$Pool-a" -Force
        Invoke-In "$Pool-a" 'cat /made-here' | Should -Be 'kept'
    }
    It 'takes files in and out of its volume, stopped and running, owned as the container''s root inside' {
        Stop-SystemContainer "$Pool-a" -Force
        $local = Join-Path ([System.IO.Path]::GetTempPath()) "storage-files-$Pool"
        New-Item -ItemType Directory -Force $local | Out-Null
        try {
            Set-Content (Join-Path $local 'pushed') 'in the volume'
            Copy-SystemContainerFile "$Pool-a" -Path (Join-Path $local 'pushed') -Destination /pushed -ToContainer -ErrorAction Stop
            Copy-SystemContainerFile "$Pool-a" -Path /made-here -Destination (Join-Path $local 'pulled') -FromContainer
            Get-Content (Join-Path $local 'pulled') | Should -Be 'kept'
            Get-Content (Join-Path (Get-VolumePath $Pool "$Pool-a") 'pushed') | Should -Be 'in the volume'
            Start-SystemContainer "$Pool-a"
            Copy-SystemContainerFile "$Pool-a" -Path (Join-Path $local 'pushed') -Destination /pushed-running -ToContainer -ErrorAction Stop
        }
        finally { Remove-Item -Recurse -Force $local }
        Invoke-In "$Pool-a" 'cat /pushed; stat -c %u:%g /pushed /pushed-running' | Should -Be @('in the volume', '0:0', '0:0')
        stat -c '%u' "/proc/$((Get-SystemContainer "$Pool-a").Pid)/root/pushed-running" | Should -Be "$(Get-HostRootUid (Get-SystemContainer "$Pool-a").Pid)"
        Get-TestMounts $daemon | Where-Object { ($_ -split ' ')[4] -ne $btrfsDir } | Should -BeNullOrEmpty
    }
    It 'keeps a copy into or out of its stopped volume inside it, whatever links the container planted' {
        $local = Join-Path ([System.IO.Path]::GetTempPath()) "storage-hostile-$Pool"
        New-Item -ItemType Directory -Force $local | Out-Null
        $marker = Join-Path $local 'marker'
        Set-Content -NoNewline -Path $marker -Value 'host secret'
        Set-Content -NoNewline -Path (Join-Path $local 'payload') -Value 'pwned'
        try {
            Invoke-In "$Pool-a" 'mkdir -p /tmp && ln -s / /tmp/evil && ln -s ../../../../ /tmp/up && ln -s /proc/self/root /tmp/x'
            Stop-SystemContainer "$Pool-a" -Force
            foreach ($via in '/tmp/evil', '/tmp/up') {
                Copy-SystemContainerFile "$Pool-a" -Path (Join-Path $local 'payload') -Destination "$via/etc/passwd-pwned" -ToContainer -Force -ErrorAction Stop
                Copy-SystemContainerFile "$Pool-a" -Path "$via$marker" -Destination (Join-Path $local 'got') -FromContainer -ErrorAction SilentlyContinue
                Test-Path (Join-Path $local 'got') | Should -BeFalse
            }
            Copy-SystemContainerFile "$Pool-a" -Path /tmp/x/etc/hostname -Destination (Join-Path $local 'magic') -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
            # Stopped, the volume's /proc is an empty directory: the link leads nowhere, inside.
            ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -BeIn 'PathEscapes', 'FileNotFound'
            Test-Path (Join-Path $local 'magic') | Should -BeFalse
            Test-Path /etc/passwd-pwned | Should -BeFalse
            Get-Content -Raw $marker | Should -Be 'host secret'
            Get-Content (Join-Path (Get-VolumePath $Pool "$Pool-a") 'etc/passwd-pwned') | Should -Be 'pwned'
        }
        finally {
            Remove-Item -Recurse -Force $local
            Start-SystemContainer "$Pool-a" -ErrorAction SilentlyContinue
        }
        Invoke-In "$Pool-a" 'cat /etc/passwd-pwned; rm /etc/passwd-pwned /tmp/evil /tmp/up /tmp/x' | Should -Be 'pwned'
    }
    It 'gives a second container a volume of its own' {
        New-SystemContainer "$Pool-b" -Image $image -Network none -StoragePool $Pool -Start | Out-Null
        Invoke-In "$Pool-b" 'test -e /made-here && echo there || echo absent' | Should -Be 'absent'
        Invoke-In "$Pool-b" 'echo b > /only-b'
        Test-Path (Join-Path (Get-VolumePath $Pool "$Pool-b") 'only-b') | Should -BeTrue
        Test-Path (Join-Path (Get-VolumePath $Pool "$Pool-a") 'only-b') | Should -BeFalse
    }
    It 'counts its volumes in its usage' {
        $before = (Get-SystemContainerStoragePool $Pool).UsedBytes
        Invoke-In "$Pool-b" 'dd if=/dev/zero of=/two-mb bs=1024 count=2048 2>/dev/null'
        $p = Get-SystemContainerStoragePool $Pool
        $p.UsedBy | Sort-Object | Should -Be @("$Pool-a", "$Pool-b")
        $p.UsedBytes | Should -BeGreaterOrEqual ($before + 2MB)
        (Get-ContainerStats "$Pool-b").DiskUsage | Should -BeGreaterOrEqual 2MB
    }
    It 'refuses to be removed while a container uses it' {
        Remove-SystemContainerStoragePool $Pool -Force -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PoolInUse,*'
        "$($e[0])" | Should -Match "$Pool-a"
        Get-SystemContainerStoragePool $Pool | Should -Not -BeNullOrEmpty
    }
    It 'deletes a container''s volume with the container' {
        $a = Get-VolumePath $Pool "$Pool-a"
        $b = Get-VolumePath $Pool "$Pool-b"
        Remove-SystemContainer "$Pool-a", "$Pool-b" -Force
        Test-Path $a | Should -BeFalse
        Test-Path $b | Should -BeFalse
    }
    It 'is removed with its files' {
        Remove-SystemContainerStoragePool $Pool -Force
        Get-SystemContainerStoragePool $Pool -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PoolNotFound,*'
        Assert-PoolFilesGone $Pool
        if ($OwnSource) { @(Get-ChildItem -Force $btrfsDir) | Should -BeNullOrEmpty }
    }
}

Describe 'A btrfs pool on a loop file it makes' {
    It 'makes, mounts, uses and removes its loop file' {
        $p = New-SystemContainerStoragePool ploop -Driver btrfs -Size 1GiB
        $file = Join-Path $daemon.StateDir 'disks/ploop.img'
        $mount = Join-Path (Get-PoolsDir) 'ploop'
        $p.Source | Should -Be $file
        $p.Config['size'] | Should -Be "$(1GB)"
        (Get-Item $file).Length | Should -Be 1GB
        $p.TotalBytes | Should -BeGreaterThan 500MB
        $p.TotalBytes | Should -BeLessOrEqual 1GB
        Get-MountsUnder $daemon.StateDir | Should -Contain $mount
        @(losetup --associated $file) | Should -HaveCount 1
        New-SystemContainer loop-a -Image $image -Network none -StoragePool ploop -Start | Out-Null
        Invoke-In loop-a 'echo on-loop > /f; cat /f' | Should -Be 'on-loop'
        Get-Content (Join-Path $mount 'containers/loop-a/f') | Should -Be 'on-loop'
        Remove-SystemContainer loop-a -Force
        Remove-SystemContainerStoragePool ploop -Force
        Test-Path $file | Should -BeFalse
        Get-MountsUnder $daemon.StateDir | Should -Not -Contain $mount
        @(losetup --associated $file) | Should -HaveCount 0
        Assert-PoolFilesGone ploop
    }
    It 'is mounted again by a daemon that starts after it was unmounted' {
        New-SystemContainerStoragePool pagain -Driver btrfs -Size 300MiB | Out-Null
        $mount = Join-Path (Get-PoolsDir) 'pagain'
        Stop-DaemonProcess $daemon
        umount $mount
        Get-MountsUnder $daemon.StateDir | Should -Not -Contain $mount
        Start-DaemonProcess $daemon
        Get-MountsUnder $daemon.StateDir | Should -Contain $mount
        (Get-SystemContainerStoragePool pagain).Error | Should -BeNullOrEmpty
        Remove-SystemContainerStoragePool pagain -Force
        Assert-PoolFilesGone pagain
    }
}

Describe 'Snapshots on a <Driver> pool' -ForEach @(
    @{ Driver = 'btrfs'; Pool = 'psnap' }
    @{ Driver = 'dir'; Pool = 'psnapd' }
    @{ Driver = 'overlay'; Pool = 'default' }
) {
    BeforeAll {
        if ($Driver -eq 'btrfs') { New-SystemContainerStoragePool $Pool -Driver btrfs -Size 300MiB | Out-Null }
        if ($Driver -eq 'dir') { New-SystemContainerStoragePool $Pool -Driver dir | Out-Null }
        # Where the driver keeps snapc's snapshots, and the directory its volume (or upper layer) is in.
        $script:snapshots, $script:volumes = switch ($Driver) {
            'btrfs' { (Join-Path (Get-PoolsDir) "$Pool/containers-snapshots/snapc"), (Join-Path (Get-PoolsDir) "$Pool/containers") }
            'dir' { (Join-Path (Get-PoolsDir) "$Pool/containers-snapshots/snapc"), (Join-Path (Get-PoolsDir) "$Pool/containers") }
            'overlay' { (Join-Path $daemon.StateDir 'containers/snapc/snapshots'), (Join-Path $daemon.StateDir 'containers/snapc/fs') }
        }
        # A btrfs snapshot is the volume's subvolume itself; a tree snapshot holds its copy in tree/.
        $script:tree = if ($Driver -eq 'btrfs') { '' } else { 'tree' }
        $script:volumeNames = if ($Driver -eq 'overlay') { @('upper', 'work') } else { @('snapc') }
        # A snapshot keeps the same inode (btrfs: the same subvolume) when it is renamed.
        function Get-SnapshotIdentity([string]$Path) {
            if ($Driver -eq 'btrfs') { (btrfs subvolume show $Path | Select-String 'Subvolume ID').Line } else { stat -c %i $Path }
        }
        $c = New-SystemContainer snapc -Image $image -Network none -StoragePool $Pool -Start
        Invoke-In snapc 'echo before > /before; echo owned > /owned; chown 1000:1001 /owned; chmod 4750 /owned'
    }
    AfterAll {
        Remove-SystemContainer snapc -Force -ErrorAction SilentlyContinue
        if ($Pool -ne 'default') { Remove-SystemContainerStoragePool $Pool -Force -ErrorAction SilentlyContinue }
    }
    It 'takes a snapshot of a running container, read-only to it, and the container runs on' {
        $s = Checkpoint-SystemContainer snapc -PassThru
        $s.ContainerName | Should -Be 'snapc'
        $s.SnapshotName | Should -Be 'snap0'
        $path = Join-Path $snapshots 'snap0'
        if ($Driver -eq 'btrfs') { btrfs property get -ts $path ro | Should -Be 'ro=true' }
        else { (Get-Item $snapshots).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite, UserExecute') }
        Get-Content (Join-Path $path "$tree/before") | Should -Be 'before'
        @(Get-ChildItem -Force $snapshots).Name | Should -Be @('snap0')
        (Get-SystemContainer snapc).Status | Should -Be 'Running'
        Invoke-In snapc 'echo still-writable > /w; cat /w' | Should -Be 'still-writable'
    }
    It 'lists snapshots by name and wildcard, and says when one is missing' {
        Checkpoint-SystemContainer snapc -SnapshotName named
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'named')
        (Get-SystemContainerSnapshot snapc -SnapshotName sn*).SnapshotName | Should -Be 'snap0'
        Get-SystemContainerSnapshot snapc -SnapshotName nosuch -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound,*'
        (Invoke-TestApi $daemon GET '/1.0/containers/snapc/snapshots').Body.metadata | Should -Contain '/1.0/containers/snapc/snapshots/named'
    }
    It 'restores only a stopped container: a file written before the snapshot is back, one written after is gone' {
        Invoke-In snapc 'echo after > /after; rm /before; chmod 600 /owned'
        Restore-SystemContainerSnapshot snapc snap0 -Force -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ContainerRunning,*'
        Invoke-In snapc 'cat /after' | Should -Be 'after'
        Stop-SystemContainer snapc -Force
        Restore-SystemContainerSnapshot snapc snap0 -Force
        Start-SystemContainer snapc
        Invoke-In snapc 'cat /before' | Should -Be 'before'
        Invoke-In snapc 'test -e /after && echo there || echo absent' | Should -Be 'absent'
        Invoke-In snapc 'stat -c "%u:%g %a" /owned' | Should -Be '1000:1001 4750'
        Test-Path (Join-Path $snapshots 'snap0') | Should -BeTrue
        @(Get-ChildItem -Force $volumes).Name | Sort-Object | Should -Be $volumeNames
    }
    It 'refuses a bad or taken snapshot name and a missing snapshot' {
        Checkpoint-SystemContainer snapc -SnapshotName 'bad/name' -ErrorAction SilentlyContinue -ErrorVariable e1
        $e1[0].FullyQualifiedErrorId | Should -BeLike 'InvalidSnapshotName,*'
        Checkpoint-SystemContainer snapc -SnapshotName snap0 -ErrorAction SilentlyContinue -ErrorVariable e2
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotExists,*'
        Stop-SystemContainer snapc -Force
        Restore-SystemContainerSnapshot snapc nosuch -Force -ErrorAction SilentlyContinue -ErrorVariable e3
        $e3[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound,*'
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'named')
        @(Get-ChildItem -Force $snapshots).Name | Sort-Object | Should -Be @('named', 'snap0')
    }
    It 'renames a snapshot of a running container: the same snapshot under the new name' {
        Start-SystemContainer snapc
        $id = Get-SnapshotIdentity (Join-Path $snapshots 'named')
        $id | Should -Not -BeNullOrEmpty
        $created = (Get-SystemContainerSnapshot snapc -SnapshotName named).Created
        $r = Rename-SystemContainerSnapshot snapc named -NewName renamed -PassThru
        $r.SnapshotName | Should -Be 'renamed'
        $r.Created | Should -Be $created
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'renamed')
        Test-Path (Join-Path $snapshots 'named') | Should -BeFalse
        $path = Join-Path $snapshots 'renamed'
        Get-SnapshotIdentity $path | Should -Be $id
        if ($Driver -eq 'btrfs') { btrfs property get -ts $path ro | Should -Be 'ro=true' }
        Get-Content (Join-Path $path "$tree/before") | Should -Be 'before'
        (Get-SystemContainer snapc).Status | Should -Be 'Running'
        Get-SystemContainerSnapshot snapc -SnapshotName snap0 | Rename-SystemContainerSnapshot -NewName first
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('first', 'renamed')
        $api = Invoke-TestApi $daemon POST '/1.0/containers/snapc/snapshots/first' '{"name":"snap0"}'
        $api.Status | Should -Be 200
        $api.Body.metadata.snapshot_name | Should -Be 'snap0'
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'renamed')
    }
    It 'refuses a rename to a bad or taken name and of a missing snapshot, and changes nothing' {
        Rename-SystemContainerSnapshot snapc renamed -NewName 'bad/name' -ErrorAction SilentlyContinue -ErrorVariable e1
        $e1[0].FullyQualifiedErrorId | Should -BeLike 'InvalidSnapshotName,*'
        Rename-SystemContainerSnapshot snapc renamed -NewName '../../escape' -ErrorAction SilentlyContinue -ErrorVariable e2
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'InvalidSnapshotName,*'
        Rename-SystemContainerSnapshot snapc renamed -NewName snap0 -ErrorAction SilentlyContinue -ErrorVariable e3
        $e3[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotExists,*'
        Rename-SystemContainerSnapshot snapc nosuch -NewName other -ErrorAction SilentlyContinue -ErrorVariable e4
        $e4[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound,*'
        Rename-SystemContainerSnapshot snapc renamed -NewName other -WhatIf
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'renamed')
        @(Get-ChildItem -Force $snapshots).Name | Sort-Object | Should -Be @('renamed', 'snap0')
        Get-Content (Join-Path $snapshots "renamed/$tree/before") | Should -Be 'before'
    }
    # A btrfs snapshot is one ioctl; a tree snapshot is filled under a dot name first.
    if ($Driver -ne 'btrfs') {
        It 'shows no snapshot that a daemon killed while filling it left, and removes the leftover at the next snapshot' {
            Stop-SystemContainer snapc -Force
            Stop-DaemonProcess $daemon
            $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'snapshot-filled'
            try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
            $dead = $daemon.Pid
            Checkpoint-SystemContainer snapc -SnapshotName half -ErrorAction SilentlyContinue
            Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die at snapshot-filled'
            Test-Path (Join-Path $snapshots '.half.tmp') | Should -BeTrue -Because 'the daemon died with the copy made and not yet renamed in place'
            $daemon.Pid = 0
            Start-DaemonProcess $daemon
            (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'renamed')
            Checkpoint-SystemContainer snapc -SnapshotName half
            @(Get-ChildItem -Force $snapshots).Name | Sort-Object | Should -Be @('half', 'renamed', 'snap0')
            Remove-SystemContainerSnapshot snapc half -Force
            Start-SystemContainer snapc
        }
    }
    It 'keeps its snapshots across a rename of the container' {
        Stop-SystemContainer snapc -Force
        Rename-SystemContainer snapc snapr
        (Get-SystemContainerSnapshot snapr).SnapshotName | Should -Be @('snap0', 'renamed')
        Test-Path $snapshots | Should -BeFalse
        Rename-SystemContainer snapr snapc
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be @('snap0', 'renamed')
        Start-SystemContainer snapc
    }
    It 'removes a snapshot, and a container with its snapshots' {
        Get-SystemContainerSnapshot snapc -SnapshotName renamed | Remove-SystemContainerSnapshot -Force -ErrorVariable err
        $err | Should -BeNullOrEmpty
        Test-Path (Join-Path $snapshots 'renamed') | Should -BeFalse
        @(Get-ChildItem -Force $snapshots).Name | Should -Be @('snap0')
        (Get-SystemContainerSnapshot snapc).SnapshotName | Should -Be 'snap0'
        Remove-SystemContainer snapc -Force
        Test-Path $snapshots | Should -BeFalse
        if ($Pool -ne 'default') {
            Remove-SystemContainerStoragePool $Pool -Force
            Assert-PoolFilesGone $Pool
        }
    }
}

Describe 'A create on a <Driver> pool cut short by a crash' -ForEach @(
    @{ Driver = 'dir'; Size = $null }
    @{ Driver = 'btrfs'; Size = '300MiB' }
) {
    It 'leaves no volume once the daemon starts again, and the name can be used again' {
        New-SystemContainerStoragePool pcrash -Driver $Driver -Size $Size | Out-Null
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'create-staged'
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        New-SystemContainer half -Image $image -Network none -StoragePool pcrash -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die at create-staged'
        $volume = Join-Path (Get-PoolsDir) 'pcrash/containers/half'
        Test-Path $volume | Should -BeTrue -Because 'the daemon died with the volume made and the container not yet published'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Test-Path $volume | Should -BeFalse
        Get-SystemContainer half -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        New-SystemContainer half -Image $image -Network none -StoragePool pcrash -Start | Out-Null
        Invoke-In half 'echo ok' | Should -Be 'ok'
        Remove-SystemContainer half -Force
        Remove-SystemContainerStoragePool pcrash -Force
        Assert-PoolFilesGone pcrash
    }
}

Describe 'Bad storage input' {
    It 'refuses an unknown driver' {
        $r = Invoke-TestApi $daemon POST /1.0/storage-pools '{"name":"pzfs","driver":"zfs"}'
        $r.Status | Should -Be 400
        $r.Body.error | Should -Match "unknown storage driver 'zfs'"
        Assert-PoolFilesGone pzfs
    }
    It 'refuses a bad name' {
        New-SystemContainerStoragePool 'Bad/Name' -Driver dir -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPoolName,*'
        @(Get-ChildItem (Get-PoolsDir)) | Should -BeNullOrEmpty
    }
    It 'refuses a btrfs source that is not on btrfs, and makes nothing in it' {
        $plain = Join-Path $daemon.Dir 'not-btrfs'
        New-Item -ItemType Directory $plain | Out-Null
        New-SystemContainerStoragePool pnot -Driver btrfs -Source $plain -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPoolSource,*'
        "$($e[0])" | Should -Match 'is not on btrfs'
        @(Get-ChildItem -Force $plain) | Should -BeNullOrEmpty
        Assert-PoolFilesGone pnot
    }
    It 'refuses a loop file too small for btrfs, and a size where there is no loop file' {
        New-SystemContainerStoragePool ptiny -Driver btrfs -Size 1MiB -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPoolSize,*'
        Test-Path (Join-Path $daemon.StateDir 'disks/ptiny.img') | Should -BeFalse
        New-SystemContainerStoragePool pdsize -Driver dir -Size 1GiB -ErrorAction SilentlyContinue -ErrorVariable e2
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfig,*'
        Assert-PoolFilesGone ptiny
        Assert-PoolFilesGone pdsize
    }
    It 'refuses a container on a pool that does not exist, and leaves no container' {
        New-SystemContainer nopool -Image $image -Network none -StoragePool nosuch -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PoolNotFound,*'
        Get-SystemContainer nopool -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'containers')) | Should -BeNullOrEmpty
    }
    It 'refuses a second pool on a source that holds one' {
        $shared = Join-Path $daemon.Dir 'shared-dir'
        New-Item -ItemType Directory $shared | Out-Null
        New-SystemContainerStoragePool pfirst -Driver dir -Source $shared | Out-Null
        New-SystemContainerStoragePool psecond -Driver dir -Source $shared -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'PoolSourceInUse,*'
        Assert-PoolFilesGone psecond
        Remove-SystemContainerStoragePool pfirst -Force
        @(Get-ChildItem -Force $shared) | Should -BeNullOrEmpty
    }
}
