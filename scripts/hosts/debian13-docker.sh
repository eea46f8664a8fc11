#!/usr/bin/env bash
# debian13-docker.sh: lab's example, end to end, on a Debian 13 host: a cgroup v2 kernel and
# Debian 13's own Docker engine (26.x). This machine is cgroup v1 with Docker 20.10, where
# lab's servers boot by a coincidence; most attendees' machines look like this VM instead.
#
# Boots the cached image (scripts/hosts/build-vm.sh debian13) under QEMU TCG, copies this
# working tree in, loads lab's base image from the host's engine (`docker save | docker
# load`: nothing is bootstrapped inside the slow VM), installs lab (venv + PyPI through
# QEMU's NAT), then times `lab init/up/provision/verify/release` in a fresh lab directory.
# Prints a table of figures; exit 1 if a step failed, 3 if a prerequisite is missing.
# The VM is killed and its throwaway disk removed on any exit, Ctrl-C included.
#
#   VM_SMP=2 scripts/hosts/debian13-docker.sh     (make test-hosts measures with 2 cores)
set -euo pipefail
PROG=debian13-docker
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
BASE_IMAGE=lab/base:bookworm
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}          # the VM's own boot, to SSH
LAB_BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-600}  # each lab server's boot inside it

need_root
apt_need qemu-system-x86 qemu-utils openssh-client
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
  || die "$BASE_IMAGE is not in this machine's Docker engine: run \`make setup\` first" 3
# An image older than the working tree's Dockerfile would make setup.sh in the VM rebuild it
# from scratch (debootstrap, inside the slow VM). lab's own check decides, read-only.
if [ -x "$REPO/.venv/bin/python" ] && [ "$("$REPO/.venv/bin/python" -c \
     'import docker, lab.docker.image as i; print(i.image_is_current(docker.from_env()))' 2>/dev/null)" = False ]; then
  die "$BASE_IMAGE is older than lab/data/image/Dockerfile: run \`make setup\` first" 3
fi

build_start=$(now)
IMAGE_DIR=$("$HERE/build-vm.sh" debian13 | tail -n 1)
BUILD_S=$(since "$build_start")

RUN=$(mktemp -d /tmp/lab-hosts-debian13.XXXXXX)
CONSOLE=$RUN/console.log
KEY=$IMAGE_DIR/id_ed25519
chmod 600 "$KEY"
cleanup() {
  [ -S "$RUN/ssh.sock" ] && ssh -o ControlPath="$RUN/ssh.sock" -O exit vm 2>/dev/null
  stop_vm
  # Keep the console log of a failed run for the report; the disk goes either way.
  rm -f "$RUN/overlay.qcow2"
  [ "${OK:-}" = 1 ] && rm -rf "$RUN"
  return 0
}

PORT=$(free_port)
# One SSH connection for the whole run (ControlMaster): a handshake on an emulated CPU
# costs about a second, which would otherwise land in every figure.
SSH=(ssh -i "$KEY" -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=15 -o BatchMode=yes
     -o ControlMaster=auto -o ControlPath="$RUN/ssh.sock" -o ControlPersist=yes root@127.0.0.1)
vm() { "${SSH[@]}" "$@"; }

qemu-img create -q -f qcow2 -b "$IMAGE_DIR/disk.qcow2" -F qcow2 "$RUN/overlay.qcow2"
say "booting Debian 13 under QEMU TCG (${VM_SMP} CPU, ${VM_MEM} MiB; SSH on 127.0.0.1:$PORT; console: $CONSOLE)"
boot_start=$(now)
boot_vm "$RUN/overlay.qcow2" "$PORT" "$CONSOLE"
wait_ssh "$BOOT_TIMEOUT" "$CONSOLE" vm
BOOT_S=$(since "$boot_start")
say "SSH answers after $BOOT_S s"

# The host this run is about: cgroup v2 and Docker 26.x, or the figures mean nothing.
for _ in $(seq 1 60); do vm docker info >/dev/null 2>&1 && break; sleep 2; done
ENGINE=$(vm "docker info --format '{{.ServerVersion}} {{.CgroupVersion}} {{.CgroupDriver}} {{.KernelVersion}}'") \
  || die "the VM's Docker engine does not answer: $(vm systemctl status docker --no-pager 2>&1 | tail -n 5)"
read -r DOCKER_VERSION CGROUP_VERSION CGROUP_DRIVER KERNEL <<<"$ENGINE"
say "engine: Docker $DOCKER_VERSION, cgroup v$CGROUP_VERSION ($CGROUP_DRIVER driver), kernel $KERNEL"
[ "$CGROUP_VERSION" = 2 ] || die "expected cgroup version 2 in the VM, got $CGROUP_VERSION"
[[ $DOCKER_VERSION == 26.* ]] || die "expected Docker 26.x in the VM, got $DOCKER_VERSION"

say "copying the working tree ($REPO, without .venv and .git)"
t=$(now)
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=__pycache__ --exclude=.lab \
    --exclude=.pytest_cache --exclude=.ruff_cache -czf - . | vm 'rm -rf /root/lab && mkdir /root/lab && tar -C /root/lab -xzf -'
COPY_S=$(since "$t")

# The VM trusts what this host trusts: where TLS to PyPI passes through a proxy with its
# own CA (installed on the host in /usr/local/share/ca-certificates), pip in the VM needs
# that CA too, or every download fails with CERTIFICATE_VERIFY_FAILED.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  say "adding this host's local CA certificates to the VM"
  tar -C /usr/local/share/ca-certificates -cf - . \
    | vm 'tar -C /usr/local/share/ca-certificates -xf - && update-ca-certificates >/dev/null 2>&1 &&
          printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" >/etc/pip.conf'
fi

say "loading $BASE_IMAGE into the VM's engine (docker save | docker load)"
t=$(now)
docker save "$BASE_IMAGE" | vm docker load -q >/dev/null
LOAD_S=$(since "$t")

# lab as a user installs it: scripts/setup.sh (venv, pip from PyPI through QEMU's NAT; it finds
# the engine running and the base image current, so it builds nothing).
say "installing lab in the VM (scripts/setup.sh)"
t=$(now)
vm 'cd /root/lab && ./scripts/setup.sh' 2>&1 | sed 's/^/    /' \
  || die "scripts/setup.sh failed in the VM (output above)"
SETUP_S=$(since "$t")

# Each step in its own timed ssh call, lab's output shown indented as it comes.
FAILED=
declare -A FIG
step() {
  local name=$1 cmd=$2 t rc
  say "lab $name"
  t=$(now)
  # LAB_BOOT_TIMEOUT: lab waits 90 s for a server's SSH by default; three systemd
  # containers booting on one emulated CPU can take longer than that.
  vm "export PATH=/root/lab/.venv/bin:\$PATH LAB_BOOT_TIMEOUT=$LAB_BOOT_TIMEOUT; cd /root && $cmd" 2>&1 \
    | sed 's/^/    /'
  rc=${PIPESTATUS[0]}
  FIG[$name]=$(since "$t")
  if [ "$rc" != 0 ]; then FIG[$name]="${FIG[$name]} (exit $rc)"; FAILED=$name; fi
  return "$rc"
}
# When servers do not boot, what the engine saw: each container's state and console, and
# the engine's own facts. Printed here, and kept in $RUN/diagnostics.txt.
diagnose() {
  say "diagnostics from the VM's engine (also in $RUN/diagnostics.txt)"
  vm 'for c in $(docker ps -aq --filter label=lab.name); do
        echo "--- container $(docker inspect -f "{{.Name}}" "$c")"
        echo "State: $(docker inspect -f "{{json .State}}" "$c")"
        echo "Logs:"; docker logs --tail 40 "$c" 2>&1
      done
      echo "--- docker info"; docker info 2>&1' | tee "$RUN/diagnostics.txt" | sed 's/^/    /'
}

run_steps() {
  step init 'rm -rf ex && lab init ex' || return 1
  step up 'cd ex && lab up' || { diagnose; return 1; }
  step provision 'cd ex && lab provision' || return 1
  step verify 'cd ex && lab verify' || return 1
  step release 'cd ex && lab release --set version=v2' || return 1
  # No `lab destroy`: the VM and everything in it is thrown away.
}
run_steps || true

printf '\nDebian 13 VM: Docker %s, cgroup v%s (%s), kernel %s, QEMU TCG %s CPU / %s MiB\n' \
  "$DOCKER_VERSION" "$CGROUP_VERSION" "$CGROUP_DRIVER" "$KERNEL" "$VM_SMP" "$VM_MEM"
printf '  %-22s %s\n' "image (build or cache)" "$BUILD_S s" "VM boot" "$BOOT_S s" \
  "copy tree" "$COPY_S s" "load base image" "$LOAD_S s" "setup.sh" "$SETUP_S s" \
  "lab up" "${FIG[up]:--} s" "lab provision" "${FIG[provision]:--} s" \
  "lab verify" "${FIG[verify]:--} s" "lab release" "${FIG[release]:--} s"
[ -z "$FAILED" ] || die "lab $FAILED failed on Debian 13 (output above; console and diagnostics in $RUN)"
OK=1
