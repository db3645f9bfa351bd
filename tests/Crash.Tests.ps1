# Crash safety: damaged state, daemon deaths at named points (SYSTEMCONTAINERS_TEST_CRASH_AT), full
# disks, racing removals. After each fault every container must be listed with a true status, work,
# and be removable, and nothing the daemon made may be left without an owner.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    # The tmpfs the full-disk tests mount over the containers' run directories, while they run.
    $script:runContainers = $null

    function Restart-Daemon([hashtable]$Environment = @{}) {
        <# SIGTERM (if alive) and start again, with test-hook variables set for the new daemon only. #>
        Stop-DaemonProcess $daemon
        foreach ($k in $Environment.Keys) { Set-Item "Env:$k" $Environment[$k] }
        try { Start-DaemonProcess $daemon }
        finally { foreach ($k in $Environment.Keys) { Remove-Item "Env:$k" -ErrorAction SilentlyContinue } }
    }

    function Get-GroupName {
        <# The name of this daemon's cgroup group directories (a scope's with .scope after it). #>
        'systemcontainers-' + [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($daemon.StateDir))).ToLower().Substring(0, 8)
    }

    function Get-GroupDirectories {
        <#
        This daemon's cgroup group directories (containers' cgroups are made inside), where the engine
        makes them on this host: one per hierarchy under the daemon's own cgroup on v1 and hybrid hosts;
        on pure v2 its scope in systemcontainers.slice under systemd, else /<group> below the root.
        #>
        $group = Get-GroupName
        if ((Get-CgroupVersion) -eq 'v1') { return Get-CgroupDirectories $PID | ForEach-Object { Join-Path $_ $group } }
        $mount = (Get-CgroupMounts | Where-Object Type -eq 'cgroup2').MountPoint
        if (Test-Path /run/systemd/system) { Join-Path $mount "systemcontainers.slice/$group.scope" } else { Join-Path $mount $group }
    }

    function Assert-NothingLeft {
        <# Nothing of any container is left once all are removed: no cgroup, process, mount, veth, staging file. #>
        (Get-SystemContainer) | Should -BeNullOrEmpty
        foreach ($dir in Get-GroupDirectories) {
            # The scope's .keeper (v2 under systemd) holds the scope for the daemon; it is no container's.
            if (Test-Path $dir) { @(Get-ChildItem -Force -Directory $dir | Where-Object Name -ne '.keeper' | ForEach-Object Name) | Should -BeNullOrEmpty -Because "no container cgroup is left in $dir" }
        }
        # Mount points under the run directory (the tmpfs a test put there itself aside).
        @(Get-TestMounts $daemon | ForEach-Object { ($_ -split ' ')[4] } | Where-Object { $_.StartsWith("$($daemon.RunDir)/") -and $_ -ne $script:runContainers }) | Should -BeNullOrEmpty
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'containers') | ForEach-Object Name) | Should -BeNullOrEmpty
        @(Get-ChildItem -Force (Join-Path $daemon.RunDir 'containers') | ForEach-Object Name) | Should -BeNullOrEmpty
        @(Get-ChildItem -Force -Recurse -File (Join-Path $daemon.StateDir '*') -ErrorAction SilentlyContinue |
            Where-Object Name -like '.*.tmp' | ForEach-Object FullName) | Should -BeNullOrEmpty
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'images') | Where-Object Name -like '.*' | ForEach-Object Name) | Should -BeNullOrEmpty
        @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'type', 'veth')) | Should -BeNullOrEmpty
        Assert-NetworksTrue
    }

    function Assert-NetworksTrue {
        <# Bridges, dnsmasqs and firewall rules are exactly those of the recorded networks. #>
        $networks = @(Get-SystemContainerNetwork | ForEach-Object Name | Sort-Object)
        $bridges = @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'type', 'bridge') | ForEach-Object { ($_ -split ': ')[1] } | Sort-Object)
        "$bridges" | Should -Be "$networks"
        $dnsmasqs = @(Get-TestDnsmasq $daemon | ForEach-Object {
            (Get-Content -Raw "/proc/$_/cmdline") -split "`0" | Where-Object { $_ -like '--interface=*' } | ForEach-Object { $_.Substring(12) }
        } | Sort-Object)
        "$dnsmasqs" | Should -Be "$networks"
        $table = Invoke-InNetns $daemon nft @('list', 'table', 'inet', 'systemcontainers') 2>$null
        if ($networks.Count -eq 0) { $table | Should -BeNullOrEmpty }
        else {
            $ruled = @([regex]::Matches("$table", 'iifname "([^"]+)" accept') | ForEach-Object { $_.Groups[1].Value } | Sort-Object -Unique)
            "$ruled" | Should -Be "$networks"
        }
    }

    function Invoke-Crash([string]$Point, [scriptblock]$Action) {
        <# Runs Action against a daemon armed to SIGKILL itself at Point, then starts a clean daemon. #>
        Restart-Daemon @{ SYSTEMCONTAINERS_TEST_CRASH_AT = $Point }
        $dead = $daemon.Pid
        & $Action
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What "the daemon to die at $Point"
        Get-Content -Raw $daemon.Log | Should -Match "test hook: SIGKILL at $Point"
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
    }

    function Get-CgroupProcesses([string]$Name) {
        <# The pids in a container's cgroups (and sub-cgroups), as the host sees them. #>
        $pids = foreach ($dir in Get-GroupDirectories) {
            $own = Join-Path $dir $Name
            if (Test-Path $own) { Get-ChildItem -Recurse -Force -Filter cgroup.procs $own | Get-Content | ForEach-Object { [int]$_ } }
        }
        $pids | Sort-Object -Unique
    }

    function Get-StartProcesses([string]$Name) {
        <#
        From the host's /proc: the processes in the container's cgroups (zombies too, which cgroup.procs
        leaves out) and every sc-init create (nothing else starts a container while these tests run).
        #>
        $cgroup = "(?m)/$(Get-GroupName)(\.scope)?/$([regex]::Escape($Name))(/.*)?$"
        foreach ($proc in Get-ChildItem -Directory /proc | Where-Object Name -match '^\d+$') {
            $groups = Get-Content -Raw "$($proc.FullName)/cgroup" -ErrorAction SilentlyContinue
            $command = Get-Content -Raw "$($proc.FullName)/cmdline" -ErrorAction SilentlyContinue
            if ("$groups" -cmatch $cgroup -or "$command".StartsWith("sc-init`0create`0")) { [int]$proc.Name }
        }
    }

    function Assert-StartRefused([string]$Name, [string]$Cause, [string]$NotCause) {
        <#
        A start refused with an error that names Cause (a regex; NotCause one it must not match): the
        container is stopped, and nothing of the start is left on the host: no process of it (its init,
        a sc-init), no cgroup, no veth.
        #>
        Start-SystemContainer $Name -ErrorAction SilentlyContinue -ErrorVariable refused
        $refused | Should -Not -BeNullOrEmpty -Because 'the start is refused'
        "$refused" | Should -Match $Cause
        if ($NotCause) { "$refused" | Should -Not -Match $NotCause }
        (Get-SystemContainer $Name).Status | Should -Be 'Stopped'
        @(Get-StartProcesses $Name) | Should -BeNullOrEmpty -Because 'no init or sc-init of the refused start is left'
        foreach ($dir in Get-GroupDirectories) { Join-Path $dir $Name | Should -Not -Exist -Because 'its cgroup is removed' }
        @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'type', 'veth')) | Should -BeNullOrEmpty -Because 'no NIC made for it is left'
    }

    function Clear-Containers {
        <# A failed test leaves nothing for the next one to trip over. #>
        Get-SystemContainer | Remove-SystemContainer -Force -Confirm:$false -ErrorAction SilentlyContinue
    }

    function Assert-Works([string]$Name) {
        <# A container that survived a fault starts, runs a command, stops and goes away. #>
        (Start-SystemContainer $Name -PassThru).Status | Should -Be 'Running'
        Invoke-SystemContainerCommand $Name hostname | Should -Be $Name
        (Stop-SystemContainer $Name -Force -PassThru).Status | Should -Be 'Stopped'
        Remove-SystemContainer $Name -Force -Confirm:$false
    }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Damaged state files' {
    AfterEach { Clear-Containers }
    It 'lists a container with <File> <Damage> as Error and keeps the other two working' -TestCases @(
        @{ File = 'config.json'; Damage = 'empty'; Content = '' }
        @{ File = 'config.json'; Damage = 'truncated'; Content = $null }
        @{ File = 'config.json'; Damage = 'wrong types'; Content = '{"name": 7, "imageFingerprint": [], "config": "x", "created": true}' }
        @{ File = 'config.json'; Damage = 'from a newer schema'; Content = 'NEWER' }
        @{ File = 'state.json'; Damage = 'empty'; Content = '' }
        @{ File = 'state.json'; Damage = 'truncated'; Content = $null }
        @{ File = 'state.json'; Damage = 'wrong types'; Content = '{"running": "yes", "pid": "one"}' }
    ) {
        New-SystemContainer dmg-a -Image $image -Start | Out-Null
        New-SystemContainer dmg-b -Image $image | Out-Null
        New-SystemContainer dmg-c -Image $image | Out-Null
        Start-SystemContainer dmg-b; Stop-SystemContainer dmg-b -Force
        # What runs is recorded in the run directory, what the container is in the state directory.
        $path = Join-Path ($File -eq 'state.json' ? $daemon.RunDir : $daemon.StateDir) "containers/dmg-b/$File"
        Stop-DaemonProcess $daemon
        $original = Get-Content -Raw $path
        $broken = switch ($Content) {
            $null { $original.Substring(0, [int]($original.Length / 2)) }
            'NEWER' { $original -replace '"schemaVersion": 1', '"schemaVersion": 99' }
            default { $Content }
        }
        if ($Content -eq 'NEWER') { $broken | Should -Match '"schemaVersion": 99' }
        [IO.File]::WriteAllText($path, $broken)
        Start-DaemonProcess $daemon

        $b = Get-SystemContainer dmg-b
        $b.Status | Should -Be 'Error'
        $b.Error | Should -Match ([regex]::Escape($path))
        (Get-SystemContainer dmg-a).Status | Should -Be 'Running'
        (Get-SystemContainer dmg-c).Status | Should -Be 'Stopped'
        Start-SystemContainer dmg-b -ErrorAction SilentlyContinue -ErrorVariable refused
        $refused[0].FullyQualifiedErrorId | Should -BeLike 'ContainerDamaged,*'
        [IO.File]::ReadAllText($path) | Should -Be $broken -Because 'a damaged file is kept for repair'

        Stop-SystemContainer dmg-a -Force
        Remove-SystemContainer dmg-a -Confirm:$false
        Assert-Works dmg-c
        Remove-SystemContainer dmg-b -Force -Confirm:$false
        Assert-NothingLeft
    }
    It 'names why the root cannot be mounted when the init dies while its NIC is made, and runs nothing' {
        # The overlay's upper directory replaced by a file: sc-init's mount fails right after it clones
        # init, while the daemon makes the NIC in init's network namespace (then gone: ESRCH, ENODEV).
        New-SystemContainer dmg-fs -Image $image | Out-Null
        $upper = Join-Path $daemon.StateDir 'containers/dmg-fs/fs/upper'
        Test-Path -PathType Container $upper | Should -BeTrue
        Remove-Item -Recurse -Force $upper
        Set-Content $upper 'not a directory'
        foreach ($attempt in 1..3) { Assert-StartRefused dmg-fs -Cause 'cannot mount' -NotCause 'ESRCH|ENODEV|veth' }
        Remove-Item -Force $upper
        Remove-SystemContainer dmg-fs -Force -Confirm:$false
        Assert-NothingLeft
    }
}

Describe 'A start the daemon aborts' {
    AfterEach { Clear-Containers }
    It 'names why the NIC cannot be made when the daemon aborts a start, and leaves no init behind' {
        # The daemon refuses the veth while init waits in sc-init for its NICs: sc-init is told to
        # abort, kills init and answers; the daemon's own error is the one reported.
        New-SystemContainer nic-fault -Image $image | Out-Null
        Restart-Daemon @{ SYSTEMCONTAINERS_TEST_FAULT_AT = 'nic-attach' }
        try {
            Assert-StartRefused nic-fault -Cause 'cannot create veth \S+ \(peer eth0 in pid \d+\): EIO' -NotCause 'abort'
        }
        finally { Restart-Daemon }
        $running = Start-SystemContainer nic-fault -PassThru
        $running.Status | Should -Be 'Running'
        @(Get-StartProcesses nic-fault) | Should -Contain $running.Pid -Because 'a started init is found where a refused one is looked for'
        Stop-SystemContainer nic-fault -Force
        Assert-Works nic-fault
        Assert-NothingLeft
    }
}

Describe 'Staging leftovers' {
    AfterEach { Clear-Containers }
    It 'reclaims the staging directory of a create cut short, and the name can be used again' {
        Invoke-Crash create-staged { New-SystemContainer half -Image $image -ErrorAction SilentlyContinue }
        Get-SystemContainer half -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        New-SystemContainer half -Image $image | Out-Null
        Assert-Works half
        Assert-NothingLeft
    }
    It 'publishes a create whole or not at all: killed with its config written it is not there, killed once made it is, with all its config' {
        $config = @{ 'limits.memory' = '64MiB'; 'limits.processes' = '100' }
        Invoke-Crash create-staged { New-SystemContainer half -Image $image -Config $config -ErrorAction SilentlyContinue }
        Get-SystemContainer half -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        @(Get-ChildItem -Force -Filter '.new-*' (Join-Path $daemon.StateDir 'containers')) | Should -BeNullOrEmpty
        New-SystemContainer whole -Image $image -Config $config | Out-Null
        $dead = $daemon.Pid
        kill -KILL $dead
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds 60 -What 'the daemon to die'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        $made = Get-SystemContainer whole
        $made.Status | Should -Be 'Stopped'
        $made.Config['limits.memory'] | Should -Be '64MiB'
        $made.Config['limits.processes'] | Should -Be '100'
        Assert-Works whole
        Assert-NothingLeft
    }
    It 'finishes a remove cut short: the container is gone and so is its staging directory' {
        New-SystemContainer doomed -Image $image -Start | Out-Null
        Invoke-Crash remove-moved { Remove-SystemContainer doomed -Force -Confirm:$false -ErrorAction SilentlyContinue }
        Get-SystemContainer doomed -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.RunDir 'containers/doomed') | Should -BeFalse
        Assert-NothingLeft
    }
    It 'reclaims an image import cut short' {
        $tarball = Join-Path $daemon.Dir 'busybox.tar'
        & bash -c "mkdir -p $($daemon.Dir)/rootfs/sbin $($daemon.Dir)/rootfs/bin && cp /bin/busybox $($daemon.Dir)/rootfs/bin/ && ln -sf ../bin/busybox $($daemon.Dir)/rootfs/sbin/init && tar -C $($daemon.Dir)/rootfs -cf $tarball ."
        Invoke-Crash import-unpacked { Import-SystemContainerImage -Path $tarball -Alias halfimage -ErrorAction SilentlyContinue }
        Get-SystemContainerImage halfimage -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Import-SystemContainerImage -Path $tarball -Alias halfimage | Should -Not -BeNullOrEmpty
        Remove-SystemContainerImage halfimage -Confirm:$false
        Assert-NothingLeft
    }
    It 'removes planted leftovers deeper than PATH_MAX without following their symlinks' {
        $containers = Join-Path $daemon.StateDir 'containers'
        $outside = Join-Path $daemon.Dir 'outside'
        New-Item -ItemType Directory $outside | Out-Null
        Set-Content (Join-Path $outside 'precious') 'keep me'
        New-SystemContainer keeper -Image $image | Out-Null
        Stop-DaemonProcess $daemon
        # 24 levels of 250-byte names make a path of 6,000 bytes; at the bottom, links to a directory and a file outside.
        $level = 'd' * 250
        & bash -c "cd '$containers' && mkdir .delete-deep-0 && cd .delete-deep-0 && for i in `$(seq 24); do mkdir $level && cd $level || exit 1; done; ln -s '$outside' dirlink; ln -s '$outside/precious' filelink; mkfifo fifo; echo x > file"
        $LASTEXITCODE | Should -Be 0
        New-Item -ItemType Directory (Join-Path $containers '.new-half-1/fs/upper') -Force | Out-Null
        New-Item -ItemType SymbolicLink -Path (Join-Path $containers '.delete-link-2') -Target $outside | Out-Null
        Set-Content (Join-Path $containers 'keeper/.config.json.123.4.tmp') 'half a record'
        $run = Join-Path $daemon.RunDir 'containers/keeper'
        New-Item -ItemType Directory $run -Force | Out-Null
        Set-Content (Join-Path $run '.state.json.123.4.tmp') 'half a record'
        New-Item -ItemType Directory (Join-Path $daemon.StateDir 'images/.import-5/rootfs') -Force | Out-Null
        Start-DaemonProcess $daemon
        @(Get-ChildItem -Force $containers | ForEach-Object Name) | Should -Be @('keeper')
        @(Get-ChildItem -Force (Join-Path $containers 'keeper') | ForEach-Object Name) | Should -Not -Contain '.config.json.123.4.tmp'
        @(Get-ChildItem -Force $run | ForEach-Object Name) | Should -Not -Contain '.state.json.123.4.tmp'
        Get-Content (Join-Path $outside 'precious') | Should -Be 'keep me'
        Get-Content -Raw $daemon.Log | Should -Match 'reclaimed leftover .*\.delete-deep-0'
        Remove-SystemContainer keeper -Confirm:$false
        Assert-NothingLeft
    }
}

Describe 'A restart after every kind of leftover' {
    AfterEach { Clear-Containers }
    It 'starts, reclaims each staging kind, reports what it cannot remove or load, and keeps a running container' {
        New-SystemContainer stay -Image $image -Start | Out-Null
        $fp = (Get-SystemContainerImage busybox).Fingerprint
        $state = $daemon.StateDir
        $run = $daemon.RunDir
        $outside = Join-Path $daemon.Dir 'outside-leftovers'
        New-Item -ItemType Directory $outside | Out-Null
        Set-Content (Join-Path $outside 'precious') 'keep me'
        Stop-DaemonProcess $daemon
        # One of each: a create, delete, import, image removal, id shift and atomic write cut short,
        # as directory, file, FIFO and symlink; an orphaned run directory; a network made without its record.
        $reclaimed = @(
            "$state/containers/.new-a-1", "$state/containers/.delete-b-2", "$state/containers/.delete-c-3", "$state/containers/.delete-d-4",
            "$state/containers/stay/.config.json.1.2.tmp", "$state/images/.import-e-5", "$state/images/.remove-$('0' * 64)",
            "$state/images/$fp/.image.json.1.2.tmp", "$state/images/$fp/.rootfs.shift-1000000-1000000.tmp",
            "$state/networks/leftnet", "$run/networks/leftnet", "$run/containers/ghost")
        & bash -c @"
set -e
mkdir -p '$state/containers/.new-a-1/fs/upper/etc' '$state/images/.import-e-5/rootfs/bin' '$state/images/.remove-$('0' * 64)/rootfs/sbin'
mkdir -p '$state/images/$fp/.rootfs.shift-1000000-1000000.tmp/etc' '$state/networks/leftnet' '$run/networks/leftnet' '$run/containers/ghost/rootfs'
echo x > '$state/containers/.delete-b-2'
mkfifo '$state/containers/.delete-c-3'
ln -s '$outside' '$state/containers/.delete-d-4'
echo half > '$state/containers/stay/.config.json.1.2.tmp'
echo half > '$state/images/$fp/.image.json.1.2.tmp'
echo root:x:0:0 > '$state/images/$fp/.rootfs.shift-1000000-1000000.tmp/etc/passwd'
echo hosts > '$state/networks/leftnet/hosts'
mkdir -p '$state/containers/.delete-stuck-6' && echo x > '$state/containers/.delete-stuck-6/file' && chattr +i '$state/containers/.delete-stuck-6/file'
mkdir -p '$state/networks/broken' '$state/networks/lax'
echo '{not json' > '$state/networks/broken/network.json'
echo '{"name":"lax","config":{"ipv4.address":"10.1/24"},"created":"2026-01-01T00:00:00Z","pending":false,"schema_version":1}' > '$state/networks/lax/network.json'
"@
        $LASTEXITCODE | Should -Be 0
        try {
            Start-DaemonProcess $daemon
            foreach ($path in $reclaimed) { Test-Path -LiteralPath $path | Should -BeFalse -Because "$path is a leftover" }
            Get-Content (Join-Path $outside 'precious') | Should -Be 'keep me'
            $log = Get-Content -Raw $daemon.Log
            $log | Should -Match 'cannot reclaim leftover .*\.delete-stuck-6'
            $log | Should -Match "network 'broken' is not loaded"
            $log | Should -Match "network 'lax' is not loaded: .*10\.1/24"
            @(Get-SystemContainerNetwork | ForEach-Object Name) | Should -Not -Contain 'lax'
            (Get-SystemContainer stay).Status | Should -Be 'Running'
            Invoke-SystemContainerCommand stay hostname | Should -Be 'stay'
        }
        finally { chattr -i "$state/containers/.delete-stuck-6/file" }
        # What could not go at one start goes at the next; the records that do not load are the operator's to mend.
        Restart-Daemon
        Test-Path "$state/containers/.delete-stuck-6" | Should -BeFalse
        Stop-DaemonProcess $daemon
        Remove-Item -Recurse -Force "$state/networks/broken", "$state/networks/lax"
        Start-DaemonProcess $daemon
        Stop-SystemContainer stay -Force
        Assert-Works stay
        Assert-NothingLeft
    }
}

Describe 'A daemon dying during a start' {
    AfterEach { Clear-Containers }
    It 'leaves a true status after dying at <Point>' -TestCases @(
        @{ Point = 'start-intent'; Adopted = $false }
        @{ Point = 'start-cloned'; Adopted = $false }
        @{ Point = 'start-before-state'; Adopted = $false }
        @{ Point = 'start-after-state'; Adopted = $true }
    ) {
        New-SystemContainer starter -Image $image | Out-Null
        $script:left = @()
        Invoke-Crash $Point {
            Start-SystemContainer starter -ErrorAction SilentlyContinue
            Wait-Until { -not (Test-ProcessAlive $daemon.Pid) } -TimeoutSeconds 60 -What 'the daemon to die'
            $script:left = @(Get-CgroupProcesses starter)
        }
        if ($Point -ne 'start-intent') { $left | Should -Not -BeNullOrEmpty -Because 'the init was running when the daemon died' }
        $c = Get-SystemContainer starter
        if ($Adopted) {
            $c.Status | Should -Be 'Running'
            $c.Recovery | Should -Match 'adopted'
            Invoke-SystemContainerCommand starter hostname | Should -Be 'starter'
            Stop-SystemContainer starter -Force
        }
        else {
            $c.Status | Should -Be 'Stopped'
            # Before the clone nothing runs; after it, processes come and go, but at least the init was left and killed.
            $c.Recovery | Should -Match $(if ($Point -eq 'start-intent') { 'cut short.*; 0 process' } else { 'cut short.*; [1-9]\d* process' })
            foreach ($p in $left) { Test-ProcessAlive $p | Should -BeFalse -Because "process $p of the cut-short start is killed" }
            @(Get-CgroupProcesses starter) | Should -BeNullOrEmpty
        }
        Assert-Works starter
        Assert-NothingLeft
    }
}

Describe 'A full state or run disk' {
    BeforeAll {
        # The state directory and the containers' run directories move onto small tmpfs mounts
        # (as /run is one), so a write there can be refused with ENOSPC.
        Stop-DaemonProcess $daemon
        $script:saved = "$($daemon.StateDir).saved"
        Move-Item $daemon.StateDir $saved
        New-Item -ItemType Directory $daemon.StateDir | Out-Null
        mount -t tmpfs -o size=32m,mode=0700 sc-crash-state $daemon.StateDir
        & cp -a "$saved/." $daemon.StateDir
        $script:runContainers = Join-Path $daemon.RunDir 'containers'
        mount -t tmpfs -o size=8m,mode=0700 sc-crash-run $runContainers
        Start-DaemonProcess $daemon
        # A first create makes the default network; made here, so the full disk refuses the
        # container's own files whether or not an earlier describe (or filter) made it.
        New-SystemContainer warm -Image $image | Out-Null
        Remove-SystemContainer warm -Force
        $script:fillers = @((Join-Path $daemon.StateDir 'filler'), (Join-Path $runContainers 'filler'))

        function Fill-Disk([switch]$Run) { $f = $fillers[[int]$Run.IsPresent]; & dd if=/dev/zero "of=$f" bs=4k 2>$null; Test-Path $f | Should -BeTrue }
        function Free-Disk { Remove-Item -Force $fillers -ErrorAction SilentlyContinue }
    }
    AfterAll {
        Free-Disk
        Clear-Containers
        # dnsmasq keeps its lease file (on the tmpfs) open.
        Get-SystemContainerNetwork | Remove-SystemContainerNetwork -Confirm:$false
        Stop-DaemonProcess $daemon
        umount $runContainers
        umount $daemon.StateDir
        Remove-Item -Recurse -Force $daemon.StateDir
        Move-Item $saved $daemon.StateDir
        Start-DaemonProcess $daemon
    }
    AfterEach { Free-Disk; Clear-Containers }

    It 'refuses a create with the file named and leaves nothing' {
        Fill-Disk
        New-SystemContainer full -Image $image -ErrorAction SilentlyContinue -ErrorVariable refused | Out-Null
        "$refused" | Should -Match 'ENOSPC'
        "$refused" | Should -Match 'config\.json'
        Get-SystemContainer full -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Free-Disk
        Assert-NothingLeft
        New-SystemContainer full -Image $image | Out-Null
        Assert-Works full
    }
    It 'refuses a start whose intent cannot be written, and runs nothing' {
        New-SystemContainer full -Image $image | Out-Null
        Fill-Disk -Run
        Assert-StartRefused full -Cause 'ENOSPC'
        Free-Disk
        Assert-Works full
        Assert-NothingLeft
    }
    It 'kills and reaps the init when the running record cannot be written' {
        New-SystemContainer full -Image $image | Out-Null
        $pause = Join-Path $daemon.Dir 'pause'
        Restart-Daemon @{ SYSTEMCONTAINERS_TEST_PAUSE_AT = "start-before-state:$pause" }
        $op = (Invoke-TestApi $daemon PUT /1.0/containers/full/state '{"action":"start"}').Body.operation
        Wait-Until { Test-Path $pause } -TimeoutSeconds 60 -What 'the start to reach the state write'
        $init = @(Get-CgroupProcesses full)
        $init | Should -Not -BeNullOrEmpty
        Fill-Disk -Run
        Remove-Item $pause
        $result = (Invoke-TestApi $daemon GET "$op/wait?timeout=60").Body.metadata
        $result.status | Should -Be 'Failure'
        $result.err | Should -Match 'ENOSPC'
        $c = Get-SystemContainer full
        $c.Status | Should -Be 'Stopped'
        $c.Recovery | Should -Match 'init was killed'
        foreach ($p in $init) { Test-Path "/proc/$p" | Should -BeFalse -Because "init $p is killed and reaped, not a zombie" }
        @(Get-CgroupProcesses full) | Should -BeNullOrEmpty
        Free-Disk
        Restart-Daemon
        (Get-SystemContainer full).Status | Should -Be 'Stopped'
        Assert-Works full
        Assert-NothingLeft
    }
}

Describe 'A daemon dying while it makes or removes a network' {
    AfterEach { Clear-Containers; Get-SystemContainerNetwork | Where-Object Name -ne scbr0 | Remove-SystemContainerNetwork -Confirm:$false -ErrorAction SilentlyContinue }

    It 'leaves no bridge, dnsmasq or rule of a network cut short at <Point>, and makes it again' -TestCases @(
        @{ Point = 'network-intent' }
        @{ Point = 'network-bridged' }
        @{ Point = 'network-dnsmasq' }
        @{ Point = 'network-firewall' }
    ) {
        Invoke-Crash $Point { New-SystemContainerNetwork crashnet -ErrorAction SilentlyContinue | Out-Null }
        Get-SystemContainerNetwork crashnet -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-NetworksTrue
        New-SystemContainerNetwork crashnet | Out-Null
        New-SystemContainer netted -Image $image -Config @{ 'nic.eth0.type' = 'bridged'; 'nic.eth0.network' = 'crashnet' } | Out-Null
        Assert-Works netted
        Remove-SystemContainerNetwork crashnet -Confirm:$false
        Assert-NothingLeft
    }
    It 'makes the default network again after dying in the middle of making it on first use' {
        Remove-SystemContainerNetwork scbr0 -Confirm:$false -ErrorAction SilentlyContinue
        Invoke-Crash network-dnsmasq { New-SystemContainer firstuse -Image $image -ErrorAction SilentlyContinue | Out-Null }
        Get-SystemContainer firstuse -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-NetworksTrue
        New-SystemContainer firstuse -Image $image | Out-Null
        (Get-SystemContainerNetwork scbr0).Name | Should -Be 'scbr0'
        Assert-Works firstuse
        Assert-NothingLeft
    }
    It 'removes a bridge and dnsmasq it made but no longer records, and makes the default network again' {
        New-SystemContainer lostnet -Image $image | Out-Null
        Remove-SystemContainer lostnet -Confirm:$false
        Stop-DaemonProcess $daemon
        Remove-Item -Recurse -Force (Join-Path $daemon.StateDir 'networks/scbr0')
        Start-DaemonProcess $daemon
        Get-SystemContainerNetwork scbr0 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-NetworksTrue
        New-SystemContainer lostnet -Image $image | Out-Null
        Assert-Works lostnet
        Assert-NothingLeft
    }
    It 'finishes a network removal cut short' {
        New-SystemContainerNetwork crashnet | Out-Null
        Invoke-Crash network-remove-unfirewalled { Remove-SystemContainerNetwork crashnet -Confirm:$false -ErrorAction SilentlyContinue }
        Get-SystemContainerNetwork crashnet -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-NetworksTrue
    }
}

Describe 'Operations bound to a container, not its name' {
    AfterEach { Clear-Containers }

    It 'fails a delete queued behind another delete instead of removing the newer container of that name' {
        New-SystemContainer twice -Image $image | Out-Null
        $oldId = (Get-SystemContainer twice).Id
        $pause = Join-Path $daemon.Dir 'pause'
        Restart-Daemon @{ SYSTEMCONTAINERS_TEST_PAUSE_AT = "remove-moved,remove-done:$pause" }
        $first = (Invoke-TestApi $daemon DELETE /1.0/containers/twice).Body.operation
        Wait-Until { (Get-Content $pause -ErrorAction SilentlyContinue) -eq 'remove-moved' } -TimeoutSeconds 30 -What 'the first delete to start'
        $second = (Invoke-TestApi $daemon DELETE /1.0/containers/twice).Body.operation
        $second | Should -Not -BeNullOrEmpty -Because 'the container still exists when the second delete is asked for'
        Remove-Item $pause
        Wait-Until { (Get-Content $pause -ErrorAction SilentlyContinue) -eq 'remove-done' } -TimeoutSeconds 30 -What 'the first delete to finish its work'
        $created = Invoke-TestApi $daemon POST /1.0/containers (@{ name = 'twice'; image = $image } | ConvertTo-Json)
        $created.Status | Should -Be 201
        Remove-Item $pause
        (Invoke-TestApi $daemon GET "$first/wait?timeout=60").Body.metadata.status | Should -Be 'Success'
        $lost = (Invoke-TestApi $daemon GET "$second/wait?timeout=60").Body.metadata
        $lost.status | Should -Be 'Failure'
        $lost.status_code | Should -Be 404
        $newer = Get-SystemContainer twice
        $newer.Id | Should -Not -Be $oldId
        Test-Path (Join-Path $daemon.StateDir 'containers/twice/config.json') | Should -BeTrue
        Restart-Daemon
        Assert-Works twice
        Assert-NothingLeft
    }
    It 'gives one of ten parallel force-removes success and the others NotFound, never a server error' {
        New-SystemContainer racer -Image $image -Start | Out-Null
        $module = Join-Path $PSScriptRoot 'TestDaemon.psm1'
        $d = $daemon
        $answers = 1..10 | ForEach-Object -ThrottleLimit 10 -Parallel {
            Import-Module $using:module
            $r = Invoke-TestApi $using:d DELETE '/1.0/containers/racer?force=1'
            if ($r.Body.operation) { (Invoke-TestApi $using:d GET "$($r.Body.operation)/wait?timeout=60").Body.metadata.status_code }
            else { $r.Status }
        }
        @($answers).Count | Should -Be 10
        @($answers | Where-Object { $_ -eq 200 }).Count | Should -Be 1
        @($answers | Where-Object { $_ -notin 200, 404, 409 }) | Should -BeNullOrEmpty
        Assert-NothingLeft
    }
}

Describe 'Shutdown and exits' {
    AfterEach { Clear-Containers }

    It 'ends at SIGTERM with an events websocket open, closing it' {
        $socket = [System.Net.Sockets.Socket]::new('Unix', 'Stream', 'Unspecified')
        try {
            $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($daemon.Socket))
            $stream = [System.Net.Sockets.NetworkStream]::new($socket, $false)
            $key = [Convert]::ToBase64String([byte[]](1..16))
            $stream.Write([Text.Encoding]::ASCII.GetBytes("GET /1.0/events HTTP/1.1`r`nHost: x`r`nUpgrade: websocket`r`nConnection: Upgrade`r`nSec-WebSocket-Key: $key`r`nSec-WebSocket-Version: 13`r`n`r`n"))
            $head = ''
            while (-not $head.EndsWith("`r`n`r`n")) { $head += [char]$stream.ReadByte() }
            $head | Should -Match '^HTTP/1.1 101'
            $process = Get-Process -Id $daemon.Pid
            kill -TERM $daemon.Pid
            # Kestrel would wait 30 s for the stream; the daemon closes it and is gone well before.
            $process.WaitForExit(15000) | Should -BeTrue
            $stream.ReadTimeout = 5000
            ($stream.ReadByte() -band 0x0f) | Should -Be 8 -Because 'the server sent a close frame'
        }
        finally {
            $socket.Dispose()
            $daemon.Pid = 0
            Start-DaemonProcess $daemon
        }
    }
    It 'records how an adopted init ended' {
        $c = New-SystemContainer adoptee -Image $image -Start
        Restart-Daemon
        (Get-SystemContainer adoptee).Recovery | Should -Match 'adopted'
        kill -KILL $c.Pid
        Wait-Until { (Get-SystemContainer adoptee).Status -eq 'Stopped' } -TimeoutSeconds 30 -What 'the adopted init to be seen exiting'
        $after = Get-SystemContainer adoptee
        # A process the daemon does not parent is reaped by its real one (systemd at once); the kernel keeps its exit
        # status for a held pidfd from 6.15 (PIDFD_INFO_EXIT). Before, the daemon knows only while the zombie lasts,
        # and otherwise says nothing rather than guess.
        $kernel = [version]((uname -r) -replace '^(\d+\.\d+).*', '$1')
        if ($kernel -ge [version]'6.15') { $after.LastExitSignal | Should -Be 9 }
        else { $after.LastExitSignal | Should -BeIn @($null, 9) }
        $after.LastExitCode | Should -BeNullOrEmpty
        Assert-Works adoptee
        Assert-NothingLeft
    }
    It 'counts an OOM kill of init in oom_kills' {
        New-SystemContainer oomed -Image $image -Config @{ 'limits.memory' = '32MiB'; 'limits.memory.swap' = $false } -Start | Out-Null
        # The OOM killer picks the process with the highest score: init, once it asks for it. Its score
        # is about the cgroup's limit in pages; a root in a user namespace cannot lower the hogs' below 0,
        # so no hog may come near the limit itself: eight of about 6 MB each, held (their input stays open)
        # until together they pass 32 MiB.
        Invoke-SystemContainerCommand oomed -- sh -c 'echo 1000 > /proc/1/oom_score_adj'
        Invoke-SystemContainerCommand oomed -ErrorAction SilentlyContinue -- sh -c 'for i in 1 2 3 4 5 6 7 8; do { head -c 6000000 /dev/zero; sleep 600; } | tail > /dev/null & done; wait' | Out-Null
        Wait-Until { (Get-SystemContainer oomed).Status -eq 'Stopped' } -TimeoutSeconds 30 -What 'init to be OOM-killed'
        (Get-SystemContainer oomed).LastExitSignal | Should -Be 9
        (Get-ContainerStats oomed).OomKills | Should -BeGreaterOrEqual 1
        Assert-Works oomed
        Assert-NothingLeft
    }
}
