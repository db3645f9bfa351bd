@{
    # The built module; `./build.ps1 build` makes it. Its own folder holds the help, so Get-Help finds it.
    NestedModules        = @('artifacts/SystemContainers/SystemContainers.psd1')
    ModuleVersion        = '0.1.0'
    GUID                 = '6f0f3c1e-5b7a-4f38-9d8e-2d0c6a3b9e41'
    Author               = 'SystemContainers'
    Description          = 'LXD-style system containers (systemd inside, user namespaces, cgroups) as PowerShell objects.'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.4'
    CmdletsToExport      = @(
        'Add-SystemContainerRemote', 'Get-SystemContainerRemote', 'Set-SystemContainerRemote', 'Remove-SystemContainerRemote', 'New-SystemContainerTrustToken',
        'Get-SystemContainerTrust', 'Remove-SystemContainerTrust', 'Set-SystemContainerHost',
        'Get-SystemContainer', 'New-SystemContainer', 'Start-SystemContainer', 'Stop-SystemContainer',
        'Restart-SystemContainer', 'Remove-SystemContainer', 'Invoke-SystemContainerCommand', 'Enter-SystemContainer',
        'Get-SystemContainerImage', 'Import-SystemContainerImage', 'New-SystemContainerImage', 'Remove-SystemContainerImage',
        'Add-SystemContainerImageAlias', 'Remove-SystemContainerImageAlias', 'Copy-SystemContainerImage',
        'Set-SystemContainer', 'Suspend-SystemContainer', 'Resume-SystemContainer', 'Get-ContainerStats',
        'New-SystemContainerNetwork', 'Get-SystemContainerNetwork', 'Set-SystemContainerNetwork', 'Remove-SystemContainerNetwork',
        'Get-SystemContainerNetworkLease', 'Test-SystemContainerHost', 'Get-SystemContainerHost',
        'New-SystemContainerStoragePool', 'Get-SystemContainerStoragePool', 'Set-SystemContainerStoragePool', 'Remove-SystemContainerStoragePool',
        'Rename-SystemContainer', 'Copy-SystemContainer', 'Move-SystemContainer', 'Publish-SystemContainer', 'Checkpoint-SystemContainer', 'Get-SystemContainerSnapshot', 'Restore-SystemContainerSnapshot', 'Rename-SystemContainerSnapshot', 'Remove-SystemContainerSnapshot',
        'Wait-SystemContainer', 'Get-SystemContainerLog', 'Get-SystemContainerEvent',
        'Get-SystemContainerDevice', 'Add-SystemContainerDevice', 'Remove-SystemContainerDevice', 'Copy-SystemContainerFile',
        'Export-SystemContainer', 'Import-SystemContainer'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{ PSData = @{ Tags = @('Linux', 'Containers', 'LXD', 'systemd') } }
}
