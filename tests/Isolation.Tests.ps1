# Looks at a running container from inside (what its processes see) and from the host (kernel state).
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:c = New-SystemContainer iso -Image $image -Start
    function In([string[]]$Command) { Invoke-SystemContainerCommand iso -Command $Command -PassThru }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'From inside the container' {
    It 'is root' { (In 'id', '-u').Stdout.Trim() | Should -Be '0' }
    It 'has the container name as hostname' { (In 'hostname').Stdout.Trim() | Should -Be 'iso' }
    It 'has its init as PID 1' { (In 'cat', '/proc/1/comm').Stdout.Trim() | Should -Be 'init' }
    It 'does not see host processes' {
        $pids = (In 'sh', '-c', 'ls /proc | grep -E "^[0-9]+$"').Stdout.Trim() -split "`n" | ForEach-Object { [int]$_ }
        $pids | Should -Contain 1
        $pids | Should -Not -Contain $PID
        # A handful (init, what its rcS still runs just after the start, this sh, ls, grep); the host runs far more.
        @(Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$').Count | Should -BeGreaterThan 30
        $pids.Count | Should -BeLessThan 20
    }
    It 'cannot write /proc/sys/kernel/hostname' {
        $r = In 'sh', '-c', 'echo evil > /proc/sys/kernel/hostname'
        $r.ExitCode | Should -Not -Be 0
        $r.Stderr | Should -Match 'Read-only file system'
        (hostname) | Should -Not -Be 'evil'
    }
    It 'mounts tmpfs in its own mount namespace only' {
        # systemd inside needs this: a user namespace's root may mount file systems made for it.
        $r = In 'sh', '-c', 'mkdir -p /tmp/own && mount -t tmpfs own-tmpfs /tmp/own && grep " /tmp/own " /proc/self/mountinfo'
        $r.ExitCode | Should -Be 0
        $r.Stdout | Should -Match 'own-tmpfs'
        Get-Content /proc/self/mountinfo, "/proc/$($daemon.Pid)/mountinfo" | Where-Object { $_ -match 'own-tmpfs' } | Should -BeNullOrEmpty
    }
    It 'cannot mount file systems only the host may mount, nor lift a read-only lock, nor make block devices' {
        # busybox mount says EPERM as "permission denied (are you root?)".
        $r = In 'sh', '-c', 'mkdir -p /tmp/dbg && mount -t debugfs dbg /tmp/dbg'
        $r.ExitCode | Should -Not -Be 0
        $r.Stderr | Should -Match 'permission denied'
        $r = In 'mount', '-o', 'remount,rw', '/sys'
        $r.ExitCode | Should -Not -Be 0
        $r.Stderr | Should -Match 'permission denied'
        (In 'sh', '-c', 'grep " /sys " /proc/self/mountinfo').Stdout | Should -Match '\sro,'
        $r = In 'mknod', '/tmp/sda', 'b', '8', '0'
        $r.ExitCode | Should -Not -Be 0
        $r.Stderr | Should -Match 'Operation not permitted'
        (In 'test', '-e', '/tmp/sda').ExitCode | Should -Not -Be 0
    }
    It 'sees /sys read-only and masked /proc files' {
        (In 'touch', '/sys/kernel/evil').ExitCode | Should -Not -Be 0
        (In 'sh', '-c', 'grep " /sys " /proc/self/mountinfo').Stdout | Should -Match '\sro,'
        (In 'sh', '-c', 'wc -c < /proc/keys').Stdout.Trim() | Should -Be '0'
    }
    It 'has the API file systems a system container needs' {
        $mounts = (In 'cat', '/proc/self/mountinfo').Stdout
        foreach ($m in ' /proc ', ' /dev ', ' /dev/pts ', ' /dev/shm ', ' /run ', ' /sys/fs/cgroup ', ' /dev/console ') { $mounts | Should -Match ([regex]::Escape($m)) }
        (In 'sh', '-c', 'echo ok > /dev/null && head -c 4 /dev/urandom | wc -c').Stdout.Trim() | Should -Be '4'
        (In 'sh', '-c', 'tr "\0" "\n" < /proc/1/environ').Stdout | Should -Match 'container=systemcontainers'
    }
}

Describe 'From the host' {
    It "runs init as the unprivileged host ids its id map gives container root" {
        $map = Get-ContainerIdMap $c.Pid
        $map.Inside | Should -Be 0
        $map.UidBase | Should -BeGreaterThan 0
        $map.GidBase | Should -BeGreaterThan 0
        $map.Size | Should -Be 65536
        $map.GidSize | Should -Be 65536
        # Root's subordinate ranges, where the host has them, are where the ids come from (else LXD's default pool).
        $ranges = @(Get-Content /etc/subuid -ErrorAction SilentlyContinue | Where-Object { $_ -match '^(root|0):(\d+):(\d+)$' -and [long]$Matches[3] -ge 65536 } |
            ForEach-Object { $f = $_ -split ':'; @{ Start = [long]$f[1]; Count = [long]$f[2] } })
        if (-not $ranges) { $ranges = @(@{ Start = 1000000; Count = 1000000000 }) }
        @($ranges | Where-Object { $map.UidBase -ge $_.Start -and $map.UidBase + $map.Size -le $_.Start + $_.Count }).Count | Should -Be 1
        $status = Get-Content "/proc/$($c.Pid)/status"
        ($status | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($map.UidBase)"
        ($status | Where-Object { $_ -like 'Gid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($map.GidBase)"
        (In 'id', '-u').Stdout.Trim() | Should -Be '0'
    }
    It 'gives init its own <ns> namespace' -ForEach @(
        @{ ns = 'pid' }, @{ ns = 'mnt' }, @{ ns = 'net' }, @{ ns = 'uts' }, @{ ns = 'ipc' }, @{ ns = 'user' }, @{ ns = 'cgroup' }
    ) {
        (Get-Item "/proc/$($c.Pid)/ns/$ns").LinkTarget | Should -Not -Be (Get-Item "/proc/$($daemon.Pid)/ns/$ns").LinkTarget
    }
    It "puts the container's processes in a cgroup of its own in the daemon's group" {
        $daemonDir = Split-Path -Parent (Get-CgroupFile $daemon.Pid memory cgroup.procs)
        $memory = Split-Path -Parent (Get-CgroupFile $c.Pid memory cgroup.procs)
        # v1 nests the group under the daemon's own cgroup; v2 keeps it apart (a systemd scope, or its own subtree).
        if ((Get-CgroupVersion) -eq 'v1') { $memory | Should -BeLike "$daemonDir/*/iso" }
        else { $memory | Should -Match '/systemcontainers-[0-9a-f]{8}(\.scope)?/iso$' }
        Get-Content (Join-Path $daemonDir 'cgroup.procs') | Should -Not -Contain "$($c.Pid)"
        Get-Content (Join-Path $memory 'cgroup.procs') | Should -Contain "$($c.Pid)"
        # Inside, the cgroup namespace makes the container's cgroup its root.
        $pattern = if ((Get-CgroupVersion) -eq 'v2') { '^0::/$' } else { ':memory:/$' }
        (Invoke-SystemContainerCommand iso -- cat /proc/self/cgroup) -match $pattern | Should -Not -BeNullOrEmpty
    }
    It 'runs init and commands under the seccomp filter' {
        (Get-Content "/proc/$($c.Pid)/status" | Where-Object { $_ -like 'Seccomp:*' }) | Should -Match '\s2$'
        (Invoke-SystemContainerCommand iso -- grep Seccomp: /proc/self/status) | Should -Match '\s2$'
    }
    It 'denies host-wide calls even in a privileged container' {
        # open_by_handle_at(-1, NULL, 0) fails with EFAULT or EBADF when allowed; a privileged root has the capability it needs.
        $probe = Join-Path $daemon.Dir 'probe'
        gcc -static -O2 -o $probe (Join-Path $PSScriptRoot 'probe-seccomp.c')
        $LASTEXITCODE | Should -Be 0
        & $probe | Should -BeIn 'EBADF', 'EFAULT'
        New-SystemContainer priv -Image $image -Privileged -Start | Out-Null
        Copy-Item $probe (Join-Path $daemon.StateDir 'containers/priv/fs/upper/probe')
        Invoke-SystemContainerCommand priv /probe | Should -Be 'EPERM'
        Remove-SystemContainer priv -Force -Confirm:$false
    }
    It 'leaves no container mounts in the host mount table' {
        Get-TestMounts $daemon | Should -BeNullOrEmpty
    }
}

Describe 'Two containers from one image' {
    It 'do not see each other''s files, and the image stays unchanged' {
        New-SystemContainer iso2 -Image $image -Start | Out-Null
        Invoke-SystemContainerCommand iso -- sh -c 'echo mine > /etc/secret'
        (Invoke-SystemContainerCommand iso2 -PassThru -- cat /etc/secret).ExitCode | Should -Not -Be 0
        $fingerprint = (Get-SystemContainerImage busybox).Fingerprint
        Test-Path (Join-Path $daemon.StateDir "images/$fingerprint/rootfs/etc/secret") | Should -BeFalse
        Test-Path (Join-Path $daemon.StateDir 'containers/iso/fs/upper/etc/secret') | Should -BeTrue
    }
}
