#!/usr/bin/env bash
# libvirt-vagrant.sh: lab's example on the vagrant target with the libvirt provider, on real
# VMs: the path users take on Linux laptops (`target: vagrant`, `provider: libvirt`).
#
# Installs libvirt and Debian's vagrant-libvirt plugin, starts libvirtd and virtlogd by hand
# when they are not running (these machines have no systemd), adds lab's own Debian 12 box
# (built offline by scripts/hosts/build-vm.sh bookworm-box: no Vagrant Cloud here), then
# times `lab up`, `lab provision`, `lab verify`, `lab destroy` in a fresh lab directory with
# this working tree's lab (.venv), and checks that no domain, volume or network is left.
# Exit 1 if a step failed or something was left, 3 if a prerequisite is missing.
#
#   LIBVIRT_BALANCER=0 scripts/hosts/libvirt-vagrant.sh    the example without its HAProxy VM
set -euo pipefail
PROG=libvirt-vagrant
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
BOX=lab-bookworm                       # the box's name in `vagrant box list`
LAB_NAME=hostslv                       # names the domains (hostslv-web-1...) and the lab
BALANCER=${LIBVIRT_BALANCER:-1}
LAB=$REPO/.venv/bin/lab
export LIBVIRT_DEFAULT_URI=qemu:///system

need_root
[ -x "$LAB" ] || die "$LAB is missing: run \`make setup\` first" 3
apt_need qemu-system-x86 qemu-utils libvirt-clients libvirt-daemon-system libvirt-daemon-system-sysv \
  dnsmasq-base iptables vagrant vagrant-libvirt

RUN=$(mktemp -d /tmp/lab-hosts-libvirt.XXXXXX)
STARTED=()          # pids of daemons this run started, stopped again at the end
NETS_BEFORE= NETS_DEFINED_BEFORE=
cleanup() {
  local d v n
  if [ -f "$RUN/$LAB_NAME/lab.yml" ] && [ "${DESTROYED:-}" != 1 ]; then
    say "clean-up: lab destroy"
    (cd "$RUN/$LAB_NAME" && PATH="$REPO/.venv/bin:$PATH" timeout 600 "$LAB" destroy) 2>&1 | sed 's/^/    /'
  fi
  if virsh uri >/dev/null 2>&1; then
    # Whatever lab or Vagrant did not remove, found by the lab's name prefix.
    for d in $(virsh list --all --name | grep "^$LAB_NAME-"); do
      say "clean-up: removing domain $d"; virsh destroy "$d" >/dev/null 2>&1
      virsh undefine --remove-all-storage "$d" >/dev/null 2>&1
    done
    for v in $(virsh vol-list default 2>/dev/null | awk -v p="^$LAB_NAME-" '$1 ~ p {print $1}'); do
      say "clean-up: removing volume $v"; virsh vol-delete --pool default "$v" >/dev/null
    done
    # Networks started during this run (libvirt's default one on a first start, Vagrant's
    # management network) stay up with their dnsmasq after libvirtd stops: stop them.
    for n in $(virsh net-list --name); do
      grep -qx "$n" <<<"$NETS_BEFORE" || { virsh net-destroy "$n" >/dev/null 2>&1 || true; }
    done
    for n in $(virsh net-list --all --name); do
      grep -qx "$n" <<<"$NETS_DEFINED_BEFORE" || { virsh net-undefine "$n" >/dev/null 2>&1 || true; }
    done
  fi
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A failed run keeps its lab directory (.lab/runs, .vagrant) for a look; an empty one goes.
  if [ "${OK:-}" = 1 ]; then rm -rf "$RUN"; else rmdir "$RUN" 2>/dev/null || true; fi
  return 0
}

# 1. libvirt. As root, with `user = "root"` in qemu.conf: otherwise every libvirt call
#    re-probes KVM for about 30 s on these machines (see ../shared/ENVIRONMENT.md).
if ! grep -q '^user = "root"' /etc/libvirt/qemu.conf; then
  say "setting user = \"root\", group = \"root\" in /etc/libvirt/qemu.conf"
  printf '\n# lab scripts/hosts: QEMU runs as root\nuser = "root"\ngroup = "root"\n' >>/etc/libvirt/qemu.conf
  pgrep -x libvirtd >/dev/null && die "libvirtd was already running: restart it to read /etc/libvirt/qemu.conf" 3
fi
# Under nice, like every VM of scripts/hosts: the QEMU processes libvirtd starts inherit it,
# and the machine's two cores are shared with others' tests.
start_daemon() {   # start_daemon NAME: in the background (-d), unless one runs already
  pgrep -x "$1" >/dev/null && return 0
  say "starting $1 (no systemd here)"
  nice -n 10 "$1" -d
  for _ in $(seq 1 40); do [ -s "/run/$1.pid" ] && break; sleep 0.25; done
  STARTED+=("$(cat "/run/$1.pid")")
}
start_daemon virtlogd
start_daemon libvirtd
for _ in $(seq 1 60); do virsh uri >/dev/null 2>&1 && break; sleep 1; done
virsh uri >/dev/null 2>&1 || die "libvirtd does not answer on $LIBVIRT_DEFAULT_URI" 3
NETS_BEFORE=$(virsh net-list --name)
NETS_DEFINED_BEFORE=$(virsh net-list --all --name)
# vagrant-libvirt keeps boxes and disks in the pool named "default".
if ! virsh pool-info default >/dev/null 2>&1; then
  say "defining libvirt's default storage pool (/var/lib/libvirt/images)"
  virsh pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
  virsh pool-build default >/dev/null; virsh pool-autostart default >/dev/null
fi
# (libvirtd autostarts the pool shortly after it starts: either way it must end up running.)
virsh pool-start default >/dev/null 2>&1 || true
[[ $(virsh pool-info default) =~ State:[[:space:]]+running ]] || die "libvirt's storage pool 'default' does not start" 3

# 2. The box: built once; added to Vagrant again only when it was rebuilt. vagrant-libvirt
#    uploads a box into the pool on first use and reuses that volume by name: a rebuilt box
#    needs the old volume gone.
build_start=$(now)
BOX_DIR=$("$HERE/build-vm.sh" bookworm-box | tail -n 1)
BUILD_S=$(since "$build_start")
if [ "$(cat "$BOX_DIR/added" 2>/dev/null)" != "$(cat "$BOX_DIR/recipe")" ] \
   || ! grep -q "^$BOX " <<<"$(vagrant box list 2>/dev/null)"; then
  say "vagrant box add $BOX"
  vagrant box add --force --name "$BOX" "$BOX_DIR/lab-bookworm.box" | sed 's/^/    /'
  for v in $(virsh vol-list default | awk -v p="^$BOX" '$1 ~ p {print $1}'); do
    virsh vol-delete --pool default "$v" >/dev/null
  done
  cp "$BOX_DIR/recipe" "$BOX_DIR/added"
fi

# 3. A fresh lab, on the vagrant target with the libvirt provider and lab's box.
cd "$RUN"
export PATH=$REPO/.venv/bin:$PATH     # ansible-inventory for testinfra's ansible backend
"$LAB" init "$LAB_NAME" >/dev/null
"$REPO/.venv/bin/python" - "$RUN/$LAB_NAME/lab.yml" "$BOX" "$BALANCER" <<'EOF'
import sys, yaml
path, box, balancer = sys.argv[1:]
with open(path) as f:
    config = yaml.safe_load(f)
config["target"] = "vagrant"
config["vagrant"] = {"provider": "libvirt", "boxes": {"libvirt": box}}
if balancer == "0":
    config.pop("balancer", None)
with open(path, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
EOF
cd "$LAB_NAME"
SERVERS=$("$REPO/.venv/bin/python" -c 'import yaml; c = yaml.safe_load(open("lab.yml"))
print(sum(r["count"] for r in c["servers"].values()) + (1 if c.get("balancer") else 0))')
say "lab $LAB_NAME: $SERVERS VMs from box $BOX (QEMU TCG through libvirt), balancer: $([ "$BALANCER" = 1 ] && echo yes || echo no)"

FAILED=
declare -A FIG
step() {
  local name=$1 t rc; shift
  say "lab $name"
  t=$(now)
  "$LAB" "$name" "$@" 2>&1 | sed 's/^/    /'
  rc=${PIPESTATUS[0]}
  FIG[$name]=$(since "$t")
  if [ "$rc" != 0 ]; then FIG[$name]="${FIG[$name]} (exit $rc)"; FAILED=$name; fi
  return "$rc"
}
diagnose() {
  say "diagnostics"
  { virsh list --all; vagrant status 2>&1; tail -n 20 /var/log/libvirt/qemu/"$LAB_NAME"-*.log; } \
    2>&1 | sed 's/^/    /'
}
{ step up || { diagnose; false; }; } && step provision && step verify || true
step destroy && DESTROYED=1 || true

# 4. Nothing of the lab's is left in libvirt.
LEFT=$( { virsh list --all --name | grep "^$LAB_NAME-" | sed 's/^/domain /'
          virsh vol-list default | awk -v p="^$LAB_NAME-" '$1 ~ p {print "volume " $1}'
          pgrep -af "ssh .*$RUN" | sed 's/^/process /'; } || true)
printf '\nlibvirt VMs (vagrant-libvirt %s, box %s, %s VMs, QEMU TCG)\n' \
  "$(dpkg-query -W -f='${Version}' vagrant-libvirt)" "$BOX" "$SERVERS"
printf '  %-22s %s\n' "box (build or cache)" "$BUILD_S s" "lab up" "${FIG[up]:--} s" \
  "lab provision" "${FIG[provision]:--} s" "lab verify" "${FIG[verify]:--} s" \
  "lab destroy" "${FIG[destroy]:--} s" "left behind" "${LEFT:-nothing}"
[ -z "$FAILED" ] || die "lab $FAILED failed on libvirt (output above)"
[ -z "$LEFT" ] || die "lab destroy left: $LEFT"
OK=1
