# What the benchmark scripts share: medians and appending a result table to RESULTS.md.
Set-StrictMode -Version Latest

function Get-Median([double[]]$Values) {
    $s = @($Values | Sort-Object)
    ($s[[int][math]::Floor(($s.Count - 1) / 2)] + $s[[int][math]::Ceiling(($s.Count - 1) / 2)]) / 2
}

# The time a block takes, in milliseconds; its output is dropped.
function Measure-Ms([scriptblock]$Block) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    & $Block | Out-Null
    $sw.Elapsed.TotalMilliseconds
}

function Add-BenchResult([string]$Script, [string]$Description, [string[]]$Columns, [object[]]$Rows) {
    $lines = @('', "## $Script, $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC", '', $Description, '',
        "| $($Columns -join ' | ') |", "|$('---|' * $Columns.Count)")
    $lines += foreach ($r in $Rows) { '| ' + (($Columns | ForEach-Object { $r.$_ }) -join ' | ') + ' |' }
    Add-Content (Join-Path $PSScriptRoot 'RESULTS.md') $lines
}

Export-ModuleMember -Function Get-Median, Measure-Ms, Add-BenchResult
