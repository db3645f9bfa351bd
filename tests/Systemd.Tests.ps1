# A Debian bookworm system built by debootstrap (cached by the daemon's cache directory) boots systemd as PID 1.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'A Debian container with systemd' {
    It 'builds the image with systemd as init' {
        $image.InitKind | Should -Be 'systemd'
        $image.Aliases | Should -Be 'bookworm'
    }
    It 'boots systemd as PID 1 to running or degraded within 60 seconds' {
        $script:c = New-SystemContainer deb1 -Image bookworm -Start
        $script:state = $null
        Wait-Until -TimeoutSeconds 60 -What 'systemctl is-system-running' {
            $script:state = (Invoke-SystemContainerCommand deb1 -PassThru -- systemctl is-system-running).Stdout.Trim()
            $script:state -in 'running', 'degraded'
        }
        $state | Should -BeIn 'running', 'degraded'
        Invoke-SystemContainerCommand deb1 -- cat /proc/1/comm | Should -Be 'systemd'
        Invoke-SystemContainerCommand deb1 hostname | Should -Be 'deb1'
        Invoke-SystemContainerCommand deb1 -- systemd-detect-virt | Should -Be 'container-other'
    }
    It 'lets systemd manage its own cgroup tree (delegated cgroup2)' {
        $cg = Invoke-SystemContainerCommand deb1 -- cat /proc/self/cgroup | Where-Object { $_ -like '0::*' }
        $cg | Should -Not -Be '0::/'
        Invoke-SystemContainerCommand deb1 -- systemctl is-active systemd-journald | Should -Be 'active'
    }
    It 'shuts down cleanly on Stop-SystemContainer, leaving no processes, cgroups or mounts' {
        $dirs = Get-CgroupDirectories -InitPid $c.Pid
        $dirs | Should -Not -BeNullOrEmpty
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $stopped = Stop-SystemContainer deb1 -Timeout 60 -PassThru
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 60
        $stopped.Status | Should -Be 'Stopped'
        # systemd halts the pid namespace; the kernel reports that as SIGINT, not as our SIGKILL.
        $stopped.LastExitSignal | Should -Not -Be 9
        Test-Path "/proc/$($c.Pid)" | Should -BeFalse
        foreach ($d in $dirs) { Test-Path $d | Should -BeFalse -Because "$d must be removed" }
        Get-Content /proc/self/mountinfo | Where-Object { $_ -match [regex]::Escape($daemon.Dir) } | Should -BeNullOrEmpty
        # The console saw the whole boot and systemd's own orderly shutdown.
        $console = Get-Content (Join-Path $daemon.RunDir 'containers/deb1/console.log') -Raw
        $console | Should -Match 'Welcome to .*Debian GNU/Linux 12'
        $console | Should -Match 'Halting system'
    }
}
