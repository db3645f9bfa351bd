# The v2 lane's guest only (pure cgroup v2 with nsdelegate, Debian's lxcfs.service): lxcfs 5.0.3
# mounts cgroup2 with no options, which clears nsdelegate on the one global superblock
# (lxc/lxcfs#692). The daemon puts it back after its own lxcfs starts and when a container start
# finds it gone (lxcfs.service restarted); seen in /proc/self/mountinfo and the daemon's log.
BeforeDiscovery {
    $script:guarded = @(Get-Content /proc/self/mountinfo) -match '^\S+ \S+ \S+ \S+ /sys/fs/cgroup .* - cgroup2 \S+ \S*nsdelegate' -and
        (Test-Path /usr/bin/lxcfs) -and (Test-Path /run/systemd/system) -and (systemctl is-active lxcfs.service) -eq 'active'
}
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot '../../tests/TestDaemon.psm1') -Force
    # -Fix writes here, never to /etc/sysctl.d.
    $script:sysctlDir = Join-Path '/tmp' "sc-cgroup2-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    # Super options follow the " - " separator of /proc/self/mountinfo: type, source, options.
    function Get-Cgroup2Options {
        $line = @(Get-Content /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -eq '/sys/fs/cgroup' -and $_ -match ' - cgroup2 ' })
        if ($line.Count -eq 0) { return @() }
        (($line[-1] -split ' - ', 2)[1] -split ' ')[2] -split ','
    }
    function Test-SystemLxcfs {
        @(Get-Content /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -eq '/var/lib/lxcfs' -and $_ -match ' - fuse\.lxcfs ' }).Count -gt 0
    }
}

Describe 'cgroup2 keeps nsdelegate across lxcfs starts' -Skip:(-not $guarded) {
    BeforeAll {
        # Without the host's lxcfs the daemon starts its own.
        systemctl stop lxcfs.service
        Wait-Until { -not (Test-SystemLxcfs) } -TimeoutSeconds 30 -What 'lxcfs.service to unmount /var/lib/lxcfs'
        $script:daemon = Start-TestDaemon -ExtraArguments @('--sysctl-file', (Join-Path $sysctlDir '60-systemcontainers.conf'))
        $script:image = Get-TestImage
    }
    AfterAll {
        Stop-TestDaemon $script:daemon
        Remove-Item -Recurse -Force $sysctlDir -ErrorAction SilentlyContinue
        systemctl start lxcfs.service
        Wait-Until { Test-SystemLxcfs } -TimeoutSeconds 60 -What 'lxcfs.service to mount /var/lib/lxcfs'
        # The guest as this file found it, whatever failed above.
        if ((Get-Cgroup2Options) -notcontains 'nsdelegate') { mount -o remount,nsdelegate,memory_recursiveprot /sys/fs/cgroup }
    }

    It 'keeps nsdelegate and memory_recursiveprot when the daemon starts its own lxcfs, and logs the remount' {
        (Get-SystemContainerHost).Lxcfs | Should -Be 'daemon'
        Get-Cgroup2Options | Should -Contain 'nsdelegate'
        Get-Cgroup2Options | Should -Contain 'memory_recursiveprot'
        Get-Content $daemon.Log | Where-Object { $_ -match "the daemon's lxcfs cleared .*nsdelegate.* remounted it" } | Should -Not -BeNullOrEmpty
        (Test-SystemContainerHost | Where-Object Name -eq 'cgroup2 options').Status | Should -Be 'Ok'
    }

    It 'puts nsdelegate back when a container start finds lxcfs.service cleared it' {
        systemctl start lxcfs.service
        Wait-Until { Test-SystemLxcfs } -TimeoutSeconds 60 -What 'lxcfs.service to mount /var/lib/lxcfs'
        Get-Cgroup2Options | Should -Not -Contain 'nsdelegate' -Because 'lxcfs 5.0.3 mounts cgroup2 with no options (lxc/lxcfs#692)'
        $check = Test-SystemContainerHost | Where-Object Name -eq 'cgroup2 options'
        $check.Status | Should -Be 'Warning'
        $check.Detail | Should -BeLike '*without nsdelegate*lxcfs.service*'

        $c = New-SystemContainer keep1 -Image $image -Start
        $c.Status | Should -Be 'Running'
        Get-Cgroup2Options | Should -Contain 'nsdelegate'
        Get-Content $daemon.Log | Where-Object { $_ -match 'since the daemon started .* cleared nsdelegate.* remounted it' } | Should -Not -BeNullOrEmpty
        # Exec crosses into the container's cgroup namespace, which nsdelegate guards.
        (Invoke-SystemContainerCommand keep1 -- cat /proc/self/cgroup) | Should -Be '0::/'
    }

    It 'Test-SystemContainerHost -Fix remounts cgroup2 with what it lacks' {
        systemctl restart lxcfs.service
        Wait-Until { (Test-SystemLxcfs) -and (Get-Cgroup2Options) -notcontains 'nsdelegate' } -TimeoutSeconds 60 -What 'lxcfs.service to clear nsdelegate again'
        $after = Test-SystemContainerHost -Fix -Confirm:$false
        ($after | Where-Object Name -eq 'cgroup2 options').Status | Should -Be 'Ok'
        Get-Cgroup2Options | Should -Contain 'nsdelegate'
        Get-Cgroup2Options | Should -Contain 'memory_recursiveprot'
    }
}
