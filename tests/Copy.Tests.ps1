# Copy-SystemContainer: a copy in the same pool on overlay (the upper layer), dir (a tree copy) and
# btrfs (a writable snapshot), from a running source or a snapshot on each, and between every pair of
# pools (the source driver's tar stream received by the target's, into overlay too; btrfs send
# streams between btrfs pools); each copy independent of its source, with its config but its own
# MAC, address and ids, and the source's snapshots unless -InstanceOnly; refused copies and a
# daemon killed mid copy leave nothing behind. btrfs runs on loop files the pools make; AfterAll
# unmounts and detaches them even when tests fail.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage

    function Get-PoolsDir { Join-Path $daemon.StateDir 'storage-pools' }
    function Get-StateDir([string]$Name) { Join-Path $daemon.StateDir "containers/$Name" }
    # Where a pool keeps a container's volume: a dir pool under its source, a btrfs pool under its mount, overlay in the state directory.
    function Get-VolumePath([string]$Pool, [string]$Name) {
        switch ((Get-SystemContainerStoragePool $Pool).Driver) {
            'overlay' { Join-Path (Get-StateDir $Name) 'fs/upper' }
            'dir' { Join-Path (Get-SystemContainerStoragePool $Pool).Source "containers/$Name" }
            'btrfs' { Join-Path (Get-PoolsDir) "$Pool/containers/$Name" }
        }
    }
    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    function Wait-IPv4([string]$Name) {
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        (Wait-SystemContainer $Name -For IPv4 -Timeout (20 * $scale) -PassThru -ErrorAction Stop).IPv4[0]
    }
    function Get-HostRootUid([string]$Name) {
        $p = (Get-SystemContainer $Name).Pid
        [long](-split (Get-Content "/proc/$p/uid_map" | Select-Object -First 1))[1]
    }
    # Where a dir or btrfs pool keeps a container's snapshots (overlay keeps them in the state directory).
    function Get-SnapshotsPath([string]$Pool, [string]$Name) {
        switch ((Get-SystemContainerStoragePool $Pool).Driver) {
            'overlay' { Join-Path (Get-StateDir $Name) 'snapshots' }
            'dir' { Join-Path (Get-SystemContainerStoragePool $Pool).Source "containers-snapshots/$Name" }
            'btrfs' { Join-Path (Get-PoolsDir) "$Pool/containers-snapshots/$Name" }
        }
    }
    # Nothing of a container that must not exist: no state directory, no staging one, no volume or snapshots in any pool.
    function Assert-NothingOf([string]$Name) {
        Get-SystemContainer $Name -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Get-StateDir $Name) | Should -BeFalse
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'containers') -Filter ".new-$Name-*") | Should -BeNullOrEmpty
        foreach ($p in Get-SystemContainerStoragePool) {
            Test-Path (Get-VolumePath $p.Name $Name) | Should -BeFalse -Because "pool $($p.Name)"
            Test-Path (Get-SnapshotsPath $p.Name $Name) | Should -BeFalse -Because "pool $($p.Name)"
        }
    }
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'A copy in a <Driver> pool' -ForEach @(
    @{ Driver = 'overlay'; Pool = 'default' }
    @{ Driver = 'dir'; Pool = 'cdir' }
    @{ Driver = 'btrfs'; Pool = 'cbtrfs' }
) {
    BeforeAll {
        if ($Driver -eq 'dir') { New-SystemContainerStoragePool $Pool -Driver dir | Out-Null }
        if ($Driver -eq 'btrfs') { New-SystemContainerStoragePool $Pool -Driver btrfs -Size 300MiB | Out-Null }
        $script:src = "src-$Driver"
        $script:dst = "dst-$Driver"
        New-SystemContainer $src -Image $image -StoragePool $Pool -Start -Config @{ 'limits.memory' = '128MiB'; 'user.note' = 'kept' } | Out-Null
        $script:srcAddress = Wait-IPv4 $src
        Invoke-In $src 'echo mark > /mark; echo owned > /owned; chown 1000:1001 /owned; chmod 4750 /owned; rm /bin/ls'
    }
    AfterAll {
        Remove-SystemContainer $src, $dst -Force -ErrorAction SilentlyContinue
        if ($Pool -ne 'default') { Remove-SystemContainerStoragePool $Pool -Force -ErrorAction SilentlyContinue }
    }
    It 'copies a running source, which runs on thawed, into a stopped copy with its config and a new MAC' {
        $before = Get-SystemContainer $src
        $c = Copy-SystemContainer $src $dst
        $c.Name | Should -Be $dst
        $c.Status | Should -Be 'Stopped'
        $c.StoragePool | Should -Be $Pool
        $c.Id | Should -Not -Be $before.Id
        $c.ImageFingerprint | Should -Be $before.ImageFingerprint
        (Get-SystemContainer $src).Status | Should -Be 'Running'
        Invoke-In $src 'echo still-writable > /w; cat /w' | Should -Be 'still-writable'
        $c.Config['limits.memory'] | Should -Be '128MiB'
        $c.Config['user.note'] | Should -Be 'kept'
        $c.Config['nic.eth0.network'] | Should -Be $before.Config['nic.eth0.network']
        $c.Config['nic.eth0.hwaddr'] | Should -Match '^0a(:[0-9a-f]{2}){5}$'
        $c.Config['nic.eth0.hwaddr'] | Should -Not -Be $before.Config['nic.eth0.hwaddr']
        $kept = $before.Config.Keys | Where-Object { $_ -ne 'nic.eth0.hwaddr' } | Sort-Object
        ($c.Config.Keys | Where-Object { $_ -ne 'nic.eth0.hwaddr' } | Sort-Object) | Should -Be $kept
        Test-Path (Get-VolumePath $Pool $dst) | Should -BeTrue
        if ($Driver -eq 'btrfs') { btrfs property get -ts (Get-VolumePath $Pool $dst) ro | Should -Be 'ro=false' }
    }
    It 'starts with the source''s files, owners and modes, its own ids, MAC, address and hostname' {
        Start-SystemContainer $dst
        Invoke-In $dst 'cat /mark' | Should -Be 'mark'
        Invoke-In $dst 'stat -c "%u:%g %a" /owned /mark' | Should -Be @('1000:1001 4750', '0:0 644')
        Invoke-In $dst 'test -e /bin/ls && echo there || echo absent' | Should -Be 'absent'
        Invoke-In $dst 'hostname' | Should -Be $dst
        Invoke-In $dst 'cat /sys/class/net/eth0/address' | Should -Be (Get-SystemContainer $dst).Config['nic.eth0.hwaddr']
        $address = Wait-IPv4 $dst
        $address | Should -Not -Be $srcAddress
        Wait-IPv4 $src | Should -Be $srcAddress
        Get-HostRootUid $dst | Should -Not -Be (Get-HostRootUid $src)
    }
    It 'is independent of its source: a write in one is not in the other' {
        Invoke-In $dst 'echo copy > /only-copy; echo changed > /mark'
        Invoke-In $src 'echo source > /only-source'
        Invoke-In $src 'cat /mark; test -e /only-copy && echo there || echo absent' | Should -Be @('mark', 'absent')
        Invoke-In $dst 'cat /mark; test -e /only-source && echo there || echo absent' | Should -Be @('changed', 'absent')
        Remove-SystemContainer $src -Force
        Invoke-In $dst 'cat /only-copy' | Should -Be 'copy'
        Stop-SystemContainer $dst -Force
        Start-SystemContainer $dst
        Invoke-In $dst 'cat /mark' | Should -Be 'changed'
    }
}

Describe 'A copy of a <Driver> snapshot' -ForEach @(
    @{ Driver = 'btrfs'; Pool = 'csnap' }
    @{ Driver = 'dir'; Pool = 'csnapd' }
    @{ Driver = 'overlay'; Pool = 'default' }
) {
    BeforeAll {
        if ($Driver -eq 'btrfs') { New-SystemContainerStoragePool $Pool -Driver btrfs -Size 300MiB | Out-Null }
        if ($Driver -eq 'dir') { New-SystemContainerStoragePool $Pool -Driver dir | Out-Null }
        New-SystemContainer snapsrc -Image $image -Network none -StoragePool $Pool -Start | Out-Null
        Invoke-In snapsrc 'echo before > /before; chown 1000:1001 /before'
        $script:expiry = [DateTimeOffset]::UtcNow.AddDays(3)
        Checkpoint-SystemContainer snapsrc -SnapshotName s1 -ExpiresAt $expiry
        Invoke-In snapsrc 'echo between > /between'
        Checkpoint-SystemContainer snapsrc -SnapshotName s2
        Invoke-In snapsrc 'echo after > /after; rm /before'
    }
    AfterAll {
        Remove-SystemContainer snapsrc, snapcopy, snapcopy2, snapbare -Force -ErrorAction SilentlyContinue
        if ($Pool -ne 'default') { Remove-SystemContainerStoragePool $Pool -Force -ErrorAction SilentlyContinue }
    }
    It 'holds what the snapshot holds, has no snapshots of its own, and leaves the source''s' {
        $c = Copy-SystemContainer snapsrc -Destination snapcopy -Snapshot s1
        $c.Status | Should -Be 'Stopped'
        Get-SystemContainerSnapshot snapcopy | Should -BeNullOrEmpty
        (Get-SystemContainerSnapshot snapsrc).SnapshotName | Should -Be @('s1', 's2')
        Start-SystemContainer snapcopy
        Invoke-In snapcopy 'cat /before; stat -c %u:%g /before; test -e /after && echo there || echo absent' | Should -Be @('before', '1000:1001', 'absent')
        Invoke-In snapsrc 'cat /after' | Should -Be 'after'
    }
    It 'copies a running source with its snapshots, their names, creation times and expiry' {
        Copy-SystemContainer snapsrc snapcopy2 | Out-Null
        $source = @(Get-SystemContainerSnapshot snapsrc)
        $copied = @(Get-SystemContainerSnapshot snapcopy2)
        $copied.SnapshotName | Should -Be @('s1', 's2')
        $copied.Created | Should -Be $source.Created
        $copied[0].ExpiresAt | Should -Be $source[0].ExpiresAt
        $copied[0].ExpiresAt.ToUnixTimeSeconds() | Should -Be $expiry.ToUnixTimeSeconds()
        $copied[1].ExpiresAt | Should -BeNullOrEmpty
        Test-Path (Get-SnapshotsPath $Pool snapcopy2) | Should -BeTrue
        if ($Driver -eq 'btrfs') { btrfs property get -ts (Join-Path (Get-SnapshotsPath $Pool snapcopy2) s1) ro | Should -Be 'ro=true' }
        Start-SystemContainer snapcopy2
        Invoke-In snapcopy2 'cat /after' | Should -Be 'after'
    }
    It 'restores a copied snapshot on the copy, independent of the source''s' {
        Remove-SystemContainerSnapshot snapsrc s1 -Force
        Stop-SystemContainer snapcopy2 -Force
        Restore-SystemContainerSnapshot snapcopy2 s1 -Force
        Start-SystemContainer snapcopy2
        Invoke-In snapcopy2 'cat /before; stat -c %u:%g /before; test -e /between -o -e /after && echo there || echo absent' |
            Should -Be @('before', '1000:1001', 'absent')
        Stop-SystemContainer snapcopy2 -Force
        Restore-SystemContainerSnapshot snapcopy2 s2 -Force
        Start-SystemContainer snapcopy2
        Invoke-In snapcopy2 'cat /before /between; test -e /after && echo there || echo absent' | Should -Be @('before', 'between', 'absent')
        Remove-SystemContainerSnapshot snapcopy2 s2 -Force
        (Get-SystemContainerSnapshot snapsrc).SnapshotName | Should -Be @('s2')
        (Get-SystemContainerSnapshot snapcopy2).SnapshotName | Should -Be @('s1')
        Invoke-In snapsrc 'cat /after; test -e /before && echo there || echo absent' | Should -Be @('after', 'absent')
        Remove-SystemContainer snapcopy2 -Force
        (Get-SystemContainerSnapshot snapsrc).SnapshotName | Should -Be @('s2')
        Stop-SystemContainer snapsrc -Force
        Restore-SystemContainerSnapshot snapsrc s2 -Force
        Start-SystemContainer snapsrc
        Invoke-In snapsrc 'cat /between; test -e /after && echo there || echo absent' | Should -Be @('between', 'absent')
    }
    It 'copies the container alone with -InstanceOnly, and through the REST API with instance_only' {
        Copy-SystemContainer snapsrc snapbare -InstanceOnly | Out-Null
        Get-SystemContainerSnapshot snapbare | Should -BeNullOrEmpty
        Test-Path (Get-SnapshotsPath $Pool snapbare) | Should -BeFalse
        Remove-SystemContainer snapbare -Force
        $r = Invoke-TestApi $daemon POST '/1.0/containers' '{"name":"snapbare","source":{"type":"copy","source":"snapsrc","instance_only":true}}'
        (Invoke-TestApi $daemon GET "/1.0/operations/$($r.Body.metadata.id)/wait?timeout=120").Body.metadata.status | Should -Be 'Success'
        Get-SystemContainerSnapshot snapbare | Should -BeNullOrEmpty
        Start-SystemContainer snapbare
        Invoke-In snapbare 'cat /between' | Should -Be 'between'
    }
}

Describe 'A copy between a dir and a btrfs pool' {
    BeforeAll {
        New-SystemContainerStoragePool xdir -Driver dir | Out-Null
        New-SystemContainerStoragePool xbtrfs -Driver btrfs -Size 300MiB | Out-Null
        New-SystemContainer xsrc -Image $image -Network none -StoragePool xdir -Start | Out-Null
        Invoke-In xsrc 'echo mark > /mark; chown 1000:1001 /mark; chmod 4750 /mark; ln -s /mark /link; mkfifo /fifo'
        Stop-SystemContainer xsrc -Force
        python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.kept', b'yes', follow_symlinks=False)" (Join-Path (Get-VolumePath xdir xsrc) 'mark')
        if ($LASTEXITCODE) { throw 'cannot set an xattr on the source volume' }
    }
    AfterAll {
        Remove-SystemContainer xsrc, xb, xd -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerStoragePool xdir, xbtrfs -Force -ErrorAction SilentlyContinue
    }
    It 'copies dir to btrfs and btrfs back to dir, with owners, modes, links, xattrs, as a root that starts' {
        (Copy-SystemContainer xsrc xb -StoragePool xbtrfs).StoragePool | Should -Be 'xbtrfs'
        (Copy-SystemContainer xb xd -StoragePool xdir).StoragePool | Should -Be 'xdir'
        foreach ($name in 'xb', 'xd') {
            $volume = Get-VolumePath (Get-SystemContainer $name).StoragePool $name
            python3 -c "import os,sys; print(os.getxattr(sys.argv[1], 'user.kept').decode())" (Join-Path $volume 'mark') | Should -Be 'yes'
            Start-SystemContainer $name
            Invoke-In $name 'stat -c "%u:%g %a" /mark; readlink /link; test -p /fifo && echo fifo' | Should -Be @('1000:1001 4750', '/mark', 'fifo')
            Stop-SystemContainer $name -Force
        }
        (Get-SystemContainerStoragePool xbtrfs).UsedBy | Should -Be @('xb')
    }
}

Describe 'A copy from a <From> pool to a <To> pool' -ForEach @(
    @{ From = 'dir'; To = 'btrfs' }
    @{ From = 'dir'; To = 'overlay' }
    @{ From = 'btrfs'; To = 'dir' }
    @{ From = 'btrfs'; To = 'overlay' }
    @{ From = 'overlay'; To = 'dir' }
    @{ From = 'overlay'; To = 'btrfs' }
    @{ From = 'btrfs'; To = 'btrfs2' }
) {
    BeforeAll {
        $pools = @{ overlay = 'default'; dir = 'pdir'; btrfs = 'pbtrfs'; btrfs2 = 'pbtrfs2' }
        if (-not (Get-SystemContainerStoragePool pdir -ErrorAction SilentlyContinue)) { New-SystemContainerStoragePool pdir -Driver dir | Out-Null }
        if (-not (Get-SystemContainerStoragePool pbtrfs -ErrorAction SilentlyContinue)) { New-SystemContainerStoragePool pbtrfs -Driver btrfs -Size 300MiB | Out-Null }
        if ($To -eq 'btrfs2') { New-SystemContainerStoragePool pbtrfs2 -Driver btrfs -Size 300MiB | Out-Null }
        $script:fromPool = $pools[$From]
        $script:toPool = $pools[$To]
        $script:psrc = "p-$From-$To"
        New-SystemContainer $psrc -Image $image -Network none -StoragePool $fromPool -Start | Out-Null
        Invoke-In $psrc 'echo mark > /mark; chown 1000:1001 /mark; chmod 4750 /mark; rm /bin/ls; mkdir /opaque; echo x > /opaque/x; mkfifo /fifo; ln -s /mark /link'
        Checkpoint-SystemContainer $psrc -SnapshotName s1
        Invoke-In $psrc 'echo later > /later; rm /opaque/x'
        Checkpoint-SystemContainer $psrc -SnapshotName s2
        Invoke-In $psrc 'echo last > /last'
    }
    AfterAll {
        Remove-SystemContainer $psrc, "$psrc-live", "$psrc-snap" -Force -ErrorAction SilentlyContinue
        if ($To -eq 'btrfs2') { Remove-SystemContainerStoragePool pbtrfs2 -Force -ErrorAction SilentlyContinue }
    }
    It 'copies the running source and its snapshot, each a root that starts with the owners, modes, links, fifos and deletions it had' {
        $live = Copy-SystemContainer $psrc "$psrc-live" -StoragePool $toPool
        $snap = Copy-SystemContainer $psrc "$psrc-snap" -Snapshot s1 -StoragePool $toPool
        $live.StoragePool, $snap.StoragePool | Should -Be @($toPool, $toPool)
        (Get-SystemContainer $psrc).Status | Should -Be 'Running'
        Get-SystemContainerSnapshot "$psrc-snap" | Should -BeNullOrEmpty
        foreach ($name in "$psrc-live", "$psrc-snap") {
            Start-SystemContainer $name
            Invoke-In $name 'stat -c "%u:%g %a" /mark; readlink /link; test -p /fifo && echo fifo; test -e /bin/ls && echo there || echo absent' |
                Should -Be @('1000:1001 4750', '/mark', 'fifo', 'absent')
            Invoke-In $name 'stat -c %u:%g /bin/busybox' | Should -Be '0:0'
            # On disk: a dir or btrfs volume holds the container's own ids; an overlay upper its host ids.
            $onDisk = stat -c '%u:%g' (Join-Path (Get-VolumePath $toPool $name) 'mark')
            if ($To -eq 'overlay') {
                $base = Get-HostRootUid $name
                $onDisk | Should -Be "$($base + 1000):$($base + 1001)"
            }
            else { $onDisk | Should -Be '1000:1001' }
        }
        Invoke-In "$psrc-live" 'cat /later /last; test -e /opaque/x && echo there || echo absent' | Should -Be @('later', 'last', 'absent')
        Invoke-In "$psrc-snap" 'cat /opaque/x; test -e /later && echo there || echo absent' | Should -Be @('x', 'absent')
    }
    It 'gives copies independent of the source and of each other' {
        Invoke-In "$psrc-live" 'echo changed > /mark'
        Invoke-In $psrc 'cat /mark' | Should -Be 'mark'
        Invoke-In "$psrc-snap" 'cat /mark' | Should -Be 'mark'
        Remove-SystemContainer $psrc -Force
        Invoke-In "$psrc-live" 'cat /mark' | Should -Be 'changed'
    }
    It 'carries the source''s snapshots, which restore on the copy with what each held' {
        (Get-SystemContainerSnapshot "$psrc-live").SnapshotName | Should -Be @('s1', 's2')
        Test-Path (Get-SnapshotsPath $toPool "$psrc-live") | Should -BeTrue
        Stop-SystemContainer "$psrc-live" -Force
        Restore-SystemContainerSnapshot "$psrc-live" s1 -Force
        Start-SystemContainer "$psrc-live"
        Invoke-In "$psrc-live" 'cat /mark /opaque/x; stat -c "%u:%g %a" /mark; test -p /fifo && echo fifo; for f in /later /last /bin/ls; do test -e $f && echo $f; done; echo end' |
            Should -Be @('mark', 'x', '1000:1001 4750', 'fifo', 'end')
        Stop-SystemContainer "$psrc-live" -Force
        Restore-SystemContainerSnapshot "$psrc-live" s2 -Force
        Start-SystemContainer "$psrc-live"
        Invoke-In "$psrc-live" 'cat /later; for f in /opaque/x /last; do test -e $f && echo $f; done; echo end' | Should -Be @('later', 'end')
    }
}

Describe 'A copy through the REST API' {
    BeforeAll { New-SystemContainer rsrc -Image $image -Network none | Out-Null }
    AfterAll { Remove-SystemContainer rsrc, rcopy -Force -ErrorAction SilentlyContinue }
    It 'takes LXD''s copy source on POST /1.0/containers, and refuses another source type or an image beside it' {
        $r = Invoke-TestApi $daemon POST '/1.0/containers' '{"name":"rcopy","source":{"type":"copy","source":"rsrc"},"start":true}'
        $r.Status | Should -Be 202
        $id = $r.Body.metadata.id
        (Invoke-TestApi $daemon GET "/1.0/operations/$id/wait?timeout=60").Body.metadata.status | Should -Be 'Success'
        (Get-SystemContainer rcopy).Status | Should -Be 'Running'
        (Invoke-TestApi $daemon POST '/1.0/containers' '{"name":"rother","source":{"type":"migration","source":"rsrc"}}').Status | Should -Be 400
        (Invoke-TestApi $daemon POST '/1.0/containers' '{"name":"rother","image":"busybox","source":{"type":"copy","source":"rsrc"}}').Status | Should -Be 400
        (Invoke-TestApi $daemon POST '/1.0/containers' '{"name":"rother","source":{"type":"copy"}}').Status | Should -Be 400
        Assert-NothingOf rother
    }
}

Describe 'A refused copy' {
    BeforeAll {
        New-SystemContainerStoragePool bdir -Driver dir | Out-Null
        New-SystemContainer bsrc -Image $image -Network none -StoragePool bdir | Out-Null
        New-SystemContainer btaken -Image $image -Network none | Out-Null
    }
    AfterAll {
        Remove-SystemContainer bsrc, btaken -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerStoragePool bdir -Force -ErrorAction SilentlyContinue
    }
    It 'refuses <What> with <Id>, and leaves nothing of the copy' -ForEach @(
        @{ What = 'a taken name'; Source = 'bsrc'; Destination = 'btaken'; Extra = @{}; Id = 'ContainerExists' }
        @{ What = 'a bad name'; Source = 'bsrc'; Destination = 'bad_name!'; Extra = @{}; Id = 'InvalidName' }
        @{ What = 'a missing source'; Source = 'nosuch'; Destination = 'bnew'; Extra = @{}; Id = 'ContainerNotFound' }
        @{ What = 'a missing snapshot'; Source = 'bsrc'; Destination = 'bnew'; Extra = @{ Snapshot = 'nosuch' }; Id = 'SnapshotNotFound' }
        @{ What = 'a bad snapshot name'; Source = 'bsrc'; Destination = 'bnew'; Extra = @{ Snapshot = '../x' }; Id = 'InvalidSnapshotName' }
        @{ What = 'a missing pool'; Source = 'bsrc'; Destination = 'bnew'; Extra = @{ StoragePool = 'nosuch' }; Id = 'PoolNotFound' }
    ) {
        Copy-SystemContainer $Source $Destination @Extra -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        if ($Destination -ne 'btaken') { Assert-NothingOf $Destination }
        (Get-SystemContainer btaken).StoragePool | Should -Be 'default'
        (Get-SystemContainer bsrc).Status | Should -Be 'Stopped'
        @(Get-ChildItem -Force (Join-Path (Get-SystemContainerStoragePool bdir).Source 'containers')).Name | Should -Be @('bsrc')
    }
    It 'changes nothing with -WhatIf' {
        Copy-SystemContainer bsrc bnew -WhatIf
        Assert-NothingOf bnew
    }
}

Describe 'A daemon killed during a copy' {
    It 'leaves no half-made copy with snapshots <Into> killed at <Point>, and the name can be used again' -ForEach @(
        @{ Driver = 'dir'; Point = 'copy-volume-made'; To = $null; Into = 'in a dir pool' }
        @{ Driver = 'btrfs'; Point = 'copy-snapshot-made'; To = $null; Into = 'in a btrfs pool' }
        @{ Driver = 'btrfs'; Point = 'copy-staged'; To = $null; Into = 'in a btrfs pool' }
        @{ Driver = 'overlay'; Point = 'copy-snapshot-made'; To = $null; Into = 'in the overlay pool' }
        @{ Driver = 'overlay'; Point = 'copy-staged'; To = $null; Into = 'in the overlay pool' }
        @{ Driver = 'overlay'; Point = 'copy-snapshot-made'; To = 'btrfs'; Into = 'from overlay to btrfs' }
        @{ Driver = 'dir'; Point = 'copy-snapshot-made'; To = 'dir'; Into = 'from dir to dir' }
    ) {
        $pool = if ($Driver -eq 'overlay') { 'default' } else { "k$Driver" }
        $toPool = if ($To) { "k$($To)to" } else { $null }
        $made = @(@{ Name = $pool; Driver = $Driver }, @{ Name = $toPool; Driver = $To }) | Where-Object { $_.Name -and $_.Name -ne 'default' }
        foreach ($p in $made) {
            $size = if ($p.Driver -eq 'btrfs') { '300MiB' } else { $null }
            New-SystemContainerStoragePool $p.Name -Driver $p.Driver -Size $size | Out-Null
        }
        $into = if ($toPool) { @{ StoragePool = $toPool } } else { @{} }
        New-SystemContainer ksrc -Image $image -Network none -StoragePool $pool -Start | Out-Null
        Invoke-In ksrc 'echo one > /mark'
        Checkpoint-SystemContainer ksrc -SnapshotName k1
        Invoke-In ksrc 'echo two > /mark'
        Checkpoint-SystemContainer ksrc -SnapshotName k2
        Invoke-In ksrc 'echo mark > /mark'
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $Point
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Copy-SystemContainer ksrc khalf @into -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What "the daemon to die at $Point"
        Get-Content -Raw $daemon.Log | Should -Match "test hook: SIGKILL at $Point"
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Assert-NothingOf khalf
        (Get-SystemContainer ksrc).Status | Should -Be 'Running'
        Invoke-In ksrc 'cat /mark' | Should -Be 'mark'
        (Get-SystemContainerSnapshot ksrc).SnapshotName | Should -Be @('k1', 'k2')
        Copy-SystemContainer ksrc khalf @into | Out-Null
        (Get-SystemContainerSnapshot khalf).SnapshotName | Should -Be @('k1', 'k2')
        Restore-SystemContainerSnapshot khalf k1 -Force
        Start-SystemContainer khalf
        Invoke-In khalf 'cat /mark' | Should -Be 'one'
        Remove-SystemContainer ksrc, khalf -Force
        foreach ($p in $made) { Remove-SystemContainerStoragePool $p.Name -Force }
    }
    It 'leaves no half-made copy from <From> into <To> killed mid stream, and thaws the running source' -ForEach @(
        @{ From = 'overlay'; To = 'dir' }
        @{ From = 'dir'; To = 'btrfs' }
        @{ From = 'btrfs'; To = 'overlay' }
    ) {
        $pools = foreach ($driver in $From, $To) {
            if ($driver -eq 'overlay') { 'default'; continue }
            $size = if ($driver -eq 'btrfs') { '300MiB' } else { $null }
            New-SystemContainerStoragePool "m$driver" -Driver $driver -Size $size | Out-Null
            "m$driver"
        }
        $fromPool, $toPool = $pools
        New-SystemContainer msrc -Image $image -Network none -StoragePool $fromPool -Start | Out-Null
        # A file bigger than the pipe's buffer, so the sender is still writing when the receiver dies.
        Invoke-In msrc 'echo mark > /mark; dd if=/dev/urandom of=/big bs=1M count=16 2>/dev/null; md5sum /big > /big.md5'
        $btrfs = @($pools | Where-Object { (Get-SystemContainerStoragePool $_).Driver -eq 'btrfs' } | ForEach-Object { Join-Path (Get-PoolsDir) $_ })
        $subvolumes = @(foreach ($b in $btrfs) { btrfs subvolume list -o $b })
        $mounts = @(Get-TestMounts $daemon)
        $initPid = (Get-SystemContainer msrc).Pid
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'tree-file-unpacked'
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Copy-SystemContainer msrc mhalf -StoragePool $toPool -ErrorAction SilentlyContinue
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die at tree-file-unpacked'
        Get-Content -Raw $daemon.Log | Should -Match 'test hook: SIGKILL at tree-file-unpacked'
        Test-CgroupFrozen $initPid | Should -BeTrue -Because 'the daemon died with the source frozen for the copy'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        Assert-NothingOf mhalf
        @(foreach ($b in $btrfs) { btrfs subvolume list -o $b }) | Should -Be $subvolumes
        @(Get-TestMounts $daemon) | Should -Be $mounts
        $src = Get-SystemContainer msrc
        $src.Status | Should -Be 'Running'
        Test-CgroupFrozen $src.Pid | Should -BeFalse
        Test-Path (Join-Path (Get-StateDir msrc) 'frozen-briefly') | Should -BeFalse
        Invoke-In msrc 'cat /mark; md5sum -c /big.md5 >/dev/null && echo intact' | Should -Be @('mark', 'intact')
        Copy-SystemContainer msrc mhalf -StoragePool $toPool | Out-Null
        Start-SystemContainer mhalf
        Invoke-In mhalf 'cat /mark; md5sum -c /big.md5 >/dev/null && echo intact' | Should -Be @('mark', 'intact')
        Remove-SystemContainer msrc, mhalf -Force
        foreach ($p in $pools) { if ($p -ne 'default') { Remove-SystemContainerStoragePool $p -Force } }
    }
}
