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
        $sleeper = Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
            (Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction SilentlyContinue) -eq "sleep`031`0" -and
            (Get-Item "/proc/$($_.Name)/ns/pid" -ErrorAction SilentlyContinue).LinkTarget -eq (Get-Item "/proc/$($c.Pid)/ns/pid").LinkTarget
        } | Select-Object -First 1
        $sleeper | Should -Not -BeNullOrEmpty
        (Get-Item "/proc/$($sleeper.Name)/ns/mnt").LinkTarget | Should -Be (Get-Item "/proc/$($c.Pid)/ns/mnt").LinkTarget
        (Get-Item "/proc/$($sleeper.Name)/root").LinkTarget | Should -Be '/'
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
