# Attacks a container's isolation from inside, as its root would, and checks the outcome from the host.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainer victim -Image $image -Start | Out-Null
    function In([string[]]$Command, [hashtable]$With = @{}) { Invoke-SystemContainerCommand victim -Command $Command -PassThru @With }
    # Exec over the raw API, as any client could send it; returns the response, or the finished operation.
    function Invoke-RawExec([string]$Container, [hashtable]$Request) {
        $r = Invoke-TestApi $daemon POST "/1.0/containers/$Container/exec" ($Request | ConvertTo-Json -Compress)
        if ($r.Status -ne 202) { return $r }
        (Invoke-TestApi $daemon GET "$($r.Body.operation)/wait?timeout=30").Body.metadata
    }
    # The host pid of a process in the container whose command line is cmdline (NUL-separated).
    function Find-ContainerProcess([string]$Container, [string]$Cmdline) {
        $ns = (Get-Item "/proc/$((Get-SystemContainer $Container).Pid)/ns/pid").LinkTarget
        Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
            (Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue) -eq $Cmdline -and
            (Get-Item "/proc/$($_.Name)/ns/pid" -ErrorAction SilentlyContinue).LinkTarget -eq $ns
        } | Select-Object -First 1 -ExpandProperty Name
    }
    function Get-ExecOutput($Operation) { $Operation | ConvertTo-Json -Depth 8 -Compress }
    # A host file the container must neither read nor replace, and a host path it must not create.
    $script:secret = Join-Path $daemon.Dir 'host-secret'
    Set-Content -Path $secret -Value 'host-only' -NoNewline
    $script:planted = Join-Path $daemon.Dir 'planted-by-container'
    # From any directory of the host, enough ".." reach its root; from the container's they stop at its own.
    $script:climb = ('..' + '/..' * 20)
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Escape 1: exec never starts in, or holds, a host directory' {
    AfterEach {
        In 'sh', '-c', 'rm -rf /root /tmp/cwd; mkdir -p /root' | Out-Null
        Remove-Item $planted -ErrorAction SilentlyContinue
    }
    It 'a /root symlink to /proc/self/fd/<fd> does not reach the host (fd <fd>)' -ForEach @(3..9 | ForEach-Object { @{ fd = $_ } }) {
        In 'sh', '-c', "rm -rf /root && ln -s /proc/self/fd/$fd /root" | Out-Null
        $r = In 'sh', '-c', "cat $climb$secret; echo x > $climb$planted; readlink /proc/self/cwd"
        $r.Stdout | Should -Not -Match 'host-only'
        Test-Path $planted | Should -BeFalse
    }
    It 'a cwd of <cwd> over the REST API does not reach the host' -ForEach @(
        @{ cwd = '/proc/self/fd/3' }, @{ cwd = '/proc/self/fd/4' }, @{ cwd = '/proc/self/fd/5' }, @{ cwd = '/proc/self/fd/6' },
        @{ cwd = '/proc/thread-self/fd/5' }, @{ cwd = '/proc/self/cwd' }, @{ cwd = '/dev/fd/5' }, @{ cwd = '/tmp/cwd' }
    ) {
        In 'sh', '-c', 'ln -s /proc/self/fd/5 /tmp/cwd' | Out-Null
        $m = Invoke-RawExec victim @{ command = @('sh', '-c', "cat $climb$secret; echo x > $climb$planted; pwd") ; cwd = $cwd }
        Get-ExecOutput $m | Should -Not -Match 'host-only'
        Test-Path $planted | Should -BeFalse
    }
    It 'a relative cwd is refused before anything runs' {
        $r = Invoke-TestApi $daemon POST '/1.0/containers/victim/exec' '{"command":["true"],"cwd":"tmp"}'
        $r.Status | Should -Be 400
        $r.Body.error | Should -Match 'cwd|working directory'
    }
    It 'the exec process lives in the container''s root and mount namespace' {
        $c = Get-SystemContainer victim
        In 'sh', '-c', 'sleep 31 </dev/null >/dev/null 2>&1 &' | Out-Null
        $sleeper = Find-ContainerProcess victim "sleep`031`0"
        $sleeper | Should -Not -BeNullOrEmpty
        (Get-Item "/proc/$sleeper/ns/mnt").LinkTarget | Should -Be (Get-Item "/proc/$($c.Pid)/ns/mnt").LinkTarget
        (Get-Item "/proc/$sleeper/root").LinkTarget | Should -Be '/'
        In 'killall', 'sleep' | Out-Null
    }
}

Describe 'Escape 1 at start: the rootfs a container left behind cannot redirect its next start' {
    It 'a <what> symlink in the upper layer is refused at start' -ForEach @(
        @{ what = 'dev'; link = 'dev' }, @{ what = 'proc'; link = 'proc' }, @{ what = 'sys'; link = 'sys' }, @{ what = 'run'; link = 'run' }
    ) {
        $name = "redirect-$what"
        New-SystemContainer $name -Image $image | Out-Null
        $upper = Join-Path $daemon.StateDir "containers/$name/fs/upper"
        New-Item -ItemType Directory -Force -Path (Join-Path $upper 'tmp') | Out-Null
        Remove-Item -Recurse -Force (Join-Path $upper $link) -ErrorAction SilentlyContinue
        New-Item -ItemType SymbolicLink -Path (Join-Path $upper $link) -Target $daemon.Dir | Out-Null
        { Start-SystemContainer $name -ErrorAction Stop } | Should -Throw "*$link*"
        Get-TestMounts $daemon | Should -BeNullOrEmpty
        Remove-SystemContainer $name -Force -Confirm:$false
    }
}

Describe 'Escape 3: an exec runs as a mapped id, and -User gives up root' {
    BeforeAll {
        New-SystemContainer priv-user -Image $image -Privileged -Start | Out-Null
        $script:victimMap = Get-Content "/proc/$((Get-SystemContainer victim).Pid)/uid_map"
    }
    AfterAll { Remove-SystemContainer priv-user -Force -Confirm:$false }
    It 'refuses <what> over the REST API before anything runs' -ForEach @(
        @{ what = 'user -1'; user = -1; group = 0 }, @{ what = 'group -1'; user = 0; group = -1 },
        @{ what = 'an unmapped user'; user = 65536; group = 0 }, @{ what = 'an unmapped group'; user = 0; group = 65536 },
        @{ what = 'a huge user'; user = [int]::MaxValue; group = 0 }, @{ what = 'a negative group'; user = 0; group = -2 }
    ) {
        $r = Invoke-RawExec victim @{ command = @('sh', '-c', 'echo ran > /tmp/ran'); user = $user; group = $group }
        $r.Status | Should -Be 400
        $r.Body.error | Should -Match 'not mapped|uid|gid'
        (In 'sh', '-c', 'test -e /tmp/ran && echo present').Stdout | Should -BeNullOrEmpty
    }
    It 'refuses <what> on a privileged container too' -ForEach @(@{ what = 'user -1'; user = -1; group = 0 }, @{ what = 'group -1'; user = 0; group = -1 }) {
        $r = Invoke-RawExec priv-user @{ command = @('true'); user = $user; group = $group }
        $r.Status | Should -Be 400
    }
    It 'runs a mapped user as its host id, without capabilities, in an unprivileged container' {
        $r = In 'sh', '-c', 'id -u; id -g; grep -E "^(CapEff|CapPrm|Seccomp):" /proc/self/status; sleep 31 </dev/null >/dev/null 2>&1 &' -With @{ User = 1000; Group = 1000 }
        $r.ExitCode | Should -Be 0
        $lines = $r.Stdout -split "`n"
        $lines[0..1] | Should -Be '1000', '1000'
        $r.Stdout | Should -Match 'CapEff:\s+0+\s'
        $r.Stdout | Should -Match 'Seccomp:\s+2'
        $base = [long](($victimMap -split '\s+' | Where-Object { $_ })[1])
        $sleeper = Find-ContainerProcess victim "sleep`031`0"
        (Get-Content "/proc/$sleeper/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Skip 1 | Should -Be (@($base + 1000) * 4)
        In 'killall', 'sleep' | Out-Null
    }
    It 'runs -User on a privileged container as that user, with no capabilities and no new privileges' {
        $r = Invoke-SystemContainerCommand priv-user -User 1000 -Group 1000 -PassThru -- sh -c 'id -u; id -g; grep -E "^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status; echo evil > /proc/sys/kernel/hostname; sleep 31 </dev/null >/dev/null 2>&1 &'
        $lines = $r.Stdout -split "`n"
        $lines[0..1] | Should -Be '1000', '1000'
        foreach ($set in 'CapInh', 'CapPrm', 'CapEff', 'CapAmb') { $r.Stdout | Should -Match "${set}:\s+0+\s" }
        $r.Stdout | Should -Match 'NoNewPrivs:\s+1'
        $r.Stdout | Should -Match 'Seccomp:\s+2'
        (hostname) | Should -Not -Be 'evil'
        $sleeper = Find-ContainerProcess priv-user "sleep`031`0"
        (Get-Content "/proc/$sleeper/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Skip 1 | Should -Be (@('1000') * 4)
        Invoke-SystemContainerCommand priv-user -ErrorAction SilentlyContinue -- killall sleep | Out-Null
    }
    It 'keeps root a root on a privileged container without -User' {
        (Invoke-SystemContainerCommand priv-user -- id -u) | Should -Be '0'
    }
}

Describe 'Escape 2: device nodes never open, wherever they come from' {
    BeforeAll {
        # A host file behind a loop device: the node a hostile image would carry to write through.
        $script:backing = Join-Path $daemon.Dir 'loop-backing'
        [IO.File]::WriteAllBytes($backing, [byte[]]::new(1MB))
        $script:loop = (losetup --find --show $backing).Trim()
        $script:loopMinor = [int]($loop -replace '^/dev/loop', '')
        $script:backingHash = (Get-FileHash $backing).Hash
        New-SystemContainer priv-dev -Image $image -Privileged -Start | Out-Null
        # Attempts an open for reading and writing of each node; prints "open <node>" for those that opened.
        $script:tryOpen = 'for n in "$@"; do if (exec 3<>"$n") 2>/dev/null; then echo "open $n"; fi; done; printf evil | dd of="$1" conv=notrunc 2>/dev/null; true'
        $script:nodes = @(
            @{ name = 'loop'; type = 'b'; major = 7; minor = $loopMinor }, @{ name = 'loop-control'; type = 'c'; major = 10; minor = 237 },
            @{ name = 'kvm'; type = 'c'; major = 10; minor = 232 }, @{ name = 'tty1'; type = 'c'; major = 4; minor = 1 },
            @{ name = 'mem'; type = 'c'; major = 1; minor = 1 }, @{ name = 'sda'; type = 'b'; major = 8; minor = 0 },
            @{ name = 'host-pts-0'; type = 'c'; major = 136; minor = 0 }
        )
    }
    AfterAll {
        Remove-SystemContainer priv-dev -Force -Confirm:$false
        losetup -d $loop
    }
    AfterEach { (Get-FileHash $backing).Hash | Should -Be $backingHash -Because 'nothing wrote through to the host file' }

    It 'nodes left in the rootfs (upper layer) stay closed to an unprivileged container' {
        New-SystemContainer carrier -Image $image | Out-Null
        $upper = Join-Path $daemon.StateDir 'containers/carrier/fs/upper'
        New-Item -ItemType Directory -Force (Join-Path $upper 'nodes') | Out-Null
        foreach ($n in $nodes) { mknod (Join-Path $upper "nodes/$($n.name)") $n.type $n.major $n.minor }
        # A console and a null in the rootfs too: the kinds /dev legitimately has, outside /dev.
        mknod (Join-Path $upper 'nodes/console') c 5 1
        Start-SystemContainer carrier
        $order = @('loop') + ($nodes.name | Where-Object { $_ -ne 'loop' }) + 'console' | ForEach-Object { "/nodes/$_" }
        $r = Invoke-SystemContainerCommand carrier -PassThru -- sh -c $tryOpen sh @order
        $r.Stdout | Should -BeNullOrEmpty
        (Invoke-SystemContainerCommand carrier -PassThru -- sh -c 'grep " / " /proc/self/mountinfo').Stdout | Should -Match 'nodev'
        Remove-SystemContainer carrier -Force -Confirm:$false
    }
    It 'nodes a privileged container makes on <where> are refused by the device policy' -ForEach @(
        @{ where = 'a new tmpfs'; dir = '/mnt/devs'; setup = 'mkdir -p /mnt/devs && mount -t tmpfs devs /mnt/devs' },
        @{ where = '/run'; dir = '/run/devs'; setup = 'mkdir -p /run/devs' }
    ) {
        # mknod is refused by the policy too; a node that was made (an allowed major) must then open.
        $try = ($nodes | ForEach-Object { "mknod $dir/$($_.name) $($_.type) $($_.major) $($_.minor) 2>/dev/null && (exec 3<>$dir/$($_.name)) 2>/dev/null && echo 'open $($_.name)'" }) -join '; '
        $r = Invoke-SystemContainerCommand priv-dev -PassThru -- sh -c "$setup && $try; mknod $dir/null c 1 3 && (exec 3<>$dir/null) && echo allowed-null; true"
        $r.Stdout | Should -Not -Match 'open '
        if ($where -eq 'a new tmpfs') { $r.Stdout | Should -Match 'allowed-null' -Because "an allowed node opens, so the refusals are the policy's: $($r.Stderr)" }
        Invoke-SystemContainerCommand priv-dev -- sh -c "rm -rf $dir/*; umount /mnt/devs 2>/dev/null; true" | Out-Null
    }
    It 'the standard /dev set still works (<node>)' -ForEach @(
        @{ node = 'null' }, @{ node = 'zero' }, @{ node = 'full' }, @{ node = 'random' }, @{ node = 'urandom' }, @{ node = 'tty'; }, @{ node = 'ptmx' }
    ) {
        foreach ($container in 'victim', 'priv-dev') {
            $r = Invoke-SystemContainerCommand $container -PassThru -- sh -c "test -e /dev/$node && if (exec 3<>/dev/$node) 2>/dev/null; then echo ok; else test $node = tty && echo ok; fi"
            $r.Stdout.Trim() | Should -Be 'ok' -Because "/dev/$node in $container"
        }
    }
    It 'has the standard links and mounts in /dev' {
        $r = In 'sh', '-c', 'for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; grep -E " /dev(/shm|/pts|/console)? " /proc/self/mountinfo'
        $r.Stdout | Should -Match 'pts/ptmx'
        $r.Stdout | Should -Match '/proc/self/fd/2'
        foreach ($m in ' /dev ', ' /dev/pts ', ' /dev/shm ', ' /dev/console ') { $r.Stdout | Should -Match ([regex]::Escape($m)) }
        ($r.Stdout -split "`n" | Where-Object { $_ -match ' /dev ' }) | Should -Match 'nodev'
    }
    It 'restricts the container cgroup to the allow-list from the host (<layout>)' -ForEach @(
        @{ layout = 'v1 devices controller' }, @{ layout = 'cgroup2 device program' }
    ) {
        $hierarchies = @(Get-CgroupHierarchies (Get-SystemContainer priv-dev).Pid)
        if ($layout -like 'v1*') {
            # The v1 controller only where the host mounts it; the cgroup2 program is the equivalent everywhere else.
            $devices = ($hierarchies | Where-Object { 'devices' -in $_.Controllers }).Directory
            if (-not $devices) { Set-ItResult -Skipped -Because 'this host mounts no v1 devices controller (the cgroup2 device program case covers it)' }
            $list = Get-Content (Join-Path $devices 'devices.list')
            $list | Should -Not -Contain 'a *:* rwm'
            $list | Should -Contain 'c 1:3 rwm'
            $list | Should -Contain 'c 136:* rwm'
            $list | Where-Object { $_ -like 'b *' } | Should -BeNullOrEmpty
            return
        }
        # A host shell moved into the container's cgroup2 directory meets the policy attached there:
        # /dev/null opens, /dev/kmsg (outside the allow-list, which root on the host may open) and mknod do not.
        $unified = ($hierarchies | Where-Object { $_.Controllers.Count -eq 0 }).Directory
        $unified | Should -Not -BeNullOrEmpty -Because 'every host this runs on mounts cgroup2, where the program attaches'
        $node = Join-Path $daemon.Dir 'kmsg-node'
        $probe = "(exec 3</dev/null) && echo null; (exec 3</dev/kmsg) 2>/dev/null && echo kmsg; mknod $node c 1 11 2>/dev/null && echo mknod; true"
        (sh -c $probe) -join ',' | Should -Be 'null,kmsg,mknod' -Because 'outside the cgroup nothing refuses them'
        Remove-Item $node
        (sh -c "echo `$`$ > $unified/cgroup.procs || exit 99; $probe") -join ',' | Should -Be 'null'
        $LASTEXITCODE | Should -Be 0
        Test-Path $node | Should -BeFalse
    }

}

Describe 'Escape 2 at import: an image keeps no device nodes' {
    It 'drops and reports the block and character nodes of a tarball' {
        $rootfs = Join-Path $daemon.Dir 'hostile-rootfs'
        New-Item -ItemType Directory -Force "$rootfs/bin", "$rootfs/sbin", "$rootfs/dev", "$rootfs/var/lib" | Out-Null
        Copy-Item /bin/busybox "$rootfs/bin/busybox"
        New-Item -ItemType SymbolicLink -Path "$rootfs/sbin/init" -Target ../bin/busybox | Out-Null
        mknod "$rootfs/dev/sda" b 8 0
        mknod "$rootfs/dev/kvm" c 10 232
        mknod "$rootfs/var/lib/loop-control" c 10 237
        mkfifo "$rootfs/var/lib/fifo"
        $tar = Join-Path $daemon.Dir 'hostile.tar'
        tar --create --file $tar --numeric-owner -C $rootfs .
        $img = Import-SystemContainerImage $tar -Alias hostile
        $img.DroppedDeviceNodes | Should -Be 'dev/kvm', 'dev/sda', 'var/lib/loop-control'
        $root = Join-Path $daemon.StateDir "images/$($img.Fingerprint)/rootfs"
        Get-ChildItem -Recurse -Force $root | Where-Object { (stat -c '%F' $_.FullName) -match 'special' } | Should -BeNullOrEmpty
        (Get-SystemContainerImage hostile).DroppedDeviceNodes | Should -Be 'dev/kvm', 'dev/sda', 'var/lib/loop-control'
        $img.DroppedEntries | Should -Be 'var/lib/fifo (fifo)'
        Remove-SystemContainerImage hostile -Confirm:$false
    }
}

Describe 'The daemon walks what a container controls boundedly' {
    It 'one container''s deep, huge and looping tree never fails list, state or metrics for the others, and deletes cleanly' {
        New-SystemContainer walker -Image $image -Start | Out-Null
        # 300 nested directories (beyond the walk's depth bound), links to / and to itself, 1e5 entries in one directory.
        $make = 'mkdir /w && cd /w && i=0; while [ $i -lt 300 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; ln -s / root-link; ln -s . self; ' +
            'mkdir /many && cd /many && seq 100000 | xargs touch && echo done'
        Invoke-SystemContainerCommand walker -- sh -c $make | Should -Be 'done'
        $all = Get-ContainerStats -All
        $all.Name | Should -Contain 'victim'
        $walker = $all | Where-Object Name -eq walker
        # The depth bound stops it, or the deadline does where the 1e5 entries, walked first, take
        # longer than that (an emulated guest); either way it is a partial result that says why.
        $bound = 'more than \d+ levels deep|stopped after \d+ s and \d+ entries'
        $walker.DiskUsagePartial | Should -Match $bound
        ($all | Where-Object Name -eq victim).DiskUsagePartial | Should -BeNullOrEmpty
        (Invoke-TestApi $daemon GET /1.0/containers/victim/state).Status | Should -Be 200
        (Invoke-TestApi $daemon GET /1.0/containers/walker/state).Body.metadata.disk_usage_partial | Should -Match $bound
        (Get-SystemContainer).Name | Should -Contain 'walker'
        $metrics = curl -s --unix-socket $daemon.Socket http://x/1.0/metrics
        $metrics | Should -Contain 'systemcontainers_up{name="victim"} 1'
        $metrics | Should -Contain 'systemcontainers_up{name="walker"} 1'
        Remove-SystemContainer walker -Force -Confirm:$false
        Test-Path (Join-Path $daemon.StateDir 'containers/walker') | Should -BeFalse
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'containers') | Where-Object Name -like '.*') | Should -BeNullOrEmpty
        (In @('echo', 'alive')).Stdout | Should -Match 'alive'
    }
}

Describe 'Escape 4: the kernel locks the masks of an unprivileged container' {
    BeforeAll {
        New-SystemContainer masked -Image $image -Start | Out-Null
        $script:maskedPid = (Get-SystemContainer masked).Pid
        # Runs each command in the container as its root; a line "SUCCEEDED: <command>" says one got through.
        function Invoke-Attack([string[]]$Commands) {
            $script = ($Commands | ForEach-Object { "$_ 2>&1 && echo 'SUCCEEDED: $($_ -replace "'", '')'" }) -join '; '
            (Invoke-SystemContainerCommand masked -PassThru -- sh -c "mkdir -p /mnt/p; $script").Stdout
        }
        # The container's mounts as the host sees them: mount point => mount options.
        function Get-ContainerMounts {
            $mounts = @{}
            Get-Content "/proc/$maskedPid/mountinfo" | ForEach-Object { $f = $_ -split ' '; $mounts[$f[4]] = $f[5] }
            $mounts
        }
        # The namespaces of a process as lsns reports them: type => inode, parent (PNS) and owner (ONS).
        function Get-Namespaces([int]$ProcessId) {
            $ns = @{}
            lsns -p $ProcessId -n -o TYPE,NS,PNS,ONS | ForEach-Object {
                $type, $inode, $parent, $owner = -split $_
                $ns[$type] = [pscustomobject]@{ Inode = $inode; Parent = $parent; Owner = $owner }
            }
            $ns
        }
        $script:hostUserns = (Get-Item /proc/self/ns/user).LinkTarget -replace '\D', ''
        $script:mountsBefore = Get-ContainerMounts
        # A sysctl no namespace confines: root inside must never change it, masks or none.
        $script:sysctl = '/proc/sys/kernel/printk_ratelimit_burst'
        $script:sysctlValue = (Get-Content $sysctl).Trim()
        $script:refused = 'Invalid argument|Operation not permitted|[Pp]ermission denied|Read-only file system'
    }
    AfterAll {
        if ((Get-Content $sysctl).Trim() -ne $sysctlValue) { Set-Content $sysctl $sysctlValue }
        Remove-SystemContainer masked -Force -Confirm:$false
    }

    It 'container root can neither unmount nor detach <mask>, and the host still sees it in place' -ForEach (@(
        '/proc/sys', '/proc/sys/net', '/proc/sysrq-trigger', '/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/latency_stats',
        '/proc/sched_debug', '/proc/acpi', '/proc/scsi', '/proc/kmsg', '/proc', '/sys', '/sys/fs/cgroup', '/dev', '/dev/null'
    ) | ForEach-Object { @{ mask = $_ } }) {
        if (-not $mountsBefore.ContainsKey($mask)) { Set-ItResult -Skipped -Because "this kernel has no $mask to mask"; return }
        $out = Invoke-Attack "umount $mask", "umount -l $mask", "umount -f $mask"
        $out | Should -Not -Match 'SUCCEEDED'
        @($out -split "`n" | Where-Object { $_ -match $refused }).Count | Should -Be 3 -Because "each umount is refused with EINVAL or EPERM: $out"
        (Get-ContainerMounts)[$mask] | Should -Be $mountsBefore[$mask]
    }
    It 'container root cannot make the read-only <mask> writable' -ForEach (@(
        '/proc/sys', '/proc/sysrq-trigger', '/proc/acpi', '/proc/scsi', '/sys'
    ) | ForEach-Object { @{ mask = $_ } }) {
        if (-not $mountsBefore.ContainsKey($mask)) { Set-ItResult -Skipped -Because "this kernel has no $mask to mask"; return }
        $mountsBefore[$mask] | Should -Match '^ro,'
        $out = Invoke-Attack "mount -o remount,rw $mask", "mount -o remount,bind,rw $mask", "unshare -m mount -o remount,bind,rw $mask"
        $out | Should -Not -Match 'SUCCEEDED'
        (Get-ContainerMounts)[$mask] | Should -Match '^ro,'
    }
    It 'container root cannot mount a fresh procfs, in its own namespaces or in new ones' {
        $out = Invoke-Attack 'mount -t proc proc /mnt/p', 'unshare -m mount -t proc proc /mnt/p', 'unshare -Urm mount -t proc proc /mnt/p',
            'unshare -fp --mount-proc=/mnt/p true', 'unshare -Urfp --mount-proc=/mnt/p true'
        $out | Should -Not -Match 'SUCCEEDED'
        (Invoke-SystemContainerCommand masked -PassThru -- sh -c 'test -e /mnt/p/sys && echo revealed').Stdout | Should -BeNullOrEmpty
    }
    It 'a bind of /proc or /sys never comes without its masks, and a new namespace keeps them locked' {
        $out = Invoke-Attack 'mount --bind /proc /mnt/p', 'mount --bind /sys /mnt/p',
            'unshare -m sh -c "umount -l /proc/sys"', 'unshare -Urm sh -c "umount -l /proc/sys"', 'unshare -Urm sh -c "umount -l /sys"',
            'unshare -m sh -c "mount -o rbind /proc /mnt/p && umount -l /mnt/p/sys"',
            'unshare -m sh -c "mount --bind /proc/sys/kernel /mnt/p && mount -o remount,bind,rw /mnt/p"'
        $out | Should -Not -Match 'SUCCEEDED'
        (Get-ContainerMounts).Keys | Where-Object { $_ -like '/mnt/p*' } | Should -BeNullOrEmpty
    }
    It 'what the masks hide stays hidden and the host sysctl unchanged, whatever is mounted over them' {
        $next = [int]$sysctlValue + 1
        $out = Invoke-Attack "echo $next > $sysctl",
            "unshare -m sh -c 'mount -t tmpfs tmpfs /proc/sys && mkdir /proc/sys/kernel && echo $next > $sysctl'",
            "unshare -m sh -c 'mount -t tmpfs tmpfs /proc/acpi && ls /proc/acpi | grep -q .'",
            "unshare -m sh -c 'mount --bind /dev/zero /proc/keys; umount /proc/keys; grep -q . /proc/keys'"
        $out | Should -Match ([regex]::Escape("SUCCEEDED: unshare -m sh -c mount -t tmpfs tmpfs /proc/sys")) -Because 'a mount over a mask only covers it'
        $out -split "`n" | Where-Object { $_ -match 'SUCCEEDED' -and $_ -notmatch 'tmpfs /proc/sys' } | Should -BeNullOrEmpty
        (Get-Content $sysctl).Trim() | Should -Be $sysctlValue
        (Invoke-SystemContainerCommand masked -PassThru -- sh -c 'wc -c < /proc/keys; wc -c < /proc/timer_list').Stdout -split "`n" | Where-Object { $_ } |
            Should -Be '0', '0'
    }
    It 'runs init in an inner user namespace: its parent owns the pid namespace, it owns the rest' {
        $ns = Get-Namespaces $maskedPid
        $ns.user.Inode | Should -Not -Be $hostUserns
        $ns.user.Parent | Should -Not -Be $hostUserns -Because 'the masks are made one user namespace above the container''s'
        $ns.user.Parent | Should -Not -Be '0'
        $ns.pid.Owner | Should -Be $ns.user.Parent
        foreach ($type in 'mnt', 'net', 'uts', 'ipc', 'cgroup') { $ns[$type].Owner | Should -Be $ns.user.Inode -Because "root inside manages its $type namespace" }
        (Get-ContainerIdMap $maskedPid).UidBase | Should -BeGreaterOrEqual 65536 -Because 'the host sees the container''s own ids'
        (Invoke-SystemContainerCommand masked -- cat /proc/self/uid_map) -join "`n" | Should -Match '^\s*0\s+0\s+65536\s*$'
    }
    It 'an exec joins the same namespaces as init, and root inside still runs its hostname and network' {
        Invoke-SystemContainerCommand masked -- sh -c 'sleep 32 </dev/null >/dev/null 2>&1 &' | Out-Null
        $sleeper = Find-ContainerProcess masked "sleep`032`0"
        $sleeper | Should -Not -BeNullOrEmpty
        foreach ($type in 'user', 'mnt', 'pid', 'net', 'uts', 'ipc', 'cgroup') {
            (Get-Item "/proc/$sleeper/ns/$type").LinkTarget | Should -Be (Get-Item "/proc/$maskedPid/ns/$type").LinkTarget
        }
        $r = Invoke-SystemContainerCommand masked -PassThru -- sh -c 'hostname renamed && hostname && ip link set lo mtu 1280 && ip link show lo | grep -o "mtu 1280"; hostname masked'
        $r.Stdout -split "`n" | Select-Object -First 2 | Should -Be 'renamed', 'mtu 1280'
        (hostname) | Should -Not -Be 'renamed'
        Invoke-SystemContainerCommand masked -ErrorAction SilentlyContinue -- killall sleep | Out-Null
    }
    It 'security.nesting=true keeps one user namespace, where root can mount procfs for containers of its own' {
        $nested = New-SystemContainer nested -Image $image -Network none -Config @{ 'security.nesting' = 'true' } -Start
        try {
            $ns = Get-Namespaces $nested.Pid
            $ns.user.Parent | Should -Be $hostUserns
            foreach ($type in 'mnt', 'pid', 'net', 'uts', 'ipc', 'cgroup') { $ns[$type].Owner | Should -Be $ns.user.Inode }
            (Invoke-SystemContainerCommand nested -PassThru -- unshare -fp --mount-proc sh -c 'test "$$" = 1').ExitCode | Should -Be 0
            (Invoke-SystemContainerCommand masked -PassThru -- unshare -fp --mount-proc sh -c 'test "$$" = 1').ExitCode | Should -Not -Be 0
        }
        finally { Remove-SystemContainer nested -Force -Confirm:$false }
    }
    It 'refuses a security.nesting that is not true or false, and creates nothing' {
        { New-SystemContainer nesting-bad -Image $image -Config @{ 'security.nesting' = 'maybe' } -ErrorAction Stop } | Should -Throw '*security.nesting*true or false*'
        Get-SystemContainer nesting-bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Escape 5: the helper binary cannot be rewritten through /proc/<pid>/exe' {
    BeforeAll {
        New-SystemContainer priv-exe -Image $image -Privileged -Start | Out-Null
        $script:helperPath = $env:SYSTEMCONTAINERS_SC_INIT
        if (-not $helperPath) { $script:helperPath = Join-Path $PSScriptRoot '../artifacts/SystemContainers/daemon/sc-init' }
        $script:helperHash = (Get-FileHash $helperPath).Hash
        $script:module = Join-Path $PSScriptRoot '../SystemContainers.psd1'
    }
    AfterAll { Remove-SystemContainer priv-exe -Force -Confirm:$false }
    AfterEach { (Get-FileHash $helperPath).Hash | Should -Be $helperHash -Because 'the host binary never changes' }

    It 'runs exec from a sealed memfd that refuses writes' {
        $job = Start-ThreadJob -ArgumentList $module { param($m) Import-Module $m; Invoke-SystemContainerCommand priv-exe -- sleep 33 }
        try {
            Wait-Until { Find-ContainerProcess priv-exe "sleep`033`0" } -TimeoutSeconds 10 -What 'the exec to start'
            $sleeper = Find-ContainerProcess priv-exe "sleep`033`0"
            $helper = ((Get-Content "/proc/$sleeper/status" | Where-Object { $_ -like 'PPid:*' }) -split '\s+')[1]
            (Get-Item "/proc/$helper/exe").LinkTarget | Should -BeLike '/memfd:sc-init*'
            { $f = [IO.File]::Open("/proc/$helper/exe", 'Open', 'ReadWrite'); try { $f.Write([byte[]](1, 2, 3), 0, 3); $f.Flush() } finally { $f.Dispose() } } | Should -Throw
        }
        finally {
            Invoke-SystemContainerCommand priv-exe -ErrorAction SilentlyContinue -- killall sleep | Out-Null
            $job | Wait-Job -Timeout 10 | Remove-Job -Force
        }
    }
    It 'a #!/proc/self/exe command runs the sealed copy, and nothing in the container can write it' {
        $watch = 'for i in $(seq 300); do for e in /proc/[0-9]*/exe; do (printf evil 1<>"$e") 2>/dev/null && echo "wrote $e"; done; done; echo watched'
        Invoke-SystemContainerCommand priv-exe -- sh -c "printf '#!/proc/self/exe\n' > /evil && chmod +x /evil" | Out-Null
        $watcher = Start-ThreadJob -ArgumentList $module, $watch { param($m, $w) Import-Module $m; Invoke-SystemContainerCommand priv-exe -PassThru -- sh -c $w }
        for ($i = 0; $i -lt 20; $i++) { (Invoke-SystemContainerCommand priv-exe -PassThru -- /evil).ExitCode | Should -Not -Be 0 }
        $watched = ($watcher | Wait-Job -Timeout 60 | Receive-Job).Stdout
        $watched | Should -Match 'watched'
        $watched | Should -Not -Match 'wrote'
        $watcher | Remove-Job -Force
    }
}

Describe 'Escape 7: the seccomp filter covers every ABI and the calls Docker and LXD deny' {
    BeforeAll {
        $script:probe = Join-Path $daemon.Dir 'probe-syscalls'
        gcc -static -O2 -o $probe (Join-Path $PSScriptRoot 'probe-syscalls.c')
        if ($LASTEXITCODE) { throw 'cannot build the syscall probe' }
        # What each call does on the host, where nothing filters it.
        $script:onHost = @{}
        & $probe | ForEach-Object { $call, $abi, $err = $_ -split ' '; $onHost["$call $abi"] = $err }
        New-SystemContainer priv-sys -Image $image -Privileged -Start | Out-Null
        function Probe([string]$Container) {
            Copy-Item $probe (Join-Path $daemon.StateDir "containers/$Container/fs/upper/probe")
            $result = @{}
            Invoke-SystemContainerCommand $Container /probe | ForEach-Object { $call, $abi, $err = $_ -split ' '; $result["$call $abi"] = $err }
            $result
        }
    }
    AfterAll { Remove-SystemContainer priv-sys -Force -Confirm:$false }

    It 'denies each call the host kernel would run, in every ABI, in a privileged container' {
        $inside = Probe priv-sys
        $reached = $onHost.Keys | Where-Object { $onHost[$_] -notin 'ENOSYS', 'EPERM' }
        $reached.Count | Should -BeGreaterThan 20 -Because 'the host runs most of the probed calls natively and through int 0x80'
        foreach ($key in $reached) {
            $want = if ($key -match '^(keyctl|add_key|request_key) ') { 'ENOSYS' } else { 'EPERM' }
            $inside[$key] | Should -Be $want -Because "$key gives $($onHost[$key]) on the host"
        }
    }
    It 'answers the keyring calls with ENOSYS in an unprivileged container, so systemd falls back' {
        $inside = Probe victim
        foreach ($abi in 'native', 'i386') {
            foreach ($call in 'keyctl', 'add_key', 'request_key') { $inside["$call $abi"] | Should -Be 'ENOSYS' }
        }
    }
    It 'keeps setuid working: the filter sets no no_new_privs for root' {
        (In 'grep', 'NoNewPrivs:', '/proc/self/status').Stdout | Should -Match 'NoNewPrivs:\s+0'
    }
}

Describe 'Escape 6: a NIC never takes over a host interface' {
    BeforeAll {
        New-SystemContainerNetwork secnet -IPv4 10.78.1.1/24 | Out-Null
        Invoke-InNetns $daemon ip @('link', 'add', 'hostdev0', 'type', 'veth', 'peer', 'name', 'hostdev0p') | Out-Null
        function Test-HostLink([string]$Name) { Invoke-InNetns $daemon ip @('-o', 'link', 'show', $Name) 2>$null | Out-Null; $LASTEXITCODE -eq 0 }
    }
    AfterAll {
        foreach ($c in 'nicnew', 'nicset', 'nicvictim') { Remove-SystemContainer $c -Force -Confirm:$false -ErrorAction SilentlyContinue }
        Invoke-InNetns $daemon ip @('link', 'del', 'hostdev0') 2>$null | Out-Null
        Invoke-InNetns $daemon ip @('link', 'del', 'scsec0') 2>$null | Out-Null
        Remove-SystemContainerNetwork secnet -Confirm:$false -ErrorAction SilentlyContinue
    }
    It 'refuses a host_name naming an existing host interface at create' {
        New-SystemContainer nicnew -Image $image -Network secnet -Config @{ 'nic.eth0.host_name' = 'hostdev0' } -ErrorAction SilentlyContinue -ErrorVariable e | Out-Null
        $e[0].FullyQualifiedErrorId | Should -BeLike 'HostNameInUse,*'
        $e[0].Exception.Message | Should -Match 'hostdev0'
        Get-SystemContainer nicnew -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-HostLink hostdev0 | Should -BeTrue
    }
    It 'refuses it on a running container too, and keeps its config' {
        New-SystemContainer nicset -Image $image -Network none -Start | Out-Null
        Set-SystemContainer nicset -Config @{ 'nic.eth1.type' = 'bridged'; 'nic.eth1.network' = 'secnet'; 'nic.eth1.host_name' = 'hostdev0' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'HostNameInUse,*'
        (Get-SystemContainer nicset).Config.Keys | Should -Not -Contain 'nic.eth1.host_name'
        Stop-SystemContainer nicset -Force
        Test-HostLink hostdev0 | Should -BeTrue
    }
    It 'does not adopt, and so never deletes, a host interface that took a NIC''s name while the daemon was away' {
        New-SystemContainer nicvictim -Image $image -Network secnet -Config @{ 'nic.eth0.host_name' = 'scsec0' } -Start | Out-Null
        Test-HostLink scsec0 | Should -BeTrue
        Stop-DaemonProcess $daemon
        # The NIC's pair goes, and a host interface of the same name appears: not the container's.
        Invoke-InNetns $daemon ip @('link', 'del', 'scsec0') | Out-Null
        Invoke-InNetns $daemon ip @('link', 'add', 'scsec0', 'type', 'veth', 'peer', 'name', 'scsec0p') | Out-Null
        Start-DaemonProcess $daemon
        (Get-SystemContainer nicvictim).Status | Should -Be 'Running'
        Stop-SystemContainer nicvictim -Force
        # A NIC's host end is deleted in the background: give it the time it takes.
        Start-Sleep -Seconds 2
        Test-HostLink scsec0 | Should -BeTrue
    }
    It 'still adopts a NIC that is provably its own: unplugging it after a restart removes its host end' {
        New-SystemContainer nicown -Image $image -Network secnet -Config @{ 'nic.eth0.host_name' = 'scown0' } -Start | Out-Null
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon
        # The container keeps running, so only an adopted host end is deleted by the unplug.
        Set-SystemContainer nicown -Config @{ 'nic.eth0.type' = 'none' }
        Wait-Until { -not (Test-HostLink scown0) } -TimeoutSeconds 10 -What 'the adopted host end to be deleted'
        (Get-SystemContainer nicown).Status | Should -Be 'Running'
        Remove-SystemContainer nicown -Force -Confirm:$false
    }
}
