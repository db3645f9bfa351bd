# The bad-input corpus: names, keys, values, exec requests, network settings, aliases and malformed
# HTTP, through the raw REST API (as any client on the socket could send them) and through the
# cmdlets. Each case must get a clear error (a 4xx status, an error id and a message naming what is
# wrong; never a 500), and after each the daemon still answers, nothing is new or gone under its
# state and run directories, and the container listing is unchanged. Each block ends by checking
# that the containers made before it still work.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainerNetwork badnet -IPv4 10.66.0.1/24 | Out-Null
    New-SystemContainer keeper -Image $image -Config @{ 'nic.eth0.network' = 'badnet'; 'nic.eth0.ipv4.address' = '10.66.0.10' } -Start | Out-Null
    New-SystemContainer idle -Image $image | Out-Null

    function Send-Raw([string]$Method, [string]$Path, $Body) {
        <# One HTTP/1.0 request over the socket with any body (a string, or bytes); the status and the error it names. #>
        # Assigned, not returned from an if: a pipeline would turn an empty body into $null.
        $bytes = [byte[]]::new(0)
        if ($Body -is [byte[]]) { $bytes = $Body }
        elseif ($null -ne $Body) { $bytes = [Text.Encoding]::UTF8.GetBytes([string]$Body) }
        $socket = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::Unix, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Unspecified)
        $received = [IO.MemoryStream]::new()
        try {
            $socket.Connect([Net.Sockets.UnixDomainSocketEndPoint]::new($daemon.Socket))
            $socket.ReceiveTimeout = 60000
            $head = "$Method $Path HTTP/1.0`r`nHost: systemcontainers`r`nContent-Type: application/json`r`nContent-Length: $($bytes.Length)`r`n`r`n"
            $socket.Send([Text.Encoding]::ASCII.GetBytes($head)) | Out-Null
            # The daemon may answer (413) before it has read a body it refuses: stop sending once it has.
            for ($at = 0; $at -lt $bytes.Length -and -not $socket.Poll(0, [Net.Sockets.SelectMode]::SelectRead); $at += $sent) {
                try { $sent = $socket.Send($bytes, $at, [Math]::Min(65536, $bytes.Length - $at), [Net.Sockets.SocketFlags]::None) }
                catch [Net.Sockets.SocketException] { break }
            }
            $buffer = [byte[]]::new(65536)
            try { while (($n = $socket.Receive($buffer)) -gt 0) { $received.Write($buffer, 0, $n) } }
            catch [Net.Sockets.SocketException] { }
        }
        finally { $socket.Dispose() }
        $text = [Text.Encoding]::UTF8.GetString($received.ToArray())
        $status = [int]($text -split ' ')[1]
        $json = $text.Substring($text.IndexOf("`r`n`r`n") + 4)
        $parsed = if ($json) { $json | ConvertFrom-Json } else { $null }
        if ($status -eq 202 -and (Get-Field $parsed 'operation')) {
            # An async request's error is its operation's.
            $op = (Invoke-TestApi $daemon GET "$($parsed.operation)/wait?timeout=60").Body.metadata
            return [pscustomobject]@{ Status = $op.status_code; Error = Get-Field $op 'err'; Id = Get-Field $op 'err_id'; Async = $true }
        }
        [pscustomobject]@{ Status = $status; Error = Get-Field $parsed 'error'; Id = Get-Field $parsed 'error_id'; Async = $false }
    }

    function Get-Field($Object, [string]$Name) {
        <# A JSON field, or null where the answer has none (the tests run under strict mode). #>
        if ($null -ne $Object -and $Object.PSObject.Properties[$Name]) { $Object.$Name } else { $null }
    }

    function Get-Trees {
        <# Every path under the state and run directories (names only: contents such as logs change). #>
        @(find $daemon.StateDir $daemon.RunDir -xdev -print | Sort-Object)
    }

    function Get-Listing {
        @((Invoke-TestApi $daemon GET '/1.0/containers?recursion=1').Body.metadata | ForEach-Object { "$($_.name) $($_.status) $(Get-Field $_ 'pid')" })
    }

    function Assert-Unharmed([string[]]$Before, [string[]]$Listing) {
        (Invoke-TestApi $daemon GET /1.0).Status | Should -Be 200 -Because 'the daemon still answers'
        $after = Get-Trees
        @(Compare-Object $Before $after | ForEach-Object { "$($_.SideIndicator) $($_.InputObject)" }) | Should -BeNullOrEmpty -Because 'nothing is left or lost under the state and run directories'
        "$(Get-Listing)" | Should -Be "$Listing"
    }

    function Assert-RestCase($Case) {
        $before = Get-Trees
        $listing = Get-Listing
        $body = if ($Case['Body'] -is [scriptblock]) { & $Case['Body'] } else { $Case['Body'] }
        $r = Send-Raw $Case.Method $Case.Path $body
        $r.Status | Should -Be $Case.Status -Because "$($Case.Method) $($Case.Path) is refused with the right status ($($r.Id): $($r.Error))"
        $r.Id | Should -Not -BeNullOrEmpty -Because 'the error has an id'
        $r.Id | Should -Not -BeIn @('InternalError', 'SystemError')
        $r.Error | Should -Match $Case.Message
        Assert-Unharmed $before $listing
    }

    function Assert-CmdletCase($Case) {
        $before = Get-Trees
        $listing = Get-Listing
        $caught = $null
        try { & $Case.Run | Out-Null } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty -Because 'the cmdlet reports an error'
        $caught.FullyQualifiedErrorId | Should -BeLike "$($Case.Id),*"
        $caught.Exception.Message | Should -Match $Case.Message
        Assert-Unharmed $before $listing
    }

    function Assert-ContainersWork {
        <# The running container runs a command; the stopped one is still stopped with its config. #>
        $r = Invoke-SystemContainerCommand keeper true -PassThru
        $r.ExitCode | Should -Be 0
        (Invoke-SystemContainerCommand keeper -- cat /proc/self/status) -match '^NSpid:' | Should -Not -BeNullOrEmpty
        (Get-SystemContainer keeper).Status | Should -Be 'Running'
        (Get-SystemContainer idle).Status | Should -Be 'Stopped'
    }
}

AfterAll { Stop-TestDaemon $script:daemon }

Describe 'Container names' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the name <Label> over REST' -ForEach @(
        @{ Label = 'with a trailing newline'; Name = 'bad\n'; Status = 400; Message = "container name 'bad\\x0a' is invalid" }
        @{ Label = 'with a trailing carriage return'; Name = 'bad\r'; Status = 400; Message = "container name 'bad\\x0d' is invalid" }
        @{ Label = 'empty'; Name = ''; Status = 400; Message = "field 'name' is required" }
        @{ Label = 'starting with a dash'; Name = '-lead'; Status = 400; Message = 'starting with a letter' }
        @{ Label = 'ending with a dash'; Name = 'trail-'; Status = 400; Message = "not ending with '-'" }
        @{ Label = 'starting with a digit'; Name = '1digit'; Status = 400; Message = 'starting with a letter' }
        @{ Label = 'with a space'; Name = 'has space'; Status = 400; Message = 'invalid' }
        @{ Label = 'with a dot'; Name = 'dot.name'; Status = 400; Message = 'invalid' }
        @{ Label = 'with a slash'; Name = 'a/b'; Status = 400; Message = 'invalid' }
        @{ Label = 'climbing out'; Name = '../etc'; Status = 400; Message = 'invalid' }
        @{ Label = 'of 64 characters'; Name = 'a' * 64; Status = 400; Message = 'longer than 63' }
        @{ Label = 'with a non-ASCII letter'; Name = 'caf\u00e9'; Status = 400; Message = 'invalid' }
        @{ Label = 'with a NUL'; Name = 'a\u0000b'; Status = 400; Message = 'invalid' }
        @{ Label = 'with a tab'; Name = 'a\tb'; Status = 400; Message = 'invalid' }
        @{ Label = 'of an existing container'; Name = 'keeper'; Status = 409; Message = "'keeper' already exists" }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"$Name`",`"image`":`"busybox`"}"; Status = $Status; Message = $Message }
    }
    It 'refuses <Label> as the image over REST' -ForEach @(
        @{ Label = 'a missing image'; Image = 'nosuch'; Status = 404; Message = "image 'nosuch' not found" }
        @{ Label = 'an empty image'; Image = ''; Status = 400; Message = "field 'image' is required" }
        @{ Label = 'a path'; Image = '../../etc'; Status = 404; Message = 'not found' }
        @{ Label = 'an alias with a newline'; Image = 'busybox\n'; Status = 404; Message = 'not found' }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"imgcase`",`"image`":`"$Image`"}"; Status = $Status; Message = $Message }
    }
    It 'refuses the name <Label> through New-SystemContainer' -ForEach @(
        @{ Label = 'with a trailing newline'; Name = "bad`n"; Id = 'InvalidName'; Message = 'invalid' }
        @{ Label = 'starting with a dash'; Name = '-x'; Id = 'InvalidName'; Message = 'starting with a letter' }
        @{ Label = 'of 64 characters'; Name = 'b' * 64; Id = 'InvalidName'; Message = 'longer than 63' }
        @{ Label = 'with an underscore'; Name = 'a_b'; Id = 'InvalidName'; Message = 'invalid' }
        @{ Label = 'of an existing container'; Name = 'idle'; Id = 'ContainerExists'; Message = 'already exists' }
    ) {
        Assert-CmdletCase @{ Run = { New-SystemContainer $Name -Image busybox -ErrorAction Stop }; Id = $Id; Message = $Message }
    }
    It 'refuses a missing image through New-SystemContainer' {
        Assert-CmdletCase @{ Run = { New-SystemContainer imgless -Image nosuch -ErrorAction Stop }; Id = 'ImageNotFound'; Message = 'not found' }
    }
}

Describe 'Config keys and values at create' {
    AfterAll { Assert-ContainersWork }
    It 'refuses <Key> = <Value> over REST' -ForEach @(
        @{ Key = 'limits.cpus'; Value = '1'; Status = 400; Message = "unknown config key 'limits.cpus'" }
        @{ Key = ''; Value = 'x'; Status = 400; Message = 'config key .* is invalid' }
        @{ Key = 'user.'; Value = 'x'; Status = 400; Message = "unknown config key 'user.'" }
        @{ Key = 'user.a\nb'; Value = 'x'; Status = 400; Message = 'config key .*\\x0a.* is invalid' }
        @{ Key = 'user.a b'; Value = 'x'; Status = 400; Message = 'without spaces' }
        @{ Key = 'user.' + ('k' * 300); Value = 'x'; Status = 400; Message = '1 to 255 characters' }
        @{ Key = 'user.x'; Value = 'a\u0000b'; Status = 400; Message = 'newline or NUL' }
        @{ Key = 'user.x'; Value = 'a\nb'; Status = 400; Message = 'newline or NUL' }
        @{ Key = 'environment.A=B'; Value = 'x'; Status = 400; Message = "without '='" }
        @{ Key = 'environment.A\nB'; Value = 'x'; Status = 400; Message = 'invalid' }
        @{ Key = 'environment.A\u0001'; Value = 'x'; Status = 400; Message = 'control characters' }
        @{ Key = 'environment.'; Value = 'x'; Status = 400; Message = "unknown config key 'environment.'" }
        @{ Key = 'limits.cpu'; Value = '0-99999999999'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu'; Value = '99999999999'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu'; Value = '0'; Status = 400; Message = 'a CPU count from 1' }
        @{ Key = 'limits.cpu'; Value = '-1'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu'; Value = '1-0'; Status = 400; Message = 'CPUs that exist' }
        @{ Key = 'limits.cpu'; Value = '0,99999'; Status = 400; Message = 'CPUs that exist' }
        @{ Key = 'limits.cpu'; Value = '4096'; Status = 400; Message = 'a CPU count from 1' }
        @{ Key = 'limits.cpu'; Value = '\u0661'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu'; Value = '0-1,'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu.allowance'; Value = '100000000000ms/1ms'; Status = 400; Message = "'limits.cpu.allowance' must be" }
        @{ Key = 'limits.cpu.allowance'; Value = '999999999s/100ms'; Status = 400; Message = 'a quota of 1ms to 1000s' }
        @{ Key = 'limits.cpu.allowance'; Value = '0%'; Status = 400; Message = 'a percentage from 1%' }
        @{ Key = 'limits.cpu.allowance'; Value = '101%'; Status = 400; Message = 'a percentage from 1%' }
        @{ Key = 'limits.cpu.allowance'; Value = 'NaN%'; Status = 400; Message = 'a percentage from 1%' }
        @{ Key = 'limits.cpu.allowance'; Value = '0.5%'; Status = 400; Message = 'a percentage from 1%' }
        @{ Key = 'limits.cpu.allowance'; Value = '1ms/0ms'; Status = 400; Message = 'per period of 1ms to 1s' }
        @{ Key = 'limits.cpu.allowance'; Value = '50ms/2s'; Status = 400; Message = 'per period of 1ms to 1s' }
        @{ Key = 'limits.memory'; Value = 'NaN%'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = 'Infinity%'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = '1e-300%'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = '0.000001%'; Status = 400; Message = 'at least 4MiB' }
        @{ Key = 'limits.memory'; Value = '0%'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = '99999999999999999999TB'; Status = 400; Message = 'no more than the host could ever give' }
        @{ Key = 'limits.memory'; Value = '1e9'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = '1KiB'; Status = 400; Message = 'at least 4MiB' }
        @{ Key = 'limits.memory'; Value = '-1'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.memory'; Value = '\u0665MiB'; Status = 400; Message = "'limits.memory' must be" }
        @{ Key = 'limits.processes'; Value = '0'; Status = 400; Message = 'from 1 to 4194304' }
        @{ Key = 'limits.processes'; Value = '99999999999999999999'; Status = 400; Message = 'from 1 to 4194304' }
        @{ Key = 'limits.cpu.priority'; Value = '11'; Status = 400; Message = 'from 0 to 10' }
        @{ Key = 'limits.disk.priority'; Value = '-1'; Status = 400; Message = 'from 0 to 10' }
        @{ Key = 'limits.disk'; Value = '99999999999999999999TB'; Status = 400; Message = 'from 16MiB to 1EiB' }
        @{ Key = 'limits.disk'; Value = '10%'; Status = 400; Message = "'limits.disk' must be" }
        @{ Key = 'limits.memory.swap'; Value = 'maybe'; Status = 400; Message = 'true or false' }
        @{ Key = 'limits.memory.enforce'; Value = 'strict'; Status = 400; Message = 'hard or soft' }
        @{ Key = 'security.privileged'; Value = 'yes please'; Status = 400; Message = 'true or false' }
        @{ Key = 'security.idmap.base'; Value = '4294967295'; Status = 400; Message = 'from 65536 to 4294967294' }
        @{ Key = 'security.idmap.base'; Value = '4294901761'; Status = 400; Message = 'must lie within host ids' }
        @{ Key = 'security.idmap.base'; Value = '4294901760'; Status = 400; Message = 'must lie within host ids 65536-4294967294' }
        @{ Key = 'security.idmap.base'; Value = '1000'; Status = 400; Message = 'from 65536 to 4294967294' }
        @{ Key = 'security.idmap.base'; Value = '-5'; Status = 400; Message = 'from 65536 to 4294967294' }
        @{ Key = 'security.idmap.size'; Value = '100'; Status = 400; Message = 'from 65536 to 4294967294' }
        @{ Key = 'security.idmap.size'; Value = '4294967296'; Status = 400; Message = 'from 65536 to 4294967294' }
        @{ Key = 'security.idmap.size'; Value = '4294967294'; Status = 409; Message = 'no free block' }
        @{ Key = 'security.idmap.isolated'; Value = 'perhaps'; Status = 400; Message = 'true or false' }
        @{ Key = 'security.syscalls.allow'; Value = 'init_module'; Status = 400; Message = "names 'init_module'" }
        @{ Key = 'security.syscalls.allow'; Value = 'keyctl,bogus'; Status = 400; Message = "names 'bogus'" }
        @{ Key = 'security.syscalls.allow'; Value = 'keyctl;bpf'; Status = 400; Message = "names 'keyctl;bpf'" }
        @{ Key = 'boot.stop.timeout'; Value = '3601'; Status = 400; Message = 'from 0 to 3600' }
        @{ Key = 'boot.stop.timeout'; Value = '1.5'; Status = 400; Message = 'from 0 to 3600' }
    ) {
        # The keys and values are JSON text: \n, \u0000 and friends reach the daemon decoded.
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"cfgcase`",`"image`":`"busybox`",`"config`":{`"$Key`":`"$Value`"}}"; Status = $Status; Message = $Message }
    }
    It 'refuses an environment value past the kernel''s string limit over REST' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"cfgcase`",`"image`":`"busybox`",`"config`":{`"environment.HUGE`":`"$('x' * 140000)`"}}"; Status = 400; Message = "environment variable 'HUGE' is \d+ bytes; at most 131071" }
    }
    It 'refuses a config value that is not a string over REST' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"cfgcase","image":"busybox","config":{"limits.cpu":1}}'; Status = 400; Message = 'request body is not valid' }
    }
    It 'refuses a null config value over REST' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"cfgcase","image":"busybox","config":{"user.a":null}}'; Status = 400; Message = "'user.a' has no value" }
    }
    It 'refuses 1025 environment variables over REST' {
        $vars = (1..1025 | ForEach-Object { "`"environment.V$_`":`"x`"" }) -join ','
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"cfgcase`",`"image`":`"busybox`",`"config`":{$vars}}"; Status = 400; Message = '1025 environment variables; at most 1024' }
    }
    It 'refuses environment keys that together pass the config share over REST' {
        $vars = (1..5 | ForEach-Object { "`"environment.V$_`":`"$('y' * 120000)`"" }) -join ','
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"cfgcase`",`"image`":`"busybox`",`"config`":{$vars}}"; Status = 400; Message = 'at most 524288 are allowed' }
    }
    # The name shows control characters escaped: a NUL in it cannot be written to the XML report.
    It 'refuses <ShownKey> = <ShownValue> through New-SystemContainer' -ForEach (@(
        @{ Key = 'limits.cpu'; Value = '0-99999999999'; Message = "'limits.cpu' must be" }
        @{ Key = 'limits.cpu.allowance'; Value = '100000000000ms/1ms'; Message = "'limits.cpu.allowance' must be" }
        @{ Key = 'limits.memory'; Value = 'NaN%'; Message = "'limits.memory' must be" }
        @{ Key = 'security.idmap.base'; Value = '4294901761'; Message = 'must lie within host ids' }
        @{ Key = "environment.A`nB"; Value = 'x'; Message = 'invalid' }
        @{ Key = 'environment.A'; Value = "x`0y"; Message = 'newline or NUL' }
        @{ Key = 'security.syscalls.allow'; Value = 'kexec_load'; Message = "names 'kexec_load'" }
    ) | ForEach-Object { $_ + @{ ShownKey = $_.Key -replace "`n", '\n'; ShownValue = $_.Value -replace "`0", '\0' } }) {
        Assert-CmdletCase @{ Run = { New-SystemContainer cmdcfg -Image busybox -Config @{ $Key = $Value } -ErrorAction Stop }; Id = 'Invalid*'; Message = $Message }
    }
}

Describe 'NIC keys at create' {
    AfterAll { Assert-ContainersWork }
    It 'refuses <Key> = <Value> over REST' -ForEach @(
        @{ Key = 'nic.eth0.type'; Value = 'macvlan'; Status = 400; Message = "must be 'bridged' or 'none'" }
        @{ Key = 'nic.Eth0.network'; Value = 'badnet'; Status = 400; Message = "device name 'Eth0'" }
        @{ Key = 'nic.eth0x.network\n'; Value = 'badnet'; Status = 400; Message = 'invalid' }
        @{ Key = 'nic.devicenametoolong.network'; Value = 'badnet'; Status = 400; Message = '1 to 15 characters' }
        @{ Key = 'nic.eth0.mtu'; Value = '1500'; Status = 400; Message = "unknown config key 'nic.eth0.mtu'" }
        @{ Key = 'nic.eth0'; Value = 'badnet'; Status = 400; Message = "unknown config key 'nic.eth0'" }
        @{ Key = 'nic.eth0.network'; Value = 'nosuch'; Status = 404; Message = "network 'nosuch'" }
        @{ Key = 'nic.eth0.network'; Value = 'Bad\n'; Status = 400; Message = 'newline or NUL' }
        @{ Key = 'nic.eth0.network'; Value = 'Bad'; Status = 400; Message = "network name 'Bad' is invalid" }
        @{ Key = 'nic.eth0.name'; Value = 'lo'; Status = 400; Message = 'must not be lo' }
        @{ Key = 'nic.eth0.name'; Value = 'a/b'; Status = 400; Message = 'interface name' }
        @{ Key = 'nic.eth0.name'; Value = 'sixteencharacter'; Status = 400; Message = 'interface name of 1 to 15' }
        @{ Key = 'nic.eth0.host_name'; Value = 'lo'; Status = 409; Message = 'existing host interface' }
        @{ Key = 'nic.eth0.host_name'; Value = 'badnet'; Status = 409; Message = 'is the bridge of network' }
        @{ Key = 'nic.eth0.host_name'; Value = 'a b'; Status = 400; Message = 'interface name' }
        @{ Key = 'nic.eth0.hwaddr'; Value = '01:00:00:00:00:01'; Status = 400; Message = 'unicast MAC' }
        @{ Key = 'nic.eth0.hwaddr'; Value = '00:00:00:00:00:00'; Status = 400; Message = 'unicast MAC' }
        @{ Key = 'nic.eth0.hwaddr'; Value = 'zz:00:00:00:00:01'; Status = 400; Message = 'unicast MAC' }
        @{ Key = 'nic.eth0.hwaddr'; Value = '0a:00:00:00:00:01:02'; Status = 400; Message = 'unicast MAC' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = '10.66.0.20/24'; Status = 400; Message = 'an IPv4 address like' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = '10.66'; Status = 400; Message = 'an IPv4 address like' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = '0x0a.66.0.20'; Status = 400; Message = 'an IPv4 address like' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = 'fd00::5'; Status = 400; Message = 'an IPv4 address like' }
    ) {
        # A bridged NIC needs its network: the other keys come with one on badnet unless the case sets it.
        $config = [ordered]@{}
        if ($Key -notlike '*.network*' -and $Key -notlike 'nic.eth0') { $config['nic.eth0.network'] = 'badnet' }
        $config[$Key] = $Value
        $json = ($config.Keys | ForEach-Object { "`"$_`":`"$($config[$_])`"" }) -join ','
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"niccase`",`"image`":`"busybox`",`"config`":{$json}}"; Status = $Status; Message = $Message }
    }
    It 'refuses an address <Label> of the network' -ForEach @(
        @{ Label = 'outside'; Address = '10.66.1.5'; Status = 400; Message = 'is not a container address of network' }
        @{ Label = 'that is the bridge'; Address = '10.66.0.1'; Status = 400; Message = 'is not a container address of network' }
        @{ Label = 'that is the broadcast'; Address = '10.66.0.255'; Status = 400; Message = 'is not a container address of network' }
        @{ Label = 'fixed for another container'; Address = '10.66.0.10'; Status = 409; Message = "already fixed for container 'keeper'" }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"niccase`",`"image`":`"busybox`",`"config`":{`"nic.eth0.network`":`"badnet`",`"nic.eth0.ipv4.address`":`"$Address`"}}"; Status = $Status; Message = $Message }
    }
    It 'refuses a bridged NIC with an empty network name' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"niccase","image":"busybox","config":{"nic.eth0.type":"bridged","nic.eth0.network":""}}'; Status = 400; Message = "network name '' is invalid" }
    }
    It 'refuses two NICs with one interface name' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"niccase","image":"busybox","config":{"nic.a.network":"badnet","nic.b.network":"badnet","nic.a.name":"eth0","nic.b.name":"eth0"}}'; Status = 400; Message = "both use the interface name 'eth0'" }
    }
    It 'refuses a host interface name through New-SystemContainer' {
        Assert-CmdletCase @{ Run = { New-SystemContainer nichost -Image busybox -Config @{ 'nic.eth0.network' = 'badnet'; 'nic.eth0.host_name' = 'lo' } -ErrorAction Stop }; Id = 'HostNameInUse'; Message = 'existing host interface' }
    }
}

Describe 'Config changes' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the change <Label> over REST' -ForEach @(
        @{ Label = 'with no keys'; Body = '{"config":{}}'; Status = 400; Message = "'config' must name at least one key" }
        @{ Label = 'with a null config'; Body = '{"config":null}'; Status = 400; Message = "'config' must name at least one key" }
        @{ Label = 'of a security key'; Body = '{"config":{"security.privileged":"true"}}'; Status = 400; Message = 'can only be set when the container is created' }
        @{ Label = 'of the syscall allow list'; Body = '{"config":{"security.syscalls.allow":"keyctl"}}'; Status = 400; Message = 'can only be set when the container is created' }
        @{ Label = 'to an overflowing CPU range'; Body = '{"config":{"limits.cpu":"0-99999999999"}}'; Status = 400; Message = "'limits.cpu' must be" }
        @{ Label = 'to an overflowing allowance'; Body = '{"config":{"limits.cpu.allowance":"100000000000ms/1ms"}}'; Status = 400; Message = "'limits.cpu.allowance' must be" }
        @{ Label = 'to a NaN memory share'; Body = '{"config":{"limits.memory":"NaN%"}}'; Status = 400; Message = "'limits.memory' must be" }
        @{ Label = 'to a tiny memory share'; Body = '{"config":{"limits.memory":"0.000001%"}}'; Status = 400; Message = 'at least 4MiB' }
        @{ Label = 'to an environment key with ='; Body = '{"config":{"environment.A=B":"x"}}'; Status = 400; Message = "without '='" }
        @{ Label = 'to an unknown key'; Body = '{"config":{"limits.nope":"1"}}'; Status = 400; Message = "unknown config key 'limits.nope'" }
        @{ Label = 'to a NIC of an unknown type'; Body = '{"config":{"nic.eth1.type":"tap"}}'; Status = 400; Message = "must be 'bridged' or 'none'" }
        @{ Label = 'to a NIC on a missing network'; Body = '{"config":{"nic.eth1.network":"nosuch"}}'; Status = 404; Message = "network 'nosuch'" }
        @{ Label = 'to a second NIC of the same name'; Body = '{"config":{"nic.eth1.network":"badnet","nic.eth1.name":"eth0"}}'; Status = 400; Message = "both use the interface name 'eth0'" }
        @{ Label = 'with a wrong type'; Body = '{"config":["limits.cpu","1"]}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'with an unknown field'; Body = '{"config":{"limits.cpu":"1"},"devices":{}}'; Status = 400; Message = "devices" }
        @{ Label = 'to a cron schedule with minute 61'; Body = '{"config":{"snapshots.schedule":"61 * * * *"}}'; Status = 400; Message = "'snapshots.schedule': cron schedule .* is invalid: field minute \('61'\): 61 is out of range 0-59" }
        @{ Label = 'to a cron schedule of 4 fields'; Body = '{"config":{"snapshots.schedule":"* * * *"}}'; Status = 400; Message = "'snapshots.schedule': .* it has 4 fields" }
        @{ Label = 'to an unknown schedule alias'; Body = '{"config":{"snapshots.schedule":"@often"}}'; Status = 400; Message = "'snapshots.schedule': .*'@often' is not one of the aliases" }
        @{ Label = 'to an expiry of an unknown unit'; Body = '{"config":{"snapshots.expiry":"2x"}}'; Status = 400; Message = "'snapshots.expiry': snapshot expiry '2x' is invalid: term '2x' has unit 'x'" }
        @{ Label = 'to a pattern that gives bad names'; Body = '{"config":{"snapshots.pattern":"a/%d"}}'; Status = 400; Message = "'snapshots.pattern': snapshot pattern 'a/%d' is invalid: it gives names such as 'a/0'" }
        @{ Label = 'to a schedule.stopped that is no bool'; Body = '{"config":{"snapshots.schedule.stopped":"perhaps"}}'; Status = 400; Message = "'snapshots.schedule.stopped' must be true or false" }
    ) {
        Assert-RestCase @{ Method = 'PATCH'; Path = '/1.0/containers/keeper'; Body = $Body; Status = $Status; Message = $Message }
        (Get-SystemContainer keeper).Config.Keys | Should -Not -Contain 'limits.cpu'
    }
    It 'refuses a change of a missing container' {
        Assert-RestCase @{ Method = 'PATCH'; Path = '/1.0/containers/nosuch'; Body = '{"config":{"limits.cpu":"1"}}'; Status = 404; Message = "container 'nosuch' not found" }
    }
    It 'refuses <Key> = <Value> through Set-SystemContainer' -ForEach @(
        @{ Key = 'limits.cpu.allowance'; Value = '100000000000ms/1ms'; Message = "'limits.cpu.allowance' must be" }
        @{ Key = 'limits.memory'; Value = 'Infinity%'; Message = "'limits.memory' must be" }
        @{ Key = 'limits.cpu'; Value = "1`n"; Message = 'newline or NUL' }
        @{ Key = 'environment.A=B'; Value = 'x'; Message = "without '='" }
        @{ Key = 'security.syscalls.allow'; Value = 'keyctl'; Message = 'can only be set when the container is created' }
        @{ Key = 'security.idmap.size'; Value = '131072'; Message = 'can only be set when the container is created' }
        @{ Key = 'snapshots.schedule'; Value = '0 0 * * mon-xyz'; Message = "'snapshots.schedule': .*field day-of-week \('mon-xyz'\): 'xyz' is not a number from 0 to 7" }
        @{ Key = 'snapshots.expiry'; Value = '1d 5'; Message = "'snapshots.expiry': .*term '5' needs a whole number" }
    ) {
        Assert-CmdletCase @{ Run = { Set-SystemContainer keeper -Config @{ $Key = $Value } -ErrorAction Stop }; Id = 'I*'; Message = $Message }
        (Get-SystemContainer keeper).Config.Keys | Should -Not -Contain $Key
    }
}

Describe 'Exec requests' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the exec <Label> over REST' -ForEach @(
        @{ Label = 'with no command'; Body = '{"command":[]}'; Status = 400; Message = 'command must name a program' }
        @{ Label = 'without a command field'; Body = '{}'; Status = 400; Message = 'command must name a program' }
        @{ Label = 'with an empty program'; Body = '{"command":[""]}'; Status = 400; Message = 'must not be empty' }
        @{ Label = 'with a null argument'; Body = '{"command":["true",null]}'; Status = 400; Message = 'argument 1 of the command is null' }
        @{ Label = 'with a NUL in an argument'; Body = '{"command":["echo","a\u0000b"]}'; Status = 400; Message = 'argument 1 of the command contains a NUL' }
        @{ Label = 'with a newline in an argument'; Body = '{"command":["echo","a\nb"]}'; Status = 400; Message = 'argument 1 of the command contains a newline' }
        @{ Label = 'with a command string'; Body = '{"command":"true"}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'with an environment name with ='; Body = '{"command":["true"],"environment":{"A=B":"x"}}'; Status = 400; Message = "without '='" }
        @{ Label = 'with an empty environment name'; Body = '{"command":["true"],"environment":{"":"x"}}'; Status = 400; Message = 'must be non-empty' }
        @{ Label = 'with a newline in an environment name'; Body = '{"command":["true"],"environment":{"A\nB":"x"}}'; Status = 400; Message = 'control characters' }
        @{ Label = 'with a null environment value'; Body = '{"command":["true"],"environment":{"A":null}}'; Status = 400; Message = "'A' has no value" }
        @{ Label = 'with a NUL in an environment value'; Body = '{"command":["true"],"environment":{"A":"x\u0000"}}'; Status = 400; Message = "'A' contains a NUL" }
        @{ Label = 'with a relative working directory'; Body = '{"command":["true"],"cwd":"tmp"}'; Status = 400; Message = 'must be an absolute path' }
        @{ Label = 'with a NUL in the working directory'; Body = '{"command":["true"],"cwd":"/tmp\u0000x"}'; Status = 400; Message = 'without NUL' }
        @{ Label = 'with uid -1'; Body = '{"command":["true"],"user":-1}'; Status = 400; Message = 'uid -1 is not mapped' }
        @{ Label = 'with an unmapped uid'; Body = '{"command":["true"],"user":70000}'; Status = 400; Message = 'uid 70000 is not mapped' }
        @{ Label = 'with gid -1'; Body = '{"command":["true"],"group":-1}'; Status = 400; Message = 'gid -1 is not mapped' }
        @{ Label = 'with a uid beyond an int'; Body = '{"command":["true"],"user":4294967296}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'with a terminal 0 wide'; Body = '{"command":["sh"],"interactive":true,"width":0}'; Status = 400; Message = 'width and height must be from 1 to 1000' }
        @{ Label = 'with a terminal 5000 high'; Body = '{"command":["sh"],"interactive":true,"height":5000}'; Status = 400; Message = 'width and height must be from 1 to 1000' }
        @{ Label = 'with an unknown field'; Body = '{"command":["true"],"record-output":true}'; Status = 400; Message = 'record-output' }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers/keeper/exec'; Body = $Body; Status = $Status; Message = $Message }
    }
    It 'refuses an exec <Label>' -ForEach @(
        @{ Label = 'with 1025 arguments'; Make = { '{"command":["true"' + (',"a"' * 1024) + ']}' }; Message = '1025 arguments; at most 1024' }
        @{ Label = 'with an argument of 130 KiB'; Make = { '{"command":["echo","' + ('z' * 133120) + '"]}' }; Message = 'argument 1 of the command is 133120 bytes; at most 131071' }
        @{ Label = 'with 1100 environment variables'; Make = { '{"command":["true"],"environment":{' + ((1..1100 | ForEach-Object { "`"E$_`":`"v`"" }) -join ',') + '}}' }; Message = 'environment variables; at most 1024' }
        @{ Label = 'whose arguments pass 1 MiB together'; Make = { '{"command":["true"' + (",`"$('q' * 100000)`"" * 11) + ']}' }; Message = 'take \d+ bytes; at most 1048576' }
        @{ Label = 'with a working directory past PATH_MAX'; Make = { '{"command":["true"],"cwd":"/' + ('d' * 5000) + '"}' }; Message = 'at most 4095 bytes' }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers/keeper/exec'; Body = $Make; Status = 400; Message = $Message }
    }
    It 'refuses an exec in <Label>' -ForEach @(
        @{ Label = 'a stopped container'; Path = '/1.0/containers/idle/exec'; Status = 409; Message = "'idle' is not running" }
        @{ Label = 'a missing container'; Path = '/1.0/containers/nosuch/exec'; Status = 404; Message = "'nosuch' not found" }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = $Path; Body = '{"command":["true"]}'; Status = $Status; Message = $Message }
    }
    It 'refuses <Label> through Invoke-SystemContainerCommand' -ForEach @(
        @{ Label = 'uid -1'; Run = { Invoke-SystemContainerCommand keeper true -User -1 -ErrorAction Stop }; Id = 'ParameterArgumentValidationError'; Message = 'minimum allowed range of 0' }
        @{ Label = 'an unmapped uid'; Run = { Invoke-SystemContainerCommand keeper true -User 65536 -ErrorAction Stop }; Id = 'InvalidUser'; Message = 'uid 65536 is not mapped' }
        @{ Label = 'an unmapped gid'; Run = { Invoke-SystemContainerCommand keeper true -Group 65536 -ErrorAction Stop }; Id = 'InvalidUser'; Message = 'gid 65536 is not mapped' }
        @{ Label = 'a relative working directory'; Run = { Invoke-SystemContainerCommand keeper true -WorkingDirectory tmp -ErrorAction Stop }; Id = 'InvalidWorkingDirectory'; Message = 'absolute path' }
        @{ Label = 'an environment name with ='; Run = { Invoke-SystemContainerCommand keeper true -Environment @{ 'A=B' = 'x' } -ErrorAction Stop }; Id = 'InvalidEnvironment'; Message = "without '='" }
        @{ Label = '1025 arguments'; Run = { Invoke-SystemContainerCommand keeper -Command (@('true') + @(1..1024 | ForEach-Object { "a$_" })) -ErrorAction Stop }; Id = 'InvalidCommand'; Message = 'at most 1024' }
        @{ Label = 'a stopped container'; Run = { Invoke-SystemContainerCommand idle true -ErrorAction Stop }; Id = 'NotRunning'; Message = 'not running' }
    ) {
        Assert-CmdletCase @{ Run = $Run; Id = $Id; Message = $Message }
    }
}

Describe 'Network settings' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the network name <Label> over REST' -ForEach @(
        @{ Label = 'with a trailing newline'; Name = 'net\n'; Shown = 'net\\x0a' }
        @{ Label = 'lo'; Name = 'lo'; Shown = '' }
        @{ Label = 'default'; Name = 'default'; Shown = '' }
        @{ Label = 'of 16 characters'; Name = 'n234567890123456'; Shown = '' }
        @{ Label = 'in capitals'; Name = 'Upper'; Shown = '' }
        @{ Label = 'with a slash'; Name = 'a/b'; Shown = '' }
        @{ Label = 'empty'; Name = ''; Shown = '' }
    ) {
        $message = if (-not $Name) { "field 'name' is required" } elseif ($Shown) { "network name '$Shown' is invalid" } else { 'network name .* is invalid' }
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/networks'; Body = "{`"name`":`"$Name`",`"config`":{`"ipv4.address`":`"10.67.0.1/24`"}}"; Status = 400; Message = $message }
    }
    It 'refuses <Key> = <Value> for a new network over REST' -ForEach @(
        @{ Key = 'ipv4.address'; Value = '10.67.0.0/24'; Status = 400; Message = 'network or broadcast address' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.255/24'; Status = 400; Message = 'network or broadcast address' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.1/31'; Status = 400; Message = 'prefix from /8 to /30' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.1/7'; Status = 400; Message = 'prefix from /8 to /30' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.1/99999999999'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Key = 'ipv4.address'; Value = '300.1.1.1/24'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Key = 'ipv4.address'; Value = '10.67/24'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.1'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Key = 'ipv4.address'; Value = '10.67.0.1/24\n'; Status = 400; Message = 'invalid value' }
        @{ Key = 'ipv4.address'; Value = '127.0.0.1/8'; Status = 400; Message = 'not a unicast address' }
        @{ Key = 'ipv4.address'; Value = '224.0.0.1/24'; Status = 400; Message = 'not a unicast address' }
        @{ Key = 'ipv4.address'; Value = 'fd00::1/64'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Key = 'ipv4.address'; Value = '10.66.0.7/24'; Status = 409; Message = 'overlaps' }
        @{ Key = 'ipv6.address'; Value = 'fd00:1::1/48'; Status = 400; Message = 'must be a /64' }
        @{ Key = 'ipv6.address'; Value = '10.68.0.1/24'; Status = 400; Message = 'not an IPv6 address in CIDR form' }
        @{ Key = 'ipv6.address'; Value = 'fe80::1/64'; Status = 400; Message = 'not a unicast address' }
        @{ Key = 'dns.domain'; Value = 'bad_domain'; Status = 400; Message = "'dns.domain' must be a DNS domain" }
        @{ Key = 'dns.domain'; Value = '-a.b'; Status = 400; Message = "'dns.domain' must be a DNS domain" }
        @{ Key = 'dns.domain'; Value = 'a..b'; Status = 400; Message = "'dns.domain' must be a DNS domain" }
        @{ Key = 'dns.domain'; Value = ('abcdefghij.' * 25) + 'x'; Status = 400; Message = "'dns.domain' must be a DNS domain" }
        @{ Key = 'dns.domain'; Value = 'lab,example'; Status = 400; Message = 'invalid value' }
        @{ Key = 'ipv4.nat'; Value = 'maybe'; Status = 400; Message = 'true or false' }
        @{ Key = 'ipv6.nat'; Value = 'true'; Status = 400; Message = 'ipv6.nat needs ipv6.address' }
        @{ Key = 'ipv4.dhcp'; Value = 'false'; Status = 400; Message = "unknown network config key 'ipv4.dhcp'" }
        @{ Key = 'bridge.mtu'; Value = '1500'; Status = 400; Message = "unknown network config key 'bridge.mtu'" }
    ) {
        $config = [ordered]@{ 'ipv4.address' = '10.67.0.1/24' }
        $config[$Key] = $Value
        $json = ($config.Keys | ForEach-Object { "`"$_`":`"$($config[$_])`"" }) -join ','
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/networks'; Body = "{`"name`":`"netcase`",`"config`":{$json}}"; Status = $Status; Message = $Message }
    }
    It 'refuses a network config that is not an object over REST' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/networks'; Body = '{"name":"netcase","config":["ipv4.address"]}'; Status = 400; Message = 'request body is not valid' }
    }
    It 'refuses a network that exists over REST' {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/networks'; Body = '{"name":"badnet","config":{"ipv4.address":"10.69.0.1/24"}}'; Status = 409; Message = "'badnet' already exists" }
    }
    It 'refuses the network change <Label> over REST' -ForEach @(
        @{ Label = 'to a bad address'; Path = '/1.0/networks/badnet'; Body = '{"config":{"ipv4.address":"x"}}'; Status = 400; Message = 'not an IPv4 address in CIDR form' }
        @{ Label = 'with no keys'; Path = '/1.0/networks/badnet'; Body = '{"config":{}}'; Status = 400; Message = 'at least one key' }
        @{ Label = 'of a missing network'; Path = '/1.0/networks/nosuch'; Body = '{"config":{"ipv4.nat":"true"}}'; Status = 404; Message = "network 'nosuch' not found" }
    ) {
        Assert-RestCase @{ Method = 'PATCH'; Path = $Path; Body = $Body; Status = $Status; Message = $Message }
    }
    It 'refuses to remove a network in use, or one that does not exist' -ForEach @(
        @{ Path = '/1.0/networks/badnet'; Status = 409; Message = "'badnet' is used by keeper" }
        @{ Path = '/1.0/networks/nosuch'; Status = 404; Message = 'not found' }
    ) {
        Assert-RestCase @{ Method = 'DELETE'; Path = $Path; Status = $Status; Message = $Message }
    }
    It 'refuses <Label> through New-SystemContainerNetwork' -ForEach @(
        @{ Label = 'a name with an underscore at the start'; Run = { New-SystemContainerNetwork _bad -IPv4 10.67.0.1/24 -ErrorAction Stop }; Id = 'InvalidNetworkName'; Message = 'invalid' }
        @{ Label = 'a network address'; Run = { New-SystemContainerNetwork netcmd -IPv4 10.67.0.0/24 -ErrorAction Stop }; Id = 'InvalidCidr'; Message = 'network or broadcast' }
        @{ Label = 'a bad domain'; Run = { New-SystemContainerNetwork netcmd -IPv4 10.67.0.1/24 -Domain 'a..b' -ErrorAction Stop }; Id = 'InvalidConfigValue'; Message = 'DNS domain' }
    ) {
        Assert-CmdletCase @{ Run = $Run; Id = $Id; Message = $Message }
    }
}

Describe 'Images and aliases' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the image request <Label> over REST' -ForEach @(
        @{ Label = 'from an unknown source'; Body = '{"source":"ftp"}'; Status = 400; Message = "image source 'ftp'" }
        @{ Label = 'with no source'; Body = '{}'; Status = 400; Message = 'image source' }
        @{ Label = 'from a file without a path'; Body = '{"source":"file"}'; Status = 400; Message = "field 'path' is required" }
        @{ Label = 'from a relative path'; Body = '{"source":"file","path":"rootfs.tar"}'; Status = 400; Message = 'must be an absolute path' }
        @{ Label = 'from a missing file'; Body = '{"source":"file","path":"/nonexistent/rootfs.tar"}'; Status = 404; Message = 'not found' }
        @{ Label = 'with an alias with a newline'; Body = '{"source":"file","path":"/nonexistent.tar","alias":"img\n"}'; Status = 400; Message = "image alias 'img\\x0a' is invalid" }
        @{ Label = 'with an alias with a slash'; Body = '{"source":"file","path":"/nonexistent.tar","alias":"a/b"}'; Status = 400; Message = 'image alias .* is invalid' }
        @{ Label = 'with a bad release'; Body = '{"source":"debootstrap","release":"Bad Release"}'; Status = 400; Message = 'release' }
        @{ Label = 'with an unknown field'; Body = '{"source":"busybox","compression":"xz"}'; Status = 400; Message = 'compression' }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/images'; Body = $Body; Status = $Status; Message = $Message }
    }
    It 'refuses the alias request <Label> over REST' -ForEach @(
        @{ Label = 'with a trailing newline'; Method = 'POST'; Path = '/1.0/images/aliases'; Body = '{"name":"al\n","target":"busybox"}'; Status = 400; Message = "image alias 'al\\x0a' is invalid" }
        @{ Label = 'of 129 characters'; Method = 'POST'; Path = '/1.0/images/aliases'; Body = "{`"name`":`"$('a' * 129)`",`"target`":`"busybox`"}"; Status = 400; Message = 'image alias .* is invalid' }
        @{ Label = 'without a name'; Method = 'POST'; Path = '/1.0/images/aliases'; Body = '{"target":"busybox"}'; Status = 400; Message = "field 'name' is required" }
        @{ Label = 'for a missing image'; Method = 'POST'; Path = '/1.0/images/aliases'; Body = '{"name":"other","target":"nosuch"}'; Status = 404; Message = "image 'nosuch' not found" }
        @{ Label = 'to remove a missing alias'; Method = 'DELETE'; Path = '/1.0/images/aliases/nosuch'; Body = $null; Status = 404; Message = "alias 'nosuch' not found" }
        @{ Label = 'to remove a missing image'; Method = 'DELETE'; Path = '/1.0/images/nosuch'; Body = $null; Status = 404; Message = "image 'nosuch' not found" }
        @{ Label = 'to remove an image in use'; Method = 'DELETE'; Path = '/1.0/images/busybox'; Body = $null; Status = 409; Message = 'is used by container' }
        @{ Label = 'to get a path'; Method = 'GET'; Path = '/1.0/images/..%2F..%2Fetc'; Body = $null; Status = 404; Message = 'not found' }
    ) {
        Assert-RestCase @{ Method = $Method; Path = $Path; Body = $Body; Status = $Status; Message = $Message }
    }
    It 'refuses <Label> through the image cmdlets' -ForEach @(
        @{ Label = 'an alias with a slash'; Run = { Add-SystemContainerImageAlias busybox -Alias 'a/b' -ErrorAction Stop }; Id = 'InvalidAlias'; Message = 'invalid' }
        @{ Label = 'an import of a missing file'; Run = { Import-SystemContainerImage /nonexistent/rootfs.tar -Alias imp -ErrorAction Stop }; Id = 'ImageFileNotFound'; Message = 'not found' }
        @{ Label = 'a bad release'; Run = { New-SystemContainerImage -Debootstrap -Release 'Bad Release' -Alias deb -ErrorAction Stop }; Id = 'InvalidRelease'; Message = 'release' }
    ) {
        Assert-CmdletCase @{ Run = $Run; Id = $Id; Message = $Message }
    }
}

Describe 'Container migrations' {
    AfterAll { Assert-ContainersWork }
    It 'refuses the pull <Label> over REST before it fetches anything' -ForEach @(
        @{ Label = 'in push mode'; Source = '"mode":"push","operation":"https://10.0.0.1:8443/1.0/operations/1"'; Status = 400; Message = "migration mode 'push' is not supported" }
        @{ Label = 'without an operation'; Source = '"mode":"pull"'; Status = 400; Message = "source field 'operation' must be" }
        @{ Label = 'from plain HTTP'; Source = '"mode":"pull","operation":"http://10.0.0.1:8443/1.0/operations/1"'; Status = 400; Message = "source field 'operation' must be https" }
        @{ Label = 'from a path that is no operation'; Source = '"mode":"pull","operation":"https://10.0.0.1:8443/1.0/containers/idle"'; Status = 400; Message = "source field 'operation' must be" }
        @{ Label = 'with a query of its own'; Source = '"mode":"pull","operation":"https://10.0.0.1:8443/1.0/operations/1?secret=x"'; Status = 400; Message = "source field 'operation' must be" }
        @{ Label = 'with a bad certificate'; Source = '"mode":"pull","operation":"https://10.0.0.1:8443/1.0/operations/1","certificate":"abc"'; Status = 400; Message = "source field 'certificate' must be the SHA-256" }
        @{ Label = 'without a secret'; Source = "`"mode`":`"pull`",`"operation`":`"https://10.0.0.1:8443/1.0/operations/1`",`"certificate`":`"$('a' * 64)`""; Status = 400; Message = "source field 'secrets'" }
    ) {
        $body = "{`"name`":`"m1`",`"source`":{`"type`":`"migration`",$Source}}"
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = $body; Status = $Status; Message = $Message }
    }
    It 'refuses the pull <Label> over REST before it fetches anything' -ForEach @(
        @{ Label = 'to a name the host has'; Name = 'idle'; Extra = ''; Status = 409; Message = "container 'idle' already exists here; nothing was fetched" }
        @{ Label = 'to a bad name'; Name = 'Bad_Name'; Extra = ''; Status = 400; Message = 'Bad_Name' }
        @{ Label = 'into a missing pool'; Name = 'm1'; Extra = ',"storage_pool":"nosuch"'; Status = 404; Message = 'nosuch' }
        @{ Label = 'with an image as well'; Name = 'm1'; Extra = ',"image":"busybox"'; Status = 400; Message = 'takes no image' }
        @{ Label = 'that starts the container'; Name = 'm1'; Extra = ',"start":true'; Status = 400; Message = 'made stopped' }
        @{ Label = 'live but not a move'; Name = 'm1'; Live = $true; Extra = ''; Status = 400; Message = 'a live migration is a move' }
    ) {
        $live = if ($_.ContainsKey('Live')) { ',"live":true' } else { '' }
        $source = "{`"type`":`"migration`",`"mode`":`"pull`",`"operation`":`"https://10.0.0.1:8443/1.0/operations/1`",`"certificate`":`"$('a' * 64)`",`"secrets`":{`"fs`":`"x`"}$live}"
        Assert-RestCase @{ Method = 'POST'; Path = '/1.0/containers'; Body = "{`"name`":`"$Name`",`"source`":$source$Extra}"; Status = $Status; Message = $Message }
    }
    It 'refuses the migration source <Label> over REST' -ForEach @(
        @{ Label = 'of a running container'; Path = '/1.0/containers/keeper'; Body = '{"migration":true}'; Status = 409; Message = 'stop it first, or move it by live migration' }
        @{ Label = 'live, of a stopped container'; Path = '/1.0/containers/idle'; Body = '{"migration":true,"live":true}'; Status = 409; Message = 'a live move is of a running container' }
        @{ Label = 'live, of a container without migration.stateful'; Path = '/1.0/containers/keeper'; Body = '{"migration":true,"live":true}'; Status = 400; Message = 'cannot move live: it was created without migration.stateful=true' }
        @{ Label = 'of a missing container'; Path = '/1.0/containers/nosuch'; Body = '{"migration":true}'; Status = 404; Message = 'nosuch' }
        @{ Label = 'with a name'; Path = '/1.0/containers/idle'; Body = '{"migration":true,"name":"x"}'; Status = 400; Message = 'the target daemon names' }
        @{ Label = 'that expires at once'; Path = '/1.0/containers/idle'; Body = '{"migration":true,"expires_in_seconds":0}'; Status = 400; Message = 'expires_in_seconds must be from 1' }
    ) {
        Assert-RestCase @{ Method = 'POST'; Path = $Path; Body = $Body; Status = $Status; Message = $Message }
    }
    It 'refuses a stream with no live secret over REST' {
        Assert-RestCase @{ Method = 'GET'; Path = "/1.0/operations/$([guid]::NewGuid())/stream?secret=$('0' * 64)"; Body = $null; Status = 403; Message = 'unknown, already used or expired' }
    }
    It 'refuses <Label> to the container''s own host through the cmdlets' -ForEach @(
        @{ Label = 'a copy'; Run = { Copy-SystemContainer idle -DestinationHost local -ErrorAction Stop } }
        @{ Label = 'a move'; Run = { Move-SystemContainer idle -DestinationHost local -ErrorAction Stop } }
    ) {
        Assert-CmdletCase @{ Run = $Run; Id = 'SameHost'; Message = "is the container's own host" }
    }
}

Describe 'Malformed HTTP' {
    AfterAll { Assert-ContainersWork }
    It 'refuses <Label>' -ForEach @(
        @{ Label = 'a truncated JSON object'; Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"x"'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'text that is not JSON'; Method = 'POST'; Path = '/1.0/containers'; Body = 'name=x&image=busybox'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'an array for an object'; Method = 'POST'; Path = '/1.0/containers'; Body = '[]'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'a JSON null'; Method = 'POST'; Path = '/1.0/containers'; Body = 'null'; Status = 400; Message = 'must be a JSON object' }
        @{ Label = 'an empty body'; Method = 'POST'; Path = '/1.0/containers'; Body = ''; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'a number for the name'; Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":5,"image":"busybox"}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'a list for the name'; Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":["a"],"image":"busybox"}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'a string for the config'; Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"x","image":"busybox","config":"limits.cpu=1"}'; Status = 400; Message = 'request body is not valid' }
        @{ Label = 'an unknown field'; Method = 'POST'; Path = '/1.0/containers'; Body = '{"name":"x","image":"busybox","profiles":["default"]}'; Status = 400; Message = 'profiles' }
        @{ Label = 'nesting 1000 deep'; Method = 'POST'; Path = '/1.0/containers'; Body = ('[' * 1000) + (']' * 1000); Status = 400; Message = 'request body is not valid' }
        @{ Label = 'a body that is not UTF-8'; Method = 'POST'; Path = '/1.0/containers'; Body = [byte[]](0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d); Status = 400; Message = 'request body is not valid' }
        @{ Label = 'an unknown path'; Method = 'GET'; Path = '/1.0/nosuch'; Body = $null; Status = 404; Message = 'no such endpoint: /1.0/nosuch' }
        @{ Label = 'another API version'; Method = 'GET'; Path = '/2.0'; Body = $null; Status = 404; Message = 'no such endpoint' }
        @{ Label = 'PUT on the container list'; Method = 'PUT'; Path = '/1.0/containers'; Body = '{}'; Status = 405; Message = 'method PUT is not allowed on /1.0/containers' }
        @{ Label = 'DELETE on the server'; Method = 'DELETE'; Path = '/1.0'; Body = $null; Status = 405; Message = 'method DELETE is not allowed' }
        @{ Label = 'a rename without a new name'; Method = 'POST'; Path = '/1.0/containers/keeper'; Body = '{}'; Status = 400; Message = "request field 'name' is required" }
        @{ Label = 'a snapshot rename without a new name'; Method = 'POST'; Path = '/1.0/containers/keeper/snapshots/snap0'; Body = '{}'; Status = 400; Message = "request field 'name' is required" }
        @{ Label = 'a missing operation'; Method = 'GET'; Path = '/1.0/operations/nosuch'; Body = $null; Status = 404; Message = "operation 'nosuch' not found" }
        @{ Label = 'cancelling a missing operation'; Method = 'DELETE'; Path = '/1.0/operations/nosuch'; Body = $null; Status = 404; Message = "operation 'nosuch' not found" }
        @{ Label = 'waiting on a missing operation'; Method = 'GET'; Path = '/1.0/operations/nosuch/wait?timeout=abc'; Body = $null; Status = 404; Message = "operation 'nosuch' not found" }
        @{ Label = 'events without a websocket'; Method = 'GET'; Path = '/1.0/events'; Body = $null; Status = 400; Message = 'needs a websocket upgrade' }
        @{ Label = 'a one-request exec without a websocket'; Method = 'GET'; Path = '/1.0/containers/keeper/exec'; Body = $null; Status = 400; Message = 'needs a websocket upgrade' }
        @{ Label = 'an unknown state action'; Method = 'PUT'; Path = '/1.0/containers/keeper/state'; Body = '{"action":"explode"}'; Status = 400; Message = "state action 'explode'" }
        @{ Label = 'a negative stop timeout'; Method = 'PUT'; Path = '/1.0/containers/keeper/state'; Body = '{"action":"stop","timeout":-1}'; Status = 400; Message = 'timeout must be from 0 to 3600' }
        @{ Label = 'a stop timeout of years'; Method = 'PUT'; Path = '/1.0/containers/keeper/state'; Body = '{"action":"stop","timeout":99999999}'; Status = 400; Message = 'timeout must be from 0 to 3600' }
        @{ Label = 'a state change of a missing container'; Method = 'PUT'; Path = '/1.0/containers/nosuch/state'; Body = '{"action":"start"}'; Status = 404; Message = "'nosuch' not found" }
        @{ Label = 'starting a running container'; Method = 'PUT'; Path = '/1.0/containers/keeper/state'; Body = '{"action":"start"}'; Status = 409; Message = 'already running' }
        @{ Label = 'removing a running container without force'; Method = 'DELETE'; Path = '/1.0/containers/keeper'; Body = $null; Status = 409; Message = 'is running' }
        @{ Label = 'removing a missing container'; Method = 'DELETE'; Path = '/1.0/containers/nosuch'; Body = $null; Status = 404; Message = "'nosuch' not found" }
        @{ Label = 'the state of a missing container'; Method = 'GET'; Path = '/1.0/containers/nosuch/state'; Body = $null; Status = 404; Message = "'nosuch' not found" }
        @{ Label = 'a host check for no containers'; Method = 'GET'; Path = '/1.0/host/checks?containers=0'; Body = $null; Status = 400; Message = "containers '0' is not a count" }
        @{ Label = 'a host check for a word'; Method = 'GET'; Path = '/1.0/host/checks?containers=abc'; Body = $null; Status = 400; Message = "containers 'abc' is not a count" }
        @{ Label = 'a host fix for a negative count'; Method = 'POST'; Path = '/1.0/host/checks/fix'; Body = '{"containers":-5}'; Status = 400; Message = "containers '-5' is not a count" }
        @{ Label = 'a body past 8 MiB'; Method = 'POST'; Path = '/1.0/containers'; Body = { '{"name":"' + ('h' * (9 * 1024 * 1024)) + '"}' }; Status = 413; Message = 'too large' }
    ) {
        Assert-RestCase @{ Method = $Method; Path = $Path; Body = $Body; Status = $Status; Message = $Message }
    }
}

Describe 'Operation websockets' {
    BeforeAll {
        # A streamed exec waits for its websocket: the requests below try to attach to it wrongly.
        $r = Invoke-TestApi $daemon POST /1.0/containers/keeper/exec '{"command":["sleep","30"],"stream":true}'
        $script:streamOp = $r.Body.operation
        $script:secret = $r.Body.metadata.metadata.secret
    }
    AfterAll {
        Invoke-TestApi $daemon DELETE $streamOp | Out-Null
        Invoke-TestApi $daemon GET "$streamOp/wait?timeout=30" | Out-Null
        Assert-ContainersWork
    }
    It 'refuses <Label>' -ForEach @(
        @{ Label = 'a wrong secret'; Query = '?secret=wrong'; Status = 400; Message = 'secret does not match' }
        @{ Label = 'no secret'; Query = ''; Status = 400; Message = 'secret does not match' }
        @{ Label = 'the right secret without an upgrade'; Query = 'right'; Status = 400; Message = 'needs a websocket upgrade' }
    ) {
        $q = if ($Query -eq 'right') { "?secret=$secret" } else { $Query }
        Assert-RestCase @{ Method = 'GET'; Path = "$streamOp/websocket$q"; Status = $Status; Message = $Message }
    }
    It 'refuses the websocket of an operation that has none' {
        $op = (Invoke-TestApi $daemon PUT /1.0/containers/idle/state '{"action":"freeze"}').Body.operation
        Invoke-TestApi $daemon GET "$op/wait?timeout=30" | Out-Null
        Assert-RestCase @{ Method = 'GET'; Path = "$op/websocket?secret=x"; Status = 400; Message = 'secret does not match' }
    }
}

Describe 'What passes also starts' {
    # Nothing accepted may fail only at start: a container made with each boundary value starts,
    # runs a command, and stops.
    BeforeAll {
        $script:cpus = [Environment]::ProcessorCount
        function Assert-Starts([hashtable]$Config) {
            New-SystemContainer edge -Image busybox -Config $Config | Out-Null
            try {
                $c = Start-SystemContainer edge -PassThru
                $c.Status | Should -Be 'Running'
                (Invoke-SystemContainerCommand edge true -PassThru).ExitCode | Should -Be 0
                Stop-SystemContainer edge -Force
            }
            finally { Remove-SystemContainer edge -Force -Confirm:$false }
        }
    }
    AfterAll { Assert-ContainersWork }
    It 'starts with <Key> = <Value>' -ForEach @(
        @{ Key = 'limits.cpu'; Value = 'all' }
        @{ Key = 'limits.cpu'; Value = 'range' }
        @{ Key = 'limits.cpu.allowance'; Value = '1000s/1s' }
        @{ Key = 'limits.cpu.allowance'; Value = '1ms/1ms' }
        @{ Key = 'limits.cpu.allowance'; Value = '1%' }
        @{ Key = 'limits.cpu.allowance'; Value = '100%' }
        @{ Key = 'limits.cpu.priority'; Value = '0' }
        @{ Key = 'limits.cpu.priority'; Value = '10' }
        @{ Key = 'limits.memory'; Value = '16MiB' }
        @{ Key = 'limits.memory'; Value = '100%' }
        @{ Key = 'limits.processes'; Value = '4194304' }
        @{ Key = 'security.idmap.base'; Value = '4294901759' }
        @{ Key = 'security.syscalls.allow'; Value = 'keyctl,add_key,request_key,bpf,perf_event_open,userfaultfd,io_uring_setup,io_uring_enter,io_uring_register' }
        @{ Key = 'boot.stop.timeout'; Value = '3600' }
        @{ Key = 'nic.eth0.ipv4.address'; Value = '10.66.0.254' }
        @{ Key = 'nic.eth0.hwaddr'; Value = 'fe:ff:ff:ff:ff:fe' }
    ) {
        $v = switch ($Value) { 'all' { "$cpus" } 'range' { "0-$($cpus - 1)" } default { $Value } }
        $config = @{ $Key = $v }
        if ($Key -like 'nic.*') { $config['nic.eth0.network'] = 'badnet' }
        Assert-Starts $config
    }
    It 'starts with environment keys at the largest size each, and at the config''s whole share' {
        $config = @{}
        # Four NAME=value strings of 131071 bytes: 524288 bytes with their NULs, the config's share exactly.
        foreach ($i in 1..4) { $config["environment.V$i"] = 'e' * (131071 - 3) }
        Assert-Starts $config
    }
    It 'runs an exec at the argument limits' {
        $args1024 = @('true') + @(1..1023 | ForEach-Object { 'a' })
        (Invoke-SystemContainerCommand keeper -Command $args1024 -PassThru).ExitCode | Should -Be 0
        (Invoke-SystemContainerCommand keeper -Command @('test', ('w' * 131071), '!=', 'x') -PassThru).ExitCode | Should -Be 0
    }
    It 'starts after a Set of boundary values on a stopped container' {
        Set-SystemContainer idle -Config @{ 'limits.cpu.allowance' = '1000s/1s'; 'limits.memory' = '100%'; 'limits.cpu' = "$cpus" }
        try {
            Start-SystemContainer idle
            (Invoke-SystemContainerCommand idle true -PassThru).ExitCode | Should -Be 0
            Stop-SystemContainer idle -Force
        }
        finally { Set-SystemContainer idle -Config @{ 'limits.cpu.allowance' = ''; 'limits.memory' = ''; 'limits.cpu' = '' } }
    }
}
