#!/usr/bin/env bash
# Builds (or reuses) a Debian test image for the VM proof.
#   tests/vm/image.sh SUITE        SUITE = bookworm | trixie
# Prints the cache directory holding base.qcow2, vmlinuz, initrd.img, id_test.
# The cache lives outside the repo, keyed by a hash of everything that shapes the
# image, so a second run with the same inputs reuses it.
set -euo pipefail

SUITE=${1:?usage: image.sh bookworm|trixie}
case "$SUITE" in bookworm | trixie) ;; *) echo "image.sh: unknown suite $SUITE" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${CONTAIN_VM_CACHE:-/var/tmp/contain-vm}

PACKAGES=(systemd systemd-sysv systemd-oomd udev dbus libpam-systemd libpam-runtime
    openssh-server linux-image-amd64 initramfs-tools kmod procps stress-ng iproute2
    tmux python3-minimal python3 python3-apt cron at sudo login passwd util-linux docker.io busybox-static
    apparmor slapd ldap-utils sssd-ldap libnss-sss libpam-sss)
# From trixie on, the docker client is a package of its own.
[ "$SUITE" = bookworm ] || PACKAGES+=(docker-cli)

key=$( {
    echo "$SUITE"
    printf '%s\n' "${PACKAGES[@]}"
    cat "${BASH_SOURCE[0]}"
    for f in "$HERE"/guest/*; do basename "$f"; cat "$f"; done
} | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/$SUITE-$key"

if [ -f "$OUT/ready" ]; then
    echo "$OUT"
    exit 0
fi
mkdir -p "$CACHE_ROOT"
# One builder per suite at a time; a second caller waits, then reuses the result.
exec 9>"$CACHE_ROOT/.build-$SUITE.lock"
flock 9
if [ -f "$OUT/ready" ]; then
    echo "$OUT"
    exit 0
fi

log() { echo "image.sh[$SUITE]: $*" >&2; }
for tool in mmdebstrap mkfs.ext4 qemu-img ssh-keygen; do
    command -v "$tool" >/dev/null || { log "missing $tool (run tests/vm/deps.sh)"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { log "needs root (mmdebstrap directory mode, chroot)"; exit 1; }

# Old images of this suite are stale once the key changes.
# A build that was killed can leave mmdebstrap's /sys, /dev/pts and /dev/shm mounted in its
# tree: unmount them first, or rm stops at a read-only sysfs.
{ grep -o " $CACHE_ROOT/$SUITE-[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
find "$CACHE_ROOT" -maxdepth 1 -name "$SUITE-*" ! -name "$SUITE-$key" -exec rm -rf {} +
WORK="$OUT.tmp"
rm -rf "$WORK"
mkdir -p "$WORK"
root="$WORK/rootfs"
start=$SECONDS

log "mmdebstrap (minbase, ${#PACKAGES[@]} packages)"
# No mirror argument: mmdebstrap uses the distribution's default sources.
mmdebstrap --quiet --variant=minbase --format=directory \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "$SUITE" "$root" >&2

log "customising"
echo contain-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 contain-vm\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"

install -m 0644 "$HERE/guest/20-wired.network" "$root/etc/systemd/network/20-wired.network"
install -m 0644 "$HERE/guest/t3-serve@.service" "$root/etc/systemd/system/t3-serve@.service"
install -m 0644 "$HERE/guest/contain-test-swap.service" "$root/etc/systemd/system/"
install -m 0755 "$HERE/guest/contain-test-swap" "$root/usr/local/sbin/contain-test-swap"
install -m 0755 "$HERE/guest/contain-test-on-kill" "$root/usr/local/sbin/contain-test-on-kill"

chroot "$root" systemctl enable systemd-networkd.service contain-test-swap.service >/dev/null 2>&1
# docker starts on first use through docker.socket: every boot is cheaper under TCG.
chroot "$root" systemctl disable docker.service containerd.service >/dev/null 2>&1
# Nothing in the guest may wander off (timers that fetch or churn the disk under TCG).
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
    man-db.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true

chroot "$root" useradd -m -s /bin/bash -u 1000 -G sudo admin
chroot "$root" useradd -m -s /bin/bash -u 1001 alice
chroot "$root" useradd -m -s /bin/bash -u 1002 bob
echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/admin"
# bob has a password only so that alice can `su - bob` (sshd takes keys only).
# (pam_pwquality has no dictionary in the chroot: it only warns.)
echo 'bob:contain-test-bob' | chroot "$root" chpasswd 2>/dev/null
grep -q '^bob:\$' "$root/etc/shadow" || { log "no password set for bob"; exit 1; }
chmod 0440 "$root/etc/sudoers.d/admin"

# A directory of its own: slapd with accounts that exist only in LDAP, SSSD as the NSS
# source. Loaded offline here (slapadd), so the guest needs no network at boot.
rm -rf "$root"/etc/ldap/slapd.d/* "$root"/var/lib/ldap/*
install -m 0644 "$HERE/guest/ldap-config.ldif" "$HERE/guest/ldap-data.ldif" "$root/tmp/"
chroot "$root" slapadd -q -n0 -F /etc/ldap/slapd.d -l /tmp/ldap-config.ldif
chroot "$root" slapadd -q -n1 -F /etc/ldap/slapd.d -l /tmp/ldap-data.ldif
chroot "$root" chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap
rm -f "$root"/tmp/ldap-*.ldif
install -m 0600 "$HERE/guest/sssd.conf" "$root/etc/sssd/sssd.conf"
# Where sssd runs as its own user, it reads its configuration through its group.
if grep -qs '^User=sssd' "$root"/usr/lib/systemd/system/sssd.service "$root"/lib/systemd/system/sssd.service; then
    chgrp "$(chroot "$root" getent group sssd | cut -d: -f3)" "$root/etc/sssd/sssd.conf"
    chmod 0640 "$root/etc/sssd/sssd.conf"
fi
# sssd gives up when its back end is not up within seconds, which a busy TCG guest misses.
mkdir -p "$root/etc/systemd/system/sssd.service.d"
printf '[Unit]\nWants=slapd.service\nAfter=slapd.service\nStartLimitIntervalSec=0\n\n[Service]\nRestart=on-failure\nRestartSec=1\n' \
    >"$root/etc/systemd/system/sssd.service.d/contain-test.conf"
sed -i -E 's/^(passwd|group):.*/\1: files sss/' "$root/etc/nsswitch.conf"
chroot "$root" systemctl enable slapd.service sssd.service >/dev/null 2>&1 || true

ssh-keygen -q -t ed25519 -N '' -C contain-vm-test -f "$WORK/id_test"
for home in /root /home/admin /home/alice /home/bob; do
    install -d -m 0700 "$root$home/.ssh"
    install -m 0600 "$WORK/id_test.pub" "$root$home/.ssh/authorized_keys"
    owner=$(basename "$home")
    [ "$owner" = root ] || chroot "$root" chown -R "$owner:$owner" "$home/.ssh"
done
# The directory's users: numeric owners (no NSS source answers in the chroot).
for entry in ldapcarol:5001 ldapdave:5002 ldaperin:5003; do
    home=/home/${entry%%:*}
    install -d -m 0755 -o "${entry#*:}" -g 5000 "$root$home"
    install -d -m 0700 -o "${entry#*:}" -g 5000 "$root$home/.ssh"
    install -m 0600 -o "${entry#*:}" -g 5000 "$WORK/id_test.pub" "$root$home/.ssh/authorized_keys"
done
cat >"$root/etc/ssh/sshd_config.d/contain-test.conf" <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF

# A tiny container root file system from busybox-static, imported with
# `docker import` in the guest: no registry involved.
bb="$WORK/bbroot"
mkdir -p "$bb/bin"
cp "$root/bin/busybox" "$bb/bin/busybox"
for applet in sh sleep cat head ls ps dd; do ln -s busybox "$bb/bin/$applet"; done
mkdir -p "$root/opt/contain-test"
tar -C "$bb" -cf "$root/opt/contain-test/busybox-rootfs.tar" .

cp -L "$root"/boot/vmlinuz-* "$WORK/vmlinuz"
cp -L "$root"/boot/initrd.img-* "$WORK/initrd.img"
rm -f "$root/var/cache/apt/archives/"*.deb

log "mkfs.ext4 -d (no loop device)"
truncate -s 6G "$WORK/base.raw"
mkfs.ext4 -q -F -L contain-root -d "$root" "$WORK/base.raw"
qemu-img convert -O qcow2 "$WORK/base.raw" "$WORK/base.qcow2"
rm -rf "$WORK/base.raw" "$root" "$bb"
touch "$WORK/ready"
rm -rf "$OUT"
mv "$WORK" "$OUT"
log "built in $((SECONDS - start)) s"
echo "$OUT"
