# Backups: Export-SystemContainer writes a container (and its snapshots) as a tarball in Incus'
# layout, Import-SystemContainer makes a container of one, on another daemon and on another
# driver. Each daemon has a dir pool and a btrfs pool on a loop file of its own (two file systems,
# so an optimized import really finds its parents in the pool it goes to). The import is hostile
# input: every refused tarball must leave the host and the daemon's state as they were.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:other = Start-TestDaemon
    Get-TestImage | Out-Null
    New-SystemContainerStoragePool pd -Driver dir | Out-Null
    New-SystemContainerStoragePool pb -Driver btrfs -Size 1GiB | Out-Null
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainerStoragePool pd -Driver dir | Out-Null
    New-SystemContainerStoragePool pb -Driver btrfs -Size 1GiB | Out-Null
    $script:work = Join-Path $daemon.Dir 'backups'
    New-Item -ItemType Directory $work | Out-Null

    function Use-Daemon($D) {
        $env:SYSTEMCONTAINERS_SOCKET = $D.Socket
        $env:SYSTEMCONTAINERS_RUN_DIR = $D.RunDir
    }
    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    # A stopped container whose root holds what the test checks after the round trip.
    function New-Marked([string]$Name, [string]$Pool, [string]$Text) {
        New-SystemContainer $Name -Image $image -StoragePool $Pool -Network none | Out-Null
        Start-SystemContainer $Name
        Invoke-In $Name "mkdir -p /root /srv/tree && echo $Text > /root/marker && mkdir -p /srv/tree && echo a > /srv/tree/a && ln /srv/tree/a /srv/tree/hard && chown 1000:1000 /srv/tree/a && chmod 4750 /srv/tree/a && ln -s ../root/marker /srv/link"
        Stop-SystemContainer $Name -Force
    }
    function Assert-Marked([string]$Name, [string]$Text) {
        Start-SystemContainer $Name
        (Get-SystemContainer $Name).Status | Should -Be 'Running'
        Invoke-In $Name 'cat /root/marker' | Should -Be $Text
        Invoke-In $Name 'stat -c "%u:%g %a %h" /srv/tree/a' | Should -Be '1000:1000 4750 2'
        Invoke-In $Name 'cat /srv/link' | Should -Be $Text
        Stop-SystemContainer $Name -Force
    }
    # What a failed import must not leave: a container, a state or staging directory, a volume.
    function Get-Traces($D) {
        $dirs = @(Join-Path $D.StateDir 'containers'; Join-Path $D.StateDir 'storage-pools/pd/containers'
            Join-Path $D.StateDir 'storage-pools/pb/containers'; Join-Path $D.StateDir 'storage-pools/pb/containers-snapshots'
            Join-Path $D.StateDir 'storage-pools/pb/receiving'; Join-Path $D.StateDir 'storage-pools/pd/containers-snapshots')
        @(foreach ($dir in $dirs) { if (Test-Path $dir) { Get-ChildItem -Force -Name $dir | ForEach-Object { "$dir/$_" } } }) +
        @(Get-SystemContainer | ForEach-Object Name) | Sort-Object
    }
}
AfterAll {
    foreach ($d in @($script:other, $script:daemon)) {
        if (-not $d) { continue }
        Use-Daemon $d
        Remove-TestStorage $d
    }
    Stop-TestDaemon $script:other
    Stop-TestDaemon $script:daemon
}

Describe 'A plain export' {
    It 'of a dir container imports on another daemon into a btrfs pool, and starts with its files' {
        Use-Daemon $daemon
        New-Marked web1 pd 'from-dir'
        $file = Join-Path $work 'web1.tar.zst'
        $out = Export-SystemContainer web1 -Path $file
        $out.FullName | Should -Be $file
        [IO.File]::ReadAllBytes($file)[0..3] | Should -Be @(0x28, 0xb5, 0x2f, 0xfd)
        (tar -I zstd -tf $file | Select-Object -First 1) | Should -Be 'backup/index.yaml'
        $index = tar -I zstd -xOf $file backup/index.yaml | ConvertFrom-Json
        $index.name | Should -Be 'web1'
        $index.backend | Should -Be 'dir'
        $index.pool | Should -Be 'pd'
        $index.optimized | Should -BeFalse
        Use-Daemon $other
        $c = Import-SystemContainer $file -StoragePool pb
        $c.Name | Should -Be 'web1'
        $c.StoragePool | Should -Be 'pb'
        Assert-Marked web1 'from-dir'
    }
    It 'of a btrfs container with snapshots imports on another daemon with them, and onto a dir pool with them too' {
        Use-Daemon $daemon
        New-Marked snappy pb 'v1'
        Checkpoint-SystemContainer snappy -SnapshotName first
        Start-SystemContainer snappy
        Invoke-In snappy 'echo v2 > /root/marker && echo gone-later > /root/later'
        Stop-SystemContainer snappy -Force
        Checkpoint-SystemContainer snappy -SnapshotName second
        Start-SystemContainer snappy
        Invoke-In snappy 'echo v3 > /root/marker && rm /root/later'
        Stop-SystemContainer snappy -Force
        $file = Join-Path $work 'snappy.tar.gz'
        Export-SystemContainer snappy -Path $file -IncludeSnapshots | Out-Null
        (tar -tzf $file | Select-String -SimpleMatch 'backup/snapshots/first/rootfs/root/marker') | Should -Not -BeNullOrEmpty

        Use-Daemon $other
        Import-SystemContainer $file -StoragePool pb | Out-Null
        (Get-SystemContainerSnapshot snappy).SnapshotName | Should -Be @('first', 'second')
        Assert-Marked snappy 'v3'
        Restore-SystemContainerSnapshot snappy second -Force
        Start-SystemContainer snappy
        Invoke-In snappy 'cat /root/marker /root/later' | Should -Be @('v2', 'gone-later')
        Stop-SystemContainer snappy -Force
        Restore-SystemContainerSnapshot snappy first -Force
        Assert-Marked snappy 'v1'

        Use-Daemon $daemon
        (Import-SystemContainer $file -Name snappy-dir -StoragePool pd).StoragePool | Should -Be 'pd'
        $snaps = Get-SystemContainerSnapshot snappy-dir
        $snaps.SnapshotName | Should -Be @('first', 'second')
        # The times are the exported snapshots', not when the import made its copies.
        $snaps.Created | Should -Be (Get-SystemContainerSnapshot snappy).Created
        Assert-Marked snappy-dir 'v3'
        Restore-SystemContainerSnapshot snappy-dir second -Force
        Start-SystemContainer snappy-dir
        Invoke-In snappy-dir 'cat /root/marker /root/later' | Should -Be @('v2', 'gone-later')
        Stop-SystemContainer snappy-dir -Force
        $plain = Join-Path $work 'snappy-plain.tar'
        Export-SystemContainer snappy-dir -Path $plain | Out-Null
        (tar -xOf $plain backup/index.yaml | ConvertFrom-Json).snapshots | Should -BeNullOrEmpty
    }
}

Describe 'A plain export of a default-pool (overlay) container' {
    It 'imports on the other daemon''s dir pool and into the default pool here, what was deleted from its image staying deleted' {
        Use-Daemon $daemon
        New-Marked ov default 'from-overlay'
        Start-SystemContainer ov
        Invoke-In ov 'rm /linuxrc /etc/os-release'
        Stop-SystemContainer ov -Force
        $file = Join-Path $work 'ov.tar'
        Export-SystemContainer ov -Path $file | Out-Null
        (tar -xOf $file backup/index.yaml | ConvertFrom-Json).backend | Should -Be 'overlay'
        $members = tar -tf $file
        $members | Should -Contain 'backup/container/rootfs/bin/busybox'
        $members | Should -Not -Contain 'backup/container/rootfs/linuxrc'
        # Owners went back to the container's own ids: nothing in the tarball is above its range.
        (tar --numeric-owner -tvf $file | ForEach-Object { [long](((-split $_)[1] -split '/')[0]) } | Measure-Object -Maximum).Maximum | Should -BeLessThan 65536
        foreach ($target in @(@{ D = $other; Name = 'ov'; Pool = 'pd' }, @{ D = $daemon; Name = 'ov-back'; Pool = $null })) {
            Use-Daemon $target.D
            (Import-SystemContainer $file -Name $target.Name -StoragePool $target.Pool).StoragePool | Should -Be ($target.Pool ?? 'default')
            Assert-Marked $target.Name 'from-overlay'
            Start-SystemContainer $target.Name
            Invoke-In $target.Name 'test ! -e /linuxrc && test ! -e /etc/os-release && test -e /etc/passwd && echo gone' | Should -Be 'gone'
            Stop-SystemContainer $target.Name -Force
        }
    }

    It 'with a snapshot and its expiry comes back into the default pool with both' {
        Use-Daemon $daemon
        New-Marked ovs default 'before'
        $expires = [DateTimeOffset]::UtcNow.AddDays(3)
        Checkpoint-SystemContainer ovs -SnapshotName kept -ExpiresAt $expires
        Start-SystemContainer ovs
        Invoke-In ovs 'echo after > /root/marker'
        Stop-SystemContainer ovs -Force
        $file = Join-Path $work 'ovs.tar'
        Export-SystemContainer ovs -Path $file -IncludeSnapshots | Out-Null
        (tar -tf $file) | Should -Contain 'backup/snapshots/kept/rootfs/root/marker'
        Import-SystemContainer $file -Name ovs-back | Out-Null
        $snap = Get-SystemContainerSnapshot ovs-back
        $snap.SnapshotName | Should -Be 'kept'
        ([DateTimeOffset]$snap.ExpiresAt - $expires).Duration().TotalSeconds | Should -BeLessThan 1
        Assert-Marked ovs-back 'after'
        Restore-SystemContainerSnapshot ovs-back kept -Force
        Assert-Marked ovs-back 'before'
    }
}

Describe 'An optimized export' {
    It 'is btrfs send streams in chunks that import on another daemon''s btrfs pool, incremental snapshots and all' {
        Use-Daemon $daemon
        New-Marked opt pb 'o1'
        Start-SystemContainer opt
        # 20 MiB that does not compress: the snapshot's stream takes three chunks of 8 MiB.
        Invoke-In opt 'dd if=/dev/urandom of=/root/big bs=1M count=20 2>/dev/null; md5sum /root/big > /root/big.md5'
        Stop-SystemContainer opt -Force
        Checkpoint-SystemContainer opt -SnapshotName s0
        Start-SystemContainer opt
        Invoke-In opt 'echo o2 > /root/marker'
        Stop-SystemContainer opt -Force
        $file = Join-Path $work 'opt.tar'
        Export-SystemContainer opt -Path $file -IncludeSnapshots -Optimized | Out-Null
        tar -tf $file | Should -Be @('backup/index.yaml', 'backup/snapshots/s0.bin.000000', 'backup/snapshots/s0.bin.000001',
            'backup/snapshots/s0.bin.000002', 'backup/container.bin.000000')
        @(tar -tvf $file | Select-Object -Skip 1 -First 2 | ForEach-Object { (-split $_)[2] }) | Should -Be @(8MB, 8MB)
        (tar -xOf $file backup/index.yaml | ConvertFrom-Json).optimized | Should -BeTrue

        Use-Daemon $other
        Import-SystemContainer $file -Name opt2 -StoragePool pd -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'OptimizedUnsupported,*'
        Get-SystemContainer opt2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Import-SystemContainer $file -Name opt2 -StoragePool pb | Out-Null
        (Get-SystemContainerSnapshot opt2).SnapshotName | Should -Be @('s0')
        Assert-Marked opt2 'o2'
        Restore-SystemContainerSnapshot opt2 s0 -Force
        Assert-Marked opt2 'o1'
        Start-SystemContainer opt2
        Invoke-In opt2 'md5sum -c /root/big.md5 >/dev/null && echo intact' | Should -Be 'intact'
        Stop-SystemContainer opt2 -Force
    }
    It 'imports as well when each stream is one member, as exports before chunking wrote them' {
        Use-Daemon $daemon
        $parts = Join-Path $work 'whole'
        New-Item -ItemType Directory $parts | Out-Null
        tar -xf (Join-Path $work 'opt.tar') -C $parts
        sh -c 'cat "$1"/backup/snapshots/s0.bin.* > "$1"/backup/snapshots/s0.bin' sh $parts
        Move-Item "$parts/backup/container.bin.000000" "$parts/backup/container.bin"
        $file = Join-Path $work 'whole.tar'
        tar -cf $file -C $parts backup/index.yaml backup/snapshots/s0.bin backup/container.bin
        Use-Daemon $other
        Import-SystemContainer $file -Name opt3 -StoragePool pb | Out-Null
        Assert-Marked opt3 'o2'
        Restore-SystemContainerSnapshot opt3 s0 -Force
        Assert-Marked opt3 'o1'
        Remove-SystemContainer opt3 -Force
    }
    It 'is refused cleanly with <What>' -ForEach @(
        @{ What = 'a chunk missing'; Members = @('backup/index.yaml', 'backup/snapshots/s0.bin.000000', 'backup/snapshots/s0.bin.000002', 'backup/container.bin.000000') }
        @{ What = 'chunks swapped'; Members = @('backup/index.yaml', 'backup/snapshots/s0.bin.000001', 'backup/snapshots/s0.bin.000000', 'backup/snapshots/s0.bin.000002', 'backup/container.bin.000000') }
        @{ What = 'the container''s stream missing'; Members = @('backup/index.yaml', 'backup/snapshots/s0.bin.000000', 'backup/snapshots/s0.bin.000001', 'backup/snapshots/s0.bin.000002') }
    ) {
        $parts = Join-Path $work 'chunks'
        if (-not (Test-Path $parts)) {
            New-Item -ItemType Directory $parts | Out-Null
            tar -xf (Join-Path $work 'opt.tar') -C $parts
        }
        $file = Join-Path $work 'chunks.tar'
        tar -cf $file -C $parts @Members
        Use-Daemon $other
        $traces = Get-Traces $other
        Import-SystemContainer $file -Name opt4 -StoragePool pb -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e | Should -Not -BeNullOrEmpty
        Get-Traces $other | Should -Be $traces
        Remove-Item $file
    }
    It 'is refused for a container outside a btrfs pool; no file is left' {
        Use-Daemon $daemon
        $file = Join-Path $work 'refused.tar'
        Export-SystemContainer web1 -Path $file -Optimized -ErrorAction SilentlyContinue -ErrorVariable e1
        $e1[0].FullyQualifiedErrorId | Should -BeLike 'OptimizedUnsupported,*'
        Get-ChildItem -Force $work -Filter '*refused*' | Should -BeNullOrEmpty
    }
}

Describe 'An export of a running container' {
    It 'on <Pool><Label> is taken from a moment of it while it runs on, leaves no temporary snapshot, and imports on another daemon with its files' -ForEach @(
        @{ Pool = 'pd'; Optimized = $false; Label = ''; Snapshots = 'storage-pools/pd/containers-snapshots' }
        @{ Pool = 'pb'; Optimized = $false; Label = ''; Snapshots = 'storage-pools/pb/containers-snapshots' }
        @{ Pool = 'pb'; Optimized = $true; Label = ', optimized'; Snapshots = 'storage-pools/pb/containers-snapshots' }
        @{ Pool = 'default'; Optimized = $false; Label = ''; Snapshots = 'containers' }
    ) {
        Use-Daemon $daemon
        $name = "live-$Pool$(if ($Optimized) { '-opt' })"
        New-Marked $name $Pool 'at-s0'
        Start-SystemContainer $name
        Checkpoint-SystemContainer $name -SnapshotName s0
        Invoke-In $name 'echo live > /root/marker; echo more > /root/more'
        $file = Join-Path $work "$name.tar"
        Export-SystemContainer $name -Path $file -IncludeSnapshots -Optimized:$Optimized | Out-Null
        (Get-SystemContainer $name).Status | Should -Be 'Running'
        Invoke-In $name 'echo after > /root/after; cat /root/after' | Should -Be 'after'
        (Get-SystemContainerSnapshot $name).SnapshotName | Should -Be @('s0')
        $dir = if ($Pool -eq 'default') { Join-Path $daemon.StateDir "containers/$name/snapshots" } else { Join-Path $daemon.StateDir "$Snapshots/$name" }
        @(Get-ChildItem -Force -Name $dir) | Should -Be @('s0')
        $members = tar -tf $file
        $members | Should -Contain 'backup/index.yaml'
        "$members" | Should -Not -Match '\.export-'
        Use-Daemon $other
        $pool = if ($Optimized) { 'pb' } else { 'pd' }
        Import-SystemContainer $file -StoragePool $pool | Out-Null
        Assert-Marked $name 'live'
        Start-SystemContainer $name
        Invoke-In $name 'cat /root/more; test -e /root/after && echo there || echo absent' | Should -Be @('more', 'absent')
        Stop-SystemContainer $name -Force
        Restore-SystemContainerSnapshot $name s0 -Force
        Assert-Marked $name 'at-s0'
        Remove-SystemContainer $name -Force
        Use-Daemon $daemon
        Remove-SystemContainer $name -Force
    }
    It 'of a frozen container leaves it frozen' {
        Use-Daemon $daemon
        New-Marked frozen1 pd 'frozen'
        Start-SystemContainer frozen1
        Suspend-SystemContainer frozen1
        Export-SystemContainer frozen1 -Path (Join-Path $work 'frozen1.tar') | Out-Null
        (Get-SystemContainer frozen1).Status | Should -Be 'Frozen'
        Resume-SystemContainer frozen1
        Remove-SystemContainer frozen1 -Force
    }
}

Describe 'A hostile backup' {
    BeforeAll {
        Use-Daemon $daemon
        $script:outside = Join-Path $daemon.Dir 'outside'
        New-Item -ItemType Directory $outside | Out-Null
        Set-Content -Path (Join-Path $outside 'target') -Value 'host file'
        $script:before = Get-Traces $daemon
        # The host's own unit directory: a drop-in path resolved against the daemon's root would land there.
        $script:hostDropIn = '/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'
        $script:hostHadDropIn = Test-Path -LiteralPath $hostDropIn
    }
    It 'with <Kind> is refused with <Error>, leaving the host and the daemon as they were (pool <Pool>)' -ForEach @(
        @{ Kind = 'dotdot'; Error = "contains '..'"; Pool = 'pd' }
        @{ Kind = 'dotdot'; Error = "contains '..'"; Pool = 'pb' }
        @{ Kind = 'absolute'; Error = 'follows the container''s root'; Pool = 'pd' }
        @{ Kind = 'symlink-escape'; Error = 'a symlink is never followed'; Pool = 'pd' }
        @{ Kind = 'symlink-escape'; Error = 'a symlink is never followed'; Pool = 'pb' }
        @{ Kind = 'hardlink-out'; Error = 'outside its root'; Pool = 'pd' }
        @{ Kind = 'device'; Error = 'device node'; Pool = 'pd' }
        @{ Kind = 'device'; Error = 'device node'; Pool = 'pb' }
        @{ Kind = 'fifo'; Error = 'fifo'; Pool = 'pd' }
        @{ Kind = 'setuid-outside'; Error = 'beyond the id range'; Pool = 'pd' }
        @{ Kind = 'huge'; Error = 'the import limit'; Pool = 'pb' }
        @{ Kind = 'bad-index'; Error = 'not a valid index'; Pool = 'pd' }
        @{ Kind = 'index-missing-field'; Error = 'not a valid index'; Pool = 'pd' }
        # criu's images after the root: only a live move's pull takes them (ImportOptions.WithImages).
        @{ Kind = 'checkpoint-plain'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-images'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-images'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pb' }
        @{ Kind = 'checkpoint-symlink'; Error = "entry 'backup/checkpoint' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-file-symlink'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-hardlink'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-device'; Error = "entry 'backup/checkpoint/inventory.img' follows the container's root"; Pool = 'pd' }
        @{ Kind = 'checkpoint-dotdot'; Error = 'follows the container''s root'; Pool = 'pd' }
        @{ Kind = 'checkpoint-first'; Error = "entry 'backup/checkpoint/inventory.img' comes where the container's root backup/container/rootfs/ belongs"; Pool = 'pd' }
        # The checkpoint drop-in's name in a stateful systemd container's root: the extractor refuses these before the engine writes anything.
        @{ Kind = 'stateful-file-fifo'; Error = 'fifo'; Pool = 'pd' }
        @{ Kind = 'stateful-file-device'; Error = 'device node'; Pool = 'pd' }
        @{ Kind = 'stateful-file-hardlink'; Error = 'outside its root'; Pool = 'pd' }
    ) {
        $file = Join-Path $work "$Kind.tar"
        python3 (Join-Path $PSScriptRoot 'hostile-backup.py') $Kind $file $outside
        if ($LASTEXITCODE) { throw "cannot write $file" }
        Import-SystemContainer $file -StoragePool $Pool -ErrorAction SilentlyContinue -ErrorVariable e
        $e | Should -HaveCount 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidBackup,*'
        $e[0].Exception.Message | Should -BeLike "*$Error*"
        Get-ChildItem -Force -Name $outside | Should -Be @('target')
        Get-Content (Join-Path $outside 'target') | Should -Be 'host file'
        Get-Traces $daemon | Should -Be $before
    }
    # A migration.stateful systemd container gets the checkpoint drop-in when it is made
    # (CheckpointableSystemd): the backup's root decides what is at that path.
    It 'of a stateful systemd container whose service.d is <What> is refused naming the path and ENOTDIR, leaving the host and the daemon as they were (pool <Pool>)' -ForEach @(
        @{ Kind = 'stateful-dir-symlink'; What = 'a symlink to a host directory'; Pool = 'pd' }
        @{ Kind = 'stateful-dir-symlink'; What = 'a symlink to a host directory'; Pool = 'default' }
        @{ Kind = 'stateful-dir-up'; What = 'a symlink up through ../..'; Pool = 'pd' }
        @{ Kind = 'stateful-dir-up'; What = 'a symlink up through ../..'; Pool = 'default' }
    ) {
        $file = Join-Path $work "$Kind.tar"
        python3 (Join-Path $PSScriptRoot 'hostile-backup.py') $Kind $file $outside (Get-SystemContainerImage $image).Fingerprint
        if ($LASTEXITCODE) { throw "cannot write $file" }
        Import-SystemContainer $file -StoragePool $Pool -ErrorAction SilentlyContinue -ErrorVariable e
        $e | Should -HaveCount 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'CheckpointSetupFailed,*'
        $e[0].Exception.Message | Should -BeLike "*container 'evil'*cannot open container path /etc/systemd/system/service.d: ENOTDIR*"
        Get-ChildItem -Force -Name $outside | Should -Be @('target')
        Get-Content (Join-Path $outside 'target') | Should -Be 'host file'
        Get-Traces $daemon | Should -Be $before
        Test-Path -LiteralPath $hostDropIn | Should -Be $hostHadDropIn
        # Mounting the new root made the name's run directory; the failed import took it away.
        Test-Path (Join-Path $daemon.RunDir 'containers/evil') | Should -BeFalse
    }
    It 'of a stateful systemd container whose <What> imports, and the engine writes nothing through it (pool <Pool>)' -ForEach @(
        @{ Kind = 'stateful-file-symlink'; What = 'drop-in is a symlink to a host file'; Pool = 'pd'; Link = 'etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf' }
        @{ Kind = 'stateful-file-symlink'; What = 'drop-in is a symlink to a host file'; Pool = 'default'; Link = 'etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf' }
        @{ Kind = 'stateful-file-up'; What = 'drop-in is a symlink up through ../..'; Pool = 'pd'; Link = 'etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf' }
        @{ Kind = 'stateful-units-symlink'; What = 'unit directory is a symlink to a host directory'; Pool = 'pd'; Link = 'etc/systemd/system' }
        @{ Kind = 'stateful-units-symlink'; What = 'unit directory is a symlink to a host directory'; Pool = 'default'; Link = 'etc/systemd/system' }
        @{ Kind = 'stateful-units-up'; What = 'unit directory is a symlink up through ../..'; Pool = 'pd'; Link = 'etc/systemd/system' }
    ) {
        $file = Join-Path $work "$Kind.tar"
        python3 (Join-Path $PSScriptRoot 'hostile-backup.py') $Kind $file $outside (Get-SystemContainerImage $image).Fingerprint
        if ($LASTEXITCODE) { throw "cannot write $file" }
        $hostOwner = stat -c '%u:%g %a' (Join-Path $outside 'target')
        $planted = (& python3 -c "import tarfile,sys; print([m.linkname for m in tarfile.open(sys.argv[1]) if m.name.endswith(sys.argv[2])][0])" $file $Link)
        try {
            Import-SystemContainer $file -StoragePool $Pool | Out-Null
            Get-ChildItem -Force -Name $outside | Should -Be @('target')
            Get-Content (Join-Path $outside 'target') | Should -Be 'host file'
            stat -c '%u:%g %a' (Join-Path $outside 'target') | Should -Be $hostOwner
            # The root holds the backup's symlink as it was, and nothing was made where it points inside the root either.
            $root = if ($Pool -eq 'default') { Join-Path $daemon.StateDir 'containers/evil/fs/upper' } else { Join-Path $daemon.StateDir 'storage-pools/pd/containers/evil' }
            readlink (Join-Path $root $Link) | Should -Be $planted
            Test-Path (Join-Path $root $outside.TrimStart('/')) | Should -BeFalse
        }
        finally { Remove-SystemContainer evil -Force -ErrorAction SilentlyContinue }
        Get-Traces $daemon | Should -Be $before
        Test-Path -LiteralPath $hostDropIn | Should -Be $hostHadDropIn
    }
    It 'of a stateful systemd container with a plain unit directory gets the drop-in, owned by the container''s root (pool <Pool>)' -ForEach @(
        @{ Pool = 'pd' }
        @{ Pool = 'default' }
    ) {
        $file = Join-Path $work 'stateful-units.tar'
        python3 (Join-Path $PSScriptRoot 'hostile-backup.py') stateful-units $file $outside (Get-SystemContainerImage $image).Fingerprint
        if ($LASTEXITCODE) { throw "cannot write $file" }
        try {
            Import-SystemContainer $file -StoragePool $Pool | Out-Null
            $root = if ($Pool -eq 'default') { Join-Path $daemon.StateDir 'containers/evil/fs/upper' } else { Join-Path $daemon.StateDir 'storage-pools/pd/containers/evil' }
            $dropIn = Join-Path $root 'etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf'
            Get-Content $dropIn | Should -Contain 'ProtectHostname=no'
            # The root's files hold the container's root as etc does: its own ids in a volume, the host's in an overlay's upper layer.
            stat -c '%u:%g' $dropIn | Should -Be (stat -c '%u:%g' (Join-Path $root 'etc'))
            stat -c '%u:%g' (Split-Path $dropIn) | Should -Be (stat -c '%u:%g' (Join-Path $root 'etc'))
        }
        finally { Remove-SystemContainer evil -Force -ErrorAction SilentlyContinue }
        Get-Traces $daemon | Should -Be $before
        Test-Path -LiteralPath $hostDropIn | Should -Be $hostHadDropIn
    }
    It 'that names a container which exists is refused, and the container is untouched' {
        $file = Join-Path $work 'web1-again.tar'
        Export-SystemContainer web1 -Path $file | Out-Null
        $id = (Get-SystemContainer web1).Id
        $traces = Get-Traces $daemon
        Import-SystemContainer $file -StoragePool pb -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ContainerExists,*'
        (Get-SystemContainer web1).Id | Should -Be $id
        Get-Traces $daemon | Should -Be $traces
        Assert-Marked web1 'from-dir'
    }
}

# A backup of a real stateful container with criu's images put where a plain import must not take
# them as its saved state: the import refuses them or passes them over, and the start boots afresh
# (those bytes restored by criu would fail the start with RestoreFailed).
Describe 'A backup carrying criu images, imported by a user' {
    BeforeAll {
        Use-Daemon $daemon
        $script:outside = Join-Path $daemon.Dir 'outside-images'
        New-Item -ItemType Directory $outside | Out-Null
        New-SystemContainer ckimg -Image $image -StoragePool pd -Network none -Config @{ 'migration.stateful' = 'true' } | Out-Null
        $script:clean = Join-Path $work 'ckimg.tar'
        Export-SystemContainer ckimg -Path $clean | Out-Null
        Remove-SystemContainer ckimg -Force
        $script:before = Get-Traces $daemon
        function New-Injected([string]$Kind) {
            $file = Join-Path $work "$Kind.tar"
            python3 (Join-Path $PSScriptRoot 'hostile-backup.py') $Kind $file $outside $clean
            if ($LASTEXITCODE) { throw "cannot write $file" }
            $file
        }
        # The files under the daemon's containers and dir pool that hold the planted images' bytes (the tarballs are elsewhere).
        function Find-Planted {
            @(grep -rl -D skip --binary-files=text CRIU-IMAGE-PLANTED (Join-Path $daemon.StateDir 'containers') (Join-Path $daemon.StateDir 'storage-pools/pd') 2>$null)
        }
        function Assert-BootsAfresh([string]$Name) {
            Test-Path (Join-Path $daemon.StateDir "containers/$Name/checkpoint") | Should -BeFalse
            (Get-SystemContainer $Name).Stateful | Should -BeFalse
            (Start-SystemContainer $Name -PassThru).Status | Should -Be 'Running'
            (Invoke-SystemContainerCommand $Name -- cat /proc/1/comm).Trim() | Should -Be 'init'
            (Get-SystemContainer $Name).Stateful | Should -BeFalse
            Stop-SystemContainer $Name -Force
        }
    }

    It 'after the root is refused and leaves nothing; the same backup without them then imports under that name with no saved state, and boots afresh' {
        Import-SystemContainer (New-Injected inject-after) -Name ckimg1 -StoragePool pd -ErrorAction SilentlyContinue -ErrorVariable e
        $e | Should -HaveCount 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidBackup,*'
        $e[0].Exception.Message | Should -BeLike "*entry 'backup/checkpoint/inventory.img' follows the container's root*"
        Get-Traces $daemon | Should -Be $before
        Find-Planted | Should -BeNullOrEmpty
        Import-SystemContainer $clean -Name ckimg1 -StoragePool pd | Out-Null
        try { Assert-BootsAfresh ckimg1 }
        finally { Remove-SystemContainer ckimg1 -Force }
    }
    It 'where Incus keeps its own files (backup/container/) is imported without them into <Pool>: nothing of them on disk, and the start boots afresh' -ForEach @(
        @{ Pool = 'pd' }
        @{ Pool = 'default' }
    ) {
        Import-SystemContainer (New-Injected inject-incus) -Name ckimg2 -StoragePool $Pool | Out-Null
        try {
            Find-Planted | Should -BeNullOrEmpty
            Assert-BootsAfresh ckimg2
        }
        finally { Remove-SystemContainer ckimg2 -Force }
        Get-Traces $daemon | Should -Be $before
    }
    It 'in a snapshot named checkpoint is a snapshot of files only: its stateful restore is refused, and the start boots afresh' {
        Import-SystemContainer (New-Injected inject-snapshot) -Name ckimg3 -StoragePool pd | Out-Null
        try {
            $snapshot = Get-SystemContainerSnapshot ckimg3
            $snapshot.SnapshotName | Should -Be 'checkpoint'
            $snapshot.Stateful | Should -BeFalse
            Restore-SystemContainerSnapshot ckimg3 checkpoint -Stateful -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotStateful,*'
            Assert-BootsAfresh ckimg3
        }
        finally { Remove-SystemContainer ckimg3 -Force }
        Get-Traces $daemon | Should -Be $before
    }
}

Describe 'A daemon killed in the middle of an export' {
    It 'leaves no file at -Path and no send snapshot in the pool, and the next export works' {
        Use-Daemon $daemon
        $file = Join-Path $work 'killed.tar'
        $volumes = Join-Path $daemon.StateDir 'storage-pools/pb/containers'
        $before = @(Get-ChildItem -Force -Name $volumes)
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'backup-export-chunk'
        try { Start-DaemonProcess $daemon }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        # Without its snapshots the first chunk is the container's, whose stream is sent from a read-only snapshot made for it.
        Export-SystemContainer opt -Path $file -Optimized -ErrorAction SilentlyContinue -ErrorVariable e
        $e | Should -Not -BeNullOrEmpty
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die mid export'
        Get-Content -Raw $daemon.Log | Should -Match 'test hook: SIGKILL at backup-export-chunk'
        Get-ChildItem -Force $work -Filter '*killed*' | Should -BeNullOrEmpty
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        @(Get-ChildItem -Force -Name $volumes) | Should -Be $before
        Test-Path (Join-Path $daemon.StateDir 'backups') | Should -BeFalse -Because 'nothing is spooled'
        Export-SystemContainer opt -Path $file -Optimized -IncludeSnapshots | Out-Null
        tar -tf $file | Select-Object -Last 1 | Should -Be 'backup/container.bin.000000'
    }
}

Describe 'A daemon killed in the middle of a running container''s export' {
    It 'leaves its temporary snapshot unlisted, the container as it was, and the next snapshot removes it' {
        Use-Daemon $daemon
        New-Marked killrun pb 'run'
        Start-SystemContainer killrun
        Checkpoint-SystemContainer killrun -SnapshotName s0
        $file = Join-Path $work 'killrun.tar'
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'backup-export-chunk'
        try { Start-DaemonProcess $daemon }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Export-SystemContainer killrun -Path $file -Optimized -IncludeSnapshots -ErrorAction SilentlyContinue | Out-Null
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die mid export'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        $dir = Join-Path $daemon.StateDir 'storage-pools/pb/containers-snapshots/killrun'
        @(Get-ChildItem -Force -Name $dir | Where-Object { $_ -like '.export-*' }) | Should -HaveCount 1 -Because 'the daemon died with it taken'
        (Get-SystemContainerSnapshot killrun).SnapshotName | Should -Be @('s0')
        (Get-SystemContainer killrun).Status | Should -Be 'Running'
        Invoke-In killrun 'cat /root/marker' | Should -Be 'run'
        Checkpoint-SystemContainer killrun -SnapshotName s1
        @(Get-ChildItem -Force -Name $dir) | Sort-Object | Should -Be @('s0', 's1')
        Remove-SystemContainer killrun -Force
    }
}

Describe 'A daemon killed in the middle of an import' {
    It 'into <Pool>, killed at <Point>, starts again with no half-made container and no leftovers, and the import then succeeds' -ForEach @(
        @{ Point = 'backup-import-part'; Pool = 'pb' }
        @{ Point = 'tree-file-unpacked'; Pool = 'default' }
        @{ Point = 'tree-file-unpacked'; Pool = 'pd' }
        @{ Point = 'tree-file-unpacked'; Pool = 'pb' }
    ) {
        Use-Daemon $daemon
        $file = Join-Path $work "snappy-crash-$Pool-$Point.tar"
        Export-SystemContainer snappy -Path $file -IncludeSnapshots | Out-Null
        $traces = Get-Traces $daemon
        $subvolumes = @(btrfs subvolume list -o (Join-Path $daemon.StateDir 'storage-pools/pb'))
        $mounts = @(Get-TestMounts $daemon)
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $Point
        try { Start-DaemonProcess $daemon }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Import-SystemContainer $file -Name crashed -StoragePool $Pool -ErrorAction SilentlyContinue | Out-Null
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die mid import'
        Get-Content -Raw $daemon.Log | Should -Match "test hook: SIGKILL at $Point"
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Get-SystemContainer crashed -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-Traces $daemon | Should -Be $traces
        @(btrfs subvolume list -o (Join-Path $daemon.StateDir 'storage-pools/pb')) | Should -Be $subvolumes
        @(Get-TestMounts $daemon) | Should -Be $mounts
        Import-SystemContainer $file -Name crashed -StoragePool $Pool | Out-Null
        (Get-SystemContainerSnapshot crashed).SnapshotName | Should -Be @('first', 'second')
        Assert-Marked crashed 'v3'
        Remove-SystemContainer crashed -Force
    }
}
