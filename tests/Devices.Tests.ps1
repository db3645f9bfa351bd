# Disk devices: host paths bound into containers, id-shifted through idmapped mounts, plugged
# into running containers; looked at from inside and from the host, and attacked from inside.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon -ExtraArguments @('--default-network', 'none')
    $script:image = Get-TestImage
    $script:src = Join-Path $daemon.Dir 'shared'
    New-Item -ItemType Directory -Path $src | Out-Null
    Set-Content "$src/owned" 'from-the-host'
    chown 1000:1000 $src "$src/owned"
    function Get-MountPoints([int]$InitPid) {
        <# The mount points of an init's mount namespace, as the host reads them. #>
        Get-Content "/proc/$InitPid/mountinfo" | ForEach-Object { ($_ -split ' ')[4] }
    }
    function Get-MountLine([int]$InitPid, [string]$Path) {
        Get-Content "/proc/$InitPid/mountinfo" | Where-Object { ($_ -split ' ')[4] -eq $Path }
    }
    function Get-HostMountPoints { Get-Content /proc/self/mountinfo | ForEach-Object { ($_ -split ' ')[4] } }
}
AfterAll {
    Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force
    Stop-TestDaemon $script:daemon
}

Describe 'Disk devices mounted at start' {
    BeforeAll {
        $script:ro = Join-Path $daemon.Dir 'readonly'
        New-Item -ItemType Directory -Path $ro | Out-Null
        Set-Content "$ro/keep" 'unchanged'
        $script:file = Join-Path $daemon.Dir 'single.conf'
        Set-Content $file 'one-file'
        $script:d1 = New-SystemContainer d1 -Image $image -Start -Config @{
            'disk.data.source' = $src; 'disk.data.path' = '/mnt/data'
            'disk.ro.source' = $ro; 'disk.ro.path' = '/srv/ro'; 'disk.ro.readonly' = 'true'
            'disk.conf.source' = $file; 'disk.conf.path' = '/etc/single.conf'
            'disk.raw.source' = $src; 'disk.raw.path' = '/run/raw'; 'disk.raw.shift' = 'false'
            # Sorted first by name, but it lies inside disk data: it must go on after it.
            'disk.a0.source' = $ro; 'disk.a0.path' = '/mnt/data/nested'
        }
    }
    AfterAll { Remove-SystemContainer d1 -Force }

    It 'shows a host file owned by uid 1000 as uid 1000 inside, and a write by uid 1000 inside is uid 1000 on the host' {
        Invoke-SystemContainerCommand d1 -- stat -c '%u %g' /mnt/data/owned | Should -Be '1000 1000'
        Invoke-SystemContainerCommand d1 -- cat /mnt/data/owned | Should -Be 'from-the-host'
        Invoke-SystemContainerCommand d1 -User 1000 -Group 1000 -- sh -c 'echo from-inside > /mnt/data/written'
        stat -c '%u %g' "$src/written" | Should -Be '1000 1000'
        Get-Content "$src/written" | Should -Be 'from-inside'
        # The host sees an idmapped, nosuid, nodev mount in the container's mount namespace.
        $line = Get-MountLine $d1.Pid '/mnt/data'
        $line | Should -Match '\bidmapped\b'
        $line | Should -Match '\bnosuid\b'
        $line | Should -Match '\bnodev\b'
        rm -f "$src/written"
    }
    It 'binds unshifted with shift=false: host ids are unmapped inside (nobody)' {
        Invoke-SystemContainerCommand d1 -- stat -c '%u' /run/raw/owned | Should -Be '65534'
        Get-MountLine $d1.Pid '/run/raw' | Should -Not -Match '\bidmapped\b'
    }
    It 'refuses writes to a read-only disk with EROFS and leaves the host file as it was' {
        $out = Invoke-SystemContainerCommand d1 -- sh -c 'exec 2>&1; echo changed > /srv/ro/keep; echo rc=$?'
        ($out -join "`n") | Should -Match 'Read-only file system'
        ($out -join "`n") | Should -Match 'rc=1'
        Get-Content "$ro/keep" | Should -Be 'unchanged'
        # Container root cannot lift the flag: it was locked at start.
        $out = Invoke-SystemContainerCommand d1 -- sh -c 'exec 2>&1; mount -o remount,bind,rw /srv/ro; echo rc=$?; echo changed > /srv/ro/keep; cat /srv/ro/keep'
        ($out -join "`n") | Should -Match 'rc=[1-9]'
        $out[-1] | Should -Be 'unchanged'
        Get-Content "$ro/keep" | Should -Be 'unchanged'
    }
    It 'mounts a disk inside another disk after it, so the outer one does not cover it' {
        Invoke-SystemContainerCommand d1 -- cat /mnt/data/nested/keep | Should -Be 'unchanged'
        # Its mount point was made in the outer disk, as container root, which is root on the host through the idmap.
        stat -c '%F %u' "$src/nested" | Should -Be 'directory 0'
    }
    It 'binds a single file at a file path' {
        Invoke-SystemContainerCommand d1 -- cat /etc/single.conf | Should -Be 'one-file'
        Invoke-SystemContainerCommand d1 -- stat -c '%F' /etc/single.conf | Should -Be 'regular file'
    }
    It 'cannot be unmounted by container root to show what lies under it' {
        $out = Invoke-SystemContainerCommand d1 -- sh -c 'exec 2>&1; umount /mnt/data; echo rc=$?; umount -l /mnt/data; echo rc=$?; cat /mnt/data/owned'
        @($out | Where-Object { $_ -like 'rc=*' }) | Should -Be @('rc=1', 'rc=1')
        $out[-1] | Should -Be 'from-the-host'
        Get-MountPoints $d1.Pid | Should -Contain '/mnt/data'
    }
    It 'refuses to remove a disk mounted at start from the running container, changing nothing' {
        Remove-SystemContainerDevice d1 data -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match 'locked into the container'
        (Get-SystemContainer d1).Config['disk.data.path'] | Should -Be '/mnt/data'
        Get-MountPoints $d1.Pid | Should -Contain '/mnt/data'
    }
    It 'lists the disks with Get-SystemContainerDevice' {
        $disks = @(Get-SystemContainerDevice d1 | Where-Object Type -eq 'disk')
        @($disks.Device) | Should -Be @('a0', 'conf', 'data', 'raw', 'ro')
        ($disks | Where-Object Device -eq 'ro').Properties['readonly'] | Should -Be 'true'
    }
    It 'leaves no mount on the host after the container stops' {
        # The daemon's own lxcfs mount is the only one in its directory, with containers or without.
        Get-TestMounts $daemon | Should -BeNullOrEmpty
        Stop-SystemContainer d1 -Force
        Test-Path "/proc/$($d1.Pid)" | Should -BeFalse
        Get-TestMounts $daemon | Should -BeNullOrEmpty
    }
}

Describe 'Disk hot-plug' {
    BeforeAll {
        $script:hot = New-SystemContainer hot -Image $image -Start
        $script:plug = Join-Path $daemon.Dir 'plug'
        New-Item -ItemType Directory -Path $plug | Out-Null
        Set-Content "$plug/note" 'plugged'
    }
    AfterAll { Remove-SystemContainer hot -Force }

    It 'mounts a disk added to a running container and unmounts it when removed' {
        $d = Add-SystemContainerDevice hot p1 disk -Properties @{ source = $plug; path = '/srv/plug/in' } -PassThru
        $d.Type | Should -Be 'disk'
        Invoke-SystemContainerCommand hot -- cat /srv/plug/in/note | Should -Be 'plugged'
        Get-MountPoints $hot.Pid | Should -Contain '/srv/plug/in'
        # The mount point it made is the container root's.
        Invoke-SystemContainerCommand hot -- stat -c '%u' /srv/plug | Should -Be '0'
        Remove-SystemContainerDevice hot p1
        Get-MountPoints $hot.Pid | Should -Not -Contain '/srv/plug/in'
        Invoke-SystemContainerCommand hot -- ls /srv/plug/in | Should -BeNullOrEmpty
        (Get-SystemContainer hot).Config.Keys | Where-Object { $_ -like 'disk.*' } | Should -BeNullOrEmpty
    }
    It 'changes a disk of a running container by unmounting and mounting it again' {
        Add-SystemContainerDevice hot p2 disk -Properties @{ source = $plug; path = '/srv/a' }
        Set-SystemContainer hot -Config @{ 'disk.p2.path' = '/srv/b' }
        Get-MountPoints $hot.Pid | Should -Not -Contain '/srv/a'
        Invoke-SystemContainerCommand hot -- cat /srv/b/note | Should -Be 'plugged'
        Remove-SystemContainerDevice hot p2
        Get-MountPoints $hot.Pid | Should -Not -Contain '/srv/b'
    }
    It 'refuses a read-only disk on a running container, which only a start would lock' {
        Add-SystemContainerDevice hot rop disk -Properties @{ source = $plug; path = '/srv/rop'; readonly = $true } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DiskNeedsRestart,*'
        (Get-SystemContainer hot).Config.Keys | Where-Object { $_ -like 'disk.*' } | Should -BeNullOrEmpty
        Get-MountPoints $hot.Pid | Should -Not -Contain '/srv/rop'
    }
    It 'refuses a symlink the container planted at the target, covering nothing of the host' {
        Invoke-SystemContainerCommand hot -- sh -c 'mkdir -p /mnt && ln -s /etc /mnt/x && ln -s /proc/self/root/etc /mnt/y && ln -s /proc /mnt/p'
        $hostEtc = (Get-ChildItem /etc -Name) -join ','
        Add-SystemContainerDevice hot s1 disk -Properties @{ source = $plug; path = '/mnt/x' } -ErrorVariable e1 -ErrorAction SilentlyContinue
        $e1[0].Exception.Message | Should -Match 'cannot mount a disk on /mnt/x in the container: it is a symlink: ELOOP'
        Add-SystemContainerDevice hot s2 disk -Properties @{ source = $plug; path = '/mnt/y/sc-disk-test' } -ErrorVariable e2 -ErrorAction SilentlyContinue
        $e2[0].Exception.Message | Should -Match 'cannot open /mnt/y in the container: E'
        Add-SystemContainerDevice hot s3 disk -Properties @{ source = $plug; path = '/mnt/p/sys' } -ErrorVariable e3 -ErrorAction SilentlyContinue
        $e3[0].Exception.Message | Should -Match 'on /proc or /sys'
        Test-Path /etc/sc-disk-test | Should -BeFalse
        (Get-ChildItem /etc -Name) -join ',' | Should -Be $hostEtc
        Get-HostMountPoints | Should -Not -Contain '/etc'
        $points = Get-MountPoints $hot.Pid
        $points | Should -Not -Contain '/etc'
        $points | Should -Not -Contain '/proc/sys/sc-disk-test'
        Invoke-SystemContainerCommand hot -- stat -c '%F' /etc | Should -Be 'directory'
        (Get-SystemContainer hot).Config.Keys | Where-Object { $_ -like 'disk.*' } | Should -BeNullOrEmpty
    }
    It 'refuses at start a symlink planted at the target before a restart, and the host is untouched' {
        Stop-SystemContainer hot -Force
        $hostEtc = (Get-ChildItem /etc -Name) -join ','
        Add-SystemContainerDevice hot s1 disk -Properties @{ source = $plug; path = '/mnt/x' }
        Start-SystemContainer hot -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match 'it is a symlink'
        (Get-SystemContainer hot).Status | Should -Be 'Stopped'
        Get-HostMountPoints | Should -Not -Contain '/etc'
        (Get-ChildItem /etc -Name) -join ',' | Should -Be $hostEtc
        Remove-SystemContainerDevice hot s1
        $script:hot = Start-SystemContainer hot -PassThru
    }
    It 'plugs a disk into a container a restarted daemon adopted' {
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon @('--default-network', 'none')
        Add-SystemContainerDevice hot late disk -Properties @{ source = $plug; path = '/srv/late' }
        Invoke-SystemContainerCommand hot -- cat /srv/late/note | Should -Be 'plugged'
        Remove-SystemContainerDevice hot late
        Get-MountPoints $hot.Pid | Should -Not -Contain '/srv/late'
    }
}

Describe 'A disk of a privileged container' {
    It 'is a plain bind, nosuid and nodev: host ids are its ids' {
        $p = New-SystemContainer priv -Image $image -Start -Config @{ 'security.privileged' = 'true'; 'disk.data.source' = $src; 'disk.data.path' = '/mnt/data' }
        Invoke-SystemContainerCommand priv -- stat -c '%u' /mnt/data/owned | Should -Be '1000'
        $line = Get-MountLine $p.Pid '/mnt/data'
        $line | Should -Not -Match '\bidmapped\b'
        $line | Should -Match '\bnosuid\b'
        $line | Should -Match '\bnodev\b'
        Remove-SystemContainer priv -Force
    }
}

Describe 'A disk source on a shared mount' {
    BeforeAll {
        # systemd makes / shared, so on its hosts every disk source lies on a shared mount; here
        # the source is one of its own. A mount made on a disk must never propagate to the host.
        $script:sharedSrc = Join-Path $daemon.Dir 'shared-mount'
        $script:inner = Join-Path $daemon.Dir 'inner'
        New-Item -ItemType Directory -Path $sharedSrc, $inner | Out-Null
        Set-Content "$inner/keep" 'inner'
        mount --bind $sharedSrc $sharedSrc
        mount --make-shared $sharedSrc
        function Get-MountsBelowSource { @(Get-HostMountPoints | Where-Object { $_.StartsWith("$sharedSrc/") }) }
        # security.nesting keeps the container's root in the mount namespace the disks are attached in.
        $script:sm = New-SystemContainer sm -Image $image -Start -Config @{
            'security.nesting' = 'true'
            'disk.s.source' = $sharedSrc; 'disk.s.path' = '/mnt/s'
            'disk.t.source' = $inner; 'disk.t.path' = '/mnt/s/inner'
        }
    }
    AfterAll {
        Remove-SystemContainer sm -Force
        # Recursively: a mount that propagated there would keep the bind busy.
        umount -R $sharedSrc
    }

    It 'keeps a disk nested in it and a mount container root makes on it out of the host' {
        Invoke-SystemContainerCommand sm -- cat /mnt/s/inner/keep | Should -Be 'inner'
        Invoke-SystemContainerCommand sm -- sh -c 'mkdir -p /mnt/s/planted && mount -t tmpfs planted /mnt/s/planted && echo x > /mnt/s/planted/f && cat /mnt/s/planted/f' | Should -Be 'x'
        Get-MountPoints $sm.Pid | Should -Contain '/mnt/s/planted'
        Get-MountsBelowSource | Should -BeNullOrEmpty
        Test-Path "$sharedSrc/planted/f" | Should -BeFalse
        Test-Path "$sharedSrc/inner/keep" | Should -BeFalse -Because 'the nested disk is the container''s alone'
    }
    It 'keeps a mount on a disk plugged into the running container out of the host' {
        Add-SystemContainerDevice sm hot disk -Properties @{ source = $sharedSrc; path = '/srv/hot' }
        Invoke-SystemContainerCommand sm -- sh -c 'mkdir -p /srv/hot/x && mount -t tmpfs x /srv/hot/x && grep -c " /srv/hot/x " /proc/self/mountinfo' | Should -Be '1'
        Get-MountsBelowSource | Should -BeNullOrEmpty
        Stop-SystemContainer sm -Force
        Get-MountsBelowSource | Should -BeNullOrEmpty
    }
}

Describe 'A disk source whose file system cannot be idmapped' {
    BeforeAll {
        # ramfs has no idmapped mounts: a shifted disk of it must fail, never mount unshifted.
        $script:ramfs = Join-Path $daemon.Dir 'ramfs'
        New-Item -ItemType Directory -Path $ramfs | Out-Null
        mount -t ramfs sc-test-ramfs $ramfs
        Set-Content "$ramfs/data" 'in-ramfs'
        New-SystemContainer rf -Image $image -Config @{ 'disk.r.source' = $ramfs; 'disk.r.path' = '/mnt/r' } | Out-Null
    }
    AfterAll {
        Remove-SystemContainer rf -Force
        umount $ramfs
    }
    It 'fails the start naming the path and shift=false, and with shift=false binds it' {
        Start-SystemContainer rf -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match "cannot shift the ids of the disk source $([regex]::Escape($ramfs)) .*shift=false.*: EINVAL"
        (Get-SystemContainer rf).Status | Should -Be 'Stopped'
        Set-SystemContainer rf -Config @{ 'disk.r.shift' = 'false' }
        $c = Start-SystemContainer rf -PassThru
        Invoke-SystemContainerCommand rf -- cat /mnt/r/data | Should -Be 'in-ramfs'
        Get-MountLine $c.Pid '/mnt/r' | Should -Not -Match '\bidmapped\b'
    }
    It 'refuses to hot-plug it shifted, changing nothing' {
        Add-SystemContainerDevice rf r2 disk -Properties @{ source = $ramfs; path = '/mnt/r2' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match 'cannot shift the ids'
        (Get-SystemContainer rf).Config.Keys | Should -Not -Contain 'disk.r2.source'
        Get-MountPoints (Get-SystemContainer rf).Pid | Should -Not -Contain '/mnt/r2'
    }
}

Describe 'Disk device keys' {
    It 'refuses <Label> with a clear error, creating nothing' -ForEach @(
        @{ Label = 'a relative source'; Config = @{ 'disk.a.source' = 'srv'; 'disk.a.path' = '/srv' }; Message = "'disk.a.source' must be an absolute path" }
        @{ Label = 'a path with ..'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/srv/../etc' }; Message = "'disk.a.path' must be an absolute path without" }
        @{ Label = 'a path under /proc'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/proc/x' }; Message = 'not on /, /proc or /sys' }
        @{ Label = 'a path under /sys'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/sys' }; Message = 'not on /, /proc or /sys' }
        @{ Label = 'a missing path'; Config = @{ 'disk.a.source' = '/tmp' }; Message = 'needs disk.a.path as well' }
        @{ Label = 'a source the host lacks'; Config = @{ 'disk.a.source' = '/nonexistent-sc-source'; 'disk.a.path' = '/srv' }; Message = 'does not exist on the host' }
        @{ Label = 'a bad readonly value'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/srv'; 'disk.a.readonly' = 'maybe' }; Message = "'disk.a.readonly' must be true or false" }
        @{ Label = 'two disks at one path'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/srv'; 'disk.b.source' = '/tmp'; 'disk.b.path' = '/srv' }; Message = 'both mounted at' }
        @{ Label = 'an unknown property'; Config = @{ 'disk.a.source' = '/tmp'; 'disk.a.path' = '/srv'; 'disk.a.size' = '1G' }; Message = 'unknown config key' }
        @{ Label = 'a name a NIC has'; Config = @{ 'disk.eth0.source' = '/tmp'; 'disk.eth0.path' = '/srv'; 'nic.eth0.type' = 'none' }; Message = 'used by a NIC and a disk device' }
    ) {
        New-SystemContainer bad -Image $image -Config $Config -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match ([regex]::Escape($Message))
        Get-SystemContainer bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}
