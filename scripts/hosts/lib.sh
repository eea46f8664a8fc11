# Shared by the host-matrix scripts (scripts/hosts/*.sh): messages, clean-up on any exit,
# one QEMU boot and an SSH wait. Sourced, not run. Each script sets PROG first.
#
# Why QEMU TCG: /dev/kvm on the project's machines is a software hypervisor that a stock
# Debian kernel does not boot under, so every VM here is QEMU's software emulation
# (`-accel tcg`, CPU model qemu64). Slow, but it boots, and it is the same on every machine.

CACHE=${LAB_HOSTS_CACHE:-/var/cache/lab-hosts}   # images built once, reused by every run
VM_SMP=${VM_SMP:-1}                              # `make test-hosts` measures with 2
VM_MEM=${VM_MEM:-3072}                           # MiB

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s: %s\n' "$PROG" "$1" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Clean-up: each script defines cleanup(); it runs once on any exit, including errors
# (set -e) and Ctrl-C (exit 130), so no qemu process, mount or loop device is left behind.
cleanup() { :; }   # each script replaces it with its own
_cleaned=
_on_exit() { local rc=$?; [ -n "$_cleaned" ] && return; _cleaned=1; trap '' INT TERM; cleanup || true; exit "$rc"; }
trap _on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_root() { [ "$(id -u)" = 0 ] || die "run as root (it installs packages, mounts disk images and boots VMs)" 3; }

# apt_need PACKAGE... installs what is missing, --no-install-recommends (Debian hosts only).
apt_need() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]}: install them and run this again" 3
  say "installing ${missing[*]}"
  if [ ! -f /var/lib/apt/lists/.lab-updated ]; then apt-get update -qq && touch /var/lib/apt/lists/.lab-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed" 3
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# boot_vm DISK PORT CONSOLE_LOG: starts QEMU in the background (VM_PID), the guest's SSH
# forwarded to 127.0.0.1:PORT only. DISK is a throwaway qcow2 overlay: the cached image is
# never written. nice, because the machine's two cores are shared with others' tests.
VM_PID=
boot_vm() {
  local disk=$1 port=$2 log=$3 accel=tcg
  [ "$VM_SMP" -gt 1 ] && accel=tcg,thread=multi
  nice -n 10 qemu-system-x86_64 -name lab-hosts -machine pc -accel "$accel" -cpu qemu64 \
    -smp "$VM_SMP" -m "$VM_MEM" -display none -vga none -monitor none -serial "file:$log" \
    -drive "file=$disk,if=virtio,format=qcow2,cache=unsafe" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=net0 \
    </dev/null >>"$log.qemu" 2>&1 &
  VM_PID=$!
}

# stop_vm: the overlay is thrown away, so there is nothing for a clean shutdown to save;
# SIGTERM makes QEMU exit at once, SIGKILL if it does not within 10 s.
stop_vm() {
  [ -n "$VM_PID" ] || return 0
  kill -TERM "$VM_PID" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$VM_PID" 2>/dev/null || true
  wait "$VM_PID" 2>/dev/null || true
  VM_PID=
}

# wait_ssh TIMEOUT CONSOLE_LOG CMD...: until CMD (an ssh true) succeeds; fails with the
# console's last lines when QEMU exits or time runs out, rather than a bare timeout.
wait_ssh() {
  local timeout=$1 log=$2 start; shift 2; start=$(date +%s)
  while ! "$@" true 2>/dev/null; do
    if ! kill -0 "$VM_PID" 2>/dev/null; then
      tail -n 30 "$log" "$log.qemu" >&2 2>/dev/null; die "QEMU exited before SSH answered (console above)"
    fi
    if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
      tail -n 30 "$log" >&2; die "no SSH after ${timeout}s (console above, whole log: $log)"
    fi
    sleep 3
  done
}
