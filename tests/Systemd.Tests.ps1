# A Debian bookworm system built by debootstrap (cached by the daemon's cache directory) boots systemd as PID 1.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    # The test daemon's network namespace cannot reach the archive: build.ps1 test fills the
    # debootstrap cache before the tests (Initialize-TestImageCache), and the image is built from it.
    $script:daemon = Start-TestDaemon
    $script:image = New-SystemContainerImage -Debootstrap -Release bookworm -Alias bookworm -ErrorAction Stop
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'A Debian container with systemd' {
    It 'builds the image with systemd as init' {
        $image.InitKind | Should -Be 'systemd'
        $image.Aliases | Should -Be 'bookworm'
    }
    It 'boots systemd as PID 1 to running or degraded' {
        $script:c = New-SystemContainer deb1 -Image bookworm -Start
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        $booted = Wait-SystemContainer deb1 -For SystemdRunning -Timeout (60 * $scale) -PassThru -ErrorAction Stop -WarningAction SilentlyContinue
        $booted.Name | Should -Be 'deb1'
        (Invoke-SystemContainerCommand deb1 -PassThru -- systemctl is-system-running).Stdout.Trim() | Should -BeIn 'running', 'degraded'
        Invoke-SystemContainerCommand deb1 -- cat /proc/1/comm | Should -Be 'systemd'
        Invoke-SystemContainerCommand deb1 hostname | Should -Be 'deb1'
        Invoke-SystemContainerCommand deb1 -- systemd-detect-virt | Should -Be 'container-other'
    }
    It 'lets systemd manage its own cgroup tree (delegated cgroup2)' {
        $cg = Invoke-SystemContainerCommand deb1 -- cat /proc/self/cgroup | Where-Object { $_ -like '0::*' }
        $cg | Should -Not -Be '0::/'
        Invoke-SystemContainerCommand deb1 -- systemctl is-active systemd-journald | Should -Be 'active'
    }
    It 'shows its own memory limit and uptime to procps (free, uptime) through lxcfs' -Skip:(-not (Test-Path /usr/bin/lxcfs) -and -not (Test-Path /var/lib/lxcfs/proc)) {
        # lxcfs reads the limit from the cgroup at each read, so a live change shows at once.
        Set-SystemContainer deb1 -Config @{ 'limits.memory' = '256MiB' }
        try {
            $total = [int](Invoke-SystemContainerCommand deb1 -- sh -c "free -m | awk '/^Mem:/ { print `$2 }'")
            $total | Should -BeGreaterThan 0
            $total | Should -BeLessOrEqual 256
            [double]((Get-Content -Raw /proc/uptime) -split ' ')[0] | Should -BeGreaterThan 600
            Invoke-SystemContainerCommand deb1 -- uptime | Should -Match 'up\s+(\d+ min|0:0\d),'
        }
        finally { Set-SystemContainer deb1 -Config @{ 'limits.memory' = $null } }
    }
    It 'gets an address by DHCP through systemd-networkd and finds a peer by name through systemd-resolved' {
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        $address = (Wait-SystemContainer deb1 -For IPv4 -Timeout (30 * $scale) -PassThru -ErrorAction Stop).IPv4[0]
        $net = Get-SystemContainerNetwork scbr0
        Test-InSubnet $address $net.IPv4 | Should -BeTrue
        Invoke-SystemContainerCommand deb1 -- systemctl is-active systemd-networkd systemd-resolved | Should -Be @('active', 'active')
        (Invoke-SystemContainerCommand deb1 -- ip -4 -o addr show dev eth0) -join "`n" | Should -Match ([regex]::Escape("inet $address/$(($net.IPv4 -split '/')[1])"))
        (Get-SystemContainerNetworkLease scbr0 | Where-Object Hostname -eq deb1).Address | Should -Be $address
        # The daemon's DHCP server gave networkd the bridge as router and DNS server, and the network's domain.
        $bridge = ($net.IPv4 -split '/')[0]
        (Invoke-SystemContainerCommand deb1 -- ip -4 route show default) -join "`n" | Should -Match "default via $([regex]::Escape($bridge)) "
        (Invoke-SystemContainerCommand deb1 -- resolvectl dns eth0) -join "`n" | Should -Match ([regex]::Escape($bridge))
        (Invoke-SystemContainerCommand deb1 -- resolvectl domain eth0) -join "`n" | Should -Match '\bsc\b'
        # A renewal keeps the address and extends the lease.
        $lease = Get-SystemContainerNetworkLease scbr0 | Where-Object Hostname -eq deb1
        Start-Sleep -Seconds 1
        Invoke-SystemContainerCommand deb1 -- networkctl renew eth0
        Wait-Until -TimeoutSeconds 20 -What 'the renewed lease' { (Get-SystemContainerNetworkLease scbr0 | Where-Object Hostname -eq deb1).Expires -gt $lease.Expires }
        (Get-SystemContainerNetworkLease scbr0 | Where-Object Hostname -eq deb1).Address | Should -Be $address
        (Invoke-SystemContainerCommand deb1 -- ip -4 -o addr show dev eth0) -join "`n" | Should -Match ([regex]::Escape("inet $address/"))
        New-SystemContainer peer -Image (Get-TestImage) -Start | Out-Null
        Wait-Until -TimeoutSeconds 20 -What 'a DHCP address for peer' { @((Get-SystemContainer peer).IPv4).Count -gt 0 }
        $peer = (Get-SystemContainer peer).IPv4[0]
        Wait-Until -TimeoutSeconds 20 -What 'deb1 to resolve peer' {
            (Invoke-SystemContainerCommand deb1 -PassThru -- getent hosts peer).Stdout -match [regex]::Escape($peer)
        }
        (Invoke-SystemContainerCommand deb1 -PassThru -- ping -c 1 -W 2 peer).ExitCode | Should -Be 0
        Remove-SystemContainer peer -Force
    }
    It 'shuts down cleanly on Stop-SystemContainer, leaving no processes, cgroups or mounts' {
        $dirs = Get-CgroupDirectories -InitPid $c.Pid
        $dirs | Should -Not -BeNullOrEmpty
        $stopped = Stop-SystemContainer deb1 -Timeout 60 -PassThru
        $stopped.Status | Should -Be 'Stopped'
        # systemd ends by itself, not by the SIGKILL that ends the timeout: it exits once reboot(2) is refused (the pid
        # namespace belongs to the outer user namespace), or the kernel reports SIGINT where it may halt its pid namespace.
        $stopped.LastExitSignal | Should -Not -Be 9
        Test-Path "/proc/$($c.Pid)" | Should -BeFalse
        foreach ($d in $dirs) { Test-Path $d | Should -BeFalse -Because "$d must be removed" }
        Get-TestMounts $daemon | Should -BeNullOrEmpty
        # The console saw the whole boot and systemd's own orderly shutdown.
        $console = Get-Content (Join-Path $daemon.RunDir 'containers/deb1/console.log') -Raw
        $console | Should -Match 'Welcome to .*Debian GNU/Linux 12'
        $console | Should -Match 'Halting system'
        # The cmdlet reads the same log, line by line.
        $lines = Get-SystemContainerLog deb1
        $lines -join "`n" | Should -Match 'Welcome to .*Debian GNU/Linux 12'
        @(Get-SystemContainerLog deb1 -Tail 3) | Should -Be @($lines | Select-Object -Last 3)
    }
}
