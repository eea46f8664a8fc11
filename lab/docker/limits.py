"""The limits of this machine that every systemd server shares, and how many more servers fit.

At a class's scale (30 seats, some 26 servers on one machine) the first limit a server meets
is not memory but inotify. systemd takes inotify instances to watch its control groups and
units, and the kernel allows each user 128 (Debian's default fs.inotify.max_user_instances).
The servers' processes run as root on the host (a rootful engine, no user namespace), so every
server of every lab shares root's one allowance, and the server past it dies at boot: "Failed
to create control group inotify object: Too many open files", "Failed to allocate manager
object". The same machine-wide reckoning covers inotify watches, threads and open files.

`lab up` asks :func:`check_room` before it makes anything (the class will too); `lab doctor`
shows :func:`limit_checks`; a boot report adds :func:`console_hint`; `make setup` raises the
two inotify limits (scripts/host-limits.sh). Read from /proc only: no engine is asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lab.errors import PrerequisiteError
from lab.prerequisites import Check

PROC_SYS = "LAB_PROC_SYS"  # a directory read instead of /proc/sys: for tests only
PROC = Path("/proc")
PERSIST = "/etc/sysctl.d/99-lab.conf"  # where `lab doctor` says a raised limit is kept

# What one server takes, measured 2026-12-07 on lab/base:bookworm (Docker 20.10, cgroup v1,
# Debian 12), before and after `lab up` of one server and after provisioning it with nginx.
# inotify: `find /proc/*/fd -lname anon_inode:inotify` and the "inotify wd:" lines of their
# fdinfo, for the container's processes. Threads and open files: /proc/loadavg's total and
# fs.file-nr before and after, which include the server's containerd shim and docker-proxy.
INOTIFY_INSTANCES = 6  # systemd 5, dbus-daemon 1, the same once provisioned
INOTIFY_BOOTING = 1  # systemd holds a sixth for a moment while it boots: peak 7 a server
INOTIFY_WATCHES = 30  # 21-22 seen (systemd 18, dbus-daemon 3); units a playbook adds take more
THREADS = 40  # 31 seen; nginx's workers add one per core
OPEN_FILES = 200  # 150 seen; nginx adds some 30

A_CLASS = 30  # servers on one machine worth warning about: a class of 30 seats (issue 29)


class HostLimitError(PrerequisiteError):
    """The machine has no room for the servers asked for: a limit to raise (exit 3)."""


@dataclass(frozen=True)
class Limit:
    """One shared limit: its value, what is in use now, and what each new server takes."""

    what: str  # "inotify instances"
    sysctl: str  # the setting that raises it: "fs.inotify.max_user_instances"
    scope: str  # "per user" (root's, which every server's processes are) or "on this machine"
    limit: int
    in_use: int
    per_server: int  # what one new server takes while it boots
    raise_to: int = 0  # what `make setup` and `lab doctor` suggest (kind's and k3d's figure)
    exact: bool = True  # False: some processes could not be read; in_use is a lower bound

    @property
    def room(self) -> int:
        """How many more servers fit, all booting at once as `lab up` boots them."""
        return max(0, (self.limit - self.in_use) // self.per_server)

    def suggest(self, servers: int = A_CLASS) -> int:
        """A value with room for ``servers`` more: ``raise_to``, or the next power of two
        above what they need when that is more; never below the limit now."""
        needed = self.in_use + servers * self.per_server
        return max(self.raise_to, 1 << max(0, needed - 1).bit_length(), self.limit)

    def describe(self) -> str:
        """One line for a person, such as: 128 per user (fs.inotify.max_user_instances),
        12 in use: room for ~16 more servers (7 each)."""
        at_least = "" if self.exact else "at least "
        return (f"{self.limit} {self.scope} ({self.sysctl}), {at_least}{self.in_use} in use: "
                f"room for ~{self.room} more servers ({self.per_server} each)")

    def fix(self, servers: int = A_CLASS) -> str:
        """How to raise it now, as root, and how to keep it after a reboot."""
        value = self.suggest(servers)
        return (f"as root: `sysctl -w {self.sysctl}={value}`; to keep it: "
                f"`echo '{self.sysctl} = {value}' >> {PERSIST}`")


def host_limits(sys_dir: Path | None = None, proc: Path | None = None,
                uid: int = 0) -> list[Limit]:
    """The limits that could be read, from ``sys_dir`` (default /proc/sys, or ``LAB_PROC_SYS``)
    and ``proc`` (/proc); what is in use per user is ``uid``'s, whom the servers' processes run
    as (root on a rootful engine). Empty where there is no /proc (macOS: the engine's VM has
    its own limits, out of sight)."""
    proc = proc or PROC
    sys_dir = sys_dir or _sys_dir()
    instances, watches, exact = inotify_in_use(proc, uid)
    found = [
        _limit("inotify instances", "fs.inotify.max_user_instances", "per user", sys_dir,
               instances, INOTIFY_INSTANCES + INOTIFY_BOOTING, 1024, exact),
        _limit("inotify watches", "fs.inotify.max_user_watches", "per user", sys_dir,
               watches, INOTIFY_WATCHES, 524288, exact),
        _threads(sys_dir, proc),
        _limit("open files", "fs.file-max", "on this machine", sys_dir,
               _read_int(sys_dir / "fs/file-nr"), OPEN_FILES),
    ]
    return [limit for limit in found if limit is not None]


def check_room(servers: int, *, sys_dir: Path | None = None, proc: Path | None = None,
               uid: int = 0) -> None:
    """Refuse, before anything is made, ``servers`` more servers this machine has no room for:
    a HostLimitError naming each setting to raise. Limits that cannot be read refuse nothing."""
    if servers <= 0:
        return
    short = [limit for limit in host_limits(sys_dir, proc, uid) if limit.room < servers]
    if not short:
        return
    first = short[0]
    settings = " ".join(f"{limit.sysctl}={limit.suggest(servers)}" for limit in short)
    raise HostLimitError(
        f"no room on this machine for {servers} more servers: {first.what} are "
        f"{first.describe()}; as root run `sysctl -w {settings}` (`lab doctor` shows how to "
        f"keep it)")


def limit_checks(sys_dir: Path | None = None, proc: Path | None = None,
                 uid: int = 0) -> list[Check]:
    """`lab doctor`'s rows: a limit with no room for one more server is missing (exit 3); one
    with less room than a class needs is flagged with how to raise it."""
    return [_check(limit) for limit in host_limits(sys_dir, proc, uid)]


def console_hint(console: str, sys_dir: Path | None = None) -> str:
    """The line a boot report adds when systemd's console says it ran out of inotify
    instances ("" otherwise): the setting, its value now, and how to raise it.

    systemd says "Failed to create control group inotify object: Too many open files", then
    "Failed to allocate manager object: Too many open files". The last alone says nothing:
    systemd ends every failure to start that way (a read-only cgroup tree too)."""
    if "Too many open files" not in console:
        return ""
    value = _read_int((sys_dir or _sys_dir()) / "fs/inotify/max_user_instances")
    now = f" (now {value}, shared by every server's systemd)" if value is not None else ""
    return (f"  the machine's inotify instances ran out: fs.inotify.max_user_instances{now}; "
            f"as root run `sysctl -w fs.inotify.max_user_instances=1024`, "
            f"`lab doctor` shows how many servers fit\n")


def inotify_in_use(proc: Path, uid: int = 0) -> tuple[int, int, bool]:
    """Inotify instances and watches held by ``uid``'s processes, and whether every one of
    its processes could be read (not as another user: root's are closed to them)."""
    instances = watches = 0
    exact = True
    for pid in _pids(proc):
        try:
            if _euid(pid) != uid:
                continue
            for fd in (pid / "fd").iterdir():
                if os.readlink(fd) == "anon_inode:inotify":
                    instances += 1
                    watches += _watches(pid / "fdinfo" / fd.name)
        except PermissionError:
            exact = False
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue  # the process (or the file) went while it was read
    return instances, watches, exact


def _sys_dir() -> Path:
    return Path(os.environ.get(PROC_SYS) or PROC / "sys")


def _check(limit: Limit) -> Check:
    if limit.room < 1:
        return Check(limit.what, False, limit.describe(), limit.fix(1))
    return Check(limit.what, limit.room >= A_CLASS, limit.describe(), limit.fix(),
                 required=False)


def _limit(what: str, sysctl: str, scope: str, sys_dir: Path, in_use: int | None,
           per_server: int, raise_to: int = 0, exact: bool = True) -> Limit | None:
    value = _read_int(sys_dir / sysctl.replace(".", "/"))
    if value is None or in_use is None:
        return None
    return Limit(what, sysctl, scope, value, in_use, per_server, raise_to, exact)


def _threads(sys_dir: Path, proc: Path) -> Limit | None:
    """Threads (each one a process id): the lower of kernel.pid_max and kernel.threads-max,
    against every thread on the machine (/proc/loadavg's total)."""
    found = [_limit("threads", name, "on this machine", sys_dir, _threads_in_use(proc), THREADS)
             for name in ("kernel.pid_max", "kernel.threads-max")]
    known = [limit for limit in found if limit is not None]
    return min(known, key=lambda limit: limit.limit) if known else None


def _threads_in_use(proc: Path) -> int | None:
    try:
        return int((proc / "loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return None


def _pids(proc: Path) -> list[Path]:
    try:
        return [entry for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _euid(pid: Path) -> int | None:
    """The effective user of a process: whom its inotify instances are counted against."""
    for line in (pid / "status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    return None


def _watches(fdinfo: Path) -> int:
    try:
        return sum(line.startswith("inotify wd:") for line in fdinfo.read_text().splitlines())
    except OSError:
        return 0


def _read_int(path: Path) -> int | None:
    """The first number of a /proc file (fs.file-nr holds three: the first is in use), or
    None where there is no such file."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
