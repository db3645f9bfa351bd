# Scheduled snapshots with expiry (snapshots.schedule, .schedule.stopped, .pattern, .expiry) on
# a btrfs pool the daemon makes on a loop file. The daemon's scheduler wakes at each minute
# boundary, so the waits here are up to a little over a minute each: the containers of every
# case are set up first and share the waits.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainerStoragePool psched -Driver btrfs -Size 300MiB | Out-Null
    $script:snapshotsDir = Join-Path $daemon.StateDir 'storage-pools/psched/containers-snapshots'
    function New-Scheduled([string]$Name, [hashtable]$Config, [switch]$Start) {
        New-SystemContainer $Name -Image $image -Network none -StoragePool psched -Config $Config -Start:$Start | Out-Null
    }
    function Get-Scheduled([string]$Name) { @(Get-SystemContainerSnapshot $Name | Where-Object SnapshotName -like 'snap*') }
    # The longest a scheduled snapshot waits for its minute, with room for a busy machine.
    $script:minuteWait = 75
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'Scheduled snapshots' {
    BeforeAll {
        New-Scheduled every @{ 'snapshots.schedule' = '* * * * *'; 'snapshots.expiry' = '2M' } -Start
        New-Scheduled stopped @{ 'snapshots.schedule' = '* * * * *' }
        New-Scheduled stoppedtoo @{ 'snapshots.schedule' = '* * * * *'; 'snapshots.schedule.stopped' = 'true'; 'snapshots.pattern' = "auto-{{ creation_date|date:'2006-01-02_15-04' }}" }
        New-Scheduled never @{} -Start
        # Made before the first boundary, so the same sweep that follows the first scheduled snapshot deletes it.
        Checkpoint-SystemContainer never -SnapshotName expired -ExpiresAt ([DateTimeOffset]::Now.AddMinutes(-1))
        Checkpoint-SystemContainer never -SnapshotName later -ExpiresAt ([DateTimeOffset]::Now.AddDays(1))
        Checkpoint-SystemContainer never -SnapshotName kept
    }
    It 'records an explicit expiry on a snapshot, and none when not asked' {
        $s = Get-SystemContainerSnapshot never
        ($s | Where-Object SnapshotName -eq 'later').ExpiresAt | Should -BeGreaterThan ([DateTimeOffset]::Now.AddHours(23))
        ($s | Where-Object SnapshotName -eq 'kept').ExpiresAt | Should -BeNullOrEmpty
        $raw = (Invoke-TestApi $daemon GET '/1.0/containers/never/snapshots?recursion=1').Body.metadata
        ($raw | Where-Object snapshot_name -eq 'later').expires_at | Should -Not -BeNullOrEmpty
        $table = Get-SystemContainerSnapshot never | Format-Table | Out-String -Width 79
        foreach ($line in $table -split "`n") { $line.TrimEnd().Length | Should -BeLessOrEqual 79 }
        $table | Should -Match 'ExpiresAt'
        $table | Should -Match "(?m)^never\s+later\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} False\s*$"
    }
    It 'snapshots a running container at the next minute boundary, expiring after snapshots.expiry' {
        Wait-Until { @(Get-Scheduled every).Count -ge 1 } -TimeoutSeconds $minuteWait -What 'a scheduled snapshot of every'
        $s = @(Get-Scheduled every)[0]
        $s.SnapshotName | Should -Be 'snap0'
        $s.ExpiresAt | Should -Not -BeNullOrEmpty
        ($s.ExpiresAt - $s.Created).TotalSeconds | Should -BeGreaterThan 119
        ($s.ExpiresAt - $s.Created).TotalSeconds | Should -BeLessThan 121
        # Made just after a minute boundary, and the time is the snapshot's own, not its volume's.
        $s.Created.Second | Should -BeLessThan 15
        ([DateTimeOffset]::Now - $s.Created).TotalSeconds | Should -BeLessThan 65
        btrfs property get -ts (Join-Path $snapshotsDir 'every/snap0') ro | Should -Be 'ro=true'
        (Get-SystemContainer every).Status | Should -Be 'Running'
        Invoke-SystemContainerCommand every -- sh -c 'echo ok > /w; cat /w' | Should -Be 'ok'
        $created = @(Get-SystemContainerEvent every -Type lifecycle | Where-Object Action -eq 'container-snapshot-created')
        $created.Count | Should -BeGreaterOrEqual 1
    }
    It 'sweeps a snapshot whose expiry has passed, and keeps the others' {
        Wait-Until { 'expired' -notin @((Get-SystemContainerSnapshot never).SnapshotName) } -TimeoutSeconds $minuteWait -What 'the expired snapshot swept'
        @((Get-SystemContainerSnapshot never).SnapshotName) | Sort-Object | Should -Be @('kept', 'later')
        Test-Path (Join-Path $snapshotsDir 'never/expired') | Should -BeFalse
        @(Get-SystemContainerEvent never -Type lifecycle | Where-Object Action -eq 'container-snapshot-deleted').Count | Should -Be 1
        # The sweep made no snapshot of a container without a schedule.
        Get-Scheduled never | Should -BeNullOrEmpty
    }
    It 'keeps a snapshot''s expiry through a snapshot rename and a container rename, and drops it with the snapshot' {
        $at = (Get-SystemContainerSnapshot never -SnapshotName later).ExpiresAt
        (Rename-SystemContainerSnapshot never later -NewName later2 -PassThru).ExpiresAt | Should -Be $at
        Stop-SystemContainer never -Force
        Rename-SystemContainer never renamed
        (Get-SystemContainerSnapshot renamed -SnapshotName later2).ExpiresAt | Should -Be $at
        Remove-SystemContainerSnapshot renamed later2 -Force
        Checkpoint-SystemContainer renamed -SnapshotName later2
        (Get-SystemContainerSnapshot renamed -SnapshotName later2).ExpiresAt | Should -BeNullOrEmpty
    }
    It 'leaves a stopped container alone unless snapshots.schedule.stopped is true, and names by snapshots.pattern' {
        Wait-Until { @(Get-SystemContainerSnapshot stoppedtoo).Count -ge 1 } -TimeoutSeconds $minuteWait -What 'a scheduled snapshot of stoppedtoo'
        $name = @(Get-SystemContainerSnapshot stoppedtoo)[0].SnapshotName
        $name | Should -Match '^auto-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}$'
        @(Get-SystemContainerSnapshot stoppedtoo)[0].ExpiresAt | Should -BeNullOrEmpty
        Get-SystemContainerSnapshot stopped | Should -BeNullOrEmpty
        (Get-SystemContainer stopped).Status | Should -Be 'Stopped'
    }
    It 'goes on after a daemon restart from the config alone, and stops for a container whose schedule is removed' {
        Set-SystemContainer stoppedtoo -Config @{ 'snapshots.schedule' = '' }
        $before = @(Get-Scheduled every).Count
        $stoppedBefore = @(Get-SystemContainerSnapshot stoppedtoo).Count
        Stop-DaemonProcess $daemon
        Start-DaemonProcess $daemon
        Wait-Until { @(Get-Scheduled every).Count -gt $before } -TimeoutSeconds $minuteWait -What 'a scheduled snapshot after the restart'
        (Get-SystemContainer every).Status | Should -Be 'Running'
        @(Get-SystemContainerSnapshot stoppedtoo).Count | Should -Be $stoppedBefore
    }
    It 'sweeps scheduled snapshots once their expiry has passed, while newer ones are made, numbered on' {
        Wait-Until { 'snap0' -notin @(Get-Scheduled every | ForEach-Object SnapshotName) } -TimeoutSeconds 190 -What 'snap0 of every swept two minutes after it was made'
        $left = @(Get-Scheduled every)
        $left | Should -Not -BeNullOrEmpty
        foreach ($s in $left) { [int]$s.SnapshotName.Substring(4) | Should -BeGreaterThan 0 }
        foreach ($s in $left) { $s.ExpiresAt | Should -BeGreaterThan ([DateTimeOffset]::Now.AddSeconds(-70)) }
    }
}

Describe 'Snapshot keys refused' {
    BeforeAll { New-Scheduled keyed @{ 'snapshots.expiry' = '1d' } }
    It 'refuses <Key> = <Value> naming the key, and changes nothing' -ForEach @(
        @{ Key = 'snapshots.schedule'; Value = '* * * 13 *'; Message = "config key 'snapshots.schedule': cron schedule .* is invalid: field month \('13'\): 13 is out of range 1-12" }
        @{ Key = 'snapshots.schedule'; Value = '*/0 * * * *'; Message = "'snapshots.schedule': .*field minute \('\*/0'\): step '0'" }
        @{ Key = 'snapshots.schedule'; Value = '@every5m'; Message = "'snapshots.schedule': .*'@every5m' is not one of the aliases" }
        @{ Key = 'snapshots.expiry'; Value = '3 days'; Message = "'snapshots.expiry': .*term '3' needs a whole number" }
        @{ Key = 'snapshots.pattern'; Value = '{{ name }}'; Message = "'snapshots.pattern': .*only %d and" }
        @{ Key = 'snapshots.schedule.stopped'; Value = 'sometimes'; Message = "'snapshots.schedule.stopped' must be true or false" }
    ) {
        $before = (Get-SystemContainer keyed).Config | ConvertTo-Json -Compress
        Set-SystemContainer keyed -Config @{ $Key = $Value } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $e[0].Exception.Message | Should -Match $Message
        (Get-SystemContainer keyed).Config | ConvertTo-Json -Compress | Should -Be $before
        (Get-SystemContainer keyed).Config['snapshots.expiry'] | Should -Be '1d'
    }
    It 'refuses a bad schedule at create, leaving no container' {
        New-SystemContainer badsched -Image $image -Network none -StoragePool psched -Config @{ 'snapshots.schedule' = '1 2 3' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $e[0].Exception.Message | Should -Match "'snapshots.schedule'.*it has 3 fields"
        Get-SystemContainer badsched -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'A scheduled snapshot the daemon dies in' {
    # A dir pool: its snapshot is a tree filled under a dot name, with the container frozen meanwhile.
    It 'leaves the container running and thawed, lists no half-made snapshot, and the next one is made whole' {
        New-SystemContainerStoragePool pschedcrash -Driver dir | Out-Null
        New-SystemContainer killed -Image $image -Network none -StoragePool pschedcrash -Config @{ 'snapshots.schedule' = '* * * * *' } -Start | Out-Null
        Invoke-SystemContainerCommand killed -- sh -c 'echo before > /before'
        $initPid = (Get-SystemContainer killed).Pid
        $dir = Join-Path (Get-SystemContainerStoragePool pschedcrash).Source 'containers-snapshots/killed'
        Stop-DaemonProcess $daemon
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'snapshot-filled'
        try { Start-DaemonProcess $daemon } finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $dead = $daemon.Pid
        Wait-Until { -not (Test-ProcessAlive $dead) } -TimeoutSeconds $minuteWait -What 'the daemon to die in the scheduled snapshot'
        Get-Content -Raw $daemon.Log | Should -Match 'test hook: SIGKILL at snapshot-filled'
        @(Get-ChildItem -Force -Name $dir) | Should -Be @('.snap0.tmp') -Because 'the daemon died with the copy made and not yet renamed in place'
        Test-CgroupFrozen $initPid | Should -BeTrue -Because 'the daemon died with the container frozen for its snapshot'
        $daemon.Pid = 0
        Start-DaemonProcess $daemon
        $c = Get-SystemContainer killed
        $c.Status | Should -Be 'Running'
        $c.Pid | Should -Be $initPid
        Test-CgroupFrozen $initPid | Should -BeFalse
        Get-SystemContainerSnapshot killed | Should -BeNullOrEmpty
        Invoke-SystemContainerCommand killed -- sh -c 'echo after > /after; cat /before /after' | Should -Be @('before', 'after')
        Wait-Until { @(Get-Scheduled killed).Count -ge 1 } -TimeoutSeconds $minuteWait -What 'the next scheduled snapshot of killed'
        (Get-Scheduled killed).SnapshotName | Should -Be 'snap0'
        Wait-Until { @(Get-ChildItem -Force -Name $dir) -notcontains '.snap0.tmp' } -TimeoutSeconds 10 -What 'the leftover removed'
        @(Get-ChildItem -Force -Name $dir) | Should -Be @('snap0')
        Get-Content (Join-Path $dir 'snap0/tree/before') | Should -Be 'before'
        Remove-SystemContainer killed -Force
        Remove-SystemContainerStoragePool pschedcrash -Force
    }
}
