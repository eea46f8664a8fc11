#!/usr/bin/env bash
# A second Docker engine beside the usual one: Debian 13's Docker 26, on a cgroup v2
# hierarchy of its own. That is the engine shape most workshop laptops have (Docker 25+,
# cgroup v2: Docker Desktop, Ubuntu 22.04+, Debian 12/13, Fedora), while this machine's own
# engine is Docker 20.10 on cgroup v1. `make test` runs the server-creating integration
# tests against both, so lab's run options are proven on each (issue 17).
#
#   scripts/engine26.sh start    build the engine's root file system once, start it, load
#                                lab's base image into it; prints the DOCKER_HOST to use
#   scripts/engine26.sh stop     stop it (its images stay for the next start)
#   scripts/engine26.sh host     print the DOCKER_HOST value
#
# How (see ../shared/ENVIRONMENT.md): Debian 13's docker.io is debootstrapped into a folder;
# in a private mount namespace that folder becomes the root (pivot_root: a plain chroot breaks
# `docker exec`), with the host's /sys, /dev and a fresh /run, and a cgroup2 file system
# mounted on its /sys/fs/cgroup in place of the host's cgroup v1 tree. The kernel here runs
# cgroup v1 and v2 side by side (controllers stay with v1), so the engine and the systemd in
# its containers meet the cgroup v2 interface as on a v2 host, without controllers. It shares
# the host's network namespace: its networks come from their own address pool, masqueraded
# here (Debian's mirror must be reachable from servers), and ports publish on 127.0.0.1 through
# docker-proxy as usual. Needs root on Debian; nothing of the usual engine is touched.
set -euo pipefail

HOME_DIR=${LAB_ENGINE26_DIR:-/var/lib/lab-engine26}
ROOTFS=$HOME_DIR/rootfs
RUN_DIR=/run/lab-engine26
SOCKET=$RUN_DIR/docker.sock
POOL=10.226.0.0/16
# Its own default bridge: with --bridge=none Docker deletes the host's docker0 at start, which
# belongs to the usual engine (both engines share the network namespace).
BRIDGE=lab26br0
BRIDGE_ADDRESS=10.226.255.1/24
# A Debian mirror of the user's (LAB_DEBIAN_MIRROR=http://...); unset, debootstrap uses its default.
MIRROR=${LAB_DEBIAN_MIRROR:-}
BASE_IMAGE=${LAB_BASE_IMAGE:-lab/base:bookworm}
export DOCKER_HOST_26="unix://$SOCKET"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }  # stdout carries only the host
die() { printf 'engine26: %s\n' "$*" >&2; exit 3; }
d26() { docker -H "$DOCKER_HOST_26" "$@"; }
answers() { d26 info >/dev/null 2>&1; }

build_rootfs() {
  [ -x "$ROOTFS/usr/sbin/dockerd" ] && return
  command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
  say "bootstrapping Debian 13 with its Docker engine into $ROOTFS (about a minute, once)"
  rm -rf "$ROOTFS.partial"
  mkdir -p "$HOME_DIR"
  debootstrap --variant=minbase --include=docker.io,docker-cli,iptables,ca-certificates \
    trixie "$ROOTFS.partial" ${MIRROR:+"$MIRROR"} >"$HOME_DIR/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $HOME_DIR/debootstrap.log"
  mv "$ROOTFS.partial" "$ROOTFS"
}

# Containers of this engine reach Debian's mirror through the host; the usual engine sets the
# FORWARD policy to DROP and knows nothing of this pool, so let the pool through.
open_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_ADDRESS" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  iptables -C FORWARD -s "$POOL" -j ACCEPT 2>/dev/null || iptables -I FORWARD -s "$POOL" -j ACCEPT
  iptables -C FORWARD -d "$POOL" -j ACCEPT 2>/dev/null || iptables -I FORWARD -d "$POOL" -j ACCEPT
  iptables -t nat -C POSTROUTING -s "$POOL" ! -d "$POOL" -j MASQUERADE 2>/dev/null \
    || iptables -t nat -A POSTROUTING -s "$POOL" ! -d "$POOL" -j MASQUERADE
  sysctl -qw net.ipv4.ip_forward=1
}

# A pid file an earlier start left behind (the machine was stopped, not the engine: /run is not
# always a tmpfs) names a process id the kernel may since have given to anything; dockerd then
# refuses to start ("process with PID ... is still running"). An engine of ours that no longer
# answers is stopped; any other process is left alone and only the stale file goes.
clear_stale_pidfile() {
  local pidfile=$RUN_DIR/dockerd.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$SOCKET"; then
    say "Docker 26 (pid $pid) does not answer; stopping it"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$SOCKET"
}

start_engine() {
  mkdir -p "$RUN_DIR"
  clear_stale_pidfile
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  # Forget the networks of an earlier start: at start Docker deletes a default bridge network
  # it remembers, and the Linux bridge it deleted here once was the usual engine's docker0
  # (both engines share the network namespace). Servers and test networks do not outlive a run.
  rm -rf "$ROOTFS/var/lib/docker/network"
  local docker0
  docker0=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{print $4; exit}')
  say "starting Docker 26 (cgroup v2) on $DOCKER_HOST_26 (log: $HOME_DIR/dockerd.log)"
  # setsid + nohup: the engine outlives this script and the shell that ran it.
  setsid nohup unshare --mount --propagation private bash -c '
    set -e
    R=$1; RUN=$2; POOL=$3; BRIDGE=$4
    mount --bind "$R" "$R"
    mount -t proc proc "$R/proc"
    mount --rbind /sys "$R/sys"; mount --make-rprivate "$R/sys"
    umount -R "$R/sys/fs/cgroup" 2>/dev/null || umount -l "$R/sys/fs/cgroup"
    mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
    mount --rbind /dev "$R/dev"; mount --make-rprivate "$R/dev"
    mount -t tmpfs tmpfs "$R/run"
    mkdir -p "$R$RUN" "$R/.oldroot"
    mount --bind "$RUN" "$R$RUN"
    cd "$R"
    pivot_root . .oldroot
    umount -l /.oldroot
    exec /usr/sbin/dockerd --host "unix://$RUN/docker.sock" --pidfile "$RUN/dockerd.pid" \
      --data-root /var/lib/docker --exec-root /run/docker --cgroup-parent /lab-engine26 \
      --bridge="$BRIDGE" --iptables=false --ip-masq=false --ip6tables=false \
      --default-address-pool "base=$POOL,size=24"
  ' engine26 "$ROOTFS" "$RUN_DIR" "$POOL" "$BRIDGE" >"$HOME_DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do answers && break; sleep 0.5; done
  if answers; then
    keep_docker0 "$docker0"
    return
  fi
  tail -20 "$HOME_DIR/dockerd.log" >&2
  die "Docker 26 did not start; see $HOME_DIR/dockerd.log"
}

# The usual engine's docker0 must survive this one's start; should it not, it is put back.
keep_docker0() {
  local address=$1
  [ -n "$address" ] || return 0
  ip link show docker0 >/dev/null 2>&1 && return 0
  printf 'engine26: docker0 vanished while Docker 26 started; putting it back (%s)\n' "$address" >&2
  ip link add docker0 type bridge
  ip addr add "$address" dev docker0
  ip link set docker0 up
}

# The base image is built by the usual engine; the same image (same id) is loaded here.
load_base_image() {
  local want have
  want=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null) \
    || die "$BASE_IMAGE is not built yet: run \`lab image build\` first"
  have=$(d26 image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  [ "$want" = "$have" ] && return
  say "loading $BASE_IMAGE into Docker 26"
  docker save "$BASE_IMAGE" | d26 load -q >/dev/null
}

case "${1:-}" in
  start)
    [ "$(id -u)" = 0 ] || die "needs root (it mounts file systems and starts an engine)"
    if ! answers; then
      build_rootfs
      open_network
      start_engine
    fi
    load_base_image
    echo "$DOCKER_HOST_26"
    ;;
  stop)
    if [ -f "$RUN_DIR/dockerd.pid" ]; then
      pid=$(cat "$RUN_DIR/dockerd.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    ;;
  host) echo "$DOCKER_HOST_26" ;;
  *) echo "usage: $0 start|stop|host" >&2; exit 2 ;;
esac
