# Copy-SystemContainerFile: files in and out of running and stopped containers, seen from inside
# and on the host; and a container that plants links and special files to make a copy reach out.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../SystemContainers.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestDaemon.psm1') -Force
    $script:daemon = Start-TestDaemon
    $script:image = Get-TestImage
    New-SystemContainer files-run -Image $image -Network none -Start | Out-Null
    New-SystemContainer files-stop -Image $image -Network none | Out-Null
    $script:work = (New-Item -ItemType Directory (Join-Path '/tmp' "sc-files-$([guid]::NewGuid().ToString('n'))")).FullName
    # The host ids a container's uid/gid 0 are stored as, from its record.
    function Get-IdBase([string]$Name) {
        (Get-Content -Raw (Join-Path $daemon.StateDir "containers/$Name/config.json") | ConvertFrom-Json).idMap
    }
    function Get-Upper([string]$Name) { Join-Path $daemon.StateDir "containers/$Name/fs/upper" }
    function In([string]$Name, [string]$Script) { Invoke-SystemContainerCommand $Name -- sh -c $Script }
    function New-LocalFile([string]$Path, [string]$Text, [string]$Owner, [string]$Mode) {
        Set-Content -NoNewline -Path $Path -Value $Text
        chown $Owner $Path
        chmod $Mode $Path
    }
    # No overlay of the stopped container's may stay mounted, in the host's or the daemon's view.
    function Test-NoRootfsMount([string]$Name) {
        $upper = Get-Upper $Name
        foreach ($pid_ in @('self', $daemon.Pid)) {
            Get-Content "/proc/$pid_/mountinfo" | Where-Object { $_ -match [regex]::Escape($upper) } | Should -BeNullOrEmpty
        }
    }
}
AfterAll {
    Stop-TestDaemon $script:daemon
    if ($script:work) { Remove-Item -Recurse -Force $script:work }
}

Describe 'Copy-SystemContainerFile on a <Name> container' -ForEach @(@{ Name = 'files-run' }, @{ Name = 'files-stop' }) {
    BeforeAll {
        $script:local = (New-Item -ItemType Directory (Join-Path $work $Name)).FullName
        $script:map = Get-IdBase $Name
        # A stopped container is looked at from inside by starting it once its files are in.
        function Inside([string]$Script) {
            if ($Name -eq 'files-stop') {
                Start-SystemContainer $Name
                try { In $Name $Script } finally { Stop-SystemContainer $Name -Force }
            }
            else { In $Name $Script }
        }
    }

    It 'pushes a file: content, owner and mode inside, the shifted owner on the host' {
        New-LocalFile "$local/one.txt" 'pushed text' '1234:2345' '640'
        Copy-SystemContainerFile $Name -Path "$local/one.txt" -Destination /root -ToContainer
        Inside 'cat /root/one.txt; echo; stat -c "%u %g %a" /root/one.txt' | Should -Be @('pushed text', '1234 2345 640')
        stat -c '%u %g %a' "$(Get-Upper $Name)/root/one.txt" | Should -Be "$($map.uidBase + 1234) $($map.gidBase + 2345) 640"
        if ($Name -eq 'files-stop') { Test-NoRootfsMount $Name }
    }

    It 'pushes under a new name, refuses to replace a file without -Force and replaces it with -Force' {
        New-LocalFile "$local/two.txt" 'first' '0:0' '600'
        Copy-SystemContainerFile $Name -Path "$local/two.txt" -Destination /root/renamed.txt -ToContainer
        New-LocalFile "$local/two.txt" 'second' '0:0' '755'
        Copy-SystemContainerFile $Name -Path "$local/two.txt" -Destination /root/renamed.txt -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FileExists,*'
        $err[0].Exception.Message | Should -Match "'/root/renamed.txt' already exists"
        Inside 'cat /root/renamed.txt' | Should -Be 'first'
        Copy-SystemContainerFile $Name -Path "$local/two.txt" -Destination /root/renamed.txt -ToContainer -Force
        Inside 'cat /root/renamed.txt; echo; stat -c %a /root/renamed.txt; ls -a /root | grep -c sc-copy || true' | Should -Be @('second', '755', '0')
    }

    It 'pulls a file with its owner and mode (container ids, unshifted)' {
        if ($Name -eq 'files-stop') {
            # Made on the host in the upper layer, as the container's uid 7 would have stored it.
            New-LocalFile "$(Get-Upper $Name)/root/pull.txt" 'from inside' "$($map.uidBase + 7):$($map.gidBase + 8)" '604'
        }
        else { In $Name 'printf "from inside" > /root/pull.txt; chown 7:8 /root/pull.txt; chmod 604 /root/pull.txt' }
        Copy-SystemContainerFile $Name -Path /root/pull.txt -Destination $local -FromContainer
        Get-Content -Raw "$local/pull.txt" | Should -Be 'from inside'
        stat -c '%u %g %a' "$local/pull.txt" | Should -Be '7 8 604'
        if ($Name -eq 'files-stop') { Test-NoRootfsMount $Name }
    }

    It 'pushes and pulls a tree with -Recurse, links kept as links' {
        $tree = New-Item -ItemType Directory "$local/tree"
        New-Item -ItemType Directory "$tree/sub/deeper" | Out-Null
        New-LocalFile "$tree/a.txt" 'a' '0:0' '644'
        New-LocalFile "$tree/sub/deeper/b.txt" 'b' '1000:1000' '600'
        chown 1000:1000 "$tree/sub"; chmod 750 "$tree/sub"
        New-Item -ItemType SymbolicLink -Path "$tree/link" -Target '/etc/passwd' | Out-Null
        Copy-SystemContainerFile $Name -Path $tree -Destination /opt/tree -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FileCopyFailed,*'
        $err[0].Exception.Message | Should -Match 'is a directory; use -Recurse'
        Copy-SystemContainerFile $Name -Path $tree -Destination /opt/tree -ToContainer -Recurse -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DirectoryNotFound,*'
        $err[0].Exception.Message | Should -Match "destination directory '/opt' does not exist"
        Copy-SystemContainerFile $Name -Path $tree -Destination /opt/tree -ToContainer -Recurse -Force
        Inside 'cd /opt/tree && find . | sort && readlink link && stat -c "%u %g %a" sub sub/deeper/b.txt && cat sub/deeper/b.txt' |
            Should -Be @('.', './a.txt', './link', './sub', './sub/deeper', './sub/deeper/b.txt', '/etc/passwd', '1000 1000 750', '1000 1000 600', 'b')
        Copy-SystemContainerFile $Name -Path /opt/tree -Destination "$local/back" -FromContainer -Recurse
        (Get-ChildItem -Recurse -Force "$local/back" | ForEach-Object { $_.FullName.Substring("$local/back".Length) } | Sort-Object) |
            Should -Be @('/a.txt', '/link', '/sub', '/sub/deeper', '/sub/deeper/b.txt')
        (Get-Item "$local/back/link").LinkTarget | Should -Be '/etc/passwd'
        stat -c '%u %g %a' "$local/back/sub" "$local/back/sub/deeper/b.txt" | Should -Be @('1000 1000 750', '1000 1000 600')
    }

    It 'expands wildcards on the side the files are read from' {
        New-Item -ItemType Directory "$local/glob" | Out-Null
        foreach ($n in 'w1.txt', 'w2.txt', 'other.log') { Set-Content -Path "$local/glob/$n" -Value $n }
        Copy-SystemContainerFile $Name -Path "$local/glob/w*.txt" -Destination /root -ToContainer
        Inside 'ls /root | grep -E "^(w|other)"' | Should -Be @('w1.txt', 'w2.txt')
        New-Item -ItemType Directory "$local/globback" | Out-Null
        Copy-SystemContainerFile $Name -Path '/root/w?.txt' -Destination "$local/globback" -FromContainer
        (Get-ChildItem "$local/globback").Name | Should -Be @('w1.txt', 'w2.txt')
        Copy-SystemContainerFile $Name -Path '/root/nothing*' -Destination "$local/globback" -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FileNotFound,*'
        $err[0].Exception.Message | Should -Match "nothing matches '/root/nothing\*'"
    }

    It 'streams a 200 MB file both ways, the same checksum on each side' {
        $big = "$local/big.bin"
        head -c 200M /dev/urandom > $big
        $sum = (sha256sum $big) -split ' ' | Select-Object -First 1
        Copy-SystemContainerFile $Name -Path $big -Destination /root/big.bin -ToContainer
        ((sha256sum "$(Get-Upper $Name)/root/big.bin") -split ' ')[0] | Should -Be $sum
        Copy-SystemContainerFile $Name -Path /root/big.bin -Destination "$local/big.back" -FromContainer
        ((sha256sum "$local/big.back") -split ' ')[0] | Should -Be $sum
        Inside 'sha256sum /root/big.bin; rm /root/big.bin' | Should -Be "$sum  /root/big.bin"
        Remove-Item $big, "$local/big.back"
    }

    It 'names the path in its errors: a missing source, a relative path, a directory without -Recurse' {
        Copy-SystemContainerFile $Name -Path /root/no-such-file -Destination $local -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FileNotFound,*'
        $err[0].Exception.Message | Should -Match "'/root/no-such-file' does not exist in container '$Name'"
        Copy-SystemContainerFile $Name -Path "$local/one.txt" -Destination root/x -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPath,*'
        Copy-SystemContainerFile $Name -Path /etc -Destination $local -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'IsADirectory,*'
        Test-Path "$local/etc" | Should -BeFalse
        if ($Name -eq 'files-stop') { Test-NoRootfsMount $Name; (Get-SystemContainer $Name).Status | Should -Be 'Stopped' }
    }
}

Describe 'Copy-SystemContainerFile with bad input' {
    It 'refuses a container that does not exist' {
        Copy-SystemContainerFile no-such -Path /etc/hostname -Destination $work -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound,*'
    }
    It 'refuses a local source that does not exist' {
        Copy-SystemContainerFile files-run -Path "$work/no-such" -Destination /root -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PathNotFound,*'
    }
    It 'refuses an owner the container''s id map does not have, leaving no file, not even a temporary one' {
        New-LocalFile "$work/unmapped.txt" 'x' '70000:0' '644'
        Copy-SystemContainerFile files-run -Path "$work/unmapped.txt" -Destination /root -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidUser,*'
        $err[0].Exception.Message | Should -Match "uid 70000 of '/root/unmapped.txt' is not mapped in container 'files-run'"
        In files-run 'ls -a /root | grep -c -e unmapped -e sc-copy || true' | Should -Be '0'
    }
    It 'pushes into / itself' {
        Set-Content -NoNewline -Path "$work/at-root.txt" -Value 'top'
        Copy-SystemContainerFile files-run -Path "$work/at-root.txt" -Destination / -ToContainer
        In files-run 'cat /at-root.txt' | Should -Be 'top'
    }
}

Describe 'Copy-SystemContainerFile against a hostile container' {
    BeforeAll {
        # Host files the container must neither read nor write: a marker with a secret, in a directory the container does not have.
        $script:marker = Join-Path $work "marker-$([guid]::NewGuid().ToString('n'))"
        Set-Content -NoNewline -Path $marker -Value 'host secret'
        $script:markerSum = (sha256sum $marker) -split ' ' | Select-Object -First 1
        $script:pwnDir = Join-Path $work "pwn-$([guid]::NewGuid().ToString('n'))"
        $script:payload = Join-Path $work 'payload.txt'
        Set-Content -NoNewline -Path $payload -Value 'pwned'
        In files-run 'ln -s / /tmp/evil; ln -s /proc/self/root /tmp/x; ln -s ../../../../ /tmp/up; mkfifo /tmp/fifo'
        In files-run "ln -s $marker /tmp/to-marker; mkdir -p /tmp/tree; ln -s / /tmp/tree/root; mkfifo /tmp/tree/fifo; echo ok > /tmp/tree/file"
        $script:pulled = (New-Item -ItemType Directory (Join-Path $work 'pulled')).FullName
    }
    AfterEach {
        # Whatever was tried, the host's files are as they were.
        ((sha256sum $marker) -split ' ')[0] | Should -Be $markerSum
        Test-Path $pwnDir | Should -BeFalse
        Test-Path /etc/passwd-pwned | Should -BeFalse
    }

    It 'writes through a planted "/" link only inside the container (<Via>)' -ForEach @(@{ Via = '/tmp/evil' }, @{ Via = '/tmp/up' }) {
        Copy-SystemContainerFile files-run -Path $payload -Destination "$Via/etc/passwd-pwned" -ToContainer
        In files-run 'cat /etc/passwd-pwned; rm /etc/passwd-pwned' | Should -Be 'pwned'
        Copy-SystemContainerFile files-run -Path $payload -Destination "$Via$pwnDir/x" -ToContainer -Force
        In files-run "cat $pwnDir/x; rm -r $pwnDir" | Should -Be 'pwned'
    }
    It 'never reads a host file through a planted link (<Via>)' -ForEach @(@{ Via = '/tmp/evil' }, @{ Via = '/tmp/up' }, @{ Via = '/tmp/x' }) {
        Copy-SystemContainerFile files-run -Path "$Via$marker" -Destination "$pulled/got" -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeIn @('FileNotFound,SystemContainers.PowerShell.CopySystemContainerFileCommand', 'PathEscapes,SystemContainers.PowerShell.CopySystemContainerFileCommand')
        Test-Path "$pulled/got" | Should -BeFalse
    }
    It 'refuses a magic link: /tmp/x leads to /proc/self/root' {
        Copy-SystemContainerFile files-run -Path /tmp/x/etc/shadow -Destination "$pulled/shadow" -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PathEscapes,*'
        Test-Path "$pulled/shadow" | Should -BeFalse
        Copy-SystemContainerFile files-run -Path $payload -Destination /tmp/x/etc/passwd-pwned -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PathEscapes,*'
    }
    It 'never leaves the root file system for the container''s /proc, /dev or /sys mounts' {
        foreach ($into in '/dev/shm/x', '/proc/1/root/x', '/sys/x') {
            Copy-SystemContainerFile files-run -Path $payload -Destination $into -ToContainer -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'PathEscapes,*'
        }
        In files-run 'ls /dev/shm | wc -l' | Should -Be '0'
    }
    It 'replaces a planted link to a host file with -Force, never writing its target' {
        Copy-SystemContainerFile files-run -Path $payload -Destination /tmp/to-marker -ToContainer -Force
        In files-run 'test -L /tmp/to-marker || cat /tmp/to-marker' | Should -Be 'pwned'
        Copy-SystemContainerFile files-run -Path /tmp/evil -Destination "$pulled/evil-link" -FromContainer
        (Get-Item "$pulled/evil-link").LinkTarget | Should -Be '/'
    }
    It 'copies a tree''s "/" link as a link and skips its fifo with a warning, never opening it' {
        Copy-SystemContainerFile files-run -Path /tmp/tree -Destination "$pulled/tree" -FromContainer -Recurse -WarningVariable warn 3>$null
        (Get-Item "$pulled/tree/root").LinkTarget | Should -Be '/'
        Get-Content "$pulled/tree/file" | Should -Be 'ok'
        Test-Path "$pulled/tree/fifo" | Should -BeFalse
        "$warn" | Should -Match '/tmp/tree/fifo: a fifo, never copied'
        (Get-ChildItem -Recurse "$pulled/tree").Count | Should -Be 2
    }
    It 'refuses to pull a fifo (it would block a reader forever) or a device node' {
        Copy-SystemContainerFile files-run -Path /tmp/fifo -Destination "$pulled/fifo" -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SpecialFile,*'
        $err[0].Exception.Message | Should -Match "'/tmp/fifo' in container 'files-run' is a fifo"
        # A device node the container could not make itself, as a tampered image would carry it.
        mknod "$(Get-Upper files-run)/tmp/null-dev" c 1 3
        Copy-SystemContainerFile files-run -Path /tmp/null-dev -Destination "$pulled/dev" -FromContainer -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SpecialFile,*'
        Test-Path "$pulled/dev" | Should -BeFalse
    }
    It 'never creates a fifo on push: it is skipped with a warning' {
        $dir = New-Item -ItemType Directory (Join-Path $work 'with-fifo')
        mkfifo "$dir/pipe"
        Set-Content -Path "$dir/plain" -Value 'plain'
        Copy-SystemContainerFile files-run -Path $dir -Destination /tmp/with-fifo -ToContainer -Recurse -WarningVariable warn 3>$null
        "$warn" | Should -Match '/tmp/with-fifo/pipe: a fifo, never created'
        In files-run 'ls /tmp/with-fifo' | Should -Be 'plain'
    }
}
