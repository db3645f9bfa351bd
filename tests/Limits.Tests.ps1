# Resource limits, live updates, freeze and Get-ContainerStats, checked inside the container and in the cgroup files.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:v2 = (Get-CgroupVersion) -eq 'v2'
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Memory limit' {
    It 'OOM-kills a process that allocates past limits.memory, and the container survives' {
        $c = New-SystemContainer mem -Image $image -Config @{ 'limits.memory' = '32MiB'; 'limits.memory.swap' = $false } -Start
        Get-CgroupMemoryLimit $c.Pid | Should -Be (32MB)
        $r = Invoke-SystemContainerCommand mem -PassThru -- sh -c 'head -c 200000000 /dev/zero | tail > /dev/null; echo shell-survived'
        $r.Stdout | Should -Match 'shell-survived'
        $r.Stderr | Should -Match 'Killed'
        $s = Get-ContainerStats mem
        $s.MemoryLimit | Should -Be (32MB)
        $s.OomKills | Should -BeGreaterOrEqual 1
        # The kernel counts limit hits only on some paths; what it says is what stats report.
        $s.MemoryLimitHits | Should -Be (Get-CgroupMemoryLimitHits $c.Pid)
        (Get-SystemContainer mem).Status | Should -Be 'Running'
        Invoke-SystemContainerCommand mem hostname | Should -Be 'mem'
    }
    It 'raises and lowers the limit live, and keeps it across a daemon restart' {
        $c = Get-SystemContainer mem
        Set-SystemContainer mem -Config @{ 'limits.memory' = '128MiB' }
        Get-CgroupMemoryLimit $c.Pid | Should -Be (128MB)
        # 40 MB in one line: more than the old 32MiB holds, and within 128MiB even as tail's buffer
        # doubles (60 MB came within the realloc's peak of the limit and was killed once under load).
        $r = Invoke-SystemContainerCommand mem -PassThru -- sh -c 'head -c 40000000 /dev/zero | tail > /dev/null && echo fits'
        $r.Stdout | Should -Match 'fits' -Because "exit $($r.ExitCode), stderr '$($r.Stderr)'"
        Set-SystemContainer mem -Config @{ 'limits.memory' = '48MiB' }
        Get-CgroupMemoryLimit $c.Pid | Should -Be (48MB)
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon
        (Get-SystemContainer mem).Config['limits.memory'] | Should -Be '48MiB'
        (Get-ContainerStats mem).MemoryLimit | Should -Be (48MB)
        (Get-SystemContainer mem).Pid | Should -Be $c.Pid
    }
    It 'removes a limit with $null' {
        $c = Get-SystemContainer mem
        Set-SystemContainer mem -Config @{ 'limits.memory' = $null }
        Get-CgroupMemoryLimit $c.Pid | Should -BeNullOrEmpty
        (Get-ContainerStats mem).MemoryLimit | Should -BeNullOrEmpty
        (Get-SystemContainer mem).Config.ContainsKey('limits.memory') | Should -BeFalse
        Remove-SystemContainer mem -Force -Confirm:$false
    }
}

Describe 'Process limit' {
    It 'contains a fork bomb; the container stays manageable and stoppable' {
        $c = New-SystemContainer bomb -Image $image -Config @{ 'limits.processes' = 50 } -Start
        Get-Content (Get-CgroupFile $c.Pid pids pids.max) | Should -Be '50'
        $hostBefore = (Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$').Count
        # The shell gives up when fork fails; the point is that it cannot get past the limit.
        Invoke-SystemContainerCommand bomb -PassThru -- sh -c 'for i in $(seq 1 200); do sleep 30 > /dev/null 2>&1 & done' | Out-Null
        $s = Get-ContainerStats bomb
        $s.Processes | Should -BeLessOrEqual 50
        $s.ProcessesLimit | Should -Be 50
        $hostAfter = (Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$').Count
        ($hostAfter - $hostBefore) | Should -BeLessOrEqual 55
        (Stop-SystemContainer bomb -Force -PassThru).Status | Should -Be 'Stopped'
        Remove-SystemContainer bomb -Confirm:$false
    }
}

Describe 'CPU limits' {
    It 'throttles a busy loop under a 25ms/100ms quota (cpu.stat counts the throttled periods)' {
        # How close the share comes to 25% is measured by bench/limits.ps1; here the kernel must say it enforces the quota.
        $c = New-SystemContainer quota -Image $image -Config @{ 'limits.cpu.allowance' = '25ms/100ms' } -Start
        Get-CgroupCpuMax $c.Pid | Should -Be '25000 100000'
        # On a slow (emulated) CPU init's own start already runs into the quota: count from here.
        $before = Get-CgroupThrottledPeriods $c.Pid
        Invoke-SystemContainerCommand quota -- sh -c 'while :; do :; done > /dev/null 2>&1 & echo spinning'
        Wait-Until -TimeoutSeconds 20 -What 'the busy loop to be throttled in 5 more periods' { (Get-CgroupThrottledPeriods $c.Pid) -ge $before + 5 }
        Set-SystemContainer quota -Config @{ 'limits.cpu.allowance' = $null }
        Get-CgroupCpuMax $c.Pid | Should -Be 'max 100000'
        $throttled = Get-CgroupThrottledPeriods $c.Pid
        $usage = Get-CgroupCpuUsage $c.Pid
        Wait-Until -TimeoutSeconds 20 -What 'the loop to use 200 ms of CPU unthrottled' { (Get-CgroupCpuUsage $c.Pid) -ge $usage + 200e6 }
        Get-CgroupThrottledPeriods $c.Pid | Should -Be $throttled
        Remove-SystemContainer quota -Force -Confirm:$false
    }
    It 'maps priorities to weights and a soft memory limit to the soft limit file' {
        $c = New-SystemContainer weights -Image $image -Config @{ 'limits.cpu.priority' = 10; 'limits.memory' = '96MiB'; 'limits.memory.enforce' = 'soft' } -Start
        # v1 cpu.shares and v2 cpu.weight give the scheduler the same weight at 1024 and 100 (the kernel's defaults):
        # 1877 shares are weight 183, 512 shares weight 50.
        $weight = Get-CgroupFile $c.Pid cpu cpu.shares cpu.weight
        Get-Content $weight | Should -Be $(if ($v2) { '183' } else { '1877' })
        Get-CgroupMemoryLimit $c.Pid -Soft | Should -Be (96MB)
        Get-CgroupMemoryLimit $c.Pid | Should -BeNullOrEmpty
        Set-SystemContainer weights -Config @{ 'limits.cpu.allowance' = '50%' }
        Get-Content $weight | Should -Be $(if ($v2) { '50' } else { '512' })
        Remove-SystemContainer weights -Force -Confirm:$false
    }
    It 'maps limits.disk.priority to the block I/O weight, or refuses it where the kernel has none' {
        $c = New-SystemContainer disk -Image $image -Start
        try {
            # A proportional I/O weight exists only with an I/O scheduler or cost model that implements it (BFQ, CFQ, iocost).
            $files = if ($v2) { @(Get-CgroupFile $c.Pid io io.weight) } else { @((Get-CgroupFile $c.Pid blkio blkio.weight), (Get-CgroupFile $c.Pid blkio blkio.bfq.weight)) }
            $weight = $files | Where-Object { Test-Path $_ } | Select-Object -First 1
            Set-SystemContainer disk -Config @{ 'limits.disk.priority' = 0 } -ErrorVariable err -ErrorAction SilentlyContinue
            if ($weight) {
                $err | Should -BeNullOrEmpty
                # Priority 0 is the bottom of each range: v1 weight 10 (of 10-1000), v2 io.weight 2 (of 1-10000, 500 being 100).
                Get-Content $weight | Select-Object -First 1 | Should -Match $(if ($v2) { '^default 2$' } else { '(^|\s)10$' })
            }
            else {
                # Refused, never silently dropped, and the config keeps no key it could not apply.
                $err[0].FullyQualifiedErrorId | Should -BeLike 'LimitUnsupported,*'
                $err[0].Exception.Message | Should -Match 'limits\.disk\.priority'
                (Get-SystemContainer disk).Config.ContainsKey('limits.disk.priority') | Should -BeFalse
            }
        }
        finally { Remove-SystemContainer disk -Force -Confirm:$false }
    }
    It 'pins to one CPU with limits.cpu=1, as /proc/self/status shows inside' {
        $c = New-SystemContainer pinned -Image $image -Config @{ 'limits.cpu' = 1 } -Start
        $allowed = (Invoke-SystemContainerCommand pinned -- grep Cpus_allowed_list /proc/self/status) -replace '.*:\s*', ''
        $allowed | Should -Match '^\d+$'
        Get-Content (Get-CgroupFile $c.Pid cpuset cpuset.cpus) | Should -Be $allowed
        Set-SystemContainer pinned -Config @{ 'limits.cpu' = '0-1' }
        (Invoke-SystemContainerCommand pinned -- grep Cpus_allowed_list /proc/self/status) -replace '.*:\s*', '' | Should -Be '0-1'
        Remove-SystemContainer pinned -Force -Confirm:$false
    }
}

Describe 'Bad limit values' {
    BeforeAll { New-SystemContainer steady -Image $image -Config @{ 'limits.memory' = '64MiB' } -Start | Out-Null }
    It 'refuses <key>=<value> and keeps the previous config' -ForEach @(
        @{ key = 'limits.memory'; value = 'lots' }, @{ key = 'limits.cpu'; value = '0-999' }, @{ key = 'limits.processes'; value = '-5' },
        @{ key = 'limits.cpu.allowance'; value = '150%' }, @{ key = 'limits.memory.enforce'; value = 'sometimes' }, @{ key = 'limits.disk.priority'; value = '11' }
    ) {
        $before = (Get-SystemContainer steady).Config
        $before['limits.memory'] | Should -Be '64MiB'
        Set-SystemContainer steady -Config @{ $key = $value } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $err[0].Exception.Message | Should -Match ([regex]::Escape($key))
        $after = (Get-SystemContainer steady).Config
        ($after.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ';' |
            Should -Be (($before.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ';')
        $after.ContainsKey($key) | Should -Be $before.ContainsKey($key)
        (Get-ContainerStats steady).MemoryLimit | Should -Be (64MB)
    }
    It 'refuses bad values at creation too, creating nothing' {
        New-SystemContainer nolimit -Image $image -Config @{ 'limits.memory' = 'lots' } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        Get-SystemContainer nolimit -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'refuses changing security keys after creation' {
        Set-SystemContainer steady -Config @{ 'security.privileged' = $true } -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImmutableConfigKey,*'
    }
}

Describe 'Suspend and Resume' {
    It 'stops a counter while frozen and lets it go on after' {
        $c = New-SystemContainer ice -Image $image -Start
        Invoke-SystemContainerCommand ice -- sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.05; done > /dev/null 2>&1 & echo ok'
        # Renamed into place, so a read never meets a file half rewritten (a truncate racing a read gave two lines).
        $file = Join-Path $daemon.StateDir 'containers/ice/fs/upper/tmp/count'
        # Running, the counter moves on: time how long ten steps take, to know how long to watch it frozen.
        Wait-Until -TimeoutSeconds 10 -What 'the counter to start' { (Test-Path $file) -and (Get-Content $file) }
        $start = [int](Get-Content $file); $watch = [Diagnostics.Stopwatch]::StartNew()
        Wait-Until -TimeoutSeconds 20 -What 'the counter to count 10' { [int](Get-Content $file) -ge $start + 10 }
        $tenSteps = $watch.Elapsed
        Test-CgroupFrozen $c.Pid | Should -BeFalse
        (Suspend-SystemContainer ice -PassThru).Status | Should -Be 'Frozen'
        Test-CgroupFrozen $c.Pid | Should -BeTrue
        # The kernel says every task is frozen; over twice the time of ten running steps, the counter must not move.
        $a = Get-Content $file; Start-Sleep -Milliseconds ([int]($tenSteps.TotalMilliseconds * 2)); $b = Get-Content $file
        $b | Should -Be $a
        (Get-ContainerStats ice).Status | Should -Be 'Frozen'
        Invoke-SystemContainerCommand ice true -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'Frozen,*'
        # Freezing a frozen container is no error (idempotent, as Suspend-VM): it stays frozen.
        (Suspend-SystemContainer ice -PassThru -ErrorVariable err2).Status | Should -Be 'Frozen'
        $err2 | Should -BeNullOrEmpty
        Test-CgroupFrozen $c.Pid | Should -BeTrue
        (Resume-SystemContainer ice -PassThru).Status | Should -Be 'Running'
        Test-CgroupFrozen $c.Pid | Should -BeFalse
        Wait-Until -TimeoutSeconds 10 -What 'the counter to move on after resume' { [int](Get-Content $file) -gt [int]$b }
    }
    It 'stops a frozen container (thawing it first)' {
        Suspend-SystemContainer ice
        (Stop-SystemContainer ice -Timeout 10 -PassThru).Status | Should -Be 'Stopped'
    }
    It 'resumes a container that is not frozen as a no-op; the REST API says NotFrozen' {
        $c = Start-SystemContainer ice -PassThru
        (Resume-SystemContainer ice -PassThru -ErrorVariable err).Status | Should -Be 'Running'
        $err | Should -BeNullOrEmpty
        Test-CgroupFrozen $c.Pid | Should -BeFalse
        $r = Invoke-TestApi $daemon PUT '/1.0/containers/ice/state?wait=30' '{"action":"unfreeze"}'
        $r.Body.metadata.err_id | Should -Be 'NotFrozen'
        Remove-SystemContainer ice -Force -Confirm:$false
    }
}

Describe 'Get-ContainerStats' {
    BeforeAll {
        $script:s1 = New-SystemContainer stat1 -Image $image -Config @{ 'limits.processes' = 20 } -Start
        New-SystemContainer stat2 -Image $image -Start | Out-Null
        New-SystemContainer stat3 -Image $image | Out-Null
    }
    It 'agrees with the cgroup files and /proc' {
        Invoke-SystemContainerCommand stat1 -- sh -c 'dd if=/dev/zero of=/root/blob bs=1k count=300 2>/dev/null'
        $s = Get-ContainerStats stat1
        $s | Should -BeOfType ([SystemContainers.Api.SystemContainerStats])
        # The DHCP client's hook forks for a moment now and then; the counts agree once it rests.
        Wait-Until -TimeoutSeconds 10 -What 'the process count to agree with pids.current' {
            (Get-ContainerStats stat1).Processes -eq [long](Get-Content (Get-CgroupFile $s1.Pid pids pids.current))
        }
        $s.ProcessesLimit | Should -Be 20
        $cpu = Get-CgroupCpuUsage $s1.Pid
        [math]::Abs($s.CpuTimeNanoseconds - $cpu) | Should -BeLessThan 50000000
        $mem = Get-CgroupMemoryUsage $s1.Pid
        [math]::Abs($s.MemoryUsage - $mem) | Should -BeLessThan (2MB)
        $s.DiskUsage | Should -BeGreaterOrEqual 300KB
        ($s.Network | Where-Object Name -eq 'lo') | Should -Not -BeNullOrEmpty
        $s.Uptime.TotalSeconds | Should -BeGreaterThan 0
    }
    It 'streams samples with -Interval and -Count, for wildcards and -All' {
        Invoke-SystemContainerCommand stat1 -- sh -c 'while :; do :; done > /dev/null 2>&1 & echo $! > /tmp/spin'
        try { $samples = Get-ContainerStats stat* -Interval 0.2 -Count 3 }
        finally { Invoke-SystemContainerCommand stat1 -- sh -c 'kill $(cat /tmp/spin)' }
        $samples.Count | Should -Be 9
        $busy = @($samples | Where-Object Name -eq stat1)
        $busy.Count | Should -Be 3
        # Each sample's CPU share is the CPU time used since the sample before, over the time between them.
        foreach ($i in 1, 2) {
            $expected = ($busy[$i].CpuTimeNanoseconds - $busy[$i - 1].CpuTimeNanoseconds) / ($busy[$i].CpuInterval.TotalMilliseconds * 1e6) * 100
            $busy[$i].CpuPercent | Should -BeGreaterThan 0
            $busy[$i].CpuPercent | Should -BeGreaterOrEqual ($expected - 0.01)
            $busy[$i].CpuPercent | Should -BeLessOrEqual ($expected + 0.01)
        }
        (Get-ContainerStats -All).Name | Should -Contain 'stat2'
        @(Get-SystemContainer stat1, stat2 | Get-ContainerStats).Name | Should -Be @('stat1', 'stat2')
    }
    It 'reports a stopped container as a clear state, not an error' {
        $s = Get-ContainerStats stat3 -ErrorVariable err
        $err | Should -BeNullOrEmpty
        $s.Status | Should -Be 'Stopped'
        $s.Processes | Should -Be 0
        $s.CpuPercent | Should -Be 0
    }
    It 'serves Prometheus metrics at /1.0/metrics' {
        $socket = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($daemon.Socket))
        $socket.Send([Text.Encoding]::ASCII.GetBytes("GET /1.0/metrics HTTP/1.0`r`nHost: x`r`n`r`n")) | Out-Null
        $text = [IO.StreamReader]::new([System.Net.Sockets.NetworkStream]::new($socket, $true)).ReadToEnd()
        $text | Should -Match '(?m)^systemcontainers_up\{name="stat1"\} 1$'
        $text | Should -Match '(?m)^systemcontainers_up\{name="stat3"\} 0$'
        $text | Should -Match '(?m)^systemcontainers_processes\{name="stat1"\} \d+$'
        $text | Should -Match 'systemcontainers_network_receive_bytes_total\{name="stat1",interface="lo"\}'
    }
}
