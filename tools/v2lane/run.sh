#!/usr/bin/env bash
# tools/v2lane/run.sh: the v2 lane. Boots a Debian 12 guest (systemd as PID 1, pure cgroup v2 with
# nsdelegate, no network device) and runs the built tree's tests in it, as on a typical user's host.
#
#   tools/v2lane/run.sh                      the lane: ./build.ps1 install and the service
#                                            (tools/v2lane/Service.Tests.ps1), the lxcfs/nsdelegate
#                                            test (Cgroup2Options.Tests.ps1) and the v2 subset of
#                                            tests/ (SYSTEMCONTAINERS_V2LANE=full: all of tests/),
#                                            then a root login session (LoginSession.Tests.ps1);
#                                            full mode also runs the engine's xunit tests first
#   tools/v2lane/run.sh PATH...              only these Pester files (relative to the clone), with
#                                            the test daemons as systemd services
#   tools/v2lane/run.sh --filter PAT PATH... only the tests of these files whose full name (Describe
#                                            and It) matches the Pester wildcard PAT, e.g.
#                                            'A full state or run disk*'; repeat --filter for several
#   tools/v2lane/run.sh --login PATH...      the same from a root login session (session-N.scope),
#                                            the test daemons as children of the login shell's pwsh
#   tools/v2lane/run.sh --xunit              only the engine's xunit tests
#   tools/v2lane/run.sh -c 'COMMAND'         one shell command in the guest, in the clone, as root
#
# Build first (./build.ps1 build). Needs root, qemu-system-x86, qemu-utils and e2fsprogs (installed
# here when missing) and Debian's archive the first time (the image, build-image.sh, is cached).
# Output in $V2LANE_OUT (tests/results/v2lane): summary (passed/failed/skipped and, when the lane
# could not run, the reason), Pester NUnit XML, every test daemon's log, the guest's journal and
# the serial console. The last line is "v2lane: Tests: N passed, N failed, N skipped".
# Exit status: 0 all passed, 1 tests failed, 3 the lane could not run (summary says why).
#
# Env: V2LANE_ACCEL auto|kvm|tcg (auto: KVM where /dev/kvm is real hardware virtualisation, TCG
# where it is missing or PVM, whose kvm_pvm runs only PVM guest kernels), V2LANE_MEM (6G),
# V2LANE_SMP (2), V2LANE_TIMEOUT (s, 3600), V2LANE_CACHE (/var/cache/systemcontainers-v2lane),
# V2LANE_NSDELEGATE (1, the default: remount the guest's cgroup2 with the nsdelegate that
# lxcfs.service clears, as systemd mounts it; 0: run as a Debian 12 host with lxcfs.service does).
# One VM at a time on a machine: a second run waits for the lock (V2LANE_LOCK_WAIT s, 7200).
# Only the qemu this script started is ever ended, by its pid; its overlay disks go with it.
set -euo pipefail
SELF=$(readlink -f "$0")
HERE=$(dirname "$SELF")
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${V2LANE_CACHE:-/var/cache/systemcontainers-v2lane}
OUT=${V2LANE_OUT:-$ROOT/tests/results/v2lane}
TIMEOUT=${V2LANE_TIMEOUT:-3600}

mode=lane
filter=
# Several patterns go to the guest joined by "|", which no test name here holds.
while [ "${1:-}" = --filter ]; do
    [ $# -ge 3 ] || { echo "usage: run.sh --filter PATTERN [--filter PATTERN]... PATH..." >&2; exit 2; }
    filter=${filter:+$filter|}$2; shift 2
done
case "${1:-}" in
    -c) [ $# -eq 2 ] || { echo "usage: run.sh -c 'COMMAND'" >&2; exit 2; }; shift; mode=command ;;
    --login) shift; [ $# -gt 0 ] || { echo "usage: run.sh --login PATH..." >&2; exit 2; }; mode=login ;;
    --xunit) [ $# -eq 1 ] || { echo "usage: run.sh --xunit" >&2; exit 2; }; shift; mode=xunit ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$SELF"; exit 0 ;;
    '') ;;
    *) mode=pester ;;
esac
[ -z "$filter" ] || [ "$mode" = pester ] || { echo "usage: run.sh --filter PATTERN... PATH..." >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT"
# The lane could not run: counted as one skipped test, with the reason, never as a pass.
skip() {
    printf 'passed 0\nfailed 0\nskipped 1\nreason %s\n' "$*" > "$OUT/summary"
    echo "v2lane: skipped: $*"
    echo "v2lane: Tests: 0 passed, 0 failed, 1 skipped"
    exit 3
}

[ "$(id -u)" = 0 ] || skip "the lane needs root"
[ -x "$ROOT/artifacts/SystemContainers/daemon/systemcontainerd" ] || skip "nothing built: run ./build.ps1 build first"
need=()
for p in qemu-system-x86 qemu-utils e2fsprogs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "v2lane: installing ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } > "$OUT/apt.log" 2>&1 \
        || skip "cannot install ${need[*]} (see $OUT/apt.log)"
fi
[ -c /dev/kvm ] || [ "${V2LANE_ACCEL:-auto}" != kvm ] || skip "V2LANE_ACCEL=kvm but there is no /dev/kvm"

mkdir -p "$CACHE"
exec 9> "$CACHE/lock"
if ! flock -n 9; then
    echo "v2lane: another lane run holds $CACHE/lock; waiting"
    flock -w "${V2LANE_LOCK_WAIT:-7200}" 9 || skip "another lane run held $CACHE/lock too long"
fi

t_start=$(date +%s)
"$HERE/build-image.sh" || skip "cannot build the guest image (build-image.sh failed)"
t_image=$(date +%s)
IMAGE=$CACHE/image
RUN=$CACHE/run
rm -rf "$RUN"
mkdir -p "$RUN/share/results"

# Disk 2, the toolchain: .NET (the SDK: the tests run `dotnet pwsh`), the NuGet cache (the pwsh
# tool and Pester), ~/.dotnet (where `dotnet tool restore` records the local tools) and the host's
# cached debootstrap builds and the criu ./build.ps1 criu unpacked (the guest has no network to
# make them). Cached by the listing of its content. Disk 3 is the built tree, made on every run.
dotnet_dir=$(dirname "$(readlink -f "$(command -v dotnet)")")
nuget_dir=${NUGET_PACKAGES:-$HOME/.nuget/packages}
dotnet_home=$HOME/.dotnet
[ -d "$nuget_dir/pester" ] || skip "no Pester in $nuget_dir: run ./build.ps1 test once on the host"
[ -d "$dotnet_home/toolResolverCache" ] || skip "no local tools in $dotnet_home: run dotnet tool restore first"
debootstrap_dir=/var/cache/systemcontainers/debootstrap
criu_dir=/var/cache/systemcontainers/criu
tool_key=$( { find "$dotnet_dir" "$nuget_dir" "$dotnet_home" -printf '%P %s\n'; ls -l "$debootstrap_dir"/*.tar 2>/dev/null; ls -d "$criu_dir"/[0-9]* 2>/dev/null; } | sha256sum | cut -c1-16)
TOOL=$CACHE/toolchain-$tool_key.img
if [ ! -f "$TOOL" ]; then
    rm -f "$CACHE"/toolchain-*
    echo "v2lane: making the toolchain disk"
    stage=$RUN/toolchain
    mkdir -p "$stage/debootstrap"
    # Hard links where the cache shares a file system with them: mkfs.ext4 -d only reads.
    link() { cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }; }
    link "$dotnet_dir" "$stage/dotnet"
    link "$nuget_dir" "$stage/nuget"
    link "$dotnet_home" "$stage/dotnet-home"
    for t in "$debootstrap_dir"/*.tar; do [ -f "$t" ] && link "$t" "$stage/debootstrap/$(basename "$t")"; done
    # Its wrapper names the tree by absolute path: the guest links the same path to it.
    mkdir -p "$stage/criu"
    for c in "$criu_dir"/[0-9]*; do [ -x "$c/criu" ] && link "$c" "$stage/criu/$(basename "$c")"; done
    size=$(( $(du -sm "$stage" | cut -f1) * 12 / 10 + 256 ))
    mkfs.ext4 -q -F -L v2tool -d "$stage" "$TOOL.tmp" "${size}M" > /dev/null
    mv "$TOOL.tmp" "$TOOL"
    rm -rf "$stage"
fi
stage=$RUN/tree
mkdir -p "$stage"
tar -C "$ROOT" --exclude=./.git --exclude=./tests/results --exclude='*/bin' --exclude='*/obj' -cf - . | tar -C "$stage" -xf -
# The xunit tests run from a host build (guest.sh's xunit says why), made for the runs that need it
# and brought in whenever there is one (a command may run them too).
xunit_project=tests/SystemContainers.Engine.Tests
if [ "$mode" = xunit ] || { [ "$mode" = lane ] && [ "${SYSTEMCONTAINERS_V2LANE:-subset}" = full ]; }; then
    dotnet build "$ROOT/$xunit_project" -c Release --nologo -v quiet > "$OUT/xunit-build.log" 2>&1 \
        || skip "cannot build $xunit_project (see $OUT/xunit-build.log)"
fi
[ ! -d "$ROOT/$xunit_project/bin" ] || cp -a "$ROOT/$xunit_project/bin" "$stage/$xunit_project/bin"
size=$(( $(du -sm "$stage" | cut -f1) * 15 / 10 + 512 ))
mkfs.ext4 -q -F -L v2tree -d "$stage" "$RUN/tree.img" "${size}M" > /dev/null
rm -rf "$stage"
qemu-img create -q -f qcow2 -F raw -b "$IMAGE/root.img" "$RUN/root.qcow2"
t_disks=$(date +%s)

accel=${V2LANE_ACCEL:-auto}
if [ "$accel" = auto ]; then
    if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=tcg; fi
fi
case $accel in
    kvm) accel_args=(-enable-kvm -cpu host); scale=3 ;;
    tcg) accel_args=(-accel tcg,thread=multi -cpu max); scale=5 ;;
    *) skip "V2LANE_ACCEL must be kvm, tcg or auto" ;;
esac

# The guest's cmd.sh: mount the disks, then tools/v2lane/guest.sh does the rest.
{
    echo 'set -e'
    echo 'mkdir -p /mnt/tool /mnt/tree'
    echo 'mount -o ro LABEL=v2tool /mnt/tool'
    echo 'mount LABEL=v2tree /mnt/tree'
    printf 'export V2LANE_ACCEL=%q SYSTEMCONTAINERS_TEST_TIMEOUT_SCALE=%q SYSTEMCONTAINERS_V2LANE=%q V2LANE_NSDELEGATE=%q V2LANE_FILTER=%q\n' "$accel" "$scale" "${SYSTEMCONTAINERS_V2LANE:-subset}" "${V2LANE_NSDELEGATE:-1}" "$filter"
    printf 'exec bash /mnt/tree/tools/v2lane/guest.sh %q' "$mode"
    printf ' %q' "$@"
    echo
} > "$RUN/share/cmd.sh"

qpid=
tailpid=
cleanup() {
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill -TERM "$qpid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
    fi
    qpid=
    if [ -n "$tailpid" ]; then kill "$tailpid" 2>/dev/null || true; wait "$tailpid" 2>/dev/null || true; fi
    tailpid=
    rm -f "$RUN/root.qcow2" "$RUN/tree.img"
    # What came back, also from a run that was interrupted.
    cp -a "$RUN/share/results/." "$OUT/" 2>/dev/null || true
    cp "$RUN/console.log" "$OUT/console.log" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "v2lane: booting the guest with $accel (timeouts x$scale), mode $mode"
t0=$(date +%s)
# The root disk is a throwaway overlay; the tree and toolchain disks are attached snapshot=on
# (the guest may write to them, the files never change). 9p carries only the command and results.
qemu-system-x86_64 -name v2lane "${accel_args[@]}" -smp "${V2LANE_SMP:-2}" -m "${V2LANE_MEM:-6G}" \
    -nographic -no-reboot -nic none \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0,115200 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
    -drive file="$RUN/root.qcow2",if=virtio,format=qcow2,cache=unsafe \
    -drive file="$TOOL",if=virtio,format=raw,snapshot=on,cache=unsafe \
    -drive file="$RUN/tree.img",if=virtio,format=raw,snapshot=on,cache=unsafe \
    -virtfs local,path="$RUN/share",mount_tag=share,security_model=passthrough,id=share \
    < /dev/null > "$RUN/console.log" 2>&1 &
qpid=$!

t_boot=
while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$t_boot" ] && [ -s "$RUN/share/booted" ]; then
        t_boot=$(date +%s)
        echo "v2lane: booted in $((t_boot - t0)) s"
        tail -n +1 -F "$RUN/share/out.log" 2>/dev/null &
        tailpid=$!
    fi
    if [ $(( $(date +%s) - t0 )) -gt "$TIMEOUT" ]; then
        echo "v2lane: timed out after $TIMEOUT s; ending qemu $qpid" >&2
        break
    fi
    sleep 1
done
cleanup
t_end=$(date +%s)
echo
echo "v2lane: image $((t_image - t_start)) s, disks $((t_disks - t_image)) s, boot ${t_boot:+$((t_boot - t0))} s, guest work ${t_boot:+$((t_end - t_boot))} s, total $((t_end - t_start)) s"

rc=$(cat "$RUN/share/rc" 2>/dev/null || echo none)
if [ "$mode" = command ]; then
    [ "$rc" != none ] || { echo "v2lane: the guest did not finish; last console lines:"; tail -30 "$RUN/console.log"; exit 125; }
    exit "$rc"
fi
# guest.sh leaves one "<name>.summary" (passed failed skipped) per Pester run; no rc means the
# guest never finished, which costs a failure on top of what did come back.
passed=0; failed=0; skipped=0
for f in "$OUT"/*.summary; do
    [ -f "$f" ] || continue
    read -r p fl s < "$f"
    echo "v2lane: $(basename "$f" .summary): $p passed, $fl failed, $s skipped"
    passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + s))
done
if [ "$rc" = none ]; then
    echo "v2lane: the guest did not finish; last console lines:"
    tail -30 "$RUN/console.log"
    failed=$((failed + 1))
elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
    echo "v2lane: the guest's command exited with $rc"
    failed=$((failed + 1))
fi
printf 'passed %s\nfailed %s\nskipped %s\n' "$passed" "$failed" "$skipped" > "$OUT/summary"
echo "v2lane: Tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || exit 1
