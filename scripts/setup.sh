#!/usr/bin/env bash
# Make this machine ready for lab: a virtualenv with lab installed, a Docker engine that
# answers, and the base image. Safe to run again: each step is skipped when already done.
# Used by `make demo`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 3; }

is_root_debian() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  is_root_debian || die "missing $*: install it ($*) and run this again"
  if [ ! -f /var/lib/apt/lists/.lab-updated ]; then
    apt-get update -qq && touch /var/lib/apt/lists/.lab-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. System packages lab drives: ssh client, debootstrap (for the base image without a
#    registry), vagrant (for the vagrant target), python venv; chromium for the tests.
need=()
command -v ssh >/dev/null || need+=(openssh-client)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v vagrant >/dev/null || need+=(vagrant)
command -v make >/dev/null || need+=(make)
# A real browser for the tests that open `lab report`'s page (headless, offline).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)  # selenium drives the class page
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if is_root_debian; then say "installing ${need[*]}"; apt_install "${need[@]}"
  else printf 'setup: note: %s not installed; some features will be missing\n' "${need[*]}" >&2
  fi
fi

# 2. The virtualenv, with lab and its dependencies.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed (found $(python3 --version 2>&1))"
if [ ! -x "$VENV/bin/lab" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  say "installing lab into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/pip" install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c 'import lab.cli' || die "installing lab into $VENV failed"
  touch "$VENV/.installed"
fi

# 3. A Docker engine that answers. On Debian as root, install and start one.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    is_root_debian || die "no Docker engine: install Docker (https://docs.docker.com/engine/install/) and start it"
    say "installing Docker engine (docker.io)"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "Docker is installed but not running: start it (sudo systemctl start docker)"
    # A pid file from before the machine stopped may name an id since given to another
    # process; dockerd would then refuse to start ("process with PID ... is still running").
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || rm -f /var/run/docker.pid
    say "starting dockerd in the background (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || die "dockerd did not start; see /var/log/dockerd.log"
  fi
fi

# 4. The limits every server on this machine shares (inotify: 6 instances a server, 128 by
#    default): raised where a class's servers would not fit, never lowered.
./scripts/host-limits.sh

# 5. The base image (quick when it is current).
"$VENV/bin/lab" image build
