# Remote hosts over mutual TLS: a server daemon's HTTPS listener, trust tokens, pinned server
# certificates, revocation, and cmdlets that act on a remote. Two daemons, each in a network
# namespace of its own, joined by a veth pair this file makes; the client side runs in a pwsh
# inside the client daemon's namespace, so no traffic leaves the two namespaces.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:client = $null; $script:server = $null; $script:veth = $null
    $script:client = Start-TestDaemon
    $script:server = Start-TestDaemon
    $id = Split-Path -Leaf $server.Dir
    $script:veth = "scr$($id.Substring(8, 8))"
    ip link add $veth type veth peer name "$($veth)p"
    if ($LASTEXITCODE) { throw "cannot make the veth pair $veth" }
    ip link set $veth netns $client.Netns
    ip link set "$($veth)p" netns $server.Netns
    Invoke-InNetns $client ip @('addr', 'add', '10.251.77.1/30', 'dev', $veth)
    Invoke-InNetns $client ip @('link', 'set', $veth, 'up')
    Invoke-InNetns $server ip @('addr', 'add', '10.251.77.2/30', 'dev', "$($veth)p")
    Invoke-InNetns $server ip @('link', 'set', "$($veth)p", 'up')
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
