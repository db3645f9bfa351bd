BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    # A small unpack limit, so a decompression bomb is refused quickly; every honest tarball here is far below it.
    $script:daemon = Start-TestDaemon -ExtraArguments @('--image-max-bytes', 64MB)
    $script:work = Join-Path $daemon.Dir 'tarballs'
    New-Item -ItemType Directory -Path $work | Out-Null

    # A minimal rootfs made by hand, packed with the host's tar in each compression.
    $script:rootfs = Join-Path $work 'rootfs'
    New-Item -ItemType Directory -Path "$rootfs/bin", "$rootfs/sbin", "$rootfs/etc", "$rootfs/dev" | Out-Null
    Copy-Item /bin/busybox "$rootfs/bin/busybox"
    foreach ($a in 'sh', 'id', 'hostname', 'cat', 'ls', 'stat') { New-Item -ItemType SymbolicLink -Path "$rootfs/bin/$a" -Target busybox | Out-Null }
    New-Item -ItemType SymbolicLink -Path "$rootfs/sbin/init" -Target ../bin/busybox | Out-Null
    Set-Content "$rootfs/etc/passwd" 'root:x:0:0:root:/root:/bin/sh'
    Set-Content "$rootfs/etc/owned" 'owned by 1234'
    chown 1234:4321 "$rootfs/etc/owned"
    chmod 4750 "$rootfs/bin/busybox"
    mknod "$rootfs/dev/null0" c 1 3
    ln "$rootfs/etc/passwd" "$rootfs/etc/passwd-hardlink"
    function Pack([string]$Name, [string[]]$Compress = @()) {
        $file = Join-Path $work $Name
        tar --create --file $file --numeric-owner --xattrs @Compress -C $rootfs .
        if ($LASTEXITCODE) { throw "tar failed for $Name" }
        $file
    }
    function Get-ImageDirs { @(Get-ChildItem (Join-Path $daemon.StateDir 'images') -Force | ForEach-Object Name) }
}
AfterAll { Stop-TestDaemon $script:daemon }

Describe 'New-SystemContainerImage -Busybox and Get-SystemContainerImage' {
    It 'builds a busybox image with a fingerprint' {
        $img = New-SystemContainerImage -Busybox -Alias bb
        $img | Should -BeOfType ([SystemContainers.Api.SystemContainerImage])
        $img.Fingerprint | Should -Match '^[0-9a-f]{64}$'
        $img.Aliases | Should -Be 'bb'
        $img.InitKind | Should -Be 'busybox'
    }
    It 'gets images by alias wildcard and fingerprint prefix' {
        $fp = (Get-SystemContainerImage bb).Fingerprint
        (Get-SystemContainerImage b*).Fingerprint | Should -Be $fp
        (Get-SystemContainerImage $fp.Substring(0, 12)).Aliases | Should -Be 'bb'
        Get-SystemContainerImage nosuch -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImageNotFound,*'
    }
    It 'creates nothing with -WhatIf' {
        New-SystemContainerImage -Busybox -Alias whatif -WhatIf
        Get-SystemContainerImage whatif -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Import-SystemContainerImage' {
    It 'imports a <kind> tarball with full fidelity' -ForEach @(
        @{ kind = 'plain'; file = 'r.tar'; flags = @() },
        @{ kind = 'gzip'; file = 'r.tar.gz'; flags = @('--gzip') },
        @{ kind = 'xz'; file = 'r.tar.xz'; flags = @('--xz') },
        @{ kind = 'zstd'; file = 'r.tar.zst'; flags = @('--zstd') }
    ) {
        $path = Pack $file $flags
        $img = Import-SystemContainerImage $path -Alias "imp-$kind"
        $img.InitKind | Should -Be 'busybox'
        $root = Join-Path $daemon.StateDir "images/$($img.Fingerprint)/rootfs"
        (stat -c '%u:%g' "$root/etc/owned") | Should -Be '1234:4321'
        (stat -c '%a' "$root/bin/busybox") | Should -Be '4750'
        # Device nodes are dropped (containers get /dev from the runtime) and reported.
        Test-Path "$root/dev/null0" | Should -BeFalse
        $img.DroppedDeviceNodes | Should -Be 'dev/null0'
        (stat -c '%i' "$root/etc/passwd") | Should -Be (stat -c '%i' "$root/etc/passwd-hardlink")
    }
    It 'boots a container from an imported image, owners mapped into it' {
        New-SystemContainer fromtar -Image imp-plain -Start | Out-Null
        Invoke-SystemContainerCommand fromtar -- stat -c '%u:%g' /etc/owned | Should -Be '1234:4321'
        Remove-SystemContainer fromtar -Force -Confirm:$false
    }
    It 'adds an alias when the same file is imported again' {
        $again = Import-SystemContainerImage (Join-Path $work 'r.tar') -Alias second-name
        $again.Aliases | Should -Be @('imp-plain', 'second-name')
    }
    It 'refuses an alias that names another image' {
        Import-SystemContainerImage (Join-Path $work 'r.tar.gz') -Alias bb -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AliasInUse,*'
    }
    It 'refuses <what> and leaves nothing behind' -ForEach @(
        @{ what = 'a missing file'; id = 'ImageFileNotFound'; make = { Join-Path $work 'missing.tar' } },
        @{ what = 'a corrupt tarball'; id = 'InvalidImage'; make = {
            $f = Join-Path $work 'corrupt.tar'; [IO.File]::WriteAllBytes($f, [byte[]](1..2048 | ForEach-Object { $_ % 251 })); $f } },
        @{ what = 'a truncated gzip'; id = 'InvalidImage'; make = {
            $f = Join-Path $work 'trunc.tar.gz'; $b = [IO.File]::ReadAllBytes((Join-Path $work 'r.tar.gz')); [IO.File]::WriteAllBytes($f, $b[0..1000]); $f } },
        @{ what = 'an entry with ../'; id = 'InvalidImage'; make = {
            $d = Join-Path $work 'dotdot'; New-Item -ItemType Directory -Force "$d/x" | Out-Null; Set-Content "$d/escape" 'x'
            $f = Join-Path $work 'dotdot.tar'; tar --create --file $f -C "$d/x" ../escape 2>$null; $f } },
        @{ what = 'a write through an absolute symlink'; id = 'InvalidImage'; make = {
            $d = Join-Path $work 'evil'; New-Item -ItemType Directory -Force "$d/a/evil" | Out-Null; Set-Content "$d/a/evil/pwned" 'x'
            New-Item -ItemType Directory -Force "$d/b" | Out-Null; New-Item -ItemType SymbolicLink -Path "$d/b/evil" -Target (Join-Path $work 'outside') | Out-Null
            $f = Join-Path $work 'evil.tar'; tar --create --file $f -C "$d/b" evil; tar --append --file $f -C "$d/a" evil/pwned; $f } },
        @{ what = 'a tarball without /sbin/init'; id = 'InvalidImage'; make = {
            $d = Join-Path $work 'noinit'; New-Item -ItemType Directory -Force "$d/etc" | Out-Null; Set-Content "$d/etc/hostname" 'x'
            $f = Join-Path $work 'noinit.tar'; tar --create --file $f -C $d .; $f } }
    ) {
        $path = & $make
        $before = Get-ImageDirs
        Import-SystemContainerImage $path -Alias bad -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike "$id,*"
        $err[0].Exception.Message | Should -Not -BeNullOrEmpty
        Get-ImageDirs | Should -Be $before
        Get-SystemContainerImage bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Test-Path (Join-Path $work 'outside') | Should -BeFalse
    }
}

Describe 'Import-SystemContainerImage against hostile tarballs' {
    BeforeAll {
        # What an escape would reach: a canary beside the daemon's state, checked after every import.
        $script:canary = Join-Path $daemon.Dir 'canary'
        Set-Content $canary 'host' -NoNewline
        # Tarballs written member by member with System.Formats.Tar, each on top of a minimal rootfs.
        function New-Tarball([string]$Name, [object[]]$Entries) {
            $file = Join-Path $work $Name
            $stream = [IO.File]::Create($file)
            $writer = [System.Formats.Tar.TarWriter]::new($stream, [System.Formats.Tar.TarEntryFormat]::Pax, $false)
            try {
                $base = @(@{ T = 'Directory'; N = 'bin/' }, @{ T = 'RegularFile'; N = 'bin/busybox'; D = 'x' },
                    @{ T = 'Directory'; N = 'sbin/' }, @{ T = 'SymbolicLink'; N = 'sbin/init'; L = '../bin/busybox' })
                foreach ($e in $base + $Entries) {
                    if ($e.T -eq 'Global') { $writer.WriteEntry([System.Formats.Tar.PaxGlobalExtendedAttributesTarEntry]::new($e.A)); continue }
                    # A ustar member has no extended header of its own, so a global one before it decides its name.
                    $entry = if ($e['Ustar']) { [System.Formats.Tar.UstarTarEntry]::new([System.Formats.Tar.TarEntryType]$e.T, $e.N) }
                    else { [System.Formats.Tar.PaxTarEntry]::new([System.Formats.Tar.TarEntryType]$e.T, $e.N) }
                    $entry.Mode = [IO.UnixFileMode]0x1ed
                    if ($e['L']) { $entry.LinkName = $e['L'] }
                    if ($e.ContainsKey('D')) { $entry.DataStream = [IO.MemoryStream]::new([Text.Encoding]::UTF8.GetBytes($e.D)) }
                    $writer.WriteEntry($entry)
                }
            }
            finally { $writer.Dispose(); $stream.Dispose() }
            $file
        }
        function Assert-NothingLeft($Before) {
            Get-ImageDirs | Should -Be $Before
            Get-Content -Raw $canary | Should -Be 'host'
            (stat -c '%h' $canary) | Should -Be '1'
            @(Get-ChildItem $daemon.Dir -Force | Where-Object Name -like 'pwned*') | Should -BeNullOrEmpty
            (Invoke-TestApi $daemon GET /1.0).Status | Should -Be 200
            Get-SystemContainerImage imp-plain | Should -Not -BeNullOrEmpty
        }
    }
    It 'refuses <what> with a clear error and touches nothing' -ForEach @(
        @{ what = 'a hardlink out of the tree'; match = "contains '..'"; entries = { @(@{ T = 'HardLink'; N = 'shadow'; L = '../../canary' }) } },
        @{ what = 'an absolute hardlink'; match = 'absolute path'; entries = { @(@{ T = 'HardLink'; N = 'shadow'; L = $canary }) } },
        @{ what = 'a hardlink to a symlink'; match = 'not a regular file this archive made'; entries = {
            @(@{ T = 'SymbolicLink'; N = 's'; L = $canary }, @{ T = 'HardLink'; N = 'h'; L = 's' }) } },
        @{ what = 'a file through a relative symlink'; match = 'a symlink is never followed'; entries = {
            @(@{ T = 'SymbolicLink'; N = 'up'; L = '../../../..' }, @{ T = 'RegularFile'; N = 'up/pwned'; D = 'x' }) } },
        @{ what = 'a PAX global path'; match = "contains '..'"; entries = {
            $global = [Collections.Generic.Dictionary[string, string]]::new(); $global['path'] = '../../pwned-global'
            @(@{ T = 'Global'; A = $global }, @{ T = 'RegularFile'; N = 'harmless'; D = 'x'; Ustar = $true }) } },
        @{ what = 'an absolute name'; match = 'absolute path'; entries = { @(@{ T = 'RegularFile'; N = (Join-Path $daemon.Dir 'pwned-abs'); D = 'x' }) } },
        @{ what = 'a file replacing a directory'; match = 'would replace a directory'; entries = { @(@{ T = 'RegularFile'; N = 'bin'; D = 'x' }) } }
    ) {
        $before = Get-ImageDirs
        $path = New-Tarball "hostile-$($what -replace '\W', '-').tar" (& $entries)
        Import-SystemContainerImage $path -Alias bad -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,*'
        $err[0].Exception.Message | Should -Match ([regex]::Escape($match))
        Assert-NothingLeft $before
    }
    It 'refuses a GNU tarball whose symlink is followed by a file of its path, through the REST API too' {
        $d = Join-Path $work 'gnu-evil'
        New-Item -ItemType Directory -Force "$d/a/evil", "$d/b" | Out-Null
        Set-Content "$d/a/evil/pwned-gnu" 'x'
        New-Item -ItemType SymbolicLink -Path "$d/b/evil" -Target $daemon.Dir | Out-Null
        $f = Join-Path $work 'gnu-evil.tar'
        tar --create --file $f -C "$d/b" evil; tar --append --file $f -C "$d/a" evil/pwned-gnu
        $before = Get-ImageDirs
        $r = Invoke-TestApi $daemon POST /1.0/images (@{ source = 'file'; path = $f; alias = 'bad' } | ConvertTo-Json)
        $op = (Invoke-TestApi $daemon GET "$($r.Body.operation)/wait?timeout=30").Body.metadata
        $op.status | Should -Be 'Failure'
        $op.err | Should -Match 'never followed'
        Assert-NothingLeft $before
    }
    It 'refuses a decompression bomb beyond the unpack limit quickly' {
        $bomb = Join-Path $work 'bomb.tar.gz'
        $zeros = Join-Path $work 'zeros'
        New-Item -ItemType Directory -Force $zeros | Out-Null
        truncate -s 200M "$zeros/zero"
        tar --create --gzip --file $bomb -C $zeros zero
        Remove-Item -Recurse $zeros
        (Get-Item $bomb).Length | Should -BeLessThan 1MB
        $before = Get-ImageDirs
        Import-SystemContainerImage $bomb -Alias bad -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,*'
        $err[0].Exception.Message | Should -Match 'unpacked bytes \(the import limit\)'
        Assert-NothingLeft $before
    }
    It 'drops and reports FIFOs and sparse files, and never hangs on them' {
        $d = Join-Path $work 'special'
        New-Item -ItemType Directory $d | Out-Null
        sh -c "tar -C $rootfs --exclude=./dev/null0 -c . | tar -C $d -x"
        mkfifo "$d/etc/fifo"
        truncate -s 10M "$d/etc/sparse"
        $f = Join-Path $work 'special.tar'
        tar --create --sparse --format=posix --file $f --numeric-owner -C $d .
        $img = Import-SystemContainerImage $f -Alias special
        $img.DroppedEntries | Should -Be 'etc/fifo (fifo)', 'etc/sparse (sparse file)'
        (Get-SystemContainerImage special).DroppedEntries | Should -Be 'etc/fifo (fifo)', 'etc/sparse (sparse file)'
        $root = Join-Path $daemon.StateDir "images/$($img.Fingerprint)/rootfs"
        Test-Path "$root/etc/fifo", "$root/etc/sparse" | Should -Be $false, $false
        (stat -c '%a %u' "$root/bin/busybox") | Should -Be '4750 0'
        Remove-SystemContainerImage special -Confirm:$false
    }
    It 'imports and removes an image with paths beyond PATH_MAX, leaving nothing' {
        $deep = (@('p' * 200) * 30) -join '/'
        $f = New-Tarball 'deep.tar' @(@{ T = 'RegularFile'; N = "$deep/file"; D = 'deep' })
        $before = Get-ImageDirs
        $img = Import-SystemContainerImage $f -Alias deep
        $root = Join-Path $daemon.StateDir "images/$($img.Fingerprint)/rootfs"
        # find walks relative to directory fds; the full path is far beyond PATH_MAX.
        (find $root -name file -printf '%d %s\n') | Should -Be '31 4'
        Remove-SystemContainerImage deep -Confirm:$false
        Get-ImageDirs | Should -Be $before
    }
}

Describe 'Image aliases' {
    It 'adds names to an image, each naming it, and refuses one that names another image or is invalid' {
        $img = Add-SystemContainerImageAlias bb -Alias bb-two, bb-three -PassThru
        $img.Aliases | Should -Be @('bb', 'bb-two', 'bb-three')
        (Get-SystemContainerImage bb-three).Fingerprint | Should -Be $img.Fingerprint
        # Recorded on disk, so a daemon restart keeps them.
        (Get-Content -Raw (Join-Path $daemon.StateDir "images/$($img.Fingerprint)/image.json") | ConvertFrom-Json).aliases | Should -Be @('bb', 'bb-two', 'bb-three')
        $other = @(Get-SystemContainerImage | Where-Object Fingerprint -ne $img.Fingerprint)[0]
        $other | Should -Not -BeNullOrEmpty
        Add-SystemContainerImageAlias $other.Fingerprint -Alias bb-two -ErrorVariable taken -ErrorAction SilentlyContinue
        $taken[0].FullyQualifiedErrorId | Should -BeLike 'AliasInUse,*'
        Add-SystemContainerImageAlias bb -Alias 'bad alias' -ErrorVariable bad -ErrorAction SilentlyContinue
        $bad[0].FullyQualifiedErrorId | Should -BeLike 'InvalidAlias,*'
        (Get-SystemContainerImage bb).Aliases | Should -Be @('bb', 'bb-two', 'bb-three')
    }
    It 'removes an image only by its fingerprint or its last alias, never by one of several' {
        $img = Get-SystemContainerImage bb
        Remove-SystemContainerImage bb-two -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImageHasOtherAliases,*'
        $err[0].Exception.Message | Should -Match 'bb-three'
        Get-ImageDirs | Should -Contain $img.Fingerprint
        (Get-SystemContainerImage bb-two).Fingerprint | Should -Be $img.Fingerprint
    }
    It 'takes aliases off and keeps the image' {
        $left = Remove-SystemContainerImageAlias bb-two, bb-three -PassThru
        $left[-1].Aliases | Should -Be @('bb')
        Get-SystemContainerImage bb-two -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-SystemContainerImage bb).Aliases | Should -Be @('bb')
        Get-ImageDirs | Should -Contain $left[-1].Fingerprint
        Remove-SystemContainerImageAlias bb-two -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AliasNotFound,*'
    }
}

Describe 'Remove-SystemContainerImage' {
    It 'refuses to remove an image a container uses, naming it' {
        New-SystemContainer user1 -Image bb | Out-Null
        Remove-SystemContainerImage bb -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ImageInUse,*'
        $err[0].Exception.Message | Should -Match 'user1'
        Get-SystemContainerImage bb | Should -Not -BeNullOrEmpty
    }
    It 'removes unused images, from the pipeline too' {
        Remove-SystemContainer user1 -Confirm:$false
        Remove-SystemContainerImage bb -Confirm:$false
        Get-SystemContainerImage imp-* | Remove-SystemContainerImage -Confirm:$false
        Get-SystemContainerImage | Should -BeNullOrEmpty
        Get-ImageDirs | Should -BeNullOrEmpty
    }
}
