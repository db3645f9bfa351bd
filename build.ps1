#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The one build entry of SystemContainers.
.DESCRIPTION
    build  - sc-init with the system C compiler, the daemon and the module into artifacts/SystemContainers, help (MAML) from docs/.
    docs   - only the help: docs/*.md (platyPS format) to artifacts/SystemContainers/en-US/SystemContainers.PowerShell.dll-Help.xml.
    criu   - criu >= 4.2.1 for checkpoints: the host's, else Debian sid's unpacked under /var/cache/systemcontainers/criu/<version>
             (reused on reruns); prints the command the daemon takes with --criu.
    test   - host packages, criu (passed to the test daemons), build, xunit and Pester, then the v2 lane (tools/v2lane/run.sh: a subset of the Pester
             suite in a Debian 12 guest with systemd and pure cgroup v2; SYSTEMCONTAINERS_V2LANE=full runs all of it
             there, =off leaves the lane out, counted as skipped); ends with "Tests: N passed, N failed[, N skipped]"
             over both lanes.
    demo   - host packages, build, then a busybox container: uname -a, ps and its DHCP address inside, the default network, Get-SystemContainer, removal.
    bench  - host packages, build, then bench/launch.ps1 (results in bench/RESULTS.md).
    install - host packages, criu (as the criu task; a failure there only warns: criu is for checkpoints),
             build, then the daemon and sc-init in /usr/lib/systemcontainers, the module in
             /usr/local/share/powershell/Modules/SystemContainers and systemcontainerd.service (enabled and
             started when systemd runs). With -Uninstall: removes exactly what install made (state stays).
             With -NoBuild: installs what artifacts/ holds.
    Run as root on Debian or Ubuntu: `dotnet tool restore && dotnet pwsh ./build.ps1 <task>`.
#>
param(
    [ValidateSet('build', 'docs', 'test', 'demo', 'bench', 'install', 'criu')]
    [string]$Task = 'build',
    [string]$Configuration = 'Release',
    [switch]$Uninstall,
    [switch]$NoBuild
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$Artifacts = Join-Path $Root 'artifacts'
$Bin = Join-Path $Artifacts 'SystemContainers'
$HostPackages = @('busybox-static', 'btrfs-progs', 'debootstrap', 'gcc', 'libc6-dev', 'libseccomp-dev', 'tar', 'xz-utils', 'zstd', 'bzip2', 'tmux',
    'dnsmasq-base', 'nftables', 'iproute2', 'lxcfs', 'curl', 'python3', 'openssl')

function Invoke-Native([string]$File, [string[]]$Arguments) {
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Install-HostPackages {
    if ((id -u) -ne '0') { throw 'SystemContainers needs root: run this as root.' }
    $missing = @($HostPackages | Where-Object {
        $status = & dpkg-query -W -f='${Status}' $_ 2>$null
        $LASTEXITCODE -ne 0 -or $status -notmatch 'install ok installed'
    })
    if ($missing.Count -eq 0) { return }
    Write-Host "Installing host packages: $($missing -join ' ')"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    Invoke-Native apt-get @('update', '-qq')
    Invoke-Native apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $missing)
}

# criu older than this fails (Debian 12's 3.17) or hangs (Debian 13's 4.1.1) on current kernels.
$CriuMinimum = [version]'4.2.1'
$CriuCache = '/var/cache/systemcontainers/criu'

function Get-CriuVersion([string]$Command) {
    $out = & $Command --version 2>$null
    if ($LASTEXITCODE -ne 0 -or ($out -join "`n") -notmatch 'Version:\s*(\d+)\.(\d+)(?:\.(\d+))?') { return $null }
    [version]::new([int]$Matches[1], [int]$Matches[2], $(if ($Matches[3]) { [int]$Matches[3] } else { 0 }))
}

function Install-Criu {
    <#
    The criu command for checkpoints: a packaged criu >= $CriuMinimum on PATH as is, else Debian sid's
    criu with the libraries it needs, unpacked (dpkg-deb -x, no maintainer scripts) into
    $CriuCache/<version>/tree and run through that tree's own loader by the wrapper
    $CriuCache/<version>/criu. An unpacked tree already there is reused without the network.
    #>
    $packaged = Get-Command criu -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($packaged -and (Get-CriuVersion $packaged.Source) -ge $CriuMinimum) { return $packaged.Source }
    $cached = @(Get-ChildItem -Path $CriuCache -Directory -ErrorAction SilentlyContinue | Where-Object { -not $_.Name.StartsWith('.') } |
        ForEach-Object { Join-Path $_.FullName 'criu' } | Where-Object { Test-Path $_ } |
        Sort-Object -Descending { Get-CriuVersion $_ })
    foreach ($wrapper in $cached) { if ((Get-CriuVersion $wrapper) -ge $CriuMinimum) { return $wrapper } }

    $arch = (& dpkg --print-architecture).Trim()
    $loader = @{ amd64 = 'x86_64-linux-gnu/ld-linux-x86-64.so.2'; arm64 = 'aarch64-linux-gnu/ld-linux-aarch64.so.1' }[$arch]
    if (-not $loader) { throw "cannot install criu for architecture ${arch}: only amd64 and arm64 are known" }
    Write-Host "Installing criu >= $CriuMinimum from Debian sid into $CriuCache"
    $stage = Join-Path $CriuCache ".stage-$PID"
    Remove-Item -Recurse -Force $stage -ErrorAction SilentlyContinue
    try {
        # A private apt (own lists, empty dpkg status): resolves criu's whole library closure from sid
        # without touching the host's apt state. Valid-Until is not checked: a VM's clock may lag.
        $apt = Join-Path $stage 'apt'
        foreach ($d in 'lists/partial', 'archives/partial', 'parts', 'preferences.d') { New-Item -ItemType Directory -Force -Path (Join-Path $apt $d) | Out-Null }
        New-Item -ItemType File -Path (Join-Path $apt 'status') | Out-Null
        Set-Content -Path (Join-Path $apt 'sources.list') -Value 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main'
        $options = @('-q', '-o', "Dir::State=$apt", '-o', "Dir::State::Lists=$apt/lists", '-o', "Dir::State::status=$apt/status",
            '-o', "Dir::Cache=$apt", '-o', "Dir::Cache::Archives=$apt/archives", '-o', "Dir::Etc::SourceList=$apt/sources.list",
            '-o', 'Dir::Etc::SourceParts=-', '-o', "Dir::Etc::Parts=$apt/parts", '-o', "Dir::Etc::PreferencesParts=$apt/preferences.d",
            '-o', 'Dir::Etc::Preferences=-', '-o', 'Acquire::Check-Valid-Until=false', '-o', 'Debug::NoLocking=1', '-o', 'APT::Sandbox::User=root', '-o', "APT::Architecture=$arch")
        Invoke-Native apt-get ($options + @('update')) | Out-Host
        Invoke-Native apt-get ($options + @('install', '-y', '--download-only', '--no-install-recommends', 'criu')) | Out-Host
        $debs = @(Get-ChildItem (Join-Path $apt 'archives') -Filter '*.deb')
        $criuDeb = $debs | Where-Object Name -like 'criu_*' | Select-Object -First 1
        if (-not $criuDeb) { throw "apt downloaded no criu package into $apt/archives" }
        $version = (& dpkg-deb -f $criuDeb.FullName Version).Trim() -replace '^\d+:', ''
        $final = Join-Path $CriuCache $version
        $tree = Join-Path $stage 'tree'
        foreach ($deb in $debs) { Invoke-Native dpkg-deb @('-x', $deb.FullName, $tree) | Out-Host }
        $lib = "$final/tree/usr/lib/$(Split-Path $loader)"
        Set-Content -Path (Join-Path $stage 'criu') -Value @(
            '#!/bin/sh',
            "# criu $version from Debian sid, run through its own loader and libraries (this host's are too old for it).",
            "exec $final/tree/usr/lib/$loader --library-path $lib $final/tree/usr/sbin/criu `"`$@`"")
        Invoke-Native chmod @('0755', (Join-Path $stage 'criu')) | Out-Host
        Remove-Item -Recurse -Force $apt
        Remove-Item -Recurse -Force $final -ErrorAction SilentlyContinue
        # Published whole by one rename, so a broken download never looks like an installed criu.
        Move-Item $stage $final
    }
    finally { Remove-Item -Recurse -Force $stage -ErrorAction SilentlyContinue }
    $wrapper = Join-Path $final 'criu'
    $got = Get-CriuVersion $wrapper
    if ($got -lt $CriuMinimum) { throw "criu from Debian sid ($wrapper) reports version $got, not >= $CriuMinimum" }
    $wrapper
}

function Invoke-Build {
    Remove-Item -Recurse -Force (Join-Path $Artifacts 'bin') -ErrorAction SilentlyContinue
    New-Item -ItemType Directory -Force -Path (Join-Path $Bin 'daemon') | Out-Null
    Write-Host 'Building sc-init'
    # libseccomp is linked in statically: sc-init runs wherever the daemon does, with no library to find.
    # Where the static libc is there, all of it is: no dynamic loader and fewer page faults per start.
    $link = if ([IO.Path]::IsPathRooted((& cc '-print-file-name=libc.a'))) { @('-static', '-lseccomp') } else { @('-Wl,-Bstatic', '-lseccomp', '-Wl,-Bdynamic') }
    Invoke-Native cc (@('-O2', '-Wall', '-Wextra', '-Werror', '-o', (Join-Path $Bin 'daemon/sc-init'), (Join-Path $Root 'src/native/sc-init.c')) + $link)
    Write-Host 'Building daemon and module'
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/SystemContainers.Daemon'), '-c', $Configuration, '-o', (Join-Path $Bin 'daemon'), '--nologo', '-v', 'quiet')
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/SystemContainers.PowerShell'), '-c', $Configuration, '-o', $Bin, '--nologo', '-v', 'quiet')
    Copy-Item (Join-Path $Root 'module/*') $Bin
    Copy-Item (Join-Path $Root 'src/SystemContainers.Daemon/systemcontainerd.service') (Join-Path $Bin 'daemon')
    Invoke-Docs
}

# ---- help: platyPS-format markdown to MAML -------------------------------------------------

function ConvertFrom-HelpMarkdown([string]$Path) {
    $lines = Get-Content -LiteralPath $Path
    $doc = [ordered]@{ Name = ''; Synopsis = ''; Description = @(); Examples = @(); Parameters = @(); Inputs = @(); Outputs = @(); Notes = @(); Links = @() }
    $section = ''; $current = $null; $inCode = $false; $code = @(); $fence = ''
    foreach ($line in $lines) {
        if ($line -match '^```') {
            if (-not $inCode) { $inCode = $true; $fence = $line; $code = @(); continue }
            $inCode = $false
            if ($section -eq 'EXAMPLES' -and $current) { $current.Code += $code }
            elseif ($section -eq 'PARAMETERS' -and $current -and $fence -match 'yaml') {
                foreach ($y in $code) { if ($y -match '^([^:]+):\s*(.*)$') { $current.Meta[$Matches[1].Trim()] = $Matches[2].Trim() } }
            }
            continue
        }
        if ($inCode) { $code += $line; continue }
        if ($line -match '^# (\S+)') { $doc.Name = $Matches[1]; continue }
        if ($line -match '^## (.+)$') { $section = $Matches[1].Trim(); $current = $null; continue }
        if ($line -match '^### (.+)$') {
            $title = $Matches[1].Trim()
            switch ($section) {
                'EXAMPLES' { $current = [ordered]@{ Title = $title; Code = @(); Remarks = @() }; $doc.Examples += $current }
                'PARAMETERS' {
                    if ($title -eq 'CommonParameters') { $current = $null }
                    else { $current = [ordered]@{ Name = $title.TrimStart('-'); Text = @(); Meta = @{} }; $doc.Parameters += $current }
                }
                'INPUTS' { $doc.Inputs += $title }
                'OUTPUTS' { $doc.Outputs += $title }
            }
            continue
        }
        switch ($section) {
            'SYNOPSIS' { if ($line.Trim()) { $doc.Synopsis = ($doc.Synopsis + ' ' + $line.Trim()).Trim() } }
            'DESCRIPTION' { $doc.Description += $line }
            'EXAMPLES' { if ($current) { $current.Remarks += $line } }
            'PARAMETERS' { if ($current) { $current.Text += $line } }
            'NOTES' { $doc.Notes += $line }
            'RELATED LINKS' { if ($line -match '^\[([^\]]+)\]') { $doc.Links += $Matches[1] } }
        }
    }
    [pscustomobject]$doc
}

function ConvertTo-Paragraphs([string[]]$Lines) {
    (($Lines -join "`n").Trim() -split "\n\s*\n") | Where-Object { $_.Trim() } | ForEach-Object { ($_ -split '\n' | ForEach-Object Trim) -join ' ' }
}

function Write-Paragraphs([System.Xml.XmlWriter]$W, [string[]]$Lines) {
    $W.WriteStartElement('maml', 'description', 'http://schemas.microsoft.com/maml/2004/10')
    $paras = @(ConvertTo-Paragraphs $Lines)
    if ($paras.Count -eq 0) { $paras = @('') }
    foreach ($p in $paras) { $W.WriteElementString('maml', 'para', 'http://schemas.microsoft.com/maml/2004/10', $p) }
    $W.WriteEndElement()
}

function Write-MamlParameter([System.Xml.XmlWriter]$W, $P) {
    $maml = 'http://schemas.microsoft.com/maml/2004/10'; $cmd = 'http://schemas.microsoft.com/maml/dev/command/2004/10'; $dev = 'http://schemas.microsoft.com/maml/dev/2004/10'
    $m = $P.Meta
    $type = if ($m['Type']) { $m['Type'] } else { 'String' }
    $W.WriteStartElement('command', 'parameter', $cmd)
    $W.WriteAttributeString('required', ([string]($m['Required'] -eq 'True')).ToLower())
    $W.WriteAttributeString('variableLength', ([string]($type -like '*[[]]')).ToLower())
    $W.WriteAttributeString('globbing', ([string]($m['Accept wildcard characters'] -eq 'True')).ToLower())
    $W.WriteAttributeString('pipelineInput', $(if ($m['Accept pipeline input']) { $m['Accept pipeline input'] } else { 'False' }))
    $W.WriteAttributeString('position', $(if ($m['Position'] -and $m['Position'] -ne 'Named') { $m['Position'] } else { 'named' }))
    $W.WriteAttributeString('aliases', $(if ($m['Aliases']) { $m['Aliases'] } else { 'none' }))
    $W.WriteElementString('maml', 'name', $maml, $P.Name)
    Write-Paragraphs $W $P.Text
    if ($type -ne 'SwitchParameter') {
        $W.WriteStartElement('command', 'parameterValue', $cmd)
        $W.WriteAttributeString('required', 'true'); $W.WriteAttributeString('variableLength', 'false')
        $W.WriteString($type); $W.WriteEndElement()
    }
    $W.WriteStartElement('dev', 'type', $dev); $W.WriteElementString('maml', 'name', $maml, $type); $W.WriteEndElement()
    $W.WriteElementString('dev', 'defaultValue', $dev, $(if ($m['Default value']) { $m['Default value'] } else { 'None' }))
    $W.WriteEndElement()
}

function Invoke-Docs {
    $maml = 'http://schemas.microsoft.com/maml/2004/10'; $cmd = 'http://schemas.microsoft.com/maml/dev/command/2004/10'; $dev = 'http://schemas.microsoft.com/maml/dev/2004/10'
    $out = Join-Path $Bin 'en-US'
    New-Item -ItemType Directory -Force -Path $out | Out-Null
    $settings = [System.Xml.XmlWriterSettings]::new(); $settings.Indent = $true
    $w = [System.Xml.XmlWriter]::Create((Join-Path $out 'SystemContainers.PowerShell.dll-Help.xml'), $settings)
    $w.WriteStartDocument()
    $w.WriteStartElement('helpItems', 'http://msh'); $w.WriteAttributeString('schema', 'maml')
    foreach ($file in Get-ChildItem (Join-Path $Root 'docs') -Filter '*-*.md' | Sort-Object Name) {
        $d = ConvertFrom-HelpMarkdown $file.FullName
        $verb, $noun = $d.Name -split '-', 2
        $w.WriteStartElement('command', 'command', $cmd)
        $w.WriteAttributeString('xmlns', 'maml', $null, $maml); $w.WriteAttributeString('xmlns', 'dev', $null, $dev)
        $w.WriteStartElement('command', 'details', $cmd)
        $w.WriteElementString('command', 'name', $cmd, $d.Name)
        $w.WriteElementString('command', 'verb', $cmd, $verb)
        $w.WriteElementString('command', 'noun', $cmd, $noun)
        Write-Paragraphs $w @($d.Synopsis)
        $w.WriteEndElement()
        Write-Paragraphs $w $d.Description
        $sets = @($d.Parameters | ForEach-Object { ($_.Meta['Parameter Sets'] -split ',\s*') } | Where-Object { $_ -and $_ -ne '(All)' } | Select-Object -Unique)
        if ($sets.Count -eq 0) { $sets = @('(All)') }
        $w.WriteStartElement('command', 'syntax', $cmd)
        foreach ($set in $sets) {
            $w.WriteStartElement('command', 'syntaxItem', $cmd)
            $w.WriteElementString('maml', 'name', $maml, $d.Name)
            $ordered = $d.Parameters | Sort-Object @{ E = { if ($_.Meta['Position'] -match '^\d+$') { [int]$_.Meta['Position'] } else { 99 } } },
                @{ E = { $_.Meta['Required'] -ne 'True' } }, @{ E = { $_.Name } }
            foreach ($p in $ordered) {
                $ps = $p.Meta['Parameter Sets']
                if (-not $ps -or $ps -eq '(All)' -or $set -eq '(All)' -or ($ps -split ',\s*') -contains $set) { Write-MamlParameter $w $p }
            }
            $w.WriteEndElement()
        }
        $w.WriteEndElement()
        $w.WriteStartElement('command', 'parameters', $cmd)
        foreach ($p in $d.Parameters) { Write-MamlParameter $w $p }
        $w.WriteEndElement()
        foreach ($kind in @(@('inputTypes', 'inputType', $d.Inputs), @('returnValues', 'returnValue', $d.Outputs))) {
            $w.WriteStartElement('command', $kind[0], $cmd)
            foreach ($t in $kind[2]) {
                $w.WriteStartElement('command', $kind[1], $cmd)
                $w.WriteStartElement('dev', 'type', $dev); $w.WriteElementString('maml', 'name', $maml, $t); $w.WriteEndElement()
                Write-Paragraphs $w @()
                $w.WriteEndElement()
            }
            $w.WriteEndElement()
        }
        $w.WriteStartElement('maml', 'alertSet', $maml); $w.WriteStartElement('maml', 'alert', $maml)
        foreach ($p in @(ConvertTo-Paragraphs $d.Notes)) { $w.WriteElementString('maml', 'para', $maml, $p) }
        $w.WriteEndElement(); $w.WriteEndElement()
        $w.WriteStartElement('command', 'examples', $cmd)
        foreach ($e in $d.Examples) {
            $w.WriteStartElement('command', 'example', $cmd)
            $w.WriteElementString('maml', 'title', $maml, "-------------------------- $($e.Title) --------------------------")
            $w.WriteElementString('dev', 'code', $dev, ($e.Code -join "`n"))
            $w.WriteStartElement('dev', 'remarks', $dev)
            foreach ($p in @(ConvertTo-Paragraphs $e.Remarks)) { $w.WriteElementString('maml', 'para', $maml, $p) }
            $w.WriteEndElement()
            $w.WriteEndElement()
        }
        $w.WriteEndElement()
        $w.WriteStartElement('command', 'relatedLinks', $cmd)
        foreach ($l in $d.Links) {
            $w.WriteStartElement('maml', 'navigationLink', $maml)
            $w.WriteElementString('maml', 'linkText', $maml, $l)
            $w.WriteElementString('maml', 'uri', $maml, '')
            $w.WriteEndElement()
        }
        $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement(); $w.WriteEndDocument(); $w.Dispose()
    Copy-Item (Join-Path $Root 'docs/about_SystemContainers.md') (Join-Path $out 'about_SystemContainers.help.txt')
}

# ---- tests ----------------------------------------------------------------------------------

function Get-PesterModule {
    Invoke-Native dotnet @('restore', (Join-Path $Root 'tests/tools/tools.csproj'), '--nologo', '-v', 'quiet')
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $psd1 = Join-Path $packages 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $psd1)) { throw "Pester 5.7.1 was restored but $psd1 is missing" }
    $psd1
}

function Invoke-Tests {
    $results = Join-Path $Root 'tests/results'
    Remove-Item -Recurse -Force $results -ErrorAction SilentlyContinue
    $env:SYSTEMCONTAINERS_SC_INIT = Join-Path $Bin 'daemon/sc-init'

    Write-Host "`n== xunit"
    & dotnet test (Join-Path $Root 'tests/SystemContainers.Engine.Tests') -c $Configuration --nologo `
        --logger 'trx;LogFileName=engine.trx' --logger 'console;verbosity=normal' --results-directory $results
    $xunitExit = $LASTEXITCODE
    $xPassed = 0; $xFailed = 0; $xSkipped = 0
    $trx = Join-Path $results 'engine.trx'
    if (Test-Path $trx) {
        $counters = ([xml](Get-Content -Raw $trx)).TestRun.ResultSummary.Counters
        $xPassed = [int]$counters.passed; $xFailed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout
        $xSkipped = [int]$counters.total - [int]$counters.executed
    }
    elseif ($xunitExit -ne 0) { $xFailed = 1 }

    Write-Host "`n== Image cache (debootstrap from the archive, outside the tests)"
    Import-Module (Join-Path $Root 'SystemContainers.psd1') -Force
    Import-Module (Join-Path $Root 'tests/TestDaemon.psm1') -Force
    # Without the archive (an offline guest) the cache must have been brought in; the systemd tests say so if not.
    try { Initialize-TestImageCache } catch { Write-Warning "cannot fill the debootstrap cache: $_" }

    Write-Host "`n== Pester"
    Import-Module (Get-PesterModule) -Force
    $config = New-PesterConfiguration
    $config.Run.Path = Join-Path $Root 'tests'
    $config.Run.PassThru = $true
    $config.Output.Verbosity = 'Detailed'
    $pester = Invoke-Pester -Configuration $config
    # Written apart from the run: a failure message with a control character (terminal output)
    # cannot go into XML, and must not cost the counts.
    try { $pester | Export-NUnitReport -Path (Join-Path $results 'pester.xml') }
    catch { Write-Warning "cannot write the Pester report: $_" }
    $pPassed = $pester.PassedCount; $pFailed = $pester.FailedCount + $pester.FailedBlocksCount + $pester.FailedContainersCount
    $pSkipped = $pester.SkippedCount + $pester.NotRunCount

    Write-Host "`n== v2 lane: a Debian 12 guest with systemd and pure cgroup v2"
    $lane = Invoke-V2Lane
    $passed = $xPassed + $pPassed + $lane.Passed; $failed = $xFailed + $pFailed + $lane.Failed; $skipped = $xSkipped + $pSkipped + $lane.Skipped
    if ($xunitExit -ne 0 -and $xFailed -eq 0) { $failed++ }
    $line = "Tests: $passed passed, $failed failed"
    if ($skipped -gt 0) { $line += ", $skipped skipped" }
    Write-Host ''
    # Named again right above the count: CI logs are often read from their tail only.
    foreach ($f in @(Get-FailedTestNames -Trx $trx -Pester $pester -LaneResults $(if ($env:SYSTEMCONTAINERS_V2LANE -ne 'off') { Join-Path $Root 'tests/results/v2lane' }))) { Write-Host "failed: $f" }
    Write-Host $line
    if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
}

function Get-FailedTestNames([string]$Trx, $Pester, [string]$LaneResults) {
    <# One line per failed xunit test, Pester test or block (the lane's from its NUnit files), with the first line of its error. #>
    if (Test-Path $Trx) {
        $xml = [xml](Get-Content -Raw $Trx)
        foreach ($r in $xml.TestRun.Results.UnitTestResult | Where-Object outcome -ne 'Passed' | Where-Object outcome -ne 'NotExecuted') {
            $message = "$($r.Output.ErrorInfo.Message)" -split "`n" | Select-Object -First 1
            "xunit $($r.testName): $message"
        }
    }
    foreach ($t in @($Pester.Failed) + @($Pester.FailedBlocks) + @($Pester.FailedContainers)) {
        if ($null -eq $t) { continue }
        $name = if ($t.PSObject.Properties['ExpandedPath']) { $t.ExpandedPath } elseif ($t.PSObject.Properties['Item']) { "$($t.Item)" } else { "$t" }
        $message = if ($t.ErrorRecord) { "$($t.ErrorRecord[0])" -split "`n" | Select-Object -First 1 } else { '' }
        "pester $name`: $message"
    }
    # Only a lane that ran this time: run.sh empties the directory first.
    foreach ($file in @(if ($LaneResults) { Get-ChildItem (Join-Path $LaneResults '*.xml') -ErrorAction SilentlyContinue })) {
        $xml = [xml](Get-Content -Raw $file.FullName)
        foreach ($case in $xml.SelectNodes('//test-case[@result="Failure"]')) {
            $message = "$($case.SelectSingleNode('failure/message').InnerText)" -split "`n" | Select-Object -First 1
            "v2lane $($file.BaseName) $($case.name): $message"
        }
    }
}

function Invoke-V2Lane {
    <# The lane's counts; a lane that cannot run is one skipped test with its reason, never a pass. #>
    if ($env:SYSTEMCONTAINERS_V2LANE -eq 'off') {
        Write-Host 'v2lane: skipped: SYSTEMCONTAINERS_V2LANE=off'
        return [pscustomobject]@{ Passed = 0; Failed = 0; Skipped = 1 }
    }
    $summary = Join-Path $Root 'tests/results/v2lane/summary'
    # To the terminal: the lane's output is no part of this function's result.
    & bash (Join-Path $Root 'tools/v2lane/run.sh') | Out-Host
    if (-not (Test-Path $summary)) {
        Write-Host "v2lane: run.sh exited with $LASTEXITCODE and left no $summary"
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
    }
    $counts = @{}
    foreach ($line in Get-Content $summary) { $key, $value = $line -split ' ', 2; $counts[$key] = $value }
    [pscustomobject]@{ Passed = [int]$counts['passed']; Failed = [int]$counts['failed']; Skipped = [int]$counts['skipped'] }
}

# ---- demo -----------------------------------------------------------------------------------

function Invoke-Demo {
    Import-Module (Join-Path $Root 'SystemContainers.psd1') -Force
    Write-Host '== New-SystemContainerImage -Busybox -Alias busybox'
    if (-not (Get-SystemContainerImage busybox -ErrorAction SilentlyContinue)) { New-SystemContainerImage -Busybox -Alias busybox | Format-Table | Out-Host }
    $name = "demo-$(Get-Random -Maximum 100000)"
    Write-Host "== New-SystemContainer $name -Image busybox -Start"
    New-SystemContainer $name -Image busybox -Start | Format-Table | Out-Host
    Write-Host "== Invoke-SystemContainerCommand $name uname -a"
    Invoke-SystemContainerCommand $name uname -a | Out-Host
    Write-Host "== Invoke-SystemContainerCommand $name ps"
    Invoke-SystemContainerCommand $name ps | Out-Host
    # udhcpc in the container asks the default network's dnsmasq for an address.
    $deadline = [DateTime]::UtcNow.AddSeconds(15)
    while (-not (Get-SystemContainer $name).IPv4 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    Write-Host "== Invoke-SystemContainerCommand $name ip addr show eth0"
    Invoke-SystemContainerCommand $name ip addr show eth0 | Out-Host
    Write-Host '== Get-SystemContainerNetwork'
    Get-SystemContainerNetwork | Format-Table | Out-Host
    Write-Host '== Get-SystemContainer'
    Get-SystemContainer | Format-Table | Out-Host
    Write-Host "== Remove-SystemContainer $name -Force"
    Remove-SystemContainer $name -Force -Confirm:$false
    Get-SystemContainer | Format-Table | Out-Host
}

# ---- install --------------------------------------------------------------------------------

$InstallDaemonDir = '/usr/lib/systemcontainers'
$InstallModuleDir = '/usr/local/share/powershell/Modules/SystemContainers'
$InstallUnit = '/etc/systemd/system/systemcontainerd.service'
# Every path install made, in order, so uninstall removes exactly these (in reverse): "tree <path>"
# is removed with its content, "dir <path>" (a parent install had to make) only while it is empty.
$InstallManifest = Join-Path $InstallDaemonDir 'install-manifest.txt'

function Test-SystemdRunning { Test-Path /run/systemd/system }

function Invoke-Install {
    if (Test-Path $InstallManifest) { Invoke-Uninstall }
    foreach ($path in $InstallDaemonDir, $InstallModuleDir, $InstallUnit) {
        if (Test-Path $path) { throw "cannot install: $path exists and was not made by ./build.ps1 install (no $InstallManifest)" }
    }
    $made = [Collections.Generic.List[string]]::new()
    $parent = Split-Path $InstallModuleDir
    # The module path's parents may be missing on a host that never had a system-wide module.
    $missing = @(); for ($d = $parent; -not (Test-Path $d); $d = Split-Path $d) { $missing = @($d) + $missing }
    try {
        foreach ($d in $missing) { New-Item -ItemType Directory -Path $d | Out-Null; $made.Add("dir $d") }
        Copy-Item -Recurse (Join-Path $Bin 'daemon') $InstallDaemonDir; $made.Add("tree $InstallDaemonDir")
        New-Item -ItemType Directory -Path $InstallModuleDir | Out-Null; $made.Add("tree $InstallModuleDir")
        Get-ChildItem $Bin | Where-Object Name -ne 'daemon' | Copy-Item -Destination $InstallModuleDir -Recurse
        # The module starts the daemon it finds beside itself when no service answers.
        New-Item -ItemType SymbolicLink -Path (Join-Path $InstallModuleDir 'daemon') -Target $InstallDaemonDir | Out-Null
        Copy-Item (Join-Path $Bin 'daemon/systemcontainerd.service') $InstallUnit; $made.Add("tree $InstallUnit")
        Set-Content -Path $InstallManifest -Value $made
    }
    catch {
        Remove-Installed $made.ToArray()
        throw
    }
    Write-Host "Installed the daemon in $InstallDaemonDir, the module in $InstallModuleDir, the unit $InstallUnit"
    if (Test-SystemdRunning) {
        Invoke-Native systemctl @('daemon-reload')
        Invoke-Native systemctl @('enable', '--now', 'systemcontainerd.service')
        Write-Host 'systemcontainerd.service is enabled and running'
    }
    else { Write-Host 'systemd is not running here: start the daemon with systemcontainerd, or let the module start it' }
}

function Invoke-Uninstall {
    if (-not (Test-Path $InstallManifest)) { throw "nothing to uninstall: $InstallManifest is missing" }
    $made = @(Get-Content $InstallManifest)
    if (Test-SystemdRunning) {
        # Stopping the unit ends only the daemon (KillMode=process): running containers stay, as on a restart.
        Invoke-Native systemctl @('disable', '--now', 'systemcontainerd.service')
    }
    Remove-Installed $made
    if (Test-SystemdRunning) { Invoke-Native systemctl @('daemon-reload') }
    Write-Host "Removed $(($made | ForEach-Object { ($_ -split ' ', 2)[1] }) -join ', '); the state in /var/lib/systemcontainers stays"
}

function Remove-Installed([string[]]$Made) {
    if ($Made.Count -eq 0) { return }
    foreach ($entry in $Made[($Made.Count - 1)..0]) {
        $kind, $path = $entry -split ' ', 2
        if ($kind -eq 'tree') { Remove-Item -Recurse -Force -LiteralPath $path -ErrorAction SilentlyContinue }
        elseif (-not (Get-ChildItem -Force -LiteralPath $path -ErrorAction SilentlyContinue)) { Remove-Item -Force -LiteralPath $path -ErrorAction SilentlyContinue }
    }
}

switch ($Task) {
    'build' { Invoke-Build }
    'docs' { Invoke-Docs }
    'criu' { Install-HostPackages; Install-Criu }
    'test' {
        Install-HostPackages
        # Without the archive the criu tests fail by name; the rest of the suite still runs.
        try { $env:SYSTEMCONTAINERS_CRIU = Install-Criu } catch { Write-Warning "no criu for the tests: $_" }
        Invoke-Build; Invoke-Tests
    }
    'demo' { Install-HostPackages; Invoke-Build; Invoke-Demo }
    'bench' { Install-HostPackages; Invoke-Build; & (Join-Path $Root 'bench/launch.ps1') }
    'install' {
        if ($Uninstall) { Invoke-Uninstall }
        else {
            Install-HostPackages
            # The installed daemon finds the unpacked criu in the cache by itself (DaemonOptions).
            try { Write-Host "criu for checkpoints: $(Install-Criu)" } catch { Write-Warning "no criu for checkpoints: $_" }
            if (-not $NoBuild) { Invoke-Build }
            Invoke-Install
        }
    }
}
