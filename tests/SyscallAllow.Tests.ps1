# security.syscalls.allow: a container may be given back the calls the seccomp filter denies by
# default that stay within a namespace's checks (the keyring, bpf, perf_event_open, userfaultfd,
# io_uring), never the ones that reach the host as a whole. Looked at from inside with the probe
# that makes each call harmlessly, compared with what the same calls do on the host.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    $script:probe = Join-Path $daemon.Dir 'probe-syscalls'
    gcc -static -O2 -o $probe (Join-Path $PSScriptRoot 'probe-syscalls.c')
    if ($LASTEXITCODE) { throw 'cannot build the syscall probe' }
    $script:onHost = @{}
    & $probe | ForEach-Object { $call, $abi, $err = $_ -split ' '; $onHost["$call $abi"] = $err }
    $script:allowable = 'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register'

    function Probe([string]$Container) {
        Copy-Item $probe (Join-Path $daemon.StateDir "containers/$Container/fs/upper/probe")
        $result = @{}
        Invoke-SystemContainerCommand $Container /probe | ForEach-Object { $call, $abi, $err = $_ -split ' '; $result["$call $abi"] = $err }
        $result
    }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'security.syscalls.allow' {
    AfterAll { foreach ($c in 'allow-priv', 'allow-some', 'allow-none') { Remove-SystemContainer $c -Force -Confirm:$false -ErrorAction SilentlyContinue } }

    It 'gives a privileged container every allowable call in every ABI, as the host runs it, and keeps the rest denied' {
        New-SystemContainer allow-priv -Image $image -Privileged -Config @{ 'security.syscalls.allow' = $allowable -join ',' } -Start | Out-Null
        $inside = Probe allow-priv
        $given = $onHost.Keys | Where-Object { ($_ -split ' ')[0] -in $allowable -and $onHost[$_] -notin 'ENOSYS', 'EPERM' }
        $given.Count | Should -BeGreaterThan 10 -Because 'the host runs most allowable calls natively and through int 0x80'
        foreach ($key in $given) { $inside[$key] | Should -Be $onHost[$key] -Because "$key is allowed" }
        $kept = $onHost.Keys | Where-Object { ($_ -split ' ')[0] -notin $allowable -and $onHost[$_] -notin 'ENOSYS', 'EPERM' }
        $kept.Count | Should -BeGreaterThan 3
        foreach ($key in $kept) { $inside[$key] | Should -Be 'EPERM' -Because "$key is never given back" }
    }
    It 'gives an unprivileged container only the calls it names' {
        New-SystemContainer allow-some -Image $image -Config @{ 'security.syscalls.allow' = 'keyctl, io_uring_setup' } -Start | Out-Null
        New-SystemContainer allow-none -Image $image -Start | Out-Null
        $some = Probe allow-some
        $none = Probe allow-none
        $none['keyctl native'] | Should -Be 'ENOSYS'
        $some['keyctl native'] | Should -Be $onHost['keyctl native'] -Because 'the keyring is the user namespace''s own'
        $some['add_key native'] | Should -Be 'ENOSYS' -Because 'add_key is not named'
        $none['io_uring_setup native'] | Should -Be 'EPERM'
        $some['io_uring_setup native'] | Should -Be $onHost['io_uring_setup native']
        $some['userfaultfd native'] | Should -Be 'EPERM'
    }
    It 'applies the same list to init: a probe run by init at boot sees it' {
        New-SystemContainer allow-init -Image $image -Config @{ 'security.syscalls.allow' = 'keyctl' } | Out-Null
        $upper = Join-Path $daemon.StateDir 'containers/allow-init/fs/upper'
        Copy-Item $probe (Join-Path $upper 'probe')
        New-Item -ItemType Directory (Join-Path $upper 'etc') -Force | Out-Null
        # busybox init runs each sysinit line in order: the image's rcS, then the probe, as init's child.
        Set-Content (Join-Path $upper 'etc/inittab') -NoNewline "::sysinit:/etc/init.d/rcS`n::sysinit:/bin/sh -c '/probe > /probe.tmp && mv /probe.tmp /probe.out'`n::shutdown:/bin/sync`n"
        try {
            Start-SystemContainer allow-init
            $out = Join-Path $upper 'probe.out'
            Wait-Until { Test-Path $out } -TimeoutSeconds 30 -What 'the probe init ran'
            $atBoot = @{}
            Get-Content $out | ForEach-Object { $call, $abi, $err = $_ -split ' '; $atBoot["$call $abi"] = $err }
            $atBoot['keyctl native'] | Should -Be $onHost['keyctl native']
            $atBoot['add_key native'] | Should -Be 'ENOSYS'
            $atBoot['bpf native'] | Should -Be 'EPERM'
        }
        finally { Remove-SystemContainer allow-init -Force -Confirm:$false }
    }
    It 'refuses <Value> with the name it cannot give back' -ForEach @(
        @{ Value = 'init_module'; Bad = 'init_module' }
        @{ Value = 'keyctl,swapon'; Bad = 'swapon' }
        @{ Value = 'KEYCTL'; Bad = 'KEYCTL' }
    ) {
        New-SystemContainer allow-bad -Image $image -Config @{ 'security.syscalls.allow' = $Value } -ErrorAction SilentlyContinue -ErrorVariable e | Out-Null
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $e[0].Exception.Message | Should -Match "names '$Bad'"
        Get-SystemContainer allow-bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}
