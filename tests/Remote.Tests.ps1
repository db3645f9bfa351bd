# Remote hosts over mutual TLS: a server daemon's HTTPS listener, trust tokens, pinned server
# certificates, revocation, cmdlets that act on a remote, and images and containers pulled from
# one daemon by the other. Two daemons, each in a network namespace of its own, joined by a veth
# pair this file makes; the client side runs in a pwsh inside the client daemon's namespace, so
# no traffic leaves the two namespaces.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:client = $null; $script:server = $null; $script:veth = $null
    $script:client = Start-TestDaemon
    $script:server = Start-TestDaemon
    $script:veth = New-TestVethPair $client $server '10.251.77'
    $script:address = '10.251.77.2:8443'

    # Server-side cmdlets go to the server daemon's unix socket.
    $env:SYSTEMCONTAINERS_SOCKET = $server.Socket
    $env:SYSTEMCONTAINERS_RUN_DIR = $server.RunDir
    Set-SystemContainerHost -HttpsAddress $address
    New-SystemContainer web -Image (Get-TestImage) -Start | Out-Null

    $script:pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $script:module = Join-Path $PSScriptRoot '../SystemContainers.psd1'

    function script:Start-Client([string]$Config, [string]$Script, [hashtable]$Values = @{}) {
        <# Starts Script in a pwsh in the client's namespace, with its own config dir and Values as variables. #>
        $prelude = "`$ErrorActionPreference = 'Stop'; Set-StrictMode -Version Latest; Import-Module '$module';"
        $psi = [Diagnostics.ProcessStartInfo]::new('nsenter')
        foreach ($a in @("--net=/run/netns/$($client.Netns)", '--', [Environment]::ProcessPath, $pwshDll, '-NoProfile', '-NonInteractive', '-EncodedCommand')) { $psi.ArgumentList.Add($a) }
        foreach ($k in $Values.Keys) {
            $prelude += " `$$k = `$env:SC_TEST_$k;"
            $psi.Environment["SC_TEST_$k"] = [string]$Values[$k]
        }
        $psi.ArgumentList.Add([Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes("$prelude`n$Script")))
        $psi.Environment['XDG_CONFIG_HOME'] = Join-Path $client.Dir $Config
        $psi.Environment['SYSTEMCONTAINERS_SOCKET'] = $client.Socket
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.UseShellExecute = $false
        [Diagnostics.Process]::Start($psi)
    }
    function script:Wait-Client([Diagnostics.Process]$Process) {
        <# Its output (stdout, then stderr) once it ended. #>
        $stderr = $Process.StandardError.ReadToEndAsync()
        $stdout = $Process.StandardOutput.ReadToEnd()
        if (-not $Process.WaitForExit(180000)) { $Process.Kill(); throw 'the client pwsh did not end within 180 s' }
        [pscustomobject]@{ ExitCode = $Process.ExitCode; Output = ($stdout.TrimEnd() + $(if ($stderr.Result) { "`n" + $stderr.Result.TrimEnd() })) }
    }
    function script:Invoke-Client([string]$Config, [string]$Script, [hashtable]$Values = @{}) {
        Wait-Client (Start-Client $Config $Script $Values)
    }
}
AfterAll {
    # The btrfs pools' loop files are unmounted and detached even when a test failed midway.
    foreach ($d in @($script:server, $script:client)) {
        if (-not $d) { continue }
        $env:SYSTEMCONTAINERS_SOCKET = $d.Socket
        Remove-TestStorage $d
    }
    $env:SYSTEMCONTAINERS_SOCKET = $null
    if ($script:client -and $script:veth) { Invoke-InNetns $client ip @('link', 'del', $veth) 2>$null }
    Stop-TestDaemon $script:server
    Stop-TestDaemon $script:client
}

Describe 'HTTPS listener' {
    It 'listens on core.https_address with the certificate it keeps in the state dir' {
        $h = Get-SystemContainerHost
        $h.Config['core.https_address'] | Should -Be $address
        $h.ServerFingerprint | Should -Match '^[0-9a-f]{64}$'
        (Get-Content -Raw (Join-Path $server.StateDir 'server.json')) | Should -Match ([regex]::Escape($address))
        (Get-Item (Join-Path $server.StateDir 'server.key')).UnixMode | Should -Be '-rw-------'
        Invoke-InNetns $server ss @('-Htln', "sport = :8443") | Should -Match '10\.251\.77\.2:8443'
    }
    It 'speaks TLS 1.3 only' {
        Invoke-InNetns $client curl @('-sk', '--tls-max', '1.2', '-o', '/dev/null', "https://$address/1.0")
        $LASTEXITCODE | Should -Not -Be 0
        Invoke-InNetns $client curl @('-sk', '--tlsv1.3', '-o', '/dev/null', "https://$address/1.0")
        $LASTEXITCODE | Should -Be 0
    }
    It 'shows an untrusted client only GET /1.0 and refuses everything else with 403' {
        # Without a certificate, and with one the server never trusted.
        $key = Join-Path $client.Dir 'stranger.key'; $crt = Join-Path $client.Dir 'stranger.crt'
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj /CN=stranger -keyout $key -out $crt -days 1 2>$null
        foreach ($identity in @(@(), @('--cert', $crt, '--key', $key))) {
            $curl = @('-sk', '--tlsv1.3') + $identity
            $info = Invoke-InNetns $client curl ($curl + @("https://$address/1.0")) | ConvertFrom-Json
            $info.metadata.auth | Should -Be 'untrusted'
            $info.metadata.server_fingerprint | Should -Be (Get-SystemContainerHost).ServerFingerprint
            $info.metadata.containers | Should -Be 0 -Because 'an untrusted client learns nothing of what the host holds'
            foreach ($req in @(@('GET', '/1.0/containers'), @('GET', '/1.0/certificates'), @('DELETE', '/1.0/containers/web'), @('PATCH', '/1.0'),
                    @('POST', '/1.0/certificates/tokens'), @('GET', '/1.0/events'))) {
                $status = Invoke-InNetns $client curl ($curl + @('-o', '/dev/null', '-w', '%{http_code}', '-X', $req[0], "https://$address$($req[1])"))
                $status | Should -Be '403' -Because "$($req[0]) $($req[1]) from an untrusted client"
            }
        }
        (Get-SystemContainer web).Status | Should -Be 'Running'
    }
}

Describe 'Joining by token' {
    BeforeAll {
        $script:token = (New-SystemContainerTrustToken -ClientName laptop).Token
        $script:joined = Invoke-Client 'laptop' 'Add-SystemContainerRemote -Name r -Token $token | ConvertTo-Json -Compress; (Get-SystemContainerHost -Remote r).Auth' @{ token = $token }
    }
    It 'trusts the client certificate and pins the server one' {
        $joined.ExitCode | Should -Be 0 -Because $joined.Output
        $remote = ($joined.Output -split "`n")[0] | ConvertFrom-Json
        $remote.ServerFingerprint | Should -Be (Get-SystemContainerHost).ServerFingerprint
        $remote.Address | Should -Be $address
        ($joined.Output -split "`n")[1] | Should -Be 'trusted'
        $trust = Get-SystemContainerTrust laptop
        $crt = Join-Path $client.Dir 'laptop/systemcontainers/client.crt'
        $trust.Fingerprint | Should -Be ([SystemContainers.Api.SystemContainersClient]::FingerprintOf([Security.Cryptography.X509Certificates.X509Certificate2]::CreateFromPem((Get-Content -Raw $crt)).RawData))
        (Get-Item (Join-Path $client.Dir 'laptop/systemcontainers/client.key')).UnixMode | Should -Be '-rw-------'
    }
    It 'refuses the same token a second time' {
        $r = Invoke-Client 'thief' 'Add-SystemContainerRemote -Name r -Token $token' @{ token = $token }
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'unknown or already used'
        @(Get-SystemContainerTrust).Name | Should -Be @('laptop')
    }
    It 'refuses an expired token' {
        $short = (New-SystemContainerTrustToken -ClientName late -ExpiresInSeconds 1).Token
        Start-Sleep -Seconds 2
        $r = Invoke-Client 'late' 'Add-SystemContainerRemote -Name r -Token $token' @{ token = $short }
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'expired'
        Get-SystemContainerTrust late -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'refuses a server whose certificate is not the pinned one' {
        # The same address under another name, pinned to another certificate: the handshake must fail.
        $r = Invoke-Client 'laptop' @'
$file = Join-Path $env:XDG_CONFIG_HOME 'systemcontainers/remotes.json'
$remotes = @(Get-Content -Raw $file | ConvertFrom-Json)
$impostor = $remotes[0].PSObject.Copy(); $impostor.name = 'impostor'; $impostor.serverFingerprint = 'f' * 64
ConvertTo-Json -InputObject @($remotes + $impostor) | Set-Content $file
Get-SystemContainer -Remote impostor
'@
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'cannot reach systemcontainerd at https://10\.251\.77\.2:8443'
    }
    It 'runs commands over TLS' {
        $r = Invoke-Client 'laptop' 'Invoke-SystemContainerCommand -Remote r web -- hostname'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Be 'web'
    }
    It 'routes a pipeline back to the host its objects came from' {
        $r = Invoke-Client 'laptop' '(Get-SystemContainer -Remote r web).Remote; Get-SystemContainer -ComputerName r web | Stop-SystemContainer -Force'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Be 'r'
        (Get-SystemContainer web).Status | Should -Be 'Stopped'
        $env:SYSTEMCONTAINERS_SOCKET = $client.Socket
        Get-SystemContainer web -ErrorAction SilentlyContinue | Should -BeNullOrEmpty -Because 'the client daemon has no such container'
        $env:SYSTEMCONTAINERS_SOCKET = $server.Socket
    }
    It 'sends each container of a pipeline that mixes hosts to the host it came from' {
        Start-SystemContainer web
        $env:SYSTEMCONTAINERS_SOCKET = $client.Socket
        try {
            New-SystemContainer lweb -Image (Get-TestImage) -Start | Out-Null
            # Stop collects its input and acts at the end: the remote's web first, the local lweb last.
            $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; @(Get-SystemContainer -Remote r web) + @(Get-SystemContainer lweb) | Stop-SystemContainer -Force; (Get-SystemContainer -Remote r web).Status; (Get-SystemContainer lweb).Status'
            $r.ExitCode | Should -Be 0 -Because $r.Output
            $r.Output -split "`n" | Should -Be @('Stopped', 'Stopped')
        }
        finally {
            Remove-SystemContainer lweb -Force -Confirm:$false -ErrorAction SilentlyContinue
            $env:SYSTEMCONTAINERS_SOCKET = $server.Socket
        }
        (Get-SystemContainer web).Status | Should -Be 'Stopped'
    }
}

Describe 'Copying images between daemons' {
    BeforeAll {
        # The server's busybox image goes to the client daemon, pulled over the veth pair.
        $script:fp = (Get-SystemContainerImage busybox).Fingerprint
        $script:serverCert = (Get-SystemContainerHost).ServerFingerprint
        $script:clientImages = Join-Path $client.StateDir 'images'
        # The client daemon built a busybox image of its own for an earlier test (another tarball, another fingerprint).
        foreach ($image in @((Invoke-TestApi $client GET /1.0/images).Body.metadata)) { (Invoke-TestApi $client DELETE $image).Status | Should -Be 200 }
        function script:New-ImageSecret([string]$Body = '{}') {
            $r = Invoke-TestApi $server POST "/1.0/images/$fp/secret" $Body
            $r.Status | Should -Be 202 -Because ($r.Body | ConvertTo-Json -Compress -Depth 5)
            $r.Body.metadata.metadata.secret
        }
        function script:Get-Export([string]$Fingerprint, [string]$Secret, [string]$Out = '/dev/null') {
            <# An untrusted daemon's fetch: no client certificate, only the secret. #>
            Invoke-InNetns $client curl @('-sk', '--tlsv1.3', '-o', $Out, '-w', '%{http_code}', "https://$address/1.0/images/$Fingerprint/export?secret=$Secret")
        }
        function script:Assert-NoImageOnClient {
            @(Get-ChildItem -Force $clientImages) | Should -BeNullOrEmpty -Because 'a failed copy leaves no image and no staging on the target'
            (Invoke-TestApi $client GET /1.0/images).Body.metadata | Should -BeNullOrEmpty
        }
    }

    It 'lets an untrusted daemon fetch an image once with its secret, and refuses a reused, wrong or expired one with 403' {
        $secret = New-ImageSecret
        $secret | Should -Match '^[0-9a-f]{64}$'
        $file = Join-Path $client.Dir 'export.tar'
        Get-Export $fp $secret $file | Should -Be '200'
        (Get-FileHash -Algorithm SHA256 $file).Hash.ToLower() | Should -Be $fp
        Get-Export $fp $secret | Should -Be '403' -Because 'a secret is used once'
        Get-Export $fp ('0' * 64) | Should -Be '403' -Because 'a secret the server never issued'
        $other = New-ImageSecret
        Get-Export ('ab' * 32) $other | Should -Be '403' -Because 'a secret is for one image'
        Invoke-InNetns $client curl @('-sk', '--tlsv1.3', '-o', '/dev/null', '-w', '%{http_code}', "https://$address/1.0/containers?secret=$other") |
            Should -Be '403' -Because 'a secret opens nothing but its export'
        Get-Export $fp $other | Should -Be '200' -Because 'the refused attempts did not use the secret up'
        $short = New-ImageSecret '{"expires_in_seconds": 1}'
        Start-Sleep -Seconds 2
        Get-Export $fp $short | Should -Be '403' -Because 'the secret expired'
    }
    It 'refuses a pull whose fingerprint or server certificate is not the one the secret and the source have' {
        foreach ($case in @(@{ fingerprint = 'ab' * 32; certificate = $serverCert; error = 'SourceRefused' },
                @{ fingerprint = $fp; certificate = 'cd' * 32; error = 'SourceUnreachable' })) {
            $body = @{ source = 'pull'; server = "https://$address"; secret = (New-ImageSecret); certificate = $case.certificate; fingerprint = $case.fingerprint } | ConvertTo-Json
            $op = (Invoke-TestApi $client POST '/1.0/images?wait=60' $body).Body.metadata
            $op.status | Should -Be 'Failure'
            $op.err_id | Should -Be $case.error -Because $op.err
            Assert-NoImageOnClient
        }
    }
    It 'refuses bytes whose checksum is not the fingerprint and leaves nothing on the target' {
        $tarball = Join-Path $server.StateDir "images/$fp/tarball"
        $size = (Get-Item $tarball).Length
        [IO.File]::AppendAllText($tarball, 'tampered')
        try {
            $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; Copy-SystemContainerImage -Remote r busybox -Destination local'
        }
        finally {
            $f = [IO.File]::Open($tarball, 'Open'); $f.SetLength($size); $f.Dispose()
        }
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'has SHA-256 [0-9a-f]{64}, not the fingerprint'
        Assert-NoImageOnClient
    }
    It 'leaves nothing on the target when it dies in the middle of a transfer' {
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = 'import-received'
        try { Stop-DaemonProcess $client; Start-DaemonProcess $client }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; Copy-SystemContainerImage -Remote r busybox -Destination local'
        $r.ExitCode | Should -Not -Be 0
        Get-Content -Raw $client.Log | Should -Match 'SIGKILL at import-received'
        Stop-DaemonProcess $client
        Start-DaemonProcess $client
        Assert-NoImageOnClient
    }
    It 'copies an image daemon to daemon, and a container starts from it on the target' {
        $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; Copy-SystemContainerImage -Remote r busybox -Destination local -Alias copied -CopyAliases | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $copied = $r.Output | ConvertFrom-Json
        $copied.Fingerprint | Should -Be $fp
        @($copied.Aliases | Sort-Object) | Should -Be @('busybox', 'copied')
        (Get-FileHash -Algorithm SHA256 (Join-Path $clientImages "$fp/tarball")).Hash.ToLower() | Should -Be $fp
        $env:SYSTEMCONTAINERS_SOCKET = $client.Socket
        try {
            New-SystemContainer fromcopy -Image copied -Network none -Start | Out-Null
            (Get-SystemContainer fromcopy).Status | Should -Be 'Running'
            Invoke-SystemContainerCommand fromcopy -- hostname | Should -Be 'fromcopy'
        }
        finally {
            Remove-SystemContainer fromcopy -Force -Confirm:$false -ErrorAction SilentlyContinue
            $env:SYSTEMCONTAINERS_SOCKET = $server.Socket
        }
    }
    It 'skips a second copy of an image the target has' {
        $secrets = { @((Invoke-TestApi $server GET /1.0/operations).Body.metadata | Where-Object description -like 'Secret to send image*').Count }
        $before = & $secrets
        $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; (Copy-SystemContainerImage -Remote r busybox -Destination local -Verbose 4>&1) -join "|"'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Match 'has image [0-9a-f]{12} already: not copied'
        & $secrets | Should -Be $before -Because 'no secret is asked for an image the target has'
    }
    It 'withdraws its unused secret when the destination cannot reach the source and -ErrorAction Stop ends the pipeline' {
        $env:SYSTEMCONTAINERS_SOCKET = $client.Socket
        try {
            $local = New-SystemContainerImage -Busybox -Alias localbox
            # Loopback of the client's namespace: the server, told to pull from there, cannot connect.
            Set-SystemContainerHost -HttpsAddress '127.0.0.1:8443'
            $r = Invoke-Client 'laptop' '$ProgressPreference = "SilentlyContinue"; Copy-SystemContainerImage localbox -Destination r -ErrorAction Stop; "went on"'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match 'cannot fetch image'
            $r.Output | Should -Not -Match 'went on'
            $ops = @((Invoke-TestApi $client GET /1.0/operations).Body.metadata | Where-Object description -eq "Secret to send image $($local.Fingerprint.Substring(0, 12))")
            $ops.Count | Should -Be 1
            (Invoke-TestApi $client GET "/1.0/operations/$($ops[0].id)/wait?timeout=30").Body.metadata.status | Should -Be 'Cancelled' -Because 'the pull never used the secret, so the cmdlet withdrew it'
        }
        finally {
            Set-SystemContainerHost -HttpsAddress ''
            Remove-SystemContainerImage localbox -Confirm:$false -ErrorAction SilentlyContinue
            $env:SYSTEMCONTAINERS_SOCKET = $server.Socket
        }
        Get-SystemContainerImage | Where-Object Fingerprint -eq $local.Fingerprint | Should -BeNullOrEmpty -Because 'nothing reached the destination'
    }
}

Describe 'Default remote' {
    It 'is local until another is chosen, and cmdlets without -Remote use it' {
        $r = Invoke-Client 'laptop' @'
(Get-SystemContainerRemote local, r | ForEach-Object { "$($_.Name)=$($_.Default)" }) -join ','
Set-SystemContainerRemote r -Default
(Get-SystemContainerRemote local, r | ForEach-Object { "$($_.Name)=$($_.Default)" }) -join ','
(Get-SystemContainerHost).Pid
$local = Get-SystemContainerHost -Remote local
"$($local.Pid) $($local.Remote)"
# A local object piped on goes back to the local daemon, not to the default.
($local | Get-SystemContainerHost).Pid
'@
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output -split "`n" | Should -Be @('local=True,r=False', 'local=False,r=True', "$($server.Pid)", "$($client.Pid) local", "$($client.Pid)")
        $next = Invoke-Client 'laptop' '(Get-SystemContainerHost).Pid; Set-SystemContainerRemote local -Default; (Get-SystemContainerHost).Pid'
        $next.Output -split "`n" | Should -Be @("$($server.Pid)", "$($client.Pid)") -Because 'the default is kept in the config dir'
    }
    It 'falls back to local when the default remote is removed, and refuses unknown or reserved names' {
        $r = Invoke-Client 'laptop' @'
$file = Join-Path $env:XDG_CONFIG_HOME 'systemcontainers/remotes.json'
$remotes = @(Get-Content -Raw $file | ConvertFrom-Json)
$twin = $remotes[0].PSObject.Copy(); $twin.name = 'twin'
ConvertTo-Json -InputObject @($remotes + $twin) | Set-Content $file
Set-SystemContainerRemote twin -Default
Remove-SystemContainerRemote twin -Force
(Get-SystemContainerRemote | Where-Object Default).Name
try { Set-SystemContainerRemote nosuch -Default -ErrorAction Stop } catch { $_.FullyQualifiedErrorId }
try { Add-SystemContainerRemote local -Token x -ErrorAction Stop } catch { $_.FullyQualifiedErrorId }
'@
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $lines = $r.Output -split "`n"
        $lines[0] | Should -Be 'local'
        $lines[1] | Should -Match '^RemoteNotFound'
        $lines[2] | Should -Match '^RemoteExists'
    }
}

Describe 'Connections of a session' {
    It 'opens no connection per exec or for an events stream: they are HTTP/2 streams of the connections the session has' {
        Start-SystemContainer web
        $r = Invoke-Client 'laptop' @'
Invoke-SystemContainerCommand -Remote r web -- true
Get-SystemContainer -Remote r web | Out-Null
"before: " + @(ss -Htn state established dst $address).Count
$events = Start-ThreadJob { Import-Module $using:module; Get-SystemContainerEvent -Remote r -Follow -ErrorAction Stop }
Start-Sleep -Seconds 1
for ($i = 0; $i -lt 5; $i++) { Invoke-SystemContainerCommand -Remote r web -- true }
Get-SystemContainer -Remote r web | Out-Null
"events: $($events.State)"
"after: " + @(ss -Htn state established dst $address).Count
Stop-Job $events
'@ @{ module = $module; address = $address }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Match 'events: Running'
        $before = [int]([regex]::Match($r.Output, 'before: (\d+)').Groups[1].Value)
        $before | Should -BeGreaterThan 0
        $r.Output | Should -Match "after: $before\b" -Because 'with HTTP/1.1 an open events websocket holds a connection of its own and every exec upgrades one'
    }
}

Describe 'Revocation' {
    It 'refuses the next request and closes the open events connection' {
        $flags = Join-Path $client.Dir 'flags'
        New-Item -ItemType Directory $flags | Out-Null
        $process = Start-Client 'laptop' @'
$events = Start-ThreadJob { Import-Module $using:module; Get-SystemContainerEvent -Remote r -Follow -ErrorAction Stop }
# The stream is open once it carries an event: restart web until one arrives.
for ($i = 0; -not $events.HasMoreData -and $events.State -in 'NotStarted', 'Running' -and $i -lt 10; $i++) {
    Restart-SystemContainer -Remote r web -Force -Timeout 0
    Start-Sleep -Seconds 2
}
"subscribed: $($events.HasMoreData) ($($events.State) $($events.Error))"
New-Item (Join-Path $flags 'ready') | Out-Null
while (-not (Test-Path (Join-Path $flags 'revoked'))) { Start-Sleep -Milliseconds 100 }
$null = Wait-Job $events -Timeout 30
"events: $($events.State)"
try { Get-SystemContainer -Remote r | Out-Null; 'next: allowed' } catch { "next: $($_.FullyQualifiedErrorId)" }
'@ @{ flags = $flags; module = $module }
        try {
            Wait-Until { (Test-Path (Join-Path $flags 'ready')) -or $process.HasExited } -TimeoutSeconds 120 -What 'the client to subscribe to events'
            if ($process.HasExited) { throw "the client ended before it subscribed: $((Wait-Client $process).Output)" }
            Remove-SystemContainerTrust laptop -Force
            New-Item (Join-Path $flags 'revoked') | Out-Null
            $r = Wait-Client $process
        }
        finally { if (-not $process.HasExited) { $process.Kill() } }
        $r.Output | Should -Match 'subscribed: True'
        $r.Output | Should -Match 'events: (Failed|Completed)'
        $r.Output | Should -Match 'next: Untrusted'
        Get-SystemContainerTrust -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
    It 'answers a client that revokes itself, then refuses it' {
        $t = (New-SystemContainerTrustToken -ClientName self).Token
        $r = Invoke-Client 'self' @'
Add-SystemContainerRemote -Name r -Token $token | Out-Null
Remove-SystemContainerTrust -Remote r self -Force
'revoked'
try { Get-SystemContainer -Remote r | Out-Null; 'next: allowed' } catch { "next: $($_.FullyQualifiedErrorId)" }
'@ @{ token = $t }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Match 'revoked'
        $r.Output | Should -Match 'next: Untrusted'
    }
}

Describe 'Copying and moving containers between daemons' {
    # The server daemon is the source (remote r of the client pwsh), the client daemon the target
    # ("local"), which pulls the container over the veth pair. Each has a btrfs pool on a loop file
    # it makes, and a network of the same subnet, so a fixed address means the same on both.
    BeforeAll {
        function script:Use-Daemon($D) {
            $env:SYSTEMCONTAINERS_SOCKET = $D.Socket
            $env:SYSTEMCONTAINERS_RUN_DIR = $D.RunDir
        }
        function script:Invoke-In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
        foreach ($d in @($server, $client)) {
            Use-Daemon $d
            New-SystemContainerStoragePool pbt -Driver btrfs -Size 1GiB | Out-Null
            New-SystemContainerNetwork mig -IPv4 10.123.0.1/24 | Out-Null
        }
        Use-Daemon $server
        $script:moverToken = (New-SystemContainerTrustToken -ClientName mover).Token
        $joined = Invoke-Client 'mover' 'Add-SystemContainerRemote -Name r -Token $token | Out-Null' @{ token = $moverToken }
        $joined.ExitCode | Should -Be 0 -Because $joined.Output
        # A stopped container with two snapshots, each holding another marker, in a pool of each kind.
        function script:New-Marked([string]$Name, [string]$Pool, [string]$Address) {
            New-SystemContainer $Name -Image (Get-TestImage) -StoragePool $Pool -Network mig -Config @{ 'nic.eth0.ipv4.address' = $Address } | Out-Null
            Start-SystemContainer $Name
            Invoke-In $Name 'echo one > /root/marker && mkdir -p /srv && head -c 1000000 /dev/urandom > /srv/noise'
            Stop-SystemContainer $Name -Force
            Checkpoint-SystemContainer $Name -SnapshotName s1 | Out-Null
            Start-SystemContainer $Name
            Invoke-In $Name 'echo two > /root/marker && echo later > /root/added'
            Stop-SystemContainer $Name -Force
            Checkpoint-SystemContainer $Name -SnapshotName s2 | Out-Null
            Start-SystemContainer $Name
            Invoke-In $Name 'echo three > /root/marker'
            Stop-SystemContainer $Name -Force
        }
        New-Marked ov default 10.123.0.50
        New-Marked bt pbt 10.123.0.51
        function script:Get-Hash([string]$Name) {
            Start-SystemContainer $Name
            try { Invoke-In $Name 'cat /root/marker; sha256sum /srv/noise | cut -d" " -f1' } finally { Stop-SystemContainer $Name -Force }
        }
        $script:hashes = @{ ov = Get-Hash ov; bt = Get-Hash bt }
        $script:sourceMac = @{ ov = (Get-SystemContainer ov).Config['nic.eth0.hwaddr']; bt = (Get-SystemContainer bt).Config['nic.eth0.hwaddr'] }
        function script:Invoke-Mover([string]$Script) { Invoke-Client 'mover' "`$ProgressPreference = 'SilentlyContinue'; $Script" }
        # What a failed transfer must not leave on the target: a container, a state or staging directory, a volume, a snapshot.
        function script:Get-Traces {
            $dirs = @((Join-Path $client.StateDir 'containers'), (Join-Path $client.StateDir 'storage-pools/pbt/containers'),
                (Join-Path $client.StateDir 'storage-pools/pbt/containers-snapshots'), (Join-Path $client.StateDir 'storage-pools/pbt/receiving'))
            @(foreach ($dir in $dirs) { if (Test-Path $dir) { Get-ChildItem -Force -Name $dir | ForEach-Object { "$dir/$_" } } }) +
            @((Invoke-TestApi $client GET /1.0/containers).Body.metadata) | Sort-Object
        }
        function script:Assert-SourceIntact([string]$Name) {
            Use-Daemon $server
            $c = Get-SystemContainer $Name
            $c.Status | Should -Be 'Stopped'
            $c.Config['nic.eth0.hwaddr'] | Should -Be $sourceMac[$Name]
            @(Get-SystemContainerSnapshot $Name | ForEach-Object SnapshotName) | Should -Be @('s1', 's2')
            Get-Hash $Name | Should -Be $hashes[$Name]
        }
        function script:Get-SendOperations([string]$Name) {
            @((Invoke-TestApi $server GET /1.0/operations).Body.metadata | Where-Object description -eq "Sending container $Name")
        }
        Use-Daemon $client
        $script:before = Get-Traces
    }
    AfterAll {
        foreach ($d in @($server, $client)) {
            if (-not $d) { continue }
            Use-Daemon $d
            Get-SystemContainer -ErrorAction SilentlyContinue | Where-Object Name -ne 'web' | Remove-SystemContainer -Force -ErrorAction SilentlyContinue
            Remove-SystemContainerNetwork mig -Force -ErrorAction SilentlyContinue
            Get-SystemContainerStoragePool -ErrorAction SilentlyContinue | Where-Object Name -ne 'default' | Remove-SystemContainerStoragePool -Force -ErrorAction SilentlyContinue
        }
        Use-Daemon $server
    }

    It 'lets an untrusted daemon fetch the stream once with the secret, and refuses a wrong or reused one with 403' {
        Use-Daemon $server
        $op = (Invoke-TestApi $server POST /1.0/containers/ov '{"migration": true}').Body
        $op.type | Should -Be 'async'
        $secret = $op.metadata.metadata.secret
        $secret | Should -Match '^[0-9a-f]{64}$'
        $url = "https://$address$($op.operation)/stream"
        $file = Join-Path $client.Dir 'stream.tar'
        $curl = @('-sk', '--tlsv1.3', '--http2', '-w', '%{http_code}')
        Invoke-InNetns $client curl ($curl + @('-o', '/dev/null', "$($url)?secret=$('0' * 64)")) | Should -Be '403' -Because 'a secret the server never issued'
        Invoke-InNetns $client curl ($curl + @('-o', '/dev/null', "https://$address/1.0/containers/ov/backup?secret=$secret")) | Should -Be '403' -Because 'the secret opens nothing but its stream'
        Invoke-InNetns $client curl ($curl + @('-o', $file, "$($url)?secret=$secret")) | Should -Be '200'
        $members = @(tar -tf $file)
        $members[0] | Should -Be 'backup/index.yaml'
        $members | Should -Contain 'backup/snapshots/s1/rootfs/root/marker'
        $members | Should -Contain 'backup/container/rootfs/root/added'
        Invoke-InNetns $client curl ($curl + @('-o', '/dev/null', "$($url)?secret=$secret")) | Should -Be '403' -Because 'a secret is used once'
        (Invoke-TestApi $server GET "$($op.operation)/wait?timeout=60").Body.metadata.status | Should -Be 'Success'
    }
    It 'refuses a name the target has before any data moves' {
        Use-Daemon $client
        New-SystemContainer ov -Image (Get-TestImage) -Network none | Out-Null
        try {
            $sends = (Get-SendOperations ov).Count
            $r = Invoke-Mover 'Copy-SystemContainer -Remote r ov -DestinationHost local -StoragePool pbt'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match "container 'ov' already exists here; nothing was fetched"
            $ops = Get-SendOperations ov
            $ops.Count | Should -Be ($sends + 1)
            (Invoke-TestApi $server GET "/1.0/operations/$($ops[-1].id)/wait?timeout=30").Body.metadata.status | Should -Be 'Cancelled' -Because 'nothing was sent, and the unused secret was withdrawn'
            Use-Daemon $client
            (Get-SystemContainer ov).StoragePool | Should -Be 'default' -Because 'the container the target had is untouched'
        }
        finally { Use-Daemon $client; Remove-SystemContainer ov -Force }
        Use-Daemon $client
        Get-Traces | Should -Be $before
    }
    It 'refuses to move a running container, which would need live migration' {
        Use-Daemon $server
        Start-SystemContainer bt
        try {
            $r = Invoke-Mover 'Move-SystemContainer -Remote r bt -DestinationHost local -StoragePool pbt'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match 'live migration'
            Use-Daemon $server
            (Get-SystemContainer bt).Status | Should -Be 'Running'
        }
        finally { Use-Daemon $server; Stop-SystemContainer bt -Force }
        Use-Daemon $client
        Get-Traces | Should -Be $before
    }
    It 'leaves the source intact and nothing on the target when the <Side> daemon dies mid-transfer' -ForEach @(
        @{ Side = 'source'; Point = 'migration-sent-part'; Container = 'ov'; Command = 'Copy-SystemContainer -Remote r ov -DestinationHost local -Destination cut1 -StoragePool pbt' }
        @{ Side = 'target'; Point = 'backup-import-part'; Container = 'bt'; Command = 'Move-SystemContainer -Remote r bt -DestinationHost local -Destination cut2 -StoragePool pbt' }
    ) {
        $killed = if ($Side -eq 'source') { $server } else { $client }
        $env:SYSTEMCONTAINERS_TEST_CRASH_AT = $Point
        try { Stop-DaemonProcess $killed; Start-DaemonProcess $killed }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_CRASH_AT }
        $r = Invoke-Mover $Command
        $r.ExitCode | Should -Not -Be 0
        Get-Content -Raw $killed.Log | Should -Match "SIGKILL at $Point"
        Stop-DaemonProcess $killed
        Start-DaemonProcess $killed
        Use-Daemon $client
        Get-Traces | Should -Be $before -Because 'a failed import removes what it made, and the next start what a killed one left'
        Assert-SourceIntact $Container
    }
    It 'refuses a container larger than the target pool''s free space mid-transfer, leaving the source and nothing on the target' {
        Use-Daemon $client
        New-SystemContainerStoragePool ptiny -Driver btrfs -Size 256MiB | Out-Null
        Use-Daemon $server
        New-SystemContainer fat -Image (Get-TestImage) -Network none | Out-Null
        try {
            Start-SystemContainer fat
            Invoke-In fat "head -c $(320 * 1MB) /dev/urandom > /big"
            Stop-SystemContainer fat -Force
            $r = Invoke-Mover 'Move-SystemContainer -Remote r fat local -StoragePool ptiny'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match 'the import limit'
            Use-Daemon $server
            (Get-SystemContainer fat).Status | Should -Be 'Stopped' -Because 'a failed move leaves the source'
            Use-Daemon $client
            Get-Traces | Should -Be $before
            @(Get-ChildItem -Force -Name (Join-Path $client.StateDir 'storage-pools/ptiny/containers') -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
        }
        finally {
            Use-Daemon $server; Remove-SystemContainer fat -Force
            Use-Daemon $client; Remove-SystemContainerStoragePool ptiny -Force
        }
    }
    It 'refuses a stream whose checksum is not the one the source sent: the move keeps nothing on the target and leaves the source intact' {
        $env:SYSTEMCONTAINERS_TEST_FAULT_AT = 'migration-wrong-checksum'
        try { Stop-DaemonProcess $server; Start-DaemonProcess $server }
        finally { Remove-Item Env:SYSTEMCONTAINERS_TEST_FAULT_AT }
        try {
            $r = Invoke-Mover 'Move-SystemContainer -Remote r ov -DestinationHost local -Destination lied -StoragePool pbt'
            $r.ExitCode | Should -Not -Be 0
            $r.Output | Should -Match "the stream of container lied has XXH128 [0-9a-f]{32}, not the 0{32} the source sent"
            (Invoke-TestApi $server GET "/1.0/operations/$((Get-SendOperations ov)[-1].id)/wait?timeout=30").Body.metadata.status | Should -Be 'Success' -Because 'the source sent the whole stream; only its trailer lied'
        }
        finally {
            Stop-DaemonProcess $server
            Start-DaemonProcess $server
        }
        Use-Daemon $client
        Get-Traces | Should -Be $before
        Assert-SourceIntact ov
    }
    It 'copies an overlay container with its snapshots into a btrfs pool on the target, with new MACs, and leaves the source as it was' {
        $r = Invoke-Mover 'Copy-SystemContainer -Remote r ov -DestinationHost local -Destination ovcopy -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $made = $r.Output | ConvertFrom-Json
        $made.Name | Should -Be 'ovcopy'
        $made.StoragePool | Should -Be 'pbt'
        Use-Daemon $client
        $c = Get-SystemContainer ovcopy
        $c.Status | Should -Be 'Stopped'
        $c.Config['nic.eth0.hwaddr'] | Should -Not -Be $sourceMac.ov -Because 'a copy gets new MACs, as lxc copy does'
        $c.Config['nic.eth0.ipv4.address'] | Should -Be '10.123.0.50'
        @(Get-SystemContainerSnapshot ovcopy | ForEach-Object SnapshotName) | Should -Be @('s1', 's2')
        Test-Path (Join-Path $client.StateDir 'storage-pools/pbt/containers/ovcopy') | Should -BeTrue
        Get-Hash ovcopy | Should -Be $hashes.ov
        Restore-SystemContainerSnapshot ovcopy s1 -Force
        Start-SystemContainer ovcopy
        Invoke-In ovcopy 'cat /root/marker; test -e /root/added || echo no-added' | Should -Be @('one', 'no-added')
        Stop-SystemContainer ovcopy -Force
        Assert-SourceIntact ov
        $op = (Get-SendOperations ov)[-1]
        $op.status | Should -Be 'Success'
        $op.metadata.result.optimized | Should -BeFalse -Because 'an overlay container is sent as a tar stream'
        $pull = @((Invoke-TestApi $client GET /1.0/operations).Body.metadata | Where-Object description -eq 'Pulling container ovcopy')[-1]
        $op.metadata.result.checksum | Should -Match '^xxh128:[0-9a-f]{32}$'
        $pull.metadata.progress | Should -Be "received $($op.metadata.result.bytes) bytes, XXH128 $($op.metadata.result.checksum.Substring(7))" -Because 'the target checked what arrived against the checksum the source sent'
        Use-Daemon $client
        Remove-SystemContainer ovcopy -Force
    }
    It 'copies a btrfs container without its snapshots as a btrfs send stream into a btrfs pool on the target' {
        $r = Invoke-Mover 'Copy-SystemContainer -Remote r bt -DestinationHost local -Destination btcopy -InstanceOnly -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        (Get-SendOperations bt)[-1].metadata.result.optimized | Should -BeTrue
        Use-Daemon $client
        Get-SystemContainerSnapshot btcopy | Should -BeNullOrEmpty -Because '-InstanceOnly leaves the snapshots'
        (Get-SystemContainer btcopy).Config['nic.eth0.hwaddr'] | Should -Not -Be $sourceMac.bt
        Get-Hash btcopy | Should -Be $hashes.bt
        Assert-SourceIntact bt
        # The copy holds bt's fixed address on the target's network: a move of bt there is refused, and leaves both as they were.
        Use-Daemon $client
        $traces = Get-Traces
        $r = Invoke-Mover 'Move-SystemContainer -Remote r bt -DestinationHost local -StoragePool pbt'
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match "address 10\.123\.0\.51 on network 'mig' is already fixed for container 'btcopy'"
        Use-Daemon $client
        Get-Traces | Should -Be $traces
        Assert-SourceIntact bt
        Use-Daemon $client
        Remove-SystemContainer btcopy -Force
    }
    It 'moves a btrfs container with its snapshots as btrfs send streams; it starts on the target with its address and MAC, and is gone from the source' {
        $r = Invoke-Mover 'Move-SystemContainer -Remote r bt -DestinationHost local -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        ($r.Output | ConvertFrom-Json).Name | Should -Be 'bt'
        $op = (Get-SendOperations bt)[-1]
        $op.status | Should -Be 'Success'
        $op.metadata.result.optimized | Should -BeTrue
        Use-Daemon $server
        Get-SystemContainer bt -ErrorAction SilentlyContinue | Should -BeNullOrEmpty -Because 'a move removes the source once the target has it'
        Use-Daemon $client
        $c = Get-SystemContainer bt
        $c.Config['nic.eth0.hwaddr'] | Should -Be $sourceMac.bt
        @(Get-SystemContainerSnapshot bt | ForEach-Object SnapshotName) | Should -Be @('s1', 's2')
        foreach ($s in 's1', 's2') {
            btrfs subvolume show (Join-Path $client.StateDir "storage-pools/pbt/containers-snapshots/bt/$s") | Out-String |
                Should -Match 'Received UUID:\s+[0-9a-f-]{36}' -Because 'the snapshots came as btrfs send streams'
        }
        Start-SystemContainer bt
        try {
            Invoke-In bt 'cat /root/marker; sha256sum /srv/noise | cut -d" " -f1' | Should -Be $hashes.bt
            # The address comes by DHCP, from the address the destination's DHCP server has planned for the MAC.
            (Wait-SystemContainer bt -For IPv4 -Timeout 60 -PassThru -ErrorAction Stop).IPv4 | Should -Contain '10.123.0.51'
            Invoke-In bt 'ip -4 -o addr show eth0' | Should -Match '10\.123\.0\.51/24'
            Invoke-In bt "cat /sys/class/net/eth0/address" | Should -Be $sourceMac.bt
        }
        finally { Stop-SystemContainer bt -Force }
    }
    It 'moves an overlay container with its snapshots into a btrfs pool on the target, keeping its MAC' {
        $r = Invoke-Mover 'Move-SystemContainer -Remote r ov local -NewName ovmoved -StoragePool pbt | ConvertTo-Json -Compress'
        $r.ExitCode | Should -Be 0 -Because $r.Output
        Use-Daemon $server
        Get-SystemContainer ov -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Use-Daemon $client
        (Get-SystemContainer ovmoved).Config['nic.eth0.hwaddr'] | Should -Be $sourceMac.ov
        @(Get-SystemContainerSnapshot ovmoved | ForEach-Object SnapshotName) | Should -Be @('s1', 's2')
        Start-SystemContainer ovmoved
        try {
            (Wait-SystemContainer ovmoved -For IPv4 -Timeout 60 -PassThru -ErrorAction Stop).IPv4 | Should -Contain '10.123.0.50'
            Invoke-In ovmoved 'cat /root/marker; sha256sum /srv/noise | cut -d" " -f1' | Should -Be $hashes.ov
        }
        finally { Stop-SystemContainer ovmoved -Force }
    }
}
