# The built module (artifacts/SystemContainers): build.ps1 lays the binaries, the daemon and the help beside this manifest.
@{
    RootModule           = 'SystemContainers.PowerShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '2b7e9f54-8f0c-4d5e-a6a1-5d3c9e0f7a12'
    Author               = 'SystemContainers'
    Description          = 'LXD-style system containers (systemd inside, user namespaces, cgroups) as PowerShell objects.'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.4'
    FormatsToProcess     = @('SystemContainers.Format.ps1xml')
    TypesToProcess       = @('SystemContainers.Types.ps1xml')
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
}
