# Attacks a container's isolation from inside, as its root would, and checks the outcome from the host.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainer victim -Image $image -Start | Out-Null
    function In([string[]]$Command, [hashtable]$With = @{}) { Invoke-SystemContainerCommand victim -Command $Command -PassThru @With }
    # Exec over the raw API, as any client could send it; returns the response, or the finished operation.
    function Invoke-RawExec([string]$Container, [hashtable]$Request) {
        $r = Invoke-TestApi $daemon POST "/1.0/containers/$Container/exec" ($Request | ConvertTo-Json -Compress)
        if ($r.Status -ne 202) { return $r }
        (Invoke-TestApi $daemon GET "$($r.Body.operation)/wait?timeout=30").Body.metadata
    }
    # The host pid of a process in the container whose command line is cmdline (NUL-separated).
    function Find-ContainerProcess([string]$Container, [string]$Cmdline) {
        $ns = (Get-Item "/proc/$((Get-SystemContainer $Container).Pid)/ns/pid").LinkTarget
        Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
            (Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue) -eq $Cmdline -and
            (Get-Item "/proc/$($_.Name)/ns/pid" -ErrorAction SilentlyContinue).LinkTarget -eq $ns
        } | Select-Object -First 1 -ExpandProperty Name
    }
    function Get-ExecOutput($Operation) { $Operation | ConvertTo-Json -Depth 8 -Compress }
    # A host file the container must neither read nor replace, and a host path it must not create.
    $script:secret = Join-Path $daemon.Dir 'host-secret'
    Set-Content -Path $secret -Value 'host-only' -NoNewline
    $script:planted = Join-Path $daemon.Dir 'planted-by-container'
    # From any directory of the host, enough ".." reach its root; from the container's they stop at its own.
    $script:climb = ('..' + '/..' * 20)
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Escape 1: exec never starts in, or holds, a host directory' {
    AfterEach {
        In 'sh', '-c', 'rm -rf /root /tmp/cwd; mkdir -p /root' | Out-Null
        Remove-Item $planted -ErrorAction SilentlyContinue
    }
    It 'a /root symlink to /proc/self/fd/<fd> does not reach the host (fd <fd>)' -ForEach @(3..9 | ForEach-Object { @{ fd = $_ } }) {
        In 'sh', '-c', "rm -rf /root && ln -s /proc/self/fd/$fd /root" | Out-Null
        $r = In 'sh', '-c', "cat $climb$secret; echo x > $climb$planted; readlink /proc/self/cwd"
        $r.Stdout | Should -Not -Match 'host-only'
        Test-Path $planted | Should -BeFalse
    }
    It 'a cwd of <cwd> over the REST API does not reach the host' -ForEach @(
        @{ cwd = '/proc/self/fd/3' }, @{ cwd = '/proc/self/fd/4' }, @{ cwd = '/proc/self/fd/5' }, @{ cwd = '/proc/self/fd/6' },
        @{ cwd = '/proc/thread-self/fd/5' }, @{ cwd = '/proc/self/cwd' }, @{ cwd = '/dev/fd/5' }, @{ cwd = '/tmp/cwd' }
    ) {
        In 'sh', '-c', 'ln -s /proc/self/fd/5 /tmp/cwd' | Out-Null
        $m = Invoke-RawExec victim @{ command = @('sh', '-c', "cat $climb$secret; echo x > $climb$planted; pwd") ; cwd = $cwd }
        Get-ExecOutput $m | Should -Not -Match 'host-only'
        Test-Path $planted | Should -BeFalse
    }
    It 'a relative cwd is refused before anything runs' {
        $r = Invoke-TestApi $daemon POST '/1.0/containers/victim/exec' '{"command":["true"],"cwd":"tmp"}'
        $r.Status | Should -Be 400
        $r.Body.error | Should -Match 'cwd|working directory'
    }
    It 'the exec process lives in the container''s root and mount namespace' {
        $c = Get-SystemContainer victim
        In 'sh', '-c', 'sleep 31 </dev/null >/dev/null 2>&1 &' | Out-Null
        $sleeper = Find-ContainerProcess victim "sleep`031`0"
        $sleeper | Should -Not -BeNullOrEmpty
        (Get-Item "/proc/$sleeper/ns/mnt").LinkTarget | Should -Be (Get-Item "/proc/$($c.Pid)/ns/mnt").LinkTarget
        (Get-Item "/proc/$sleeper/root").LinkTarget | Should -Be '/'
        In 'pkill', '-f', 'sleep 31' | Out-Null
    }
}

Describe 'Escape 1 at start: the rootfs a container left behind cannot redirect its next start' {
    It 'a <what> symlink in the upper layer is refused at start' -ForEach @(
        @{ what = 'dev'; link = 'dev' }, @{ what = 'proc'; link = 'proc' }, @{ what = 'sys'; link = 'sys' }, @{ what = 'run'; link = 'run' }
    ) {
        $name = "redirect-$what"
        New-SystemContainer $name -Image $image | Out-Null
        $upper = Join-Path $daemon.StateDir "containers/$name/fs/upper"
        New-Item -ItemType Directory -Force -Path (Join-Path $upper 'tmp') | Out-Null
        Remove-Item -Recurse -Force (Join-Path $upper $link) -ErrorAction SilentlyContinue
        New-Item -ItemType SymbolicLink -Path (Join-Path $upper $link) -Target $daemon.Dir | Out-Null
        { Start-SystemContainer $name -ErrorAction Stop } | Should -Throw "*$link*"
        Get-Content /proc/self/mountinfo | Where-Object { $_ -match [regex]::Escape($daemon.Dir) } | Should -BeNullOrEmpty
        Remove-SystemContainer $name -Force -Confirm:$false
    }
}

Describe 'Escape 3: an exec runs as a mapped id, and -User gives up root' {
    BeforeAll {
        New-SystemContainer priv-user -Image $image -Privileged -Start | Out-Null
        $script:victimMap = Get-Content "/proc/$((Get-SystemContainer victim).Pid)/uid_map"
    }
    AfterAll { Remove-SystemContainer priv-user -Force -Confirm:$false }
    It 'refuses <what> over the REST API before anything runs' -ForEach @(
        @{ what = 'user -1'; user = -1; group = 0 }, @{ what = 'group -1'; user = 0; group = -1 },
        @{ what = 'an unmapped user'; user = 65536; group = 0 }, @{ what = 'an unmapped group'; user = 0; group = 65536 },
        @{ what = 'a huge user'; user = [int]::MaxValue; group = 0 }, @{ what = 'a negative group'; user = 0; group = -2 }
    ) {
        $r = Invoke-RawExec victim @{ command = @('sh', '-c', 'echo ran > /tmp/ran'); user = $user; group = $group }
        $r.Status | Should -Be 400
        $r.Body.error | Should -Match 'not mapped|uid|gid'
        (In 'sh', '-c', 'test -e /tmp/ran && echo present').Stdout | Should -BeNullOrEmpty
    }
    It 'refuses <what> on a privileged container too' -ForEach @(@{ what = 'user -1'; user = -1; group = 0 }, @{ what = 'group -1'; user = 0; group = -1 }) {
        $r = Invoke-RawExec priv-user @{ command = @('true'); user = $user; group = $group }
        $r.Status | Should -Be 400
    }
    It 'runs a mapped user as its host id, without capabilities, in an unprivileged container' {
        $r = In 'sh', '-c', 'id -u; id -g; grep -E "^(CapEff|CapPrm|Seccomp):" /proc/self/status; sleep 31 </dev/null >/dev/null 2>&1 &' -With @{ User = 1000; Group = 1000 }
        $r.ExitCode | Should -Be 0
        $lines = $r.Stdout -split "`n"
        $lines[0..1] | Should -Be '1000', '1000'
        $r.Stdout | Should -Match 'CapEff:\s+0+\s'
        $r.Stdout | Should -Match 'Seccomp:\s+2'
        $base = [long](($victimMap -split '\s+' | Where-Object { $_ })[1])
        $sleeper = Find-ContainerProcess victim "sleep`031`0"
        (Get-Content "/proc/$sleeper/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Skip 1 | Should -Be (@($base + 1000) * 4)
        In 'pkill', '-f', 'sleep 31' | Out-Null
    }
    It 'runs -User on a privileged container as that user, with no capabilities and no new privileges' {
        $r = Invoke-SystemContainerCommand priv-user -User 1000 -Group 1000 -PassThru -- sh -c 'id -u; id -g; grep -E "^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status; echo evil > /proc/sys/kernel/hostname; sleep 31 </dev/null >/dev/null 2>&1 &'
        $lines = $r.Stdout -split "`n"
        $lines[0..1] | Should -Be '1000', '1000'
        foreach ($set in 'CapInh', 'CapPrm', 'CapEff', 'CapAmb') { $r.Stdout | Should -Match "${set}:\s+0+\s" }
        $r.Stdout | Should -Match 'NoNewPrivs:\s+1'
        $r.Stdout | Should -Match 'Seccomp:\s+2'
        (hostname) | Should -Not -Be 'evil'
        $sleeper = Find-ContainerProcess priv-user "sleep`031`0"
        (Get-Content "/proc/$sleeper/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Skip 1 | Should -Be (@('1000') * 4)
        Invoke-SystemContainerCommand priv-user -- pkill -f 'sleep 31' | Out-Null
    }
    It 'keeps root a root on a privileged container without -User' {
        (Invoke-SystemContainerCommand priv-user -- id -u) | Should -Be '0'
    }
}
