#!/usr/bin/env bash
# tools/v2lane/build-image.sh: makes the v2 lane's guest, a Debian 12 host as most users have it:
# systemd as PID 1 (pure cgroup v2 comes from run.sh's kernel command line), Debian's own kernel,
# and the host packages build.ps1's $HostPackages lists preinstalled (the guest has no network).
#
# The image is cached outside the clone, in $V2LANE_CACHE (/var/cache/systemcontainers-v2lane),
# under a key made of this script and the package list, so a rerun with nothing changed is instant.
# Output: $V2LANE_CACHE/image/{root.img,vmlinuz,initrd.img,key}. Needs root and Debian's archive.
#
# What the image holds besides Debian (nothing of the project; run.sh brings that on disks):
#   v2lane-run.service  at boot mounts the 9p share "share" on /mnt/share, runs /mnt/share/cmd.sh
#                       as root (output to /mnt/share/out.log and the console, status to
#                       /mnt/share/rc) and powers off.
#   v2lane-login CMD    runs one shell command line in a real root login session (autologin on
#                       tty2: user-0.slice/session-N.scope, where an admin's shell is).
set -euo pipefail
SELF=$(readlink -f "$0")
ROOT=$(cd "$(dirname "$SELF")/../.." && pwd)
CACHE=${V2LANE_CACHE:-/var/cache/systemcontainers-v2lane}
OUT=$CACHE/image
RELEASE=bookworm
# build.ps1 is the one place that names the packages the tests need on a host.
HOST_PACKAGES=$(sed -n '/^\$HostPackages = @(/,/)/p' "$ROOT/build.ps1" | grep -o "'[^']*'" | tr -d "'" | paste -sd, -)
[ -n "$HOST_PACKAGES" ] || { echo "build-image.sh: cannot read \$HostPackages from $ROOT/build.ps1" >&2; exit 1; }
# What every Debian host has (systemd, dbus, udev, logind through libpam-systemd), and .NET's libraries.
BASE_PACKAGES=linux-image-amd64,systemd-sysv,dbus,udev,libpam-systemd,kmod,procps,util-linux,iputils-ping,less
DOTNET_PACKAGES=libicu72,libssl3,zlib1g,libstdc++6,libgcc-s1
# bench/launch.ps1 compares with LXC on the same guest (its busybox template needs only busybox-static).
BENCH_PACKAGES=lxc
PACKAGES="$BASE_PACKAGES,$HOST_PACKAGES,$DOTNET_PACKAGES,$BENCH_PACKAGES"
SIZE=${V2LANE_IMAGE_SIZE:-24G}

[ "$(id -u)" = 0 ] || { echo "build-image.sh: run as root" >&2; exit 1; }
key=$( { cat "$SELF"; echo "$RELEASE $PACKAGES $SIZE"; } | sha256sum | cut -c1-16)
if [ -f "$OUT/root.img" ] && [ "$(cat "$OUT/key" 2>/dev/null)" = "$key" ]; then
    echo "v2lane: cached image $OUT/root.img ($key)"
    exit 0
fi
start=$(date +%s)

need=()
for p in debootstrap e2fsprogs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "v2lane: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The mirror this host's apt uses (deb822 or one-line format); the guest's apt sources name it
# too, so the daemon inside derives the same debootstrap cache key as the host's daemon.
mirror=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
[ -n "$mirror" ] || mirror=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$OUT"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "v2lane: debootstrap $RELEASE from $mirror into $root"
if ! debootstrap --include="$PACKAGES" "$RELEASE" "$root" "$mirror" > "$work/debootstrap.log" 2>&1; then
    tail -30 "$work/debootstrap.log" >&2
    echo "v2lane: debootstrap failed" >&2
    exit 1
fi
chroot "$root" apt-get clean

rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $RELEASE $RELEASE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
echo v2host > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tv2host\n' > "$root/etc/hosts"
echo 'LABEL=v2root / ext4 rw,errors=remount-ro 0 1' > "$root/etc/fstab"
chroot "$root" passwd -d root > /dev/null
printf '9p\n9pnet_virtio\n' > "$root/etc/modules-load.d/v2lane.conf"

cat > "$root/usr/local/sbin/v2lane-run" <<'EOF'
#!/bin/bash
# Boot hook: mount the share, run its cmd.sh as root, record output and status, then power off.
mkdir -p /mnt/share
mountpoint -q /mnt/share || mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 share /mnt/share
[ -f /mnt/share/cmd.sh ] || { echo "v2lane: no /mnt/share/cmd.sh" > /dev/console; exit 0; }
cat /proc/uptime > /mnt/share/booted
echo "v2lane: running cmd.sh (uptime $(cut -d' ' -f1 /proc/uptime) s)" > /dev/console
set -o pipefail
bash /mnt/share/cmd.sh < /dev/null 2>&1 | tee /mnt/share/out.log > /dev/console
echo $? > /mnt/share/rc.tmp
sync
mv /mnt/share/rc.tmp /mnt/share/rc
EOF
chmod 755 "$root/usr/local/sbin/v2lane-run"
cat > "$root/etc/systemd/system/v2lane-run.service" <<'EOF'
[Unit]
Description=v2lane: run /mnt/share/cmd.sh, then power off
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff

[Service]
# exec, not oneshot: the boot is finished (is-system-running says running) while the command runs.
Type=exec
ExecStart=/usr/local/sbin/v2lane-run
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF

# A real root login session on tty2 (autologin), driven through files in /run/v2lane.
mkdir -p "$root/etc/systemd/system/getty@tty2.service.d"
cat > "$root/etc/systemd/system/getty@tty2.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear %I $TERM
EOF
cat >> "$root/root/.bash_profile" <<'EOF'
# v2lane: the autologin shell on tty2 runs the queued command, then logs out.
if [ "$(tty)" = /dev/tty2 ] && [ -f /run/v2lane/login-cmd ]; then
    mv /run/v2lane/login-cmd /run/v2lane/login-cmd.running
    bash /run/v2lane/login-cmd.running > /run/v2lane/login.out 2>&1 < /dev/null
    echo $? > /run/v2lane/login.rc
    logout
fi
EOF
cat > "$root/usr/local/sbin/v2lane-login" <<'EOF'
#!/bin/bash
# v2lane-login CMD: runs CMD (one shell command line) in a root login session on tty2, prints
# its output and exits with its status.
set -u
mkdir -p /run/v2lane
rm -f /run/v2lane/login.rc /run/v2lane/login.out /run/v2lane/login-cmd.running
printf '%s\n' "$*" > /run/v2lane/login-cmd.tmp
mv /run/v2lane/login-cmd.tmp /run/v2lane/login-cmd
systemctl restart getty@tty2.service
for _ in $(seq 1 "${V2LANE_LOGIN_TIMEOUT:-3600}"); do [ -f /run/v2lane/login.rc ] && break; sleep 1; done
cat /run/v2lane/login.out 2>/dev/null
[ -f /run/v2lane/login.rc ] || { echo "v2lane-login: timed out"; exit 124; }
exit "$(cat /run/v2lane/login.rc)"
EOF
chmod 755 "$root/usr/local/sbin/v2lane-login"
systemctl --root="$root" enable v2lane-run.service > /dev/null 2>&1
# The serial console carries the boot and the command's output; no login prompt there.
systemctl --root="$root" mask serial-getty@ttyS0.service > /dev/null 2>&1
# No network in the guest: nothing for apt's timers to do.
systemctl --root="$root" mask apt-daily.timer apt-daily-upgrade.timer > /dev/null 2>&1
# lxcfs comes with $HostPackages; its own unit mounts /var/lib/lxcfs, as on a user's host, and the daemon uses that one.
systemctl --root="$root" enable lxcfs.service > /dev/null 2>&1
# LXC is there for the bench only: no lxcbr0 with its dnsmasq, no autostarted containers.
systemctl --root="$root" mask lxc-net.service lxc.service lxc-monitord.service > /dev/null 2>&1

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
echo "v2lane: kernel $(basename "$kernel"), writing a $SIZE ext4 image"
mkfs.ext4 -q -F -L v2root -d "$root" "$work/root.img" "$SIZE"
rm -f "$OUT/key"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.img" "$OUT/"
echo "$key" > "$OUT/key"
echo "v2lane: built $OUT/root.img in $(( $(date +%s) - start )) s"
