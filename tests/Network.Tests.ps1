# Managed networks: bridges, the daemon's DHCP server, dnsmasq (DNS, IPv6 RA), nftables NAT and the containers' veth NICs.
# The daemon runs in a network namespace of its own (Start-TestDaemon): no traffic leaves it.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage

    function Get-Links([string]$Type) {
        @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'type', $Type) | ForEach-Object { ($_ -split ':\s+')[1] -replace '@.*$', '' })
    }
    function Get-BridgeMac([string]$Bridge) { ((Invoke-InNetns $daemon ip @('-o', 'link', 'show', $Bridge)) -split 'link/ether ')[1].Substring(0, 17) }
    function Get-Table { Invoke-InNetns $daemon nft @('list', 'table', 'inet', 'systemcontainers') 2>$null }
    function Wait-IPv4([string]$Name) {
        $scale = if ($env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE) { [double]$env:SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE } else { 1 }
        (Wait-SystemContainer $Name -For IPv4 -Timeout (20 * $scale) -PassThru -ErrorAction Stop).IPv4[0]
    }
    function Invoke-In([string]$Name, [string[]]$Command) { Invoke-SystemContainerCommand $Name -PassThru -- @Command }
    function Get-HostsFile([string]$Network, [string]$Mac) { Join-Path $daemon.RunDir "networks/$Network/hosts/$($Mac -replace ':', '')" }
    function Get-LeaseFile([string]$Network, [string]$Mac) { Join-Path $daemon.StateDir "networks/$Network/dhcp-leases/$($Mac -replace ':', '')" }
    # dnsmasq logs "cleared cache" once at its start and once for every SIGHUP.
    function Get-DnsmasqReloads([string]$Network) { @(Select-String -Path (Join-Path $daemon.RunDir "networks/$Network/dnsmasq.log") -Pattern 'cleared cache' -SimpleMatch).Count }
    function Assert-NothingMade([string]$Name) {
        Get-Links bridge | Should -Not -Contain $Name
        Test-Path (Join-Path $daemon.StateDir "networks/$Name") | Should -BeFalse
        Test-Path (Join-Path $daemon.RunDir "networks/$Name") | Should -BeFalse
    }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Managed networks' {
    It 'creates a bridge with its address, a dnsmasq for it and NAT rules in the daemon''s table' {
        $n = New-SystemContainerNetwork net1 -IPv4 10.77.1.1/24 -Nat
        $n.Name | Should -Be 'net1'
        $n.IPv4 | Should -Be '10.77.1.1/24'
        $n.Nat | Should -BeTrue
        $n.Domain | Should -Be 'sc'
        Get-Links bridge | Should -Contain 'net1'
        Invoke-InNetns $daemon ip @('-o', '-4', 'addr', 'show', 'dev', 'net1') | Should -Match 'inet 10\.77\.1\.1/24'
        $n.DnsmasqPid | Should -BeGreaterThan 0
        Test-ProcessAlive $n.DnsmasqPid | Should -BeTrue
        (Get-Content -Raw "/proc/$($n.DnsmasqPid)/cmdline") -split "`0" | Should -Contain '--interface=net1'
        # dnsmasq runs inside the daemon's network namespace, not the host's.
        (Get-Item "/proc/$($n.DnsmasqPid)/ns/net").LinkTarget | Should -Be (Get-Item "/proc/$($daemon.Pid)/ns/net").LinkTarget
        (Get-Item "/proc/$($n.DnsmasqPid)/ns/net").LinkTarget | Should -Not -Be (Get-Item '/proc/self/ns/net').LinkTarget
        (Get-Table) -join "`n" | Should -Match 'ip saddr 10\.77\.1\.0/24 ip daddr != 10\.77\.1\.0/24 masquerade'
        Invoke-InNetns $daemon cat @('/proc/sys/net/ipv4/ip_forward') | Should -Be '1'
    }
    It 'lists networks by name and wildcard, and says when one is missing' {
        (Get-SystemContainerNetwork net*).Name | Should -Contain 'net1'
        Get-SystemContainerNetwork nosuch -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkNotFound,*'
        (Invoke-TestApi $daemon GET '/1.0/networks').Body.metadata | Should -Contain '/1.0/networks/net1'
    }
    It 'turns NAT off and on, replacing the table''s rules' {
        Set-SystemContainerNetwork net1 -Nat:$false
        (Get-Table) -join "`n" | Should -Not -Match 'masquerade'
        (Get-SystemContainerNetwork net1).Nat | Should -BeFalse
        Set-SystemContainerNetwork net1 -Nat -PassThru | ForEach-Object Nat | Should -BeTrue
        (Get-Table) -join "`n" | Should -Match '10\.77\.1\.0/24 .*masquerade'
    }
    It 're-addresses the bridge and restarts dnsmasq on a new subnet' {
        $before = (Get-SystemContainerNetwork net1).DnsmasqPid
        $n = Set-SystemContainerNetwork net1 -IPv4 10.77.9.1/24 -PassThru
        $n.IPv4 | Should -Be '10.77.9.1/24'
        $addresses = Invoke-InNetns $daemon ip @('-o', '-4', 'addr', 'show', 'dev', 'net1')
        $addresses | Should -Match '10\.77\.9\.1/24'
        $addresses | Should -Not -Match '10\.77\.1\.1/'
        $n.DnsmasqPid | Should -Not -Be $before
        Test-ProcessAlive $before | Should -BeFalse
        (Get-Content -Raw "/proc/$($n.DnsmasqPid)/cmdline") | Should -Match '--listen-address=10\.77\.9\.1\x00'
    }
    It 'refuses an invalid CIDR and makes nothing' -ForEach @(
        @{ Cidr = '10.77.5.1' }, @{ Cidr = '10.77.5.300/24' }, @{ Cidr = '10.77.5.0/24' }, @{ Cidr = '10.77.5.1/31' }, @{ Cidr = 'fd00::1/64' }
    ) {
        New-SystemContainerNetwork bad1 -IPv4 $Cidr -ErrorAction SilentlyContinue -ErrorVariable e | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidCidr,*'
        $e[0].Exception.Message | Should -Match ([regex]::Escape($Cidr))
        Assert-NothingMade bad1
    }
    It 'refuses an IPv6 prefix other than /64' {
        New-SystemContainerNetwork bad1 -IPv4 10.77.6.1/24 -IPv6 fd42:1::1/48 -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidCidr,*'
        Assert-NothingMade bad1
    }
    It 'refuses a subnet that overlaps another network, and leaves both as they were' {
        New-SystemContainerNetwork bad2 -IPv4 10.77.9.130/25 -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'SubnetOverlap,*'
        $e[0].Exception.Message | Should -Match 'net1'
        Assert-NothingMade bad2
        Set-SystemContainerNetwork net1 -IPv4 10.77.9.1/24 -ErrorAction Stop
        New-SystemContainerNetwork net2 -IPv4 10.77.10.1/24 | Out-Null
        Set-SystemContainerNetwork net2 -IPv4 10.77.9.200/24 -ErrorAction SilentlyContinue -ErrorVariable e2
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'SubnetOverlap,*'
        (Get-SystemContainerNetwork net2).IPv4 | Should -Be '10.77.10.1/24'
    }
    It 'refuses a name in use, an invalid name and an unknown key' {
        New-SystemContainerNetwork net1 -IPv4 10.77.11.1/24 -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkExists,*'
        $e[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        (Get-SystemContainerNetwork net1).IPv4 | Should -Be '10.77.9.1/24'
        foreach ($name in 'much-too-long-name', 'Bad!', 'lo') {
            New-SystemContainerNetwork $name -IPv4 10.77.11.1/24 -ErrorAction SilentlyContinue -ErrorVariable e
            $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidNetworkName,*'
        }
        New-SystemContainerNetwork bad3 -IPv4 10.77.11.1/24 -Config @{ 'ipv4.dhcp' = 'false' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'UnknownConfigKey,*'
        Assert-NothingMade bad3
        (Invoke-TestApi $daemon POST '/1.0/networks' '{"name": 5').Status | Should -Be 400
        (Invoke-TestApi $daemon POST '/1.0/networks' '{"config": {}}').Status | Should -Be 400
    }
    It 'refuses a name that an interface of the host already has' {
        Invoke-InNetns $daemon ip @('link', 'add', 'taken0', 'type', 'veth', 'peer', 'name', 'taken1')
        try {
            New-SystemContainerNetwork taken0 -IPv4 10.77.12.1/24 -ErrorAction SilentlyContinue -ErrorVariable e
            $e[0].FullyQualifiedErrorId | Should -BeLike 'InterfaceExists,*'
            Test-Path (Join-Path $daemon.StateDir 'networks/taken0') | Should -BeFalse
        }
        finally { Invoke-InNetns $daemon ip @('link', 'del', 'taken0') }
    }
    It 'changes nothing with -WhatIf' {
        New-SystemContainerNetwork whatif0 -IPv4 10.77.50.1/24 -WhatIf | Should -BeNullOrEmpty
        Assert-NothingMade whatif0
        Set-SystemContainerNetwork net1 -Nat:$false -WhatIf
        (Get-SystemContainerNetwork net1).Nat | Should -BeTrue
        Remove-SystemContainerNetwork net1 -WhatIf
        Get-Links bridge | Should -Contain 'net1'
    }
    It 'picks a free private /20 when no address is given' {
        $n = New-SystemContainerNetwork auto0
        $n.IPv4 | Should -Match '^10\.\d+\.\d+\.1/20$'
        [int]($n.IPv4 -split '\.')[2] % 16 | Should -Be 0
        Remove-SystemContainerNetwork auto0 -Confirm:$false
    }
    It 'removes a network: rules, dnsmasq, bridge and files; the table goes with the last one' {
        $pid2 = (Get-SystemContainerNetwork net2).DnsmasqPid
        Remove-SystemContainerNetwork net2 -Confirm:$false
        Test-ProcessAlive $pid2 | Should -BeFalse
        Assert-NothingMade net2
        (Get-Table) -join "`n" | Should -Not -Match 'net2'
        (Get-Table) -join "`n" | Should -Match 'net1'
        $pid1 = (Get-SystemContainerNetwork net1).DnsmasqPid
        Remove-SystemContainerNetwork net1 -Confirm:$false
        Test-ProcessAlive $pid1 | Should -BeFalse
        Assert-NothingMade net1
        Get-Table | Should -BeNullOrEmpty
        Get-TestDnsmasq $daemon | Should -BeNullOrEmpty
        Remove-SystemContainerNetwork net1 -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkNotFound,*'
    }
}

Describe 'Containers on a managed network' {
    BeforeAll {
        New-SystemContainerNetwork lan -IPv4 10.77.2.1/24 -Nat | Out-Null
        New-SystemContainer b1 -Image $image -Network lan -Start | Out-Null
        New-SystemContainer b2 -Image $image -Network lan -Start | Out-Null
    }
    It 'gives a busybox container an address from the range by DHCP (udhcpc), seen inside and from the host' {
        $address = Wait-IPv4 b1
        $address -match '^10\.77\.2\.(\d+)$' | Should -BeTrue
        [int]$Matches[1] | Should -BeIn (2..254)
        $c = Get-SystemContainer b1
        (Invoke-In b1 @('ip', 'addr', 'show', 'eth0')).Stdout | Should -Match "inet $([regex]::Escape($address))/24"
        (Invoke-In b1 @('cat', '/sys/class/net/eth0/address')).Stdout.Trim() | Should -Be $c.Config['nic.eth0.hwaddr']
        (Invoke-In b1 @('ip', 'route')).Stdout | Should -Match 'default via 10\.77\.2\.1'
        (Invoke-In b1 @('cat', '/etc/resolv.conf')).Stdout | Should -Match 'nameserver 10\.77\.2\.1'
        # From the host: the init has a network namespace of its own, and the veth's host end is on the bridge.
        (Get-Item "/proc/$($c.Pid)/ns/net").LinkTarget | Should -Not -Be (Get-Item "/proc/$($daemon.Pid)/ns/net").LinkTarget
        $hostEnd = @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'master', 'lan')) -join "`n"
        $hostEnd | Should -Match 'vsc[0-9a-f]{10}'
        (Get-SystemContainerNetworkLease lan | Where-Object Hostname -eq b1).Address | Should -Be $address
        (Get-SystemContainerNetwork lan).UsedBy | Should -Contain 'b1'
        (Invoke-TestApi $daemon GET /1.0/networks/lan).Body.metadata.used_by | Should -Contain '/1.0/containers/b1'
    }
    It 'lets two containers reach each other by name over DNS' {
        $b2 = Wait-IPv4 b2
        Wait-IPv4 b1 | Out-Null
        $lookup = Invoke-In b1 @('nslookup', 'b2.sc')
        $lookup.Stdout | Should -Match ([regex]::Escape($b2))
        (Invoke-In b1 @('cat', '/etc/resolv.conf')).Stdout | Should -Match 'search sc'
        (Invoke-In b1 @('ping', '-c', '1', '-W', '2', 'b2')).ExitCode | Should -Be 0
        # A TCP listener in b2 answers a connect by name from b1.
        Invoke-SystemContainerCommand b2 -- sh -c 'nc -l -p 7000 -e echo hello-from-b2 >/dev/null 2>&1 &'
        Wait-Until -TimeoutSeconds 10 -What 'a TCP answer from b2' { (Invoke-In b1 @('sh', '-c', 'nc b2 7000 </dev/null')).Stdout -match 'hello-from-b2' }
    }
    It 'masquerades traffic that leaves the network, and stops when NAT is off' {
        # A second namespace stands in for the outside: a veth from the daemon's namespace, and no route back to lan.
        $outside = "$($daemon.Netns)-out"
        ip netns add $outside
        try {
            Invoke-InNetns $daemon ip @('link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'wan0', 'netns', $outside)
            Invoke-InNetns $daemon ip @('addr', 'add', '192.0.2.1/24', 'dev', 'uplink0')
            Invoke-InNetns $daemon ip @('link', 'set', 'uplink0', 'up')
            ip -n $outside addr add 192.0.2.2/24 dev wan0
            ip -n $outside link set wan0 up
            Wait-IPv4 b1 | Out-Null
            # Only a masqueraded packet (source 192.0.2.1) can be answered from there.
            Wait-Until -TimeoutSeconds 10 -What 'b1 to reach the outside through NAT' { (Invoke-In b1 @('ping', '-c', '1', '-W', '1', '192.0.2.2')).ExitCode -eq 0 }
            Set-SystemContainerNetwork lan -Nat:$false
            (Invoke-In b1 @('ping', '-c', '2', '-W', '1', '192.0.2.2')).ExitCode | Should -Not -Be 0
            Set-SystemContainerNetwork lan -Nat
            Wait-Until -TimeoutSeconds 10 -What 'NAT to work again' { (Invoke-In b1 @('ping', '-c', '1', '-W', '1', '192.0.2.2')).ExitCode -eq 0 }
        }
        finally {
            Invoke-InNetns $daemon ip @('link', 'del', 'uplink0') 2>$null
            ip netns del $outside
        }
    }
    It 'carries per-NIC counters in Get-ContainerStats' {
        $eth0 = (Get-ContainerStats b1).Network | Where-Object Name -eq 'eth0'
        $eth0.RxBytes | Should -BeGreaterThan 0
        $eth0.TxPackets | Should -BeGreaterThan 0
    }
    It 'gives a fixed ipv4.address exactly, again after a restart, as a static lease' {
        New-SystemContainer s1 -Image $image -Network lan -Config @{ 'nic.eth0.ipv4.address' = '10.77.2.50' } -Start | Out-Null
        Wait-IPv4 s1 | Should -Be '10.77.2.50'
        $mac = (Get-SystemContainer s1).Config['nic.eth0.hwaddr']
        Restart-SystemContainer s1 -Force
        Wait-IPv4 s1 | Should -Be '10.77.2.50'
        (Get-SystemContainer s1).Config['nic.eth0.hwaddr'] | Should -Be $mac
        (Invoke-In s1 @('cat', '/sys/class/net/eth0/address')).Stdout.Trim() | Should -Be $mac
        $lease = Get-SystemContainerNetworkLease lan | Where-Object Address -eq '10.77.2.50'
        $lease.Type | Should -Be 'static'
        $lease.Hostname | Should -Be 's1'
    }
    It 'refuses a fixed address outside the subnet or fixed for another container, creating nothing' {
        New-SystemContainer s2 -Image $image -Network lan -Config @{ 'nic.eth0.ipv4.address' = '10.77.3.5' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AddressOutsideNetwork,*'
        New-SystemContainer s2 -Image $image -Network lan -Config @{ 'nic.eth0.ipv4.address' = '10.77.2.50' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AddressInUse,*'
        New-SystemContainer s2 -Image $image -Network lan -Config @{ 'nic.eth0.ipv4.address' = '10.77.2.1' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AddressOutsideNetwork,*'
        Get-SystemContainer s2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.StateDir 'containers/s2') | Should -BeFalse
    }
    It 'refuses a NIC that names a missing network, creating nothing' {
        New-SystemContainer ghost -Image $image -Network nosuch -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkNotFound,*'
        $e[0].Exception.Message | Should -Match 'nosuch'
        Get-SystemContainer ghost -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $daemon.StateDir 'containers/ghost') | Should -BeFalse
        Set-SystemContainer b1 -Config @{ 'nic.eth0.network' = 'nosuch' } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkNotFound,*'
        (Get-SystemContainer b1).Config['nic.eth0.network'] | Should -Be 'lan'
    }
    It 'refuses bad NIC keys' -ForEach @(
        @{ Key = 'nic.eth0.type'; Value = 'macvlan'; Id = 'InvalidConfigValue' }
        @{ Key = 'nic.eth0.hwaddr'; Value = '01:00:5e:00:00:01'; Id = 'InvalidConfigValue' }
        @{ Key = 'nic.eth0.name'; Value = 'a-name-far-too-long'; Id = 'InvalidConfigValue' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = '10.77.2.0/24'; Id = 'InvalidConfigValue' }
        @{ Key = 'nic.eth0.mtu'; Value = '9000'; Id = 'UnknownConfigKey' }
        @{ Key = 'nic.Eth0.type'; Value = 'bridged'; Id = 'InvalidConfigKey' }
        @{ Key = 'nic.eth0.host_name'; Value = 'lan'; Id = 'HostNameInUse' }
        @{ Key = 'nic.eth0.name'; Value = 'lo'; Id = 'InvalidConfigValue' }
    ) {
        New-SystemContainer badnic -Image $image -Network lan -Config @{ $Key = $Value } -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        Get-SystemContainer badnic -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'refuses to remove a network in use, naming its containers' {
        Remove-SystemContainerNetwork lan -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable e
        $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkInUse,*'
        $e[0].Exception.Message | Should -Match 'b1'
        Get-Links bridge | Should -Contain 'lan'
    }
    It 'hot-plugs a NIC into a running container and unplugs it again' {
        New-SystemContainerNetwork lan2 -IPv4 10.77.40.1/24 | Out-Null
        New-SystemContainer hp -Image $image -Network lan -Start | Out-Null
        $initNs = (Get-Item "/proc/$((Get-SystemContainer hp).Pid)/ns/net").LinkTarget
        $c = Set-SystemContainer hp -Config @{ 'nic.eth1.network' = 'lan2' } -PassThru
        $mac = $c.Config['nic.eth1.hwaddr']
        $mac | Should -Match '^0a(:[0-9a-f]{2}){5}$'
        (Invoke-In hp @('cat', '/sys/class/net/eth1/address')).Stdout.Trim() | Should -Be $mac
        (Invoke-In hp @('cat', '/sys/class/net/eth1/operstate')).Stdout.Trim() | Should -Be 'up'
        (Get-Item "/proc/$((Get-SystemContainer hp).Pid)/ns/net").LinkTarget | Should -Be $initNs
        @(Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'master', 'lan2')).Count | Should -Be 1
        # busybox asks for addresses at boot only; a DHCP client run by hand gets one on the new NIC.
        (Invoke-In hp @('udhcpc', '-n', '-q', '-i', 'eth1', '-s', '/usr/share/udhcpc/default.script')).ExitCode | Should -Be 0
        Wait-Until -TimeoutSeconds 10 -What 'the address on eth1' { (Get-SystemContainer hp).IPv4 -like '10.77.40.*' }
        Set-SystemContainer hp -Config @{ 'nic.eth1.type' = 'none' }
        Wait-Until -TimeoutSeconds 5 -What 'eth1 to go' { (Invoke-In hp @('ls', '/sys/class/net')).Stdout -notmatch 'eth1' }
        Wait-Until -TimeoutSeconds 5 -What 'the host end to go' { -not (Invoke-InNetns $daemon ip @('-o', 'link', 'show', 'master', 'lan2')) }
        (Invoke-In hp @('ls', '/sys/class/net')).Stdout | Should -Match 'eth0'
        Remove-SystemContainer hp -Force
        Remove-SystemContainerNetwork lan2 -Confirm:$false
    }
    It 'gives a container with nic type none only its loopback, up' {
        New-SystemContainer lonely -Image $image -Network none -Start | Out-Null
        (Invoke-In lonely @('ls', '/sys/class/net')).Stdout.Trim() | Should -Be 'lo'
        (Invoke-In lonely @('ping', '-c', '1', '-W', '1', '127.0.0.1')).ExitCode | Should -Be 0
        Remove-SystemContainer lonely -Force
    }
    It 'removes the host end when a container stops' {
        New-SystemContainer gone -Image $image -Network lan -Start | Out-Null
        $before = Get-Links veth
        Stop-SystemContainer gone -Force
        # The kernel takes tens of milliseconds to delete a veth, so the daemon does it in the background.
        Wait-Until -TimeoutSeconds 5 -What 'the host end to go' { @(Get-Links veth).Count -eq $before.Count - 1 }
        Remove-SystemContainer gone -Confirm:$false
    }
    It 'leaves no veth, no extra dnsmasq and one lease per MAC after 100 start/stop cycles' {
        New-SystemContainer cyc -Image $image -Network lan | Out-Null
        $dnsmasq = (Get-SystemContainerNetwork lan).DnsmasqPid
        $bridgeMac = Get-BridgeMac lan
        $vethsBefore = Get-Links veth
        1..100 | ForEach-Object {
            Start-SystemContainer cyc
            Stop-SystemContainer cyc -Force
        }
        Start-SystemContainer cyc
        Wait-IPv4 cyc | Should -Match '^10\.77\.2\.'
        Stop-SystemContainer cyc -Force
        Wait-Until -TimeoutSeconds 10 -What 'the host ends to go' { -not (Compare-Object @(Get-Links veth) @($vethsBefore)) }
        (Get-SystemContainerNetwork lan).DnsmasqPid | Should -Be $dnsmasq
        # Ports came and went; the gateway's MAC (in every container's ARP cache) did not change.
        Get-BridgeMac lan | Should -Be $bridgeMac
        Test-ProcessAlive $dnsmasq | Should -BeTrue
        @(Get-TestDnsmasq $daemon).Count | Should -Be @(Get-SystemContainerNetwork).Count
        # One file per leased MAC: expiry, address, MAC, name.
        $leases = Get-ChildItem (Join-Path $daemon.StateDir 'networks/lan/dhcp-leases') | ForEach-Object { , ((Get-Content $_.FullName) -split ' ') }
        foreach ($l in $leases) { $l[1] | Should -Match '^10\.77\.2\.\d+$' }
        $mac = (Get-SystemContainer cyc).Config['nic.eth0.hwaddr']
        $mine = @($leases | Where-Object { $_[2] -eq $mac })
        $mine.Count | Should -Be 1
        $mine[0][3] | Should -Be 'cyc'
        @(Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac).Count | Should -Be 1
        # Removing the container ends its lease at once.
        Remove-SystemContainer cyc -Confirm:$false
        Test-Path (Get-LeaseFile lan $mac) | Should -BeFalse
        Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac | Should -BeNullOrEmpty
    }
    It 'gives containers an IPv6 address by SLAAC on a dual-stack network' {
        New-SystemContainerNetwork lan6 -IPv4 10.77.4.1/24 -IPv6 fd42:77:4::1/64 -Nat | Out-Null
        (Get-Table) -join "`n" | Should -Match 'ip6 saddr fd42:77:4::/64'
        New-SystemContainer v6 -Image $image -Network lan6 -Start | Out-Null
        Wait-Until -TimeoutSeconds 30 -What 'a SLAAC address' { @((Get-SystemContainer v6).IPv6).Count -gt 0 }
        (Get-SystemContainer v6).IPv6[0] | Should -BeLike 'fd42:77:4:0:*'
        Wait-Until -TimeoutSeconds 10 -What 'an answer from the bridge over IPv6' { (Invoke-In v6 @('ping', '-c', '1', '-W', '1', 'fd42:77:4::1')).ExitCode -eq 0 }
        # Its AAAA name (dnsmasq's ra-names once) is the SLAAC address it took, A name beside it.
        $slaac = (Get-SystemContainer v6).IPv6[0]
        $lookup = (Invoke-In v6 @('nslookup', 'v6.sc')).Stdout
        $lookup | Should -Match ([regex]::Escape($slaac))
        $lookup | Should -Match ([regex]::Escape((Wait-IPv4 v6)))
        Remove-SystemContainer v6 -Force
        Remove-SystemContainerNetwork lan6 -Confirm:$false
    }
    It 'restarts a dnsmasq that dies, and names and leases keep working' {
        $old = (Get-SystemContainerNetwork lan).DnsmasqPid
        kill -KILL $old
        Wait-Until -TimeoutSeconds 10 -What 'a new dnsmasq' { $n = (Get-SystemContainerNetwork lan).DnsmasqPid; $n -and $n -ne $old -and (Test-ProcessAlive $n) }
        $b2 = Wait-IPv4 b2
        Wait-Until -TimeoutSeconds 10 -What 'b1 to resolve b2 again' { (Invoke-In b1 @('nslookup', 'b2.sc')).Stdout -match [regex]::Escape($b2) }
        @(Get-TestDnsmasq $daemon).Count | Should -Be @(Get-SystemContainerNetwork).Count
    }
    It 'answers the REST API for networks and leases, and refuses bad requests' {
        $r = Invoke-TestApi $daemon GET '/1.0/networks/lan/leases'
        $r.Status | Should -Be 200
        $r.Body.metadata.hostname | Should -Contain 'b1'
        (Invoke-TestApi $daemon GET '/1.0/networks?recursion=1').Body.metadata.name | Should -Contain 'lan'
        (Invoke-TestApi $daemon GET '/1.0/networks/nosuch/leases').Status | Should -Be 404
        (Invoke-TestApi $daemon PATCH '/1.0/networks/lan' '{"config": {}}').Status | Should -Be 400
        $bad = Invoke-TestApi $daemon PATCH '/1.0/networks/lan' '{"config": {"ipv4.address": "10.77.2.1/33"}}'
        $bad.Status | Should -Be 400
        $bad.Body.error_id | Should -Be 'InvalidCidr'
        (Invoke-TestApi $daemon POST '/1.0/networks' '{"name": "none", "config": {"ipv4.address": "10.77.20.1/24"}}').Body.error_id | Should -Be 'InvalidNetworkName'
        (Get-SystemContainerNetwork lan).IPv4 | Should -Be '10.77.2.1/24'
    }
    It 'keeps dnsmasq, the bridge and the leases across a daemon restart, and adopts them again' {
        $dnsmasq = (Get-SystemContainerNetwork lan).DnsmasqPid
        $bridgeMac = Get-BridgeMac lan
        $address = Wait-IPv4 b1
        $mac = (Get-SystemContainer b1).Config['nic.eth0.hwaddr']
        Wait-Until -TimeoutSeconds 10 -What 'the lease of b1' { Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac }
        $lease = Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac
        $veths = @(Get-Links veth).Count
        Stop-DaemonProcess $daemon
        Test-ProcessAlive $dnsmasq | Should -BeTrue
        Start-DaemonProcess $daemon
        (Get-SystemContainerNetwork lan).DnsmasqPid | Should -Be $dnsmasq
        # Ports came and went; the gateway's MAC (in every container's ARP cache) did not change.
        Get-BridgeMac lan | Should -Be $bridgeMac
        (Get-SystemContainer b1).IPv4 | Should -Contain $address
        $kept = Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac
        ($kept.Address, $kept.Expires) | Should -Be ($lease.Address, $lease.Expires)
        # The new daemon's server answers the renewal (udhcpc renews on SIGUSR1) with the same address, for another hour.
        Invoke-SystemContainerCommand b1 -- sh -c 'kill -USR1 $(pidof udhcpc)'
        Wait-Until -TimeoutSeconds 10 -What 'the renewed lease' { (Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac).Expires -gt $lease.Expires }
        (Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac).Address | Should -Be $address
        (Invoke-In b1 @('ip', 'addr', 'show', 'eth0')).Stdout | Should -Match "inet $([regex]::Escape($address))/24"
        Stop-SystemContainer b1 -Force
        Wait-Until -TimeoutSeconds 5 -What 'the adopted b1''s host end to go' { @(Get-Links veth).Count -eq $veths - 1 }
    }
    It 'answers no MAC it has not planned, and drops malformed packets while serving on' {
        # A stranger on the bridge: a veth from a namespace of the test's own, with a MAC no container has.
        $stranger = "$($daemon.Netns)-st"
        ip netns add $stranger
        try {
            Invoke-InNetns $daemon ip @('link', 'add', 'stranger0', 'type', 'veth', 'peer', 'name', 'st0', 'netns', $stranger)
            Invoke-InNetns $daemon ip @('link', 'set', 'stranger0', 'master', 'lan', 'up')
            ip -n $stranger link set st0 address 0a:ee:ee:ee:ee:01 up
            # busybox udhcpc on the host's side: three DISCOVERs, then it gives up (-n) with exit 1.
            $out = ip netns exec $stranger busybox udhcpc -i st0 -n -q -t 3 -T 1 -s /bin/true 2>&1
            $LASTEXITCODE | Should -Be 1 -Because ($out -join "`n")
            Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq '0a:ee:ee:ee:ee:01' | Should -BeNullOrEmpty
            # Malformed packets to the server's port: short, bad magic cookie, an option running past the end.
            ip -n $stranger addr add 10.77.2.250/24 dev st0
            $header = 'printf "\001\001\006\000"; head -c 232 /dev/zero'
            $packets = @(
                'printf "\001\001\006"',
                "$header; printf '\143\202\123\000\065\001\001\377'",
                "$header; printf '\143\202\123\143\065\001\001\014\310ab'"
            )
            foreach ($p in $packets) { ip netns exec $stranger sh -c "($p) | busybox nc -u -w 1 10.77.2.1 67" }
            # The server still serves, over the same path: with the MAC of a container made (not started) now, the stranger gets its address.
            New-SystemContainer ghost -Image $image -Network lan | Out-Null
            $ghostMac = (Get-SystemContainer ghost).Config['nic.eth0.hwaddr']
            $planned = ((Get-Content (Get-HostsFile lan $ghostMac)) -split ' ')[0]
            ip -n $stranger addr flush dev st0
            ip -n $stranger link set st0 address $ghostMac
            $out = ip netns exec $stranger busybox udhcpc -i st0 -n -q -t 3 -T 1 -s /bin/true 2>&1
            $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
            ($out -join "`n") | Should -Match "lease of $([regex]::Escape($planned)) obtained"
            (Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $ghostMac).Address | Should -Be $planned
        }
        finally {
            Remove-SystemContainer ghost -Force -ErrorAction SilentlyContinue
            Invoke-InNetns $daemon ip @('link', 'del', 'stranger0') 2>$null
            ip netns del $stranger
        }
    }
    It 'makes a vanished bridge and dnsmasq again: at daemon start (as after a reboot) and when a container needs it' {
        New-SystemContainerNetwork rb0 -IPv4 10.77.30.1/24 -Nat | Out-Null
        Stop-DaemonProcess $daemon
        kill -TERM (Get-TestDnsmasq $daemon | Where-Object { (Get-Content -Raw "/proc/$_/cmdline") -match 'interface=rb0' })
        Invoke-InNetns $daemon ip @('link', 'del', 'rb0')
        Start-DaemonProcess $daemon
        Invoke-InNetns $daemon ip @('-o', '-4', 'addr', 'show', 'dev', 'rb0') | Should -Match 'inet 10\.77\.30\.1/24'
        Test-ProcessAlive (Get-SystemContainerNetwork rb0).DnsmasqPid | Should -BeTrue
        (Get-Table) -join "`n" | Should -Match '10\.77\.30\.0/24'
        # Deleted by hand under a running daemon: the next container start makes it again.
        Invoke-InNetns $daemon ip @('link', 'del', 'rb0')
        New-SystemContainer rbc -Image $image -Network rb0 -Start | Out-Null
        Wait-IPv4 rbc | Should -Match '^10\.77\.30\.'
        Remove-SystemContainer rbc -Force
        Remove-SystemContainerNetwork rb0 -Confirm:$false
    }
    It 'refuses a container or a NIC on a full network, naming it, its range and how to grow it, and leaves nothing; a removal frees an address' {
        New-SystemContainerNetwork tiny -IPv4 10.77.40.1/28 | Out-Null
        $dnsmasq = (Get-SystemContainerNetwork tiny).DnsmasqPid
        $names = 1..13 | ForEach-Object { "t$_" }
        try {
            # A /28 leaves 13 addresses beside the bridge's: each NIC gets its own at create, and its names a file of the hosts directory.
            foreach ($name in $names) { New-SystemContainer $name -Image $image -Network tiny | Out-Null }
            $files = @(Get-ChildItem (Join-Path $daemon.RunDir 'networks/tiny/hosts'))
            $files.Count | Should -Be 13
            @($files | ForEach-Object { ((Get-Content $_.FullName) -split ' ')[0] } | Sort-Object -Unique).Count | Should -Be 13
            New-SystemContainer t14 -Image $image -Network tiny -ErrorAction SilentlyContinue -ErrorVariable e
            $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkFull,*'
            $e[0].Exception.Message | Should -Match "network 'tiny'"
            $e[0].Exception.Message | Should -Match '10\.77\.40\.0/28'
            $e[0].Exception.Message | Should -Match 'Set-SystemContainerNetwork tiny -IPv4 10\.77\.40\.1/24'
            Get-SystemContainer t14 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            Test-Path (Join-Path $daemon.StateDir 'containers/t14') | Should -BeFalse
            @(Get-ChildItem (Join-Path $daemon.RunDir 'networks/tiny/hosts')).Count | Should -Be 13
            Get-SystemContainerNetworkLease tiny | Where-Object Hostname -eq t14 | Should -BeNullOrEmpty
            # A second NIC on the full network, added to a container of another one: refused, its config as it was.
            Set-SystemContainer b2 -Config @{ 'nic.eth1.type' = 'bridged'; 'nic.eth1.network' = 'tiny' } -ErrorAction SilentlyContinue -ErrorVariable e
            $e[0].FullyQualifiedErrorId | Should -BeLike 'NetworkFull,*'
            (Get-SystemContainer b2).Config.Keys | Should -Not -Contain 'nic.eth1.network'
            # Removing one frees its address at once, and the next container gets it by DHCP.
            $freed = ((Get-Content (Get-HostsFile tiny (Get-SystemContainer t5).Config['nic.eth0.hwaddr'])) -split ' ')[0]
            Remove-SystemContainer t5 -Confirm:$false
            New-SystemContainer t14 -Image $image -Network tiny -Start | Out-Null
            Wait-IPv4 t14 | Should -Be $freed
            Start-SystemContainer t1
            Wait-IPv4 t1 | Should -Match '^10\.77\.40\.'
            (Get-SystemContainerNetwork tiny).DnsmasqPid | Should -Be $dnsmasq
            Select-String -Path (Join-Path $daemon.RunDir 'networks/tiny/dnsmasq.log') -Pattern 'no address' | Should -BeNullOrEmpty
            # The error's advice works: the network grows, its NICs keep their addresses, and the next container fits.
            $t2 = Get-Content (Get-HostsFile tiny (Get-SystemContainer t2).Config['nic.eth0.hwaddr'])
            Set-SystemContainerNetwork tiny -IPv4 10.77.40.1/24 -ErrorAction Stop
            Get-Content (Get-HostsFile tiny (Get-SystemContainer t2).Config['nic.eth0.hwaddr']) | Should -Be $t2
            New-SystemContainer t15 -Image $image -Network tiny -Start | Out-Null
            Wait-IPv4 t15 | Should -Match '^10\.77\.40\.'
            Wait-IPv4 t1 | Should -Match '^10\.77\.40\.'
        }
        finally {
            foreach ($name in $names + 't14', 't15') { Remove-SystemContainer $name -Force -ErrorAction SilentlyContinue }
            Remove-SystemContainerNetwork tiny -Confirm:$false
        }
    }
    It 'creates and removes 20 containers without a reload or restart of dnsmasq, each with its address by DHCP, resolving its peers by name' {
        $dnsmasq = (Get-SystemContainerNetwork lan).DnsmasqPid
        $reloads = Get-DnsmasqReloads lan
        $names = 1..20 | ForEach-Object { "d$_" }
        try {
            foreach ($name in $names) { New-SystemContainer $name -Image $image -Network lan -Start | Out-Null }
            $addresses = @{}
            foreach ($name in $names) { $addresses[$name] = Wait-IPv4 $name }
            @($addresses.Values | Sort-Object -Unique).Count | Should -Be 20
            foreach ($name in $names) {
                $mac = (Get-SystemContainer $name).Config['nic.eth0.hwaddr']
                Get-Content (Get-HostsFile lan $mac) | Should -Be "$($addresses[$name]) $name $name.sc"
            }
            Get-DnsmasqReloads lan | Should -Be $reloads
            (Get-SystemContainerNetwork lan).DnsmasqPid | Should -Be $dnsmasq
            (Invoke-In d1 @('nslookup', 'd20.sc')).Stdout | Should -Match ([regex]::Escape($addresses['d20']))
            (Invoke-In d20 @('nslookup', 'd1.sc')).Stdout | Should -Match ([regex]::Escape($addresses['d1']))
        }
        finally {
            foreach ($name in $names) { Remove-SystemContainer $name -Force -ErrorAction SilentlyContinue }
        }
        # dnsmasq forgets a removed container's names by inotify, with no reload.
        Wait-Until -TimeoutSeconds 10 -What 'the name of a removed container to go' { (Invoke-In b2 @('nslookup', 'd1.sc')).Stdout -notmatch [regex]::Escape($addresses['d1']) }
        Get-DnsmasqReloads lan | Should -Be $reloads
    }
    It 'migrates an older daemon''s run directory: its single hosts file and its DHCP-serving dnsmasq go, and addresses stay' {
        $address = Wait-IPv4 b2
        $mac = (Get-SystemContainer b2).Config['nic.eth0.hwaddr']
        $run = Join-Path $daemon.RunDir 'networks/lan'
        Stop-DaemonProcess $daemon
        $current = Get-TestDnsmasq $daemon | Where-Object { (Get-Content -Raw "/proc/$_/cmdline") -match 'interface=lan\x00' }
        $arguments = @((Get-Content -Raw "/proc/$current/cmdline") -split "`0" | Where-Object { $_ }) | Select-Object -Skip 1
        kill -TERM $current
        Wait-Until -TimeoutSeconds 10 -What 'dnsmasq to exit' { -not (Test-ProcessAlive $current) }
        # As a daemon before the hosts directory and its own DHCP server ran it: one hosts file, a dynamic range, and the leases dnsmasq's.
        $legacy = @($arguments | ForEach-Object { $_ -replace '^--hostsdir=.*', "--dhcp-hostsfile=$run/dnsmasq.hosts" }) + '--dhcp-range=10.77.2.2,10.77.2.254,1h'
        Remove-Item -Recurse (Join-Path $run 'hosts')
        Remove-Item -Recurse (Join-Path $daemon.StateDir 'networks/lan/dhcp-leases')
        Set-Content (Join-Path $run 'dnsmasq.hosts') "$mac,b2"
        $expiry = [DateTimeOffset]::UtcNow.AddHours(1).ToUnixTimeSeconds()
        Set-Content (Join-Path $daemon.StateDir 'networks/lan/dnsmasq.leases') "$expiry $mac $address b2 01:$mac"
        $old = Start-Process nsenter -ArgumentList (@("--net=/run/netns/$($daemon.Netns)", '--', 'dnsmasq') + $legacy) -PassThru
        try {
            Wait-Until -TimeoutSeconds 10 -What 'the older dnsmasq' { (Get-Content -Raw "/proc/$($old.Id)/cmdline" -ErrorAction SilentlyContinue) -match '^dnsmasq' }
            $stat = Get-Content "/proc/$($old.Id)/stat"
            $startTime = ($stat.Substring($stat.LastIndexOf(')') + 2) -split ' ')[19]
            Set-Content (Join-Path $run 'dnsmasq.pid') "$($old.Id) $startTime"
            Start-DaemonProcess $daemon
            $old.HasExited | Should -BeTrue
            $new = (Get-SystemContainerNetwork lan).DnsmasqPid
            $new | Should -Not -Be $old.Id
            Test-ProcessAlive $new | Should -BeTrue
            Get-Content -Raw "/proc/$new/cmdline" | Should -Match '--hostsdir='
            Get-Content -Raw "/proc/$new/cmdline" | Should -Not -Match '--dhcp-range=10\.'
            Test-Path (Join-Path $run 'dnsmasq.hosts') | Should -BeFalse
            # The address b2 leased from the older dnsmasq is the one the daemon's DHCP server gives it.
            Get-Content (Get-HostsFile lan $mac) | Should -Be "$address b2 b2.sc"
            Invoke-SystemContainerCommand b2 -- sh -c 'kill -USR1 $(pidof udhcpc)'
            Wait-Until -TimeoutSeconds 10 -What 'b2 to renew from the daemon' { Test-Path (Get-LeaseFile lan $mac) }
            (Get-SystemContainerNetworkLease lan | Where-Object HwAddr -eq $mac).Address | Should -Be $address
            @(Get-TestDnsmasq $daemon).Count | Should -Be @(Get-SystemContainerNetwork).Count
        }
        finally {
            if (-not $old.HasExited) { kill -KILL $old.Id }
        }
    }
    It 'makes the default network on first use for a container without NIC keys' {
        New-SystemContainer plain -Image $image -Start | Out-Null
        $c = Get-SystemContainer plain
        $c.Config['nic.eth0.network'] | Should -Be 'scbr0'
        $net = Get-SystemContainerNetwork scbr0
        $net.Nat | Should -BeTrue
        # Sized for density: a /20 (4,093 containers), as the bridge carries it on the host.
        $net.IPv4 | Should -Match '^10\.\d+\.\d+\.1/20$'
        Invoke-InNetns $daemon ip @('-o', '-4', 'addr', 'show', 'dev', 'scbr0') | Should -Match "inet $([regex]::Escape($net.IPv4)) "
        $address = Wait-IPv4 plain
        Test-InSubnet $address $net.IPv4 | Should -BeTrue
        Remove-SystemContainer plain -Force
    }
}
