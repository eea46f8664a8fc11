#!/usr/bin/env bash
# Raise the limits of this machine that every lab server shares, where they are below what a
# class needs: each systemd server takes 6 inotify instances of root's 128 (Debian's default),
# so the 22nd server on a machine dies at boot (lab/docker/limits.py has the figures).
# Never lowers a limit. As root only; anyone else is told what to run. Run by setup.sh.
# LAB_PROC_SYS (tests only) names a directory read and written instead of /proc/sys.
set -euo pipefail

SYS=${LAB_PROC_SYS:-/proc/sys}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf 'setup: note: %s\n' "$*" >&2; }

# raise NAME MINIMUM: NAME (fs.inotify.max_user_instances) to at least MINIMUM.
raise() {
  local name=$1 want=$2 file have
  file="$SYS/${name//.//}"
  have=$(cat "$file" 2>/dev/null) || return 0  # not on this kernel: nothing to raise
  [ "$have" -ge "$want" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    note "$name is $have, too few for a class's servers: as root run \`sysctl -w $name=$want\`"
  elif ! (echo "$want" >"$file") 2>/dev/null; then
    note "$name is $have and cannot be raised here (a container?): raise it on the host"
  else
    say "raised $name from $have to $want (until reboot; to keep it:" \
        "echo '$name = $want' >> /etc/sysctl.d/99-lab.conf)"
  fi
}

raise fs.inotify.max_user_instances 1024
raise fs.inotify.max_user_watches 524288
