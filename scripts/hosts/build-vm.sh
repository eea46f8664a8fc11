#!/usr/bin/env bash
# build-vm.sh KIND: build, offline and once, a Debian VM disk for the host matrix.
#
#   debian13      Debian 13 (trixie): kernel with cgroup v2, Debian's own docker.io 26.x,
#                 python3-venv and what scripts/setup.sh looks for, root's SSH key made here.
#                 -> $CACHE/debian13/{disk.qcow2,id_ed25519}
#   bookworm-box  Debian 12 as a vagrant-libvirt box: user vagrant with Vagrant's insecure key
#                 and passwordless sudo, python3 (+ python3-apt for Ansible's apt module).
#                 -> $CACHE/bookworm-box/lab-bookworm.box
#
# Why built here: no registry and no Vagrant Cloud are reachable, only Debian's mirror. So:
# debootstrap into a loop-mounted raw disk, extlinux to boot it, `qemu-img convert -c` to a
# compressed qcow2. A build is reused until this file changes (its hash is the cache key).
# Prints the cache directory on stdout. Needs root (loop devices, mounts, chroot).
set -euo pipefail
PROG=build-vm
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

KIND=${1:-}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Every VM: a bootable systemd server reachable over SSH with DHCP on its one NIC.
COMMON="linux-image-amd64 initramfs-tools systemd-sysv udev dbus systemd-resolved openssh-server
        python3 sudo ca-certificates iproute2 kmod procps less curl"
case "$KIND" in
  debian13)
    SUITE=trixie SIZE_GB=12
    # docker-cli is its own package in trixie; apparmor because trixie's kernel enables it
    # and dockerd refuses to start containers when it cannot load its profile; the rest is
    # what lab's scripts/setup.sh checks for, so it installs nothing inside the slow VM.
    EXTRA="docker.io docker-cli iptables apparmor python3-venv openssh-client debootstrap make
           rsync tar git" ;;
  bookworm-box)
    SUITE=bookworm SIZE_GB=8
    EXTRA="python3-apt" ;;
  *) die "usage: build-vm.sh debian13|bookworm-box" 2 ;;
esac
need_root
apt_need debootstrap qemu-utils extlinux syslinux-common fdisk e2fsprogs

OUT=$CACHE/$KIND
RECIPE=$(sha256sum "$HERE/build-vm.sh" | cut -c1-16)
if [ "$(cat "$OUT/recipe" 2>/dev/null)" = "$RECIPE" ]; then
  say "$KIND image is current ($OUT)"
  echo "$OUT"; exit 0
fi

mkdir -p "$CACHE/debs/$SUITE"
WORK=$(mktemp -d "$CACHE/.build-$KIND.XXXXXX")
ROOT=$WORK/root LOOP= LOG=$CACHE/$KIND.build.log
: >"$LOG"
cleanup() {
  # Innermost first: chroot mounts, the root file system, then the loop device.
  if [ -d "$ROOT" ]; then
    for m in var/cache/apt/archives dev proc sys ""; do
      mountpoint -q "$ROOT/$m" && umount "$ROOT/$m"
    done
  fi
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  rm -rf "$WORK"
}
fail_log() { tail -n 25 "$LOG" >&2; die "$1 failed (last lines above, whole log: $LOG)"; }
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

start=$(now)
say "building the $KIND image ($SUITE, ${SIZE_GB} GB disk; log: $LOG)"

# 1. A raw disk with one bootable partition at 1 MiB. The partition is reached through a
#    loop device with an offset, not `losetup -P`: partition nodes need udev, absent here.
RAW=$WORK/disk.raw
truncate -s "${SIZE_GB}G" "$RAW"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$RAW" >>"$LOG" 2>&1
LOOP=$(losetup --find --show --offset $((2048 * 512)) "$RAW")
mkfs.ext4 -q -L root "$LOOP"
UUID=$(blkid -s UUID -o value "$LOOP")
mkdir -p "$ROOT" && mount "$LOOP" "$ROOT"

# 2. The base system, then the packages through apt in a chroot (apt resolves dependencies
#    better than debootstrap's --include). Both share a .deb cache, so a rebuild after a
#    recipe change downloads almost nothing.
say "debootstrap $SUITE"
debootstrap --variant=minbase --cache-dir="$CACHE/debs/$SUITE" "$SUITE" "$ROOT" "$MIRROR" \
  >>"$LOG" 2>&1 || fail_log debootstrap
mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"; mount --bind /dev "$ROOT/dev"
mount --bind "$CACHE/debs/$SUITE" "$ROOT/var/cache/apt/archives"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
cat >"$ROOT/etc/fstab" <<EOF
UUID=$UUID / ext4 errors=remount-ro 0 1
EOF
in_root apt-get update >>"$LOG" 2>&1 || fail_log "apt-get update"
# scripts/setup.sh installs vagrant when it is missing; have it, where the suite has it.
if [ "$KIND" = debian13 ]; then
  if in_root apt-cache show vagrant >/dev/null 2>&1; then EXTRA="$EXTRA vagrant"
  else echo "note: $SUITE has no vagrant package" | tee -a "$LOG" >&2; fi
fi
EXTRA=$(echo $EXTRA)
say "installing packages (kernel, systemd, sshd, $EXTRA)"
# shellcheck disable=SC2086
in_root apt-get install -y --no-install-recommends $COMMON $EXTRA >>"$LOG" 2>&1 \
  || fail_log "apt-get install"
rm -f "$ROOT/usr/sbin/policy-rc.d"

# 3. The guest's own settings.
say "configuring the guest"
echo "lab-$KIND" >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lab-%s\n' "$KIND" >"$ROOT/etc/hosts"
# DHCP on the one NIC (named eth0: net.ifnames=0 below), DNS from DHCP through resolved:
# QEMU's user network and libvirt's network both hand it out.
cat >"$ROOT/etc/systemd/network/50-dhcp.network" <<'EOF'
[Match]
Name=eth* en*
[Network]
DHCP=yes
EOF
in_root systemctl enable systemd-networkd systemd-resolved ssh >>"$LOG" 2>&1
# Timers that would fire during a measured step on a slow emulated CPU; systemd-firstboot,
# which would wait for an answer on the console on first boot; and apparmor.service, which
# compiles trixie's ~100 desktop-application profiles at every boot (over a minute under
# TCG) though none concerns a server. The kernel's AppArmor stays on: dockerd loads its own
# docker-default profile for each container, as on any Debian 13 host.
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
  fstrim.timer systemd-firstboot.service >>"$LOG" 2>&1
[ "$KIND" = debian13 ] && in_root systemctl mask apparmor.service >>"$LOG" 2>&1
# Each VM its own machine-id (a box is booted many times: the same id would give every VM
# the same DHCP client id, so the same address) and its own SSH host key at first boot
# (made before Debian's `sshd -t` check, which fails without one).
: >"$ROOT/etc/machine-id"; rm -f "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
cat >"$ROOT/etc/systemd/system/ssh.service.d/hostkey.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -f /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
EOF
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nUseDNS no\n' \
  >"$ROOT/etc/ssh/sshd_config.d/lab-hosts.conf"

if [ "$KIND" = debian13 ]; then
  # root logs in with a key made for this cache only (0600, never shipped anywhere else).
  ssh-keygen -q -t ed25519 -N '' -C "lab-hosts $KIND" -f "$WORK/id_ed25519"
  install -d -m 700 "$ROOT/root/.ssh"
  install -m 600 "$WORK/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"
else
  # What Vagrant expects of a box: user vagrant, its well-known insecure key (replaced by a
  # fresh one on first `vagrant up`), passwordless sudo. lab ships the key for its own image.
  in_root useradd --create-home --shell /bin/bash vagrant
  install -d -m 700 "$ROOT/home/vagrant/.ssh"
  install -m 600 "$HERE/../../lab/data/image/vagrant.pub" "$ROOT/home/vagrant/.ssh/authorized_keys"
  in_root chown -R vagrant:vagrant /home/vagrant/.ssh
  echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$ROOT/etc/sudoers.d/vagrant"; chmod 440 "$ROOT/etc/sudoers.d/vagrant"
fi
# apt's lists stay, as in lab's base image: Ansible's apt module (`update_cache` with
# `cache_valid_time`) judges them by age and would not refresh an emptied, recent list dir.
# (No `apt-get clean`: the .debs are in the shared cache mounted over the image's archives.)
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

# 4. Boot loader: extlinux in the partition, syslinux's MBR code in the first sector.
say "installing the boot loader"
KVER=$(basename "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)" | sed 's/^vmlinuz-//')
mkdir -p "$ROOT/boot/extlinux"
extlinux --install "$ROOT/boot/extlinux" >>"$LOG" 2>&1 || fail_log extlinux
cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
DEFAULT linux
TIMEOUT 1
LABEL linux
  LINUX /boot/vmlinuz-$KVER
  INITRD /boot/initrd.img-$KVER
  APPEND root=UUID=$UUID ro console=ttyS0,115200 net.ifnames=0
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none

# 5. Unmount, give freed blocks back (a smaller image), compress.
for m in var/cache/apt/archives dev proc sys; do umount "$ROOT/$m"; done
fstrim "$ROOT" 2>/dev/null || true
umount "$ROOT"; losetup -d "$LOOP"; LOOP=
say "compressing the disk (qemu-img convert -c)"
mkdir "$WORK/out"
qemu-img convert -c -O qcow2 "$RAW" "$WORK/out/disk.qcow2"
if [ "$KIND" = debian13 ]; then
  mv "$WORK/id_ed25519" "$WORK/id_ed25519.pub" "$WORK/out/"
else
  # A vagrant-libvirt box: a tar of the disk, metadata.json and a Vagrantfile that the
  # machine's own Vagrantfile is merged over. The driver and CPU are set here because
  # only QEMU's software emulation boots a VM on these machines.
  mv "$WORK/out/disk.qcow2" "$WORK/out/box.img"
  printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$SIZE_GB" \
    >"$WORK/out/metadata.json"
  cat >"$WORK/out/Vagrantfile" <<'EOF'
# lab's Debian 12 box, built offline by scripts/hosts/build-vm.sh bookworm-box.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"            # software emulation: KVM is not usable here
    lv.cpu_mode = "custom"
    lv.cpu_model = "qemu64"
    lv.memory = 1024
    lv.disk_bus = "virtio"
  end
end
EOF
  tar -C "$WORK/out" -cf "$WORK/out/lab-bookworm.box" metadata.json Vagrantfile box.img
  rm "$WORK/out/box.img"
fi
echo "$RECIPE" >"$WORK/out/recipe"
rm -rf "$OUT"; mv "$WORK/out" "$OUT"
say "built $KIND in $(since "$start") s: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
