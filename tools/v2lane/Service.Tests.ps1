# The v2 lane's guest only (systemd as PID 1, nothing installed yet): ./build.ps1 install makes a
# working systemcontainerd.service whose containers live in a delegated scope of their own, and -Uninstall
# takes exactly it away.
BeforeDiscovery { $script:systemd = Test-Path /run/systemd/system }
BeforeAll {
    $script:root = Split-Path (Split-Path $PSScriptRoot)
    $script:socket = '/run/systemcontainers/systemcontainerd.sock'
    # Where install may write, listed before it runs (the daemon's own state directories are its, not install's).
    function Get-Listing {
        @(Get-ChildItem -Force /usr/lib) + @(Get-ChildItem -Recurse -Force /usr/local, /etc/systemd) | ForEach-Object FullName | Sort-Object
    }
    function Get-Unit([string]$Property) { systemctl show --property $Property --value systemcontainerd.service }
    $script:before = Get-Listing
    Remove-Item Env:SYSTEMCONTAINERS_SOCKET, Env:SYSTEMCONTAINERS_RUN_DIR, Env:SYSTEMCONTAINERS_NO_AUTOSTART -ErrorAction SilentlyContinue
}
AfterAll {
    if (Test-Path /usr/lib/systemcontainers/install-manifest.txt) { & (Join-Path $root 'build.ps1') install -Uninstall }
}

Describe "The guest's cgroup2" {
    It "is mounted with nsdelegate, as systemd mounts it on users' hosts (it refuses moves across cgroup namespaces)" -Skip:($env:V2LANE_NSDELEGATE -eq '0') {
        # Super options follow the " - " separator of /proc/self/mountinfo: type, source, options.
        $line = @(Get-Content /proc/self/mountinfo | Where-Object { $_ -match ' - cgroup2 ' })
        $line.Count | Should -Be 1
        $options = (($line[0] -split ' - ', 2)[1] -split ' ')[2] -split ','
        $options | Should -Contain 'nsdelegate'
    }
}

Describe './build.ps1 install on a systemd host' -Skip:(-not $systemd) {
    It 'installs the daemon, the module and an enabled unit' {
        & (Join-Path $root 'build.ps1') install -NoBuild
        Test-Path /usr/lib/systemcontainers/systemcontainerd | Should -BeTrue
        Test-Path /usr/lib/systemcontainers/sc-init | Should -BeTrue
        systemctl is-enabled systemcontainerd.service | Should -Be 'enabled'
        systemctl is-active systemcontainerd.service | Should -Be 'active'
        Get-Unit KillMode | Should -Be 'process'
        Get-Unit Type | Should -Be 'notify'
        $script:mainPid = [int](Get-Unit MainPID)
        $mainPid | Should -BeGreaterThan 0
        (Get-Content "/proc/$mainPid/cmdline" -Raw) | Should -BeLike '/usr/lib/systemcontainers/systemcontainerd*'
        (Get-Content "/proc/$mainPid/cgroup") | Should -BeLike '0::/system.slice/systemcontainerd.service*'
        (Get-Item "$socket").UnixMode | Should -Be 'srw-------'
    }
    It 'is found by Import-Module SystemContainers, and the module talks to the service' {
        Import-Module SystemContainers -Force
        (Get-Module SystemContainers).ModuleBase | Should -Be '/usr/local/share/powershell/Modules/SystemContainers'
        Get-SystemContainer | Should -BeNullOrEmpty
        [int](Get-Unit MainPID) | Should -Be $mainPid -Because 'the module uses the running service, it starts no daemon of its own'
    }
    It 'runs a container in its delegated scope, with its limit in the cgroup2 file' {
        New-SystemContainerImage -Busybox -Alias busybox | Out-Null
        $script:c = New-SystemContainer svc1 -Image busybox -Config @{ 'limits.memory' = '64MiB' } -Start
        $c.Status | Should -Be 'Running'
        $line = Get-Content "/proc/$($c.Pid)/cgroup"
        # Not below the unit: systemd up to v253 cannot start a delegated service again while its cgroup has
        # sub-cgroups with controllers (systemd#24064); the engine's SystemdScopeSubtree explains the scope.
        $line | Should -Be '0::/systemcontainers.slice/systemcontainers.scope/svc1'
        # The scope is delegated to the daemon, which enabled the controllers for its containers.
        systemctl show --property Delegate --value systemcontainers.scope | Should -Be 'yes'
        $control = (Get-Content /sys/fs/cgroup/systemcontainers.slice/systemcontainers.scope/cgroup.subtree_control) -split ' '
        foreach ($controller in 'cpu', 'memory', 'pids', 'io') { $control | Should -Contain $controller }
        Get-Content "/sys/fs/cgroup$($line.Substring(3))/memory.max" | Should -Be '67108864'
        Invoke-SystemContainerCommand svc1 hostname | Should -Be 'svc1'
    }
    It 'keeps the container running across systemctl restart' {
        systemctl restart systemcontainerd.service
        $LASTEXITCODE | Should -Be 0
        [int](Get-Unit MainPID) | Should -Not -Be $mainPid
        Test-Path "/proc/$($c.Pid)" | Should -BeTrue
        $again = Get-SystemContainer svc1
        $again.Status | Should -Be 'Running'
        $again.Pid | Should -Be $c.Pid
        Invoke-SystemContainerCommand svc1 hostname | Should -Be 'svc1'
        Remove-SystemContainer svc1 -Force
        Test-Path "/proc/$($c.Pid)" | Should -BeFalse
    }
    It 'uninstalls exactly what it installed, and stops the service' {
        & (Join-Path $root 'build.ps1') install -Uninstall
        systemctl is-active systemcontainerd.service | Should -Not -Be 'active'
        Test-Path /usr/lib/systemcontainers | Should -BeFalse
        Test-Path /usr/local/share/powershell/Modules/SystemContainers | Should -BeFalse
        Test-Path /etc/systemd/system/systemcontainerd.service | Should -BeFalse
        Compare-Object $before (Get-Listing) | ForEach-Object { "$($_.SideIndicator) $($_.InputObject)" } | Should -BeNullOrEmpty
    }
}
