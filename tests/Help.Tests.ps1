# The help is generated from docs/*.md; it must describe exactly the parameters the code has.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    $script:commands = Get-Command -Module SystemContainers | ForEach-Object { @{ Name = $_.Name } }
}
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    # WhatIf and Confirm are documented on every cmdlet that has them, as platyPS does.
    $script:common = [System.Management.Automation.PSCmdlet]::CommonParameters
}

Describe 'Help for <Name>' -ForEach $commands {
    BeforeAll {
        $script:cmd = Get-Command $Name
        $script:help = Get-Help $Name -Full
        $script:doc = Join-Path $PSScriptRoot "../docs/$Name.md"
    }
    It 'has a docs page' { Test-Path $doc | Should -BeTrue }
    It 'has a synopsis and a description' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -BeLike "$Name *"
        ($help.description.Text -join ' ') | Should -Not -BeNullOrEmpty
    }
    It 'has at least two examples with code and remarks' {
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        foreach ($e in $help.examples.example) {
            $e.code | Should -Not -BeNullOrEmpty
            ($e.remarks.Text -join '') | Should -Not -BeNullOrEmpty
        }
    }
    It 'documents exactly the parameters of the code, with their types and positions' {
        $codeParams = $cmd.Parameters.Values | Where-Object { $_.Name -notin $common }
        # A cmdlet with only common parameters has no parameter list in its help.
        $helpParams = @(if ($help.PSObject.Properties['parameters'] -and $help.parameters -and $help.parameters.PSObject.Properties['parameter']) { $help.parameters.parameter })
        @($helpParams | ForEach-Object name | Sort-Object) | Should -Be @($codeParams | ForEach-Object Name | Sort-Object)
        foreach ($p in $codeParams) {
            $h = $helpParams | Where-Object name -eq $p.Name
            $type = if ($p.ParameterType.IsGenericType) { $p.ParameterType.GenericTypeArguments[0] } else { $p.ParameterType }
            $h.type.name | Should -Be $type.Name -Because "-$($p.Name) is a $($type.Name) in the code"
            ($h.description.Text -join '') | Should -Not -BeNullOrEmpty -Because "-$($p.Name) needs a description"
            $mandatory = @($p.Attributes | Where-Object { $_ -is [Parameter] -and $_.Mandatory }).Count -gt 0
            [bool]::Parse($h.required) | Should -Be $mandatory -Because "-$($p.Name) required must match"
            $position = @($p.Attributes | Where-Object { $_ -is [Parameter] } | ForEach-Object Position | Where-Object { $_ -ge 0 } | Select-Object -First 1)
            $expected = if ($position.Count) { "$($position[0])" } else { 'named' }
            $h.position | Should -Be $expected -Because "-$($p.Name) position must match"
        }
    }
}

Describe 'about_SystemContainers' {
    It 'is found by Get-Help' {
        (Get-Help about_SystemContainers | Out-String) | Should -Match 'SHORT DESCRIPTION'
    }
}
