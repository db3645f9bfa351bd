# lxcfs views: free, nproc, /proc/cpuinfo and uptime inside a container show its own limits and
# uptime, from the lxcfs the daemon supervises (or the host's own at /var/lib/lxcfs), checked
# inside the container and from the host (the daemon's lxcfs process, the container's mountinfo).
BeforeDiscovery {
    # The host's own lxcfs (Debian's lxcfs.service) at /var/lib/lxcfs, which the daemon then uses.
    $hostLxcfs = @(Get-Content /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -eq '/var/lib/lxcfs' -and $_ -match ' - fuse\.lxcfs ' }).Count -gt 0
    $noLxcfs = -not (Test-Path /usr/bin/lxcfs) -and -not $hostLxcfs
}
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:hostLxcfs = (Get-SystemContainerHost).Lxcfs -eq 'system'
    $script:noLxcfs = -not (Test-Path /usr/bin/lxcfs) -and -not $hostLxcfs

    function Get-MountPoints([int]$InitPid) {
        Get-Content "/proc/$InitPid/mountinfo" | ForEach-Object { ($_ -split ' ')[4] }
    }
    function Get-FirstField([string]$Text) { [double](($Text.Trim() -split '\s+')[0]) }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'lxcfs views inside a container' {
    BeforeAll {
        if (-not $noLxcfs) {
            $script:c = New-SystemContainer views -Image $image -Config @{ 'limits.memory' = '256MiB'; 'limits.cpu' = '1' } -Start
        }
    }
    AfterAll { if (-not $noLxcfs) { Remove-SystemContainer views -Force -Confirm:$false } }

    It 'runs one lxcfs of the daemon''s own, recorded in its pid file, unless the host mounts one' -Skip:$noLxcfs {
        $h = Get-SystemContainerHost
        if ($hostLxcfs) {
            $h.LxcfsMount | Should -Be '/var/lib/lxcfs'
            $h.LxcfsPid | Should -BeNullOrEmpty
            return
        }
        $h.Lxcfs | Should -Be 'daemon'
        $h.LxcfsPid | Should -Be (Get-TestLxcfs $daemon)
        (Get-Content -Raw "/proc/$($h.LxcfsPid)/status") -match 'PPid:\s+(\d+)' | Should -BeTrue
        [int]$Matches[1] | Should -Be $daemon.Pid
        (Get-Content -Raw "/proc/$($h.LxcfsPid)/cmdline").Split("`0")[0] | Should -Be 'lxcfs'
        $h.LxcfsMount | Should -Be (Join-Path $daemon.RunDir 'lxcfs/mnt')
    }

    # busybox's free and uptime ask sysinfo(2), which no file system can answer; procps's read
    # these files (Systemd.Tests.ps1 runs them in a Debian container).
    It 'shows the memory limit in /proc/meminfo' -Skip:$noLxcfs {
        $kb = Invoke-SystemContainerCommand views -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
        [long]$kb | Should -Be (256 * 1024)
        # The host's own stays the host's.
        [long]((Select-String -Path /proc/meminfo -Pattern '^MemTotal:\s+(\d+)').Matches[0].Groups[1].Value) | Should -BeGreaterThan (256 * 1024)
    }

    It 'shows limits.cpu=1 in nproc, /proc/cpuinfo and /sys/devices/system/cpu/online' -Skip:($noLxcfs -or [Environment]::ProcessorCount -lt 2) {
        Invoke-SystemContainerCommand views nproc | Should -Be '1'
        Invoke-SystemContainerCommand views -- sh -c 'grep -c ^processor /proc/cpuinfo' | Should -Be '1'
        Invoke-SystemContainerCommand views cat /sys/devices/system/cpu/online | Should -Be '0'
        (Get-Content /sys/devices/system/cpu/online) | Should -Not -Be '0'
    }

    It 'shows the container''s own uptime in /proc/uptime, not the host''s' -Skip:$noLxcfs {
        $inside = Get-FirstField (Invoke-SystemContainerCommand views cat /proc/uptime)
        $hostUptime = Get-FirstField (Get-Content -Raw /proc/uptime)
        $inside | Should -BeLessThan 120
        ($hostUptime - $inside) | Should -BeGreaterThan 10
    }

    It 'binds the lxcfs files over the container''s /proc and /sys, seen from the host' -Skip:$noLxcfs {
        $points = Get-MountPoints $c.Pid
        foreach ($file in '/proc/meminfo', '/proc/cpuinfo', '/proc/uptime', '/proc/stat', '/proc/loadavg', '/sys/devices/system/cpu/online') {
            $points | Should -Contain $file
        }
        $lines = Get-Content "/proc/$($c.Pid)/mountinfo" | Where-Object { ($_ -split ' ')[4] -eq '/proc/meminfo' }
        $lines | Should -Match ' - fuse\.lxcfs '
    }

    It 'keeps container root from unmounting or detaching <file> (the mount is locked)' -ForEach (@(
        '/proc/meminfo', '/proc/uptime', '/sys/devices/system/cpu/online'
    ) | ForEach-Object { @{ file = $_ } }) -Skip:$noLxcfs {
        $r = Invoke-SystemContainerCommand views -PassThru -- sh -c "for f in '' -l -f; do umount `$f $file 2>&1 && echo SUCCEEDED; done; grep -c . $file"
        $r.Stdout | Should -Not -Match 'SUCCEEDED'
        @($r.Stdout -split "`n" | Where-Object { $_ -match 'Invalid argument|Operation not permitted' }).Count | Should -Be 3 -Because $r.Stdout
        (Get-MountPoints $c.Pid) | Should -Contain $file
        Invoke-SystemContainerCommand views -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo" | Should -Be "$(256 * 1024)"
    }
}

Describe 'security.lxcfs' {
    It 'leaves the kernel''s own files to a container that turns lxcfs off' -Skip:$noLxcfs {
        $off = New-SystemContainer plain -Image $image -Config @{ 'limits.memory' = '256MiB'; 'security.lxcfs' = 'false' } -Start
        try {
            (Get-MountPoints $off.Pid) | Should -Not -Contain '/proc/meminfo'
            $kb = Invoke-SystemContainerCommand plain -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
            [long]$kb | Should -BeGreaterThan (256 * 1024)
        }
        finally { Remove-SystemContainer plain -Force -Confirm:$false }
    }

    It 'refuses a value that is not a boolean' {
        { New-SystemContainer bad -Image $image -Config @{ 'security.lxcfs' = 'maybe' } -ErrorAction Stop } | Should -Throw '*security.lxcfs*'
        Get-SystemContainer bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'lxcfs supervision' {
    It 'restarts the daemon''s lxcfs when it dies, logs it, and new containers get views again' -Skip:($noLxcfs -or $hostLxcfs) {
        $before = Get-TestLxcfs $daemon
        kill -KILL $before
        Wait-Until { (Get-TestLxcfs $daemon) -and (Get-TestLxcfs $daemon) -ne $before -and (Get-SystemContainerHost).Lxcfs -eq 'daemon' } -TimeoutSeconds 20 -What 'lxcfs to be restarted'
        Get-Content -Raw $daemon.Log | Should -Match 'lxcfs exited \(code , signal 9\); restarting'
        $c = New-SystemContainer fresh -Image $image -Config @{ 'limits.memory' = '128MiB' } -Start
        try {
            $kb = Invoke-SystemContainerCommand fresh -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
            [long]$kb | Should -Be (128 * 1024)
        }
        finally { Remove-SystemContainer fresh -Force -Confirm:$false }
    }

    It 'gives its views to a container started while lxcfs restarts (the start waits for it)' -Skip:($noLxcfs -or $hostLxcfs) {
        $before = Get-TestLxcfs $daemon
        kill -KILL $before
        # The supervisor waits a second before the restart: the start below falls in that pause,
        # once the mount is dead (its last thread gone, not only its leader a zombie).
        $uptime = Join-Path $daemon.RunDir 'lxcfs/mnt/proc/uptime'
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while ((Get-Content $uptime -ErrorAction SilentlyContinue) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 5 }
        $c = New-SystemContainer racing -Image $image -Config @{ 'limits.memory' = '160MiB' } -Start
        try {
            (Get-SystemContainerHost).Lxcfs | Should -Be 'daemon'
            Get-TestLxcfs $daemon | Should -Not -Be $before
            $kb = Invoke-SystemContainerCommand racing -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
            [long]$kb | Should -Be (160 * 1024)
        }
        finally { Remove-SystemContainer racing -Force -Confirm:$false }
    }

    It 'keeps the same lxcfs across a daemon restart, and the container''s views keep working' -Skip:($noLxcfs -or $hostLxcfs) {
        $c = New-SystemContainer kept -Image $image -Config @{ 'limits.memory' = '192MiB' } -Start
        try {
            $before = Get-TestLxcfs $daemon
            Stop-DaemonProcess $daemon
            Test-ProcessAlive $before | Should -BeTrue
            Start-DaemonProcess $daemon
            (Get-SystemContainerHost).LxcfsPid | Should -Be $before
            Get-TestLxcfs $daemon | Should -Be $before
            (Get-SystemContainer kept).Pid | Should -Be $c.Pid
            $kb = Invoke-SystemContainerCommand kept -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
            [long]$kb | Should -Be (192 * 1024)
        }
        finally { Remove-SystemContainer kept -Force -Confirm:$false }
    }

    It 'starts, with a new lxcfs, over the dead mount of one killed while no daemon ran' -Skip:($noLxcfs -or $hostLxcfs) {
        $mount = Join-Path $daemon.RunDir 'lxcfs/mnt'
        $before = Get-TestLxcfs $daemon
        Stop-DaemonProcess $daemon
        kill -KILL $before
        Wait-Until { -not (Test-ProcessAlive $before) } -TimeoutSeconds 10 -What 'the killed lxcfs to exit'
        # Its FUSE mount stays behind and answers ENOTCONN.
        @(Get-Content /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -eq $mount }).Count | Should -Be 1
        "$(ls $mount 2>&1)" | Should -Match 'Transport endpoint is not connected'
        Start-DaemonProcess $daemon
        $h = Get-SystemContainerHost
        $h.Lxcfs | Should -Be 'daemon'
        $h.LxcfsPid | Should -Not -Be $before
        # One live mount: the dead one was detached, not buried under the new one.
        @(Get-Content /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -eq $mount }).Count | Should -Be 1
        Test-Path (Join-Path $mount 'proc/meminfo') | Should -BeTrue
        $c = New-SystemContainer afterdead -Image $image -Config @{ 'limits.memory' = '96MiB' } -Start
        try {
            $kb = Invoke-SystemContainerCommand afterdead -- sh -c "awk '/^MemTotal:/ { print `$2 }' /proc/meminfo"
            [long]$kb | Should -Be (96 * 1024)
        }
        finally { Remove-SystemContainer afterdead -Force -Confirm:$false }
    }
}

Describe 'A host without lxcfs' {
    It 'starts containers with the kernel''s files and says lxcfs is missing' -Skip:$hostLxcfs {
        $bare = Start-TestDaemon -ExtraArguments @('--lxcfs', '/nonexistent/lxcfs')
        try {
            Get-TestImage | Out-Null
            $h = Get-SystemContainerHost
            $h.Lxcfs | Should -Be 'missing'
            $h.LxcfsDetail | Should -Match '/nonexistent/lxcfs is not installed'
            $c = New-SystemContainer bare -Image $image -Start
            (Get-MountPoints $c.Pid) | Should -Not -Contain '/proc/meminfo'
            Invoke-SystemContainerCommand bare hostname | Should -Be 'bare'
            Test-Path (Join-Path $bare.RunDir 'lxcfs/lxcfs.pid') | Should -BeFalse
        }
        finally {
            Stop-TestDaemon $bare
            $env:SYSTEMCONTAINERS_SOCKET = $daemon.Socket
            $env:SYSTEMCONTAINERS_RUN_DIR = $daemon.RunDir
            $env:SYSTEMCONTAINERS_NO_AUTOSTART = '1'
        }
    }
}
