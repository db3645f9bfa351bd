# What the benchmark scripts share: medians, appending a result table to RESULTS.md, and LXC's side of a comparison.
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

<#
LXC on the same work, timed without wrappers of ours: one bash in a network namespace of its own
(LXC's command sockets are abstract, so every lxc-* command must run in the namespace of the
lxc-start that made it; the daemon's has its DHCP server on port 67) and a private mount namespace
with that network namespace's sysfs (lxc-start looks for the bridge there). Each step is a line of bash timed by bash itself ($EPOCHREALTIME), so
LXC's column holds lxc-*'s own processes and nothing of nsenter, unshare or pwsh. Two base
containers from the busybox template are made, 'empty' (no network) and 'veth' (on a bridge of
their own in the namespace, served by a dnsmasq for DHCP as lxc-net's lxcbr0 is), with no ttys and
no getty: the template's five ttys and a getty each took six host ptys a container, and a
thousand of them ran out of ptys (kernel.pty.max). LXC's containers are privileged (no id map).
#>
function Start-LxcDriver {
    if (-not (Get-Command lxc-start -ErrorAction SilentlyContinue)) { return $null }
    $tag = "scbench-$PID"
    ip netns add $tag
    if ($LASTEXITCODE) { throw "cannot create network namespace $tag" }
    ip -n $tag link set lo up
    $sysfs = Join-Path ([IO.Path]::GetTempPath()) "$tag-sysfs"
    $log = Join-Path ([IO.Path]::GetTempPath()) "$tag-lxc.log"
    New-Item -ItemType Directory $sysfs -Force | Out-Null
    Set-Content $log ''
    $loop = @'
export LC_ALL=C
mount -t sysfs none "$1" && mount --bind "$1/class/net" /sys/class/net && mount --bind "$1/devices/virtual/net" /sys/devices/virtual/net || exit 1
echo ready
while IFS= read -r step; do
    t0=$EPOCHREALTIME
    eval "$step" </dev/null >/dev/null 2>>"$2"
    rc=$?
    echo "$rc $t0 $EPOCHREALTIME"
done
'@
    $psi = [Diagnostics.ProcessStartInfo]::new('nsenter')
    foreach ($a in @("--net=/run/netns/$tag", '--', 'unshare', '-m', '--propagation', 'private', 'bash', '-c', $loop, 'lxcstep', $sysfs, $log)) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.UseShellExecute = $false
    $driver = [pscustomobject]@{ Process = [Diagnostics.Process]::Start($psi); Tag = $tag; Sysfs = $sysfs; Log = $log; Out = "/tmp/$tag-out"
        Bases = @{}; Made = [Collections.Generic.List[string]]::new() }
    try {
        if ($driver.Process.StandardOutput.ReadLine() -ne 'ready') { throw "the LXC step shell did not start: $(Get-Content -Raw $log)" }
        Invoke-LxcStep $driver ('ip link add lxcbench0 type bridge && ip addr add 10.252.0.1/20 dev lxcbench0 && ip link set lxcbench0 up && ' +
            "dnsmasq --conf-file=/dev/null --port=0 --bind-interfaces --interface=lxcbench0 --except-interface=lo --dhcp-range=10.252.0.2,10.252.15.254,1h " +
            "--dhcp-lease-max=4096 --dhcp-leasefile=/tmp/$tag-leases --pid-file=/tmp/$tag-dnsmasq.pid") | Out-Null
        foreach ($kind in 'empty', 'veth') {
            $base = "$tag-$kind"
            $net = if ($kind -eq 'veth') { 'lxc.net.0.type = veth\nlxc.net.0.link = lxcbench0\nlxc.net.0.flags = up' } else { 'lxc.net.0.type = empty' }
            Invoke-LxcStep $driver ("printf '$net\nlxc.apparmor.profile = unconfined\n' > /tmp/$base.conf && lxc-create -n $base -t busybox -f /tmp/$base.conf; rc=`$?; rm -f /tmp/$base.conf; [ `$rc = 0 ] && " +
                "sed -i 's/^lxc.tty.max = .*/lxc.tty.max = 0/' /var/lib/lxc/$base/config && sed -i '/getty/d' /var/lib/lxc/$base/rootfs/etc/inittab") | Out-Null
            $driver.Bases[$kind] = $base
        }
    }
    catch { Stop-LxcDriver $driver; throw }
    $driver
}

# Runs one line of bash in the driver; returns its milliseconds, or throws with LXC's last error lines.
function Invoke-LxcStep($Driver, [string]$Step) {
    $Driver.Process.StandardInput.WriteLine($Step)
    $Driver.Process.StandardInput.Flush()
    $answer = $Driver.Process.StandardOutput.ReadLine()
    if ($null -eq $answer) { throw "the LXC step shell ended at: $Step" }
    $rc, $t0, $t1 = $answer -split ' '
    if ($rc -ne '0') { throw "LXC step failed (exit $rc): $Step`n$((Get-Content $Driver.Log -Tail 5) -join "`n")" }
    ([double]$t1 - [double]$t0) * 1000
}

# What one line of bash in the driver prints (its stdout, as lines).
function Invoke-LxcQuery($Driver, [string]$Step) {
    Invoke-LxcStep $Driver "{ $Step; } > $($Driver.Out)" | Out-Null
    Get-Content $Driver.Out
}

<#
A base named 'systemd' with a copy of the rootfs of one of our images (a Debian/systemd image's,
so both run the same files; lxc-copy snapshots only a rootfs in LXC's own directory), with the
configuration of LXC's Debian template (debian.common.conf: its devices, mounts and seccomp
profile) and a veth on the DHCP bridge.
#>
function New-LxcSystemdBase($Driver, [string]$Rootfs) {
    $base = "$($Driver.Tag)-systemd"
    $config = @(
        'lxc.include = /usr/share/lxc/config/debian.common.conf', 'lxc.arch = linux64', "lxc.rootfs.path = dir:/var/lib/lxc/$base/rootfs", "lxc.uts.name = $base",
        'lxc.net.0.type = veth', 'lxc.net.0.link = lxcbench0', 'lxc.net.0.flags = up', 'lxc.apparmor.profile = unconfined', 'lxc.tty.max = 0'
    ) -join '\n'
    $Driver.Bases['systemd'] = $base
    Invoke-LxcStep $Driver "mkdir /var/lib/lxc/$base && printf '$config\n' > /var/lib/lxc/$base/config && cp -a $Rootfs /var/lib/lxc/$base/rootfs" | Out-Null
}

# lxc-copy and lxc-start of a new container from a base, then Then (bash, after &&; by default one
# lxc-attach): what New-SystemContainer -Start and an exec do. Then '' stops at the start.
function Invoke-LxcLaunch($Driver, [string]$Kind, [string]$Name, [string]$Then = "lxc-attach -n $Name -- true") {
    $Driver.Made.Add($Name)
    Invoke-LxcStep $Driver ("lxc-copy -n $($Driver.Bases[$Kind]) -N $Name -s -B overlayfs && lxc-start -n $Name" + $(if ($Then) { " && $Then" } else { '' }))
}

# The total (s), the medians of the first and last 10 (ms) and their ratio, of start times in ms;
# with Until (booted), of starts until that.
function Get-StartSummary([double[]]$Starts, [string]$Until) {
    $first = Get-Median $Starts[0..9]; $last = Get-Median $Starts[($Starts.Count - 10)..($Starts.Count - 1)]
    $step = if ($Until) { $Until } else { 'start' }
    [ordered]@{
        "total of the starts$(if ($Until) { " until $Until" }), s" = [math]::Round(($Starts | Measure-Object -Sum).Sum / 1000, 2)
        "$step, first 10 (median ms)"                              = [math]::Round($first, 2)
        "$step, last 10 (median ms)"                               = [math]::Round($last, 2)
        'last 10 / first 10'                                       = [math]::Round($last / $first, 2)
    }
}

# lxc-stop -k and lxc-destroy of each name, in one step (a subshell: an exit must not end the driver's shell).
function Invoke-LxcTeardown($Driver, [string[]]$Names) {
    $ms = Invoke-LxcStep $Driver "(for n in $($Names -join ' '); do lxc-stop -n `$n -k && lxc-destroy -n `$n || exit 1; done)"
    foreach ($n in $Names) { [void]$Driver.Made.Remove($n) }
    $ms
}

# Destroys what the driver made (a failed run's containers too) and ends its shell.
function Stop-LxcDriver($Driver) {
    if (-not $Driver) { return }
    if (-not $Driver.Process.HasExited) {
        $names = @($Driver.Made) + @($Driver.Bases.Values)
        try { Invoke-LxcStep $Driver "for n in $($names -join ' '); do lxc-destroy -n `$n -f; done; true" | Out-Null }
        catch { Write-Warning "cannot destroy LXC's containers: $_" }
        $Driver.Process.StandardInput.Close()
        $Driver.Process.WaitForExit()
    }
    $Driver.Process.Dispose()
    $dnsmasq = "/tmp/$($Driver.Tag)-dnsmasq.pid"
    if (Test-Path $dnsmasq) { Stop-Process -Id ([int](Get-Content $dnsmasq)) -ErrorAction SilentlyContinue }
    Remove-Item $Driver.Sysfs, $Driver.Log, $Driver.Out, "/tmp/$($Driver.Tag)-leases" -ErrorAction SilentlyContinue
    # dnsmasq writes its pid file as nobody, which Remove-Item refuses to delete (rm, as root, does not).
    rm -f $dnsmasq
    ip netns del $Driver.Tag
}

Export-ModuleMember -Function Get-Median, Measure-Ms, Add-BenchResult, Start-LxcDriver, Invoke-LxcStep, Invoke-LxcQuery, New-LxcSystemdBase, Invoke-LxcLaunch, Get-StartSummary, Invoke-LxcTeardown, Stop-LxcDriver
