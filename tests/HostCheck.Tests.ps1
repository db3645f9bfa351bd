# Test-SystemContainerHost against a real daemon: every fact it reports is checked against the host itself.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    # -Fix writes here, never to /etc/sysctl.d.
    $script:sysctlDir = Join-Path '/tmp' "sc-hostcheck-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $script:sysctlFile = Join-Path $sysctlDir '60-systemcontainers.conf'
    # In the host's network namespace: the neighbour table limits are visible only there.
    $script:daemon = Start-TestDaemon -HostNetwork -ExtraArguments @('--sysctl-file', $sysctlFile)
    $script:checks = Test-SystemContainerHost
    function Check([string]$Name, $From = $checks) { $From | Where-Object Name -eq $Name }
    function Read-Sysctl([string]$Key) { [long]((Get-Content ('/proc/sys/' + $Key.Replace('.', '/'))) -split '\s+')[0] }
    # What N containers need of each limit, as docs/Test-SystemContainerHost.md states it: the floor, or N times one container's share.
    $script:limits = [ordered]@{
        'fs.inotify.max_user_instances' = 128, 64; 'fs.inotify.max_user_watches' = 8192, 8192; 'kernel.keys.maxkeys' = 200, 0
        'kernel.pid_max' = 32768, 500; 'net.ipv4.neigh.default.gc_thresh1' = 128, 0; 'net.ipv4.neigh.default.gc_thresh2' = 512, 1
        'net.ipv4.neigh.default.gc_thresh3' = 1024, 2; 'vm.max_map_count' = 262144, 0
    }
    function Needed([string]$Key, [int]$Containers) { [math]::Max($limits[$Key][0], $limits[$Key][1] * $Containers) }
}
AfterAll {
    Stop-TestDaemon $script:daemon
    Remove-Item -Recurse -Force $script:sysctlDir -ErrorAction SilentlyContinue
}

Describe 'Test-SystemContainerHost' {
    It 'returns one object per fact, each with a known category and status' {
        $checks | Should -BeOfType ([SystemContainers.Api.SystemContainerHostCheck])
        $checks.Category | Sort-Object -Unique | Should -Be @('cgroup', 'kernel', 'limit', 'tool')
        $checks | ForEach-Object { $_.Status | Should -BeIn 'Ok', 'Info', 'Warning', 'Failed' }
        @($checks.Name | Sort-Object -Unique).Count | Should -Be $checks.Count
    }
    It 'reports the cgroup version /proc/self/mountinfo shows, as the daemon uses it' {
        $mounts = @(Get-CgroupMounts)
        $expected = if (-not ($mounts | Where-Object Type -eq 'cgroup')) { 'v2' } elseif ($mounts | Where-Object Type -eq 'cgroup2') { 'hybrid' } else { 'v1' }
        (Check 'cgroup version').Value | Should -Be $expected
        $server = (Invoke-TestApi $daemon GET /1.0).Body.metadata.cgroup_version
        $server | Should -Be $(if ($expected -eq 'v2') { 'v2' } else { 'v1' })
    }
    It 'reports the controllers containers can have' {
        if ((Get-CgroupVersion) -eq 'v2') {
            # No container has run yet: what the kernel offers at the root is what the containers' subtree can get.
            $root = (Get-CgroupMounts | Where-Object Type -eq 'cgroup2').MountPoint
            $available = (Get-Content (Join-Path $root 'cgroup.controllers')) -split ' '
            $delegation = Check 'cgroup delegation'
            $delegation.Value -split ' ' | Sort-Object | Should -Be ($available | Sort-Object)
            $missing = 'cpu', 'cpuset', 'io', 'memory', 'pids' | Where-Object { $_ -notin $available }
            $delegation.Status | Should -Be $(if ($missing) { 'Warning' } else { 'Ok' })
        }
        else {
            $mounted = (Get-CgroupMounts | Where-Object Type -eq 'cgroup').Options
            $controllers = Check 'cgroup controllers'
            foreach ($c in $controllers.Needed -split ' ') { ($c -in ($controllers.Value -split ' ')) | Should -Be ($c -in $mounted) -Because "$c is $(if ($c -notin $mounted) { 'not ' })mounted" }
            $controllers.Status | Should -Be $(if (($controllers.Needed -split ' ') | Where-Object { $_ -notin $mounted }) { 'Warning' } else { 'Ok' })
        }
    }
    It 'reports whether a pure v2 host''s cgroup2 keeps nsdelegate and memory_recursiveprot, and never judges a hybrid host''s' {
        $check = Check 'cgroup2 options'
        $cgroup2 = Get-CgroupMounts | Where-Object { $_.Type -eq 'cgroup2' -and $_.MountPoint -eq '/sys/fs/cgroup' }
        if (-not $cgroup2) {
            $check | Should -BeNullOrEmpty -Because 'the cgroup2 of a hybrid host (/sys/fs/cgroup/unified) is left as it is'
            return
        }
        $check.Value | Should -Be ($cgroup2.Options -join ',')
        $missing = 'nsdelegate', 'memory_recursiveprot' | Where-Object { $_ -notin $cgroup2.Options }
        $check.Status | Should -Be $(if ($missing) { 'Warning' } else { 'Ok' })
        if ($missing) { $check.Detail | Should -BeLike "*without $($missing -join ',')*-Fix*" }
    }
    It 'reports <key> as /proc/sys shows it, and what 1000 containers need' -ForEach @(
        @{ key = 'fs.inotify.max_user_instances' }, @{ key = 'fs.inotify.max_user_watches' }, @{ key = 'kernel.keys.maxkeys' },
        @{ key = 'kernel.pid_max' }, @{ key = 'net.ipv4.neigh.default.gc_thresh1' }, @{ key = 'net.ipv4.neigh.default.gc_thresh2' },
        @{ key = 'net.ipv4.neigh.default.gc_thresh3' }, @{ key = 'vm.max_map_count' }
    ) {
        $value = Read-Sysctl $key
        $found = Check $key (Test-SystemContainerHost -Containers 1000)
        $found.Category | Should -Be 'limit'
        [long]$found.Value | Should -Be $value
        [long]$found.Needed | Should -Be (Needed $key 1000)
        $found.Status | Should -Be $(if ($value -ge (Needed $key 1000)) { 'Ok' } else { 'Warning' })
        [long](Check $key).Needed | Should -Be (Needed $key 100) -Because 'the default judges for 100 containers'
    }
    It 'reports user namespaces and root''s subordinate ids as the host has them' {
        (Check 'user namespaces').Value | Should -Be "$(Read-Sysctl 'user.max_user_namespaces')"
        foreach ($file in 'subuid', 'subgid') {
            $name = @{ subuid = 'subordinate uids'; subgid = 'subordinate gids' }[$file]
            $ranges = @(Get-Content "/etc/$file" -ErrorAction SilentlyContinue | Where-Object { $_ -match '^(root|0):(\d+):(\d+)$' -and [long]$Matches[3] -ge 65536 -and [long]$Matches[2] -ge 65536 } |
                ForEach-Object { $f = $_ -split ':'; "$($f[1])-$([long]$f[1] + [long]$f[2] - 1)" })
            $expected = if ($ranges) { $ranges -join ', ' } else { 'none' }
            (Check $name).Value | Should -Be $expected
        }
    }
    It 'reports nested user namespaces as available exactly when an unprivileged container starts' {
        $found = Check 'nested user namespaces'
        New-SystemContainer nested-probe -Image (Get-TestImage) -Network none | Out-Null
        try {
            Start-SystemContainer nested-probe -ErrorAction SilentlyContinue -ErrorVariable refused
            $found.Status | Should -Be $(if ($refused) { 'Failed' } else { 'Ok' }) -Because "the start said: $refused"
            $found.Value | Should -Be $(if ($refused) { 'refused' } else { 'available' })
        }
        finally { Remove-SystemContainer nested-probe -Force -Confirm:$false }
    }
    It 'reports idmapped mounts on the state directory''s file system as a real idmapped mount finds them' {
        $target = findmnt -n -o FSTYPE,TARGET --target $daemon.StateDir
        $fsType, $mountPoint = -split $target
        $found = Check 'idmapped mounts'
        $found.Value | Should -Be "$fsType at $mountPoint"
        # The engine's own use agrees: it starts containers on idmapped mounts, falling back to a shifted image copy where they fail.
        New-SystemContainer idmapped -Image (Get-TestImage) -Start | Out-Null
        $rootfs = Join-Path $daemon.StateDir "images/$((Get-SystemContainerImage busybox).Fingerprint)"
        $shifted = @(Get-ChildItem $rootfs -Directory -Filter 'rootfs.shift-*')
        Remove-SystemContainer idmapped -Force -Confirm:$false
        $found.Status | Should -Be $(if ($shifted) { 'Warning' } else { 'Ok' })
    }
    It 'reports overlay and btrfs as /proc/filesystems lists them' {
        $filesystems = Get-Content /proc/filesystems | ForEach-Object { ($_ -split '\t')[-1] }
        if ('overlay' -in $filesystems) { (Check overlay).Status | Should -Be 'Ok' } else { (Check overlay).Value | Should -BeIn 'module', 'absent' }
        if ('btrfs' -in $filesystems) { (Check btrfs).Status | Should -Be 'Ok' } else { (Check btrfs).Status | Should -BeIn 'Ok', 'Info' }
    }
    It 'reports the seccomp actions the kernel lists, and finds pidfd and clone3 that the engine uses' {
        (Check seccomp).Value | Should -Be (Get-Content /proc/sys/kernel/seccomp/actions_avail).Trim()
        (Check seccomp).Status | Should -Be 'Ok'
        # Containers run on this host (the other test files), so their kernel calls exist.
        (Check pidfd).Status | Should -Be 'Ok'
        (Check clone3).Status | Should -Be 'Ok'
        nft list tables *> $null
        (Check nftables).Status | Should -Be $(if ($LASTEXITCODE -eq 0) { 'Ok' } else { 'Warning' })
        (Check userfaultfd).Status | Should -Be $(if ((Test-Path /proc/sys/vm/unprivileged_userfaultfd) -or (Test-Path /dev/userfaultfd)) { 'Ok' } else { 'Info' })
    }
    It 'reports soft-dirty tracking and userfaultfd as the kernel was built' {
        # The kernel's configuration, where the kernel (/proc/config.gz) or its distribution (Debian's
        # /boot/config-<release>) publishes it; the probes must agree with it.
        $boot = "/boot/config-$(uname -r)"
        $config = if (Test-Path /proc/config.gz) { gzip -dc /proc/config.gz } elseif (Test-Path $boot) { Get-Content $boot }
        if (-not $config) { Set-ItResult -Skipped -Because "this kernel publishes its configuration neither in /proc/config.gz nor in $boot" }
        (Check soft-dirty).Status | Should -Be $(if ($config -contains 'CONFIG_MEM_SOFT_DIRTY=y') { 'Ok' } else { 'Info' })
        (Check userfaultfd).Status | Should -Be $(if ($config -contains 'CONFIG_USERFAULTFD=y') { 'Ok' } else { 'Info' })
    }
    It 'reports the versions of <tool> that the tool itself prints' -ForEach @(
        @{ tool = 'dnsmasq'; path = '/usr/sbin/dnsmasq' }, @{ tool = 'nft'; path = '/usr/sbin/nft' },
        @{ tool = 'lxcfs'; path = '/usr/bin/lxcfs' }
    ) {
        $found = Check $tool
        # A host lxcfs mounted at /var/lib/lxcfs is what counts there, not the binary's version.
        if ($tool -eq 'lxcfs' -and ((Get-SystemContainerHost).Lxcfs -eq 'system')) { $found.Value | Should -Be 'mounted'; return }
        $found.Category | Should -Be 'tool'
        if (Test-Path $path) {
            (& $path --version 2>&1 | Out-String) -match '\d+(\.\d+)+' | Should -BeTrue
            $found.Value | Should -Be $Matches[0]
            $found.Status | Should -Be 'Ok'
        }
        else { $found.Value | Should -Be 'absent' }
    }
    It 'reports the version of the daemon''s criu, asked over its RPC, and what it offers migration' {
        $criu = Get-TestCriu
        $found = Check criu
        $found.Category | Should -Be 'tool'
        $found.Needed | Should -Be '>= 4.2.1'
        if (-not (Test-Path $criu)) { $found.Value | Should -Be 'absent'; return }
        (& $criu --version 2>&1 | Out-String) -match 'Version: (\d+\.\d+(\.\d+)?)' | Should -BeTrue
        $printed = if ($Matches[2]) { $Matches[1] } else { "$($Matches[1]).0" }
        $found.Value | Should -Be $printed
        if ([version]$printed -lt [version]'4.2.1') { $found.Status | Should -Be 'Warning'; return }
        $found.Status | Should -Be 'Ok'
        $found.Detail | Should -BeLike "$($criu):*"
        # criu's lazy pages need userfaultfd, its memory tracking soft-dirty: it agrees with the kernel probes.
        $found.Detail | Should -Match "lazy pages $(if ((Check userfaultfd).Status -eq 'Ok') { 'yes' } else { 'no' })"
        $found.Detail | Should -Match "memory tracking $(if ((Check soft-dirty).Status -eq 'Ok') { 'yes' } else { 'no' })"
    }
    It 'reports a missing criu as absent, naming the version needed' {
        $main = $env:SYSTEMCONTAINERS_SOCKET, $env:SYSTEMCONTAINERS_RUN_DIR
        $other = Start-TestDaemon -ExtraArguments @('--criu', '/nonexistent/criu')
        try {
            $found = Test-SystemContainerHost | Where-Object Name -eq 'criu'
            $found.Value | Should -Be 'absent'
            $found.Status | Should -Be 'Info'
            $found.Detail | Should -BeLike '/nonexistent/criu is not installed*criu >= 4.2.1*'
        }
        finally {
            Stop-TestDaemon $other
            $env:SYSTEMCONTAINERS_SOCKET, $env:SYSTEMCONTAINERS_RUN_DIR = $main
        }
    }
    It 'logs a line for each warning and failure when the daemon starts' {
        Wait-Until -TimeoutSeconds 30 -What 'the host check in the daemon log' { (Get-Content $daemon.Log) -match '^\S+ host check: \d+ ok' }
        $log = Get-Content $daemon.Log
        $bad = @($checks | Where-Object Status -in 'Warning', 'Failed')
        foreach ($f in $bad) { $log -match "^\S+ host check: $($f.Status.ToLower()): $([regex]::Escape($f.Name)) is " | Should -Not -BeNullOrEmpty -Because "$($f.Name) is $($f.Status)" }
        @($log -match '^\S+ host check: (warning|failed): ').Count | Should -Be $bad.Count
        $log -match "^\S+ host check: $(@($checks | Where-Object Status -in 'Ok', 'Info').Count) ok, $(@($checks | Where-Object Status -eq 'Warning').Count) warnings, $(@($checks | Where-Object Status -eq 'Failed').Count) failed" |
            Should -Not -BeNullOrEmpty
    }
    It 'refuses a container count out of range' {
        $r = Invoke-TestApi $daemon GET '/1.0/host/checks?containers=0'
        $r.Status | Should -Be 400
        $r.Body.error_id | Should -Be 'InvalidRequest'
        { Test-SystemContainerHost -Containers 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }
}

Describe 'Test-SystemContainerHost -Fix' {
    BeforeAll {
        $script:saved = [ordered]@{}
        foreach ($key in $limits.Keys) { $saved[$key] = Read-Sysctl $key }
        # Just enough containers that inotify instances must be raised; whatever else that many need is raised too.
        $script:count = [int][math]::Floor($saved['fs.inotify.max_user_instances'] / 64) + 1
    }
    AfterAll {
        # Never leave the host changed: every value goes back to what it was.
        foreach ($key in $saved.Keys) {
            if ((Read-Sysctl $key) -ne $saved[$key]) { & /usr/sbin/sysctl -q -w "$key=$($saved[$key])" }
        }
    }
    It 'changes nothing with -WhatIf' {
        Test-SystemContainerHost -Containers $count -Fix -WhatIf | Should -BeNullOrEmpty
        Test-Path $sysctlFile | Should -BeFalse
        foreach ($key in $saved.Keys) { Read-Sysctl $key | Should -Be $saved[$key] }
    }
    It 'raises exactly the limits that are too low, now and in the sysctl.d file, and says so' {
        $raised = @($limits.Keys | Where-Object { $saved[$_] -lt (Needed $_ $count) })
        $raised | Should -Contain 'fs.inotify.max_user_instances'
        $after = Test-SystemContainerHost -Containers $count -Fix -Confirm:$false -Verbose 4>&1
        $verbose = @($after | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        $checksAfter = $after | Where-Object { $_ -is [SystemContainers.Api.SystemContainerHostCheck] }
        foreach ($key in $limits.Keys) {
            $expected = if ($key -in $raised) { Needed $key $count } else { $saved[$key] }
            Read-Sysctl $key | Should -Be $expected -Because "$key was $($saved[$key]), $(Needed $key $count) needed"
            (Check $key $checksAfter).Status | Should -Be 'Ok'
            (Check $key $checksAfter).Value | Should -Be "$expected"
        }
        $verbose | Should -Contain "fs.inotify.max_user_instances: $($saved['fs.inotify.max_user_instances']) -> $(Needed 'fs.inotify.max_user_instances' $count)"
        $verbose | Should -Contain "kept in $sysctlFile"
        $lines = @(Get-Content $sysctlFile | Where-Object { $_ -and -not $_.StartsWith('#') })
        $lines | Should -Be @($raised | ForEach-Object { "$_ = $(Needed $_ $count)" })
        # sysctl itself reads the file as it would at boot.
        & /usr/sbin/sysctl -p $sysctlFile | Should -Be @($raised | ForEach-Object { "$_ = $(Needed $_ $count)" })
    }
    It 'never lowers a value, and keeps what an earlier fix wrote' {
        $before = Get-Content $sysctlFile
        Test-SystemContainerHost -Containers 1 -Fix -Confirm:$false | Out-Null
        Get-Content $sysctlFile | Should -Be $before
        Read-Sysctl 'fs.inotify.max_user_instances' | Should -Be (Needed 'fs.inotify.max_user_instances' $count)
    }
}
