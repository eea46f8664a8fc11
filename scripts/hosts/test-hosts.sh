#!/usr/bin/env bash
# test-hosts.sh: the host matrix (`make test-hosts`): lab's example on hosts unlike this one.
#   1. debian13-docker.sh   Debian 13 VM: cgroup v2 kernel, Docker 26.x (up, provision, verify, release)
#   2. libvirt-vagrant.sh   vagrant target, libvirt provider, real VMs (up, provision, verify, destroy)
# Both run even when the first fails; the figures of both are printed again at the end.
# Exit 1 if either failed. Opt-in and slow (VMs under software emulation): not in `make test`.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export VM_SMP=${VM_SMP:-2}       # the measured runs use both cores
OUT=$(mktemp -d /tmp/lab-test-hosts.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
trap 'exit 130' INT

rc=0 failed=()
for host in debian13-docker libvirt-vagrant; do
  printf '\033[1m### %s\033[0m\n' "$host"
  "$HERE/$host.sh" 2>&1 | tee "$OUT/$host.log"
  status=${PIPESTATUS[0]}
  [ "$status" = 130 ] && exit 130
  [ "$status" = 0 ] || { rc=1; failed+=("$host (exit $status)"); }
done

# Each script ends with its table: from its title line (unindented, after a blank line) on.
printf '\n\033[1m### host matrix figures\033[0m\n'
for host in debian13-docker libvirt-vagrant; do
  awk '/^$/ {t = ""; keep = 1; next} keep {t = t $0 "\n"} END {printf "%s", t}' "$OUT/$host.log"
done
[ $rc = 0 ] && echo "host matrix: all passed" || echo "host matrix: failed: ${failed[*]}"
exit $rc
