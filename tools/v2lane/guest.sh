#!/usr/bin/env bash
# tools/v2lane/guest.sh MODE [ARGS...]: the v2 lane's work inside its guest (run.sh boots the
# guest, which mounts the toolchain disk on /mnt/tool and the built tree on /mnt/tree and runs
# this as root). MODE is lane, pester PATH..., login PATH... or command 'COMMAND' (see run.sh).
# Results (Pester XML, "<run>.summary" files, daemon logs, the journal) go to /mnt/share/results.
set -uo pipefail
mode=$1; shift
TREE=/mnt/tree
RESULTS=/mnt/share/results
mkdir -p "$RESULTS/daemon-logs"

# .NET and the NuGet cache where the host has them; the host's debootstrap builds and unpacked
# criu in the daemon's cache, so the systemd image is built and criu found without a network.
ln -sfn /mnt/tool/dotnet /usr/share/dotnet
ln -sfn /usr/share/dotnet/dotnet /usr/bin/dotnet
mkdir -p /root/.nuget /var/cache/systemcontainers/debootstrap
ln -sfn /mnt/tool/nuget /root/.nuget/packages
cp -a /mnt/tool/dotnet-home /root/.dotnet
for t in /mnt/tool/debootstrap/*.tar; do [ -f "$t" ] && ln -sfn "$t" /var/cache/systemcontainers/debootstrap/; done
[ ! -d /mnt/tool/criu ] || ln -sfn /mnt/tool/criu /var/cache/systemcontainers/criu
# Everything below, the login session included, sees the same environment.
mkdir -p /run/v2lane
cat > /run/v2lane/env <<ENV
export HOME=/root DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE=${SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE:-1}
export SYSTEMCONTAINERS_TEST_LOG_DIR=$RESULTS/daemon-logs
export SYSTEMCONTAINERS_V2LANE=${SYSTEMCONTAINERS_V2LANE:-subset}
ENV
. /run/v2lane/env
cd "$TREE"
# The cgroup2 mount's options and its super block's (where nsdelegate shows), from mountinfo.
cgroup2() { awk '{ for (i = 7; i < NF; i++) if ($i == "-" && $(i + 1) == "cgroup2") print $5 " (" $6 "; " $(i + 3) ")" }' /proc/self/mountinfo; }
# systemd mounts cgroup2 with nsdelegate and memory_recursiveprot, but lxcfs.service (lxcfs 5.0.3)
# mounts cgroup2 with no options, which resets the global superblock to "rw" (lxc/lxcfs#692, fixed
# upstream in #703, not in Debian 12), before any daemon runs, so no daemon saw them to put them
# back. The lane sets them again, as systemd meant them (V2LANE_NSDELEGATE=0: as such a host runs):
# nsdelegate is what refuses cgroup moves across cgroup namespaces.
case ${V2LANE_NSDELEGATE:-1}:$(cgroup2) in
    0:*|*nsdelegate*) ;;
    *) mount -o remount,nsdelegate,memory_recursiveprot /sys/fs/cgroup || { echo "v2lane guest: cannot remount cgroup2 with nsdelegate"; exit 1; } ;;
esac
echo "v2lane guest: $(uname -r), $(systemctl --version | head -1), cgroup2 at $(cgroup2)"

# Every cgroup, delegation and exec path: lifecycle, isolation (cgroup placement), limits, freeze
# and stats, exec and Enter, daemon restarts, a systemd container. Networks and image imports do
# not depend on the cgroup version and stay in the host lane (SYSTEMCONTAINERS_V2LANE=full runs them).
SUBSET=(tests/Containers.Tests.ps1 tests/Isolation.Tests.ps1 tests/Limits.Tests.ps1 tests/Exec.Tests.ps1
    tests/Daemon.Tests.ps1 tests/Systemd.Tests.ps1)
# The guest-only lxcfs/nsdelegate test leads the suite run: it needs the clone's module, and in the
# service run, after Service.Tests.ps1 has uninstalled the module, its import fails.
GUEST_ONLY=(tools/v2lane/Cgroup2Options.Tests.ps1)

# pester NAME UNIT PATH...: one Pester run; UNIT=1 runs its test daemons as systemd services;
# V2LANE_FILTER (run.sh --filter) keeps only the tests whose full name matches it.
pester() {
    local name=$1 unit=$2; shift 2
    local start=$(date +%s)
    SYSTEMCONTAINERS_TEST_DAEMON_UNIT=$unit dotnet pwsh -NoProfile -NonInteractive -File tools/v2lane/Invoke-LanePester.ps1 \
        -Name "$name" -Results "$RESULTS" ${V2LANE_FILTER:+-FullName "$V2LANE_FILTER"} "$@"
    echo "v2lane guest: $name took $(( $(date +%s) - start )) s"
}

# login NAME PATH...: the same from a root login session on tty2 (session-N.scope), where the
# test daemons are children of the login shell's pwsh, as when an admin starts them.
login() {
    local name=$1; shift
    local start=$(date +%s)
    v2lane-login ". /run/v2lane/env; cd $TREE; dotnet pwsh -NoProfile -NonInteractive -File tools/v2lane/Invoke-LanePester.ps1 -Name $name -Results $RESULTS $*"
    echo "v2lane guest: $name took $(( $(date +%s) - start )) s"
}

# xunit NAME: the engine's xunit tests, built on the host (run.sh brings the build in the tree: the
# guest has no network to restore, and compiling under TCG would cost minutes), counted as build.ps1
# counts them: failed includes errors and timeouts, skipped is what was not executed.
xunit() {
    local name=$1
    local start=$(date +%s)
    local dll=$TREE/tests/SystemContainers.Engine.Tests/bin/Release/net10.0/linux-x64/SystemContainers.Engine.Tests.dll
    SYSTEMCONTAINERS_SC_INIT=$TREE/artifacts/SystemContainers/daemon/sc-init dotnet test "$dll" --nologo \
        --logger "trx;LogFileName=$name.trx" --logger 'console;verbosity=normal' --results-directory "$RESULTS"
    local status=$?
    local counters
    counters=$(grep -o '<Counters [^>]*>' "$RESULTS/$name.trx" 2>/dev/null | head -1)
    count() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9][0-9]*' || echo 0; }
    local passed=0 failed=1 skipped=0
    if [ -n "$counters" ]; then
        passed=$(count passed)
        failed=$(( $(count failed) + $(count error) + $(count timeout) ))
        skipped=$(( $(count total) - $(count executed) ))
        # A run that failed without a failed test (the host crashed, say) is one failure.
        [ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
    fi
    echo "$passed $failed $skipped" > "$RESULTS/$name.summary"
    echo "v2lane guest: $name took $(( $(date +%s) - start )) s"
}

rc=0
case $mode in
    lane)
        pester service 0 tools/v2lane/Service.Tests.ps1
        if [ "$SYSTEMCONTAINERS_V2LANE" = full ]; then
            # The files outside the subset first: a run cut short by the lane's timeout still says most.
            rest=()
            for f in tests/*.Tests.ps1; do [[ " ${SUBSET[*]} " == *" $f "* ]] || rest+=("$f"); done
            xunit xunit
            pester suite 1 "${GUEST_ONLY[@]}" "${rest[@]}" "${SUBSET[@]}"
        else
            pester suite 1 "${GUEST_ONLY[@]}" "${SUBSET[@]}"
        fi
        login login tools/v2lane/LoginSession.Tests.ps1
        ;;
    pester) pester pester 1 "$@" ;;
    login) login login "$@" ;;
    xunit) xunit xunit ;;
    command) bash -c "$1"; rc=$? ;;
    *) echo "guest.sh: unknown mode $mode" >&2; rc=2 ;;
esac
journalctl -b --no-pager > "$RESULTS/journal.txt" 2>&1
exit $rc
