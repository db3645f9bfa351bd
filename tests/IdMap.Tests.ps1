# Isolated id maps (the default): every container's ids are a block of host ids of its own.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    # The host ids a container's root is, and the size of its map, as the kernel has them.
    function Get-HostMap([int]$ProcessId) {
        $uid = -split (Get-Content "/proc/$ProcessId/uid_map" | Select-Object -First 1)
        $gid = -split (Get-Content "/proc/$ProcessId/gid_map" | Select-Object -First 1)
        [pscustomobject]@{ Uid = [long]$uid[1]; Gid = [long]$gid[1]; Size = [long]$uid[2] }
    }
    function Test-Overlap($A, $B) { $A.Uid -lt $B.Uid + $B.Size -and $B.Uid -lt $A.Uid + $A.Size }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Isolated id maps' {
    It 'gives two containers disjoint host id ranges, seen in the kernel''s maps and in who owns their files' {
        $a = New-SystemContainer iso-a -Image $image -Network none -Start
        $b = New-SystemContainer iso-b -Image $image -Network none -Start
        $ma = Get-HostMap $a.Pid; $mb = Get-HostMap $b.Pid
        $ma.Uid | Should -Not -Be $mb.Uid
        Test-Overlap $ma $mb | Should -BeFalse
        # Inside, both are root; on the host, init runs as each container's own first id.
        Invoke-SystemContainerCommand iso-a -- id -u | Should -Be '0'
        (Get-Content "/proc/$($a.Pid)/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($ma.Uid)"
        (Get-Content "/proc/$($b.Pid)/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($mb.Uid)"
        # A file root makes in one container belongs, on the host, to that container's ids only.
        Invoke-SystemContainerCommand iso-a -- touch /root/made-by-a
        Invoke-SystemContainerCommand iso-b -- touch /root/made-by-b
        $fa = Get-ChildItem -Recurse -Force (Join-Path $daemon.StateDir 'containers/iso-a') -Filter made-by-a | Select-Object -First 1
        $fb = Get-ChildItem -Recurse -Force (Join-Path $daemon.StateDir 'containers/iso-b') -Filter made-by-b | Select-Object -First 1
        (stat -c '%u %g' $fa.FullName) | Should -Be "$($ma.Uid) $($ma.Gid)"
        (stat -c '%u %g' $fb.FullName) | Should -Be "$($mb.Uid) $($mb.Gid)"
    }
    It 'shares one map among containers that ask for it (security.idmap.isolated=false), apart from the isolated ones' {
        $s1 = New-SystemContainer shared-1 -Image $image -Network none -Config @{ 'security.idmap.isolated' = 'false' } -Start
        $s2 = New-SystemContainer shared-2 -Image $image -Network none -Config @{ 'security.idmap.isolated' = 'false' } -Start
        $m1 = Get-HostMap $s1.Pid; $m2 = Get-HostMap $s2.Pid
        $m1.Uid | Should -Be $m2.Uid
        foreach ($iso in 'iso-a', 'iso-b') { Test-Overlap $m1 (Get-HostMap (Get-SystemContainer $iso).Pid) | Should -BeFalse }
    }
    It 'frees a removed container''s block for the next one, and records each map' {
        $freed = Get-HostMap (Get-SystemContainer iso-a).Pid
        Remove-SystemContainer iso-a -Force -Confirm:$false
        $c = New-SystemContainer iso-c -Image $image -Network none -Start
        (Get-HostMap $c.Pid).Uid | Should -Be $freed.Uid
        $record = Get-Content -Raw (Join-Path $daemon.StateDir 'containers/iso-c/config.json') | ConvertFrom-Json
        $record.idMap.uidBase | Should -Be $freed.Uid
    }
    It 'refuses an explicit base among the system''s ids, past 32 bits, or on another container''s block' {
        $busy = (Get-HostMap (Get-SystemContainer iso-b).Pid).Uid
        foreach ($case in @(@{ base = '1000'; id = 'InvalidConfigValue' }, @{ base = '4294967000'; id = 'InvalidConfigValue' }, @{ base = "$busy"; id = 'IdRangeInUse' })) {
            New-SystemContainer bad-map -Image $image -Network none -Config @{ 'security.idmap.base' = $case.base } -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike "$($case.id),*"
            Get-SystemContainer bad-map -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/bad-map') | Should -BeFalse
        }
    }
}
