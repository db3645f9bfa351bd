# limits.disk, the root disk size (LXD's root disk device size): on a btrfs pool a qgroup limit
# on the container's subvolume, set at create and changed live by Set-SystemContainer; a write
# past it fails inside the container with EDQUOT while the host sees the limit in
# `btrfs qgroup show`; dir and overlay pools, which cannot enforce one, refuse it and are left as
# they were. btrfs runs on a loop file the pool makes; AfterAll removes it even when tests fail.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage

    function Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    function Get-Volume([string]$Name) { Join-Path $daemon.StateDir "storage-pools/qb/containers/$Name" }
    # The max_rfer column of the volume's own qgroup (btrfs qgroup show -r --raw -f: the qgroups of that path only).
    function Get-QgroupLimit([string]$Name) {
        $line = btrfs qgroup show -r --raw -f (Get-Volume $Name) | Select-Object -Last 1
        (-split $line)[3]
    }
    # Writes MiB of zeros to /big inside, synced; the output ends with dd's error when it fails.
    function Write-Big([string]$Name, [int]$MiB) {
        Invoke-In $Name "rm -f /big; dd if=/dev/zero of=/big bs=1M count=$MiB conv=fsync 2>&1 && echo written; sync"
    }
}
AfterAll {
    Remove-TestStorage $script:daemon
    Stop-TestDaemon $script:daemon
}

Describe 'A root disk size on a btrfs pool' {
    BeforeAll {
        New-SystemContainerStoragePool qb -Driver btrfs -Size 400MiB | Out-Null
    }
    AfterAll {
        Remove-SystemContainer q1, q2 -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerStoragePool qb -Force -ErrorAction SilentlyContinue
    }
    It 'is set at create: the host sees the qgroup limit, and a write past it fails inside with EDQUOT' {
        $c = New-SystemContainer q1 -Image $image -Network none -StoragePool qb -Config @{ 'limits.disk' = '40MiB' } -Start
        $c.Config['limits.disk'] | Should -Be '40MiB'
        Get-QgroupLimit q1 | Should -Be "$(40 * 1MB)"
        $out = Write-Big q1 60
        "$out" | Should -Match 'Disk quota exceeded'
        "$out" | Should -Not -Match 'written'
        Write-Big q1 8 | Select-Object -Last 1 | Should -Be 'written'
        (Get-ContainerStats q1).DiskLimit | Should -Be (40 * 1MB)
    }
    It 'changes live with Set-SystemContainer: raised, the write fits; removed, the qgroup has no limit' {
        Set-SystemContainer q1 -Config @{ 'limits.disk' = '120MiB' }
        Get-QgroupLimit q1 | Should -Be "$(120 * 1MB)"
        Write-Big q1 60 | Select-Object -Last 1 | Should -Be 'written'
        Set-SystemContainer q1 -Config @{ 'limits.disk' = '' }
        Get-QgroupLimit q1 | Should -Be 'none'
        (Get-ContainerStats q1).DiskLimit | Should -BeNullOrEmpty
        Write-Big q1 150 | Select-Object -Last 1 | Should -Be 'written'
        Invoke-In q1 'rm /big; sync'
    }
    It 'is set again after a restore, which makes a new subvolume, and on a copy' {
        Set-SystemContainer q1 -Config @{ 'limits.disk' = '40MiB' }
        Checkpoint-SystemContainer q1 -SnapshotName s1
        Stop-SystemContainer q1 -Force
        Restore-SystemContainerSnapshot q1 s1 -Force
        Get-QgroupLimit q1 | Should -Be "$(40 * 1MB)"
        Copy-SystemContainer q1 q2 | Out-Null
        Get-QgroupLimit q2 | Should -Be "$(40 * 1MB)"
        Start-SystemContainer q2
        "$(Write-Big q2 60)" | Should -Match 'Disk quota exceeded'
    }
    It 'holds for a push too: Copy-SystemContainerFile past it fails with EDQUOT and leaves no file' {
        $big = Join-Path $daemon.Dir 'big.bin'
        truncate -s 0 $big
        [IO.File]::WriteAllBytes($big, [byte[]]::new(60MB))
        Copy-SystemContainerFile q2 -Path $big -Destination /pushed.bin -ToContainer -ErrorAction SilentlyContinue -ErrorVariable e
        $e | Should -Not -BeNullOrEmpty
        "$($e[0].Exception.Message)" | Should -Match 'quota|EDQUOT'
        Invoke-In q2 'ls -a / | grep -c pushed || true' | Should -Be '0'
        Remove-Item $big
    }
    It 'refuses a size that is not one, or below 16MiB, naming the key, and changes nothing' -ForEach @(
        @{ Value = 'lots' }
        @{ Value = '1MiB' }
    ) {
        Set-SystemContainer q1 -Config @{ 'limits.disk' = $Value } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfigValue,*'
        $e[0].Exception.Message | Should -Match 'limits\.disk'
        (Get-SystemContainer q1).Config['limits.disk'] | Should -Be '40MiB'
        Get-QgroupLimit q1 | Should -Be "$(40 * 1MB)"
    }
}

Describe 'A root disk size on a pool that cannot enforce one' {
    BeforeAll {
        New-SystemContainerStoragePool qd -Driver dir | Out-Null
        New-SystemContainer qplain -Image $image -Network none -StoragePool qd | Out-Null
    }
    AfterAll {
        Remove-SystemContainer qplain -Force -ErrorAction SilentlyContinue
        Remove-SystemContainerStoragePool qd -Force -ErrorAction SilentlyContinue
    }
    It 'is refused at create on the <Pool> pool with DiskLimitUnsupported, leaving no container' -ForEach @(
        @{ Pool = 'default' }
        @{ Pool = 'qd' }
    ) {
        New-SystemContainer qrefused -Image $image -Network none -StoragePool $Pool -Config @{ 'limits.disk' = '1GiB' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'DiskLimitUnsupported,*'
        $e[0].Exception.Message | Should -Match "storage pool '$Pool'"
        Get-SystemContainer qrefused -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.StateDir 'containers/qrefused') | Should -BeFalse
        @(Get-ChildItem -Force (Join-Path $daemon.StateDir 'containers') -Filter '.new-qrefused-*') | Should -BeNullOrEmpty
        Test-Path (Join-Path (Get-SystemContainerStoragePool qd).Source 'containers/qrefused') | Should -BeFalse
    }
    It 'is refused by Set-SystemContainer, and the config stays as it was' {
        Set-SystemContainer qplain -Config @{ 'limits.disk' = '1GiB'; 'user.note' = 'x' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'DiskLimitUnsupported,*'
        (Get-SystemContainer qplain).Config.Keys | Should -Not -Contain 'limits.disk'
        (Get-SystemContainer qplain).Config.Keys | Should -Not -Contain 'user.note'
    }
}
