<#
.SYNOPSIS
    One Pester run of the v2 lane, inside its guest: NUnit XML and "<Name>.summary" (passed failed
    skipped, counted as build.ps1 counts them) in -Results. -FullName keeps only the tests whose
    full name matches one of its "|"-separated wildcards (Pester's Filter.FullName).
#>
# Not positional: the paths are all the arguments that are not named.
[CmdletBinding(PositionalBinding = $false)]
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Results,
    [string]$FullName,
    [Parameter(Mandatory, ValueFromRemainingArguments)][string[]]$Path
)
$ErrorActionPreference = 'Stop'
$root = Split-Path (Split-Path $PSScriptRoot)
$packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
Import-Module (Join-Path $packages 'pester/5.7.1/tools/Pester.psd1')
$env:SYSTEMCONTAINERS_SC_INIT = Join-Path $root 'artifacts/SystemContainers/daemon/sc-init'
Write-Host "v2lane guest: $Name in $(Get-Content /proc/self/cgroup), pwsh ready after $([int]((Get-Date) - (Get-Process -Id $PID).StartTime).TotalSeconds) s"
$config = New-PesterConfiguration
$config.Run.Path = @($Path | ForEach-Object { Join-Path $root $_ })
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
if ($FullName) { $config.Filter.FullName = @($FullName -split '\|') }
$pester = Invoke-Pester -Configuration $config
try { $pester | Export-NUnitReport -Path (Join-Path $Results "$Name.xml") }
catch { Write-Warning "cannot write the Pester report: $_" }
$failed = $pester.FailedCount + $pester.FailedBlocksCount + $pester.FailedContainersCount
# A run that ran no test (a filter that matches nothing, say) is a failure, never a pass.
if ($pester.PassedCount + $pester.FailedCount + $pester.SkippedCount -eq 0) {
    Write-Warning "no test of $($Path -join ', ') ran"
    $failed = [Math]::Max($failed, 1)
}
# Not run counts as skipped, except the tests -FullName left out (ShouldRun false).
$notRun = @($pester.Tests | Where-Object { $_.Result -eq 'NotRun' -and $_.ShouldRun }).Count
Set-Content -Path (Join-Path $Results "$Name.summary") -Value "$($pester.PassedCount) $failed $($pester.SkippedCount + $notRun)"
foreach ($c in $pester.Containers) { Write-Host "v2lane guest: $Name $($c.Item): $($c.Result) in $([int]$c.Duration.TotalSeconds) s" }
