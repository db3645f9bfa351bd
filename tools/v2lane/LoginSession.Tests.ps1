# The v2 lane's guest only, from a root login session (session-N.scope), as an admin uses the
# README: Import-Module from the clone, and the module starts the daemon on first use.
BeforeAll {
    $script:root = Split-Path (Split-Path $PSScriptRoot)
    Remove-Item Env:SYSTEMCONTAINERS_SOCKET, Env:SYSTEMCONTAINERS_RUN_DIR, Env:SYSTEMCONTAINERS_NO_AUTOSTART -ErrorAction SilentlyContinue
    Import-Module (Join-Path $root 'SystemContainers.psd1') -Force
    Import-Module (Join-Path $root 'tests/TestDaemon.psm1') -Force
    $script:daemon = [pscustomobject]@{ Socket = '/run/systemcontainers/systemcontainerd.sock'; Pid = 0 }
}
AfterAll {
    Get-SystemContainer -ErrorAction SilentlyContinue | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
    $info = Invoke-TestApi $daemon GET /1.0
    if ($info.Status -eq 200) { $daemon.Pid = $info.Body.metadata.pid; Stop-DaemonProcess $daemon }
    if (Test-Path /run/systemcontainers/systemcontainerd.log) {
        Copy-Item /run/systemcontainers/systemcontainerd.log (Join-Path $env:SYSTEMCONTAINERS_TEST_LOG_DIR 'LoginSession-autostart.log')
    }
}

Describe 'From a root login session' {
    It 'runs in the session scope of a logind session' {
        Get-Content /proc/self/cgroup | Should -Match '^0::/user\.slice/user-0\.slice/session-\d+\.scope$'
    }
    It 'starts the daemon on first use, which runs a container with its limit' {
        New-SystemContainerImage -Busybox -Alias busybox | Out-Null
        (Invoke-TestApi $daemon GET /1.0).Status | Should -Be 200 -Because 'the module started the daemon'
        $c = New-SystemContainer login1 -Image busybox -Config @{ 'limits.memory' = '64MiB' } -Start
        $c.Status | Should -Be 'Running'
        $line = Get-Content "/proc/$($c.Pid)/cgroup"
        Get-Content "/sys/fs/cgroup$($line.Substring(3))/memory.max" | Should -Be '67108864'
        Invoke-SystemContainerCommand login1 hostname | Should -Be 'login1'
    }
    It 'freezes and thaws the container through cgroup.freeze' {
        $events = "/sys/fs/cgroup$((Get-Content "/proc/$((Get-SystemContainer login1).Pid)/cgroup").Substring(3))/cgroup.events"
        Suspend-SystemContainer login1
        Get-Content $events | Should -Contain 'frozen 1'
        Resume-SystemContainer login1
        Get-Content $events | Should -Contain 'frozen 0'
        Invoke-SystemContainerCommand login1 hostname | Should -Be 'login1'
    }
}
