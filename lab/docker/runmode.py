"""How a server container is run so that systemd boots as PID 1: chosen from the engine.

systemd needs a cgroup tree it may write to. How an engine gives one differs, and the old
recipe (`-v /sys/fs/cgroup:/sys/fs/cgroup:ro`) only worked by accident: on Docker 20.10 that
`:ro` left the host's cgroup hierarchies beneath it writable; Docker 25 and later make it
read-only all the way down, and systemd stops with "Failed to create /init.scope control
group: Read-only file system" (moby/moby#42275). On cgroup v2, the default of Docker Desktop
and of current Linux, the old recipe never worked.

:func:`choose` is the one place that decides, for the docker target and for Vagrant's docker
provider alike (the Vagrantfile reads :meth:`RunMode.cli_args` from machines.json). The
least privilege that boots systemd wins:

``private-cgroup`` (every engine with cgroup namespaces: Docker 20.10+, cgroup v1 or v2)
    The container gets a cgroup namespace of its own, so /sys/fs/cgroup shows only its own
    subtree; Docker mounts it read-only, and a two-line start command makes that subtree
    writable (the container holds CAP_SYS_ADMIN already, for systemd's service sandboxing)
    before it hands over to /sbin/init. Nothing of the host's cgroup tree is reachable.
``host-cgroup`` (only on request)
    The host's cgroup namespace and the host's whole cgroup tree read-write: the recipe most
    guides give for Docker Desktop. More privilege than needed; kept as a way out.
``legacy`` (engines before 20.10, cgroup v1)
    The host's cgroup tree bound read-only at its top, its hierarchies writable: what lab did
    before it chose. On engines whose `:ro` is recursive (25+), the same through a bind mount
    whose submounts stay writable.

``LAB_DOCKER_RUN_MODE`` overrides the choice (and `lab doctor` shows what is used).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from docker.types import Mount

from lab.docker.engine import EngineFacts
from lab.errors import PrerequisiteError, UsageError

OVERRIDE = "LAB_DOCKER_RUN_MODE"
CGROUP = "/sys/fs/cgroup"
# The start command of private-cgroup: each cgroup file system Docker mounted read-only (one
# on cgroup v2, one per hierarchy on v1) becomes writable in this container's mount namespace
# only; then systemd takes over as PID 1. A failure is printed on the console, where a boot
# report finds it.
WRITABLE_OWN_CGROUP = (
    'while read -r _ dir type _; do case "$type" in cgroup|cgroup2) '
    'mount -o remount,bind,rw "$dir" || echo "lab: cannot make $dir writable" >&2;; '
    "esac; done < /proc/mounts; exec /sbin/init"
)
# What every mode shares. A terminal, so that systemd writes its boot (and why it stopped)
# where `docker logs` can read it: without one, a container that fails to boot logs nothing.
COMMON_SDK: dict[str, Any] = {
    "cap_add": ["SYS_ADMIN"],
    "tmpfs": {"/run": "", "/run/lock": "", "/tmp": ""},
    "stop_signal": "SIGRTMIN+3",
    "tty": True,
}
COMMON_CLI = ["--cap-add", "SYS_ADMIN", "--tmpfs", "/run", "--tmpfs", "/run/lock",
              "--tmpfs", "/tmp", "--stop-signal", "SIGRTMIN+3", "--tty"]
MODES = ("private-cgroup", "host-cgroup", "legacy")


@dataclass(frozen=True)
class RunMode:
    """One way of running systemd containers on an engine, with the reasons for it."""

    name: str
    why: str
    command: list[str]
    cgroupns: str | None = None  # "private" | "host" | None: the engine's default
    cgroup_bind: str | None = None  # "rw" | "ro" (non-recursive) | None: no bind mount
    recursive_ro: bool = False  # the engine makes a `:ro` bind read-only all the way down
    security_opt: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)  # why each security_opt

    @property
    def plain_bind(self) -> bool:
        """The cgroup tree is bound as ``-v`` says it (rw, or ro where `:ro` is not
        recursive); otherwise a read-only bind whose submounts stay writable."""
        return self.cgroup_bind == "rw" or (self.cgroup_bind == "ro" and not self.recursive_ro)

    def sdk_options(self) -> dict[str, Any]:
        """Keyword arguments for docker-py's ``containers.create``."""
        options: dict[str, Any] = dict(COMMON_SDK, command=list(self.command))
        if self.cgroupns:
            options["cgroupns"] = self.cgroupns
        if self.security_opt:
            options["security_opt"] = list(self.security_opt)
        if self.plain_bind:
            options["volumes"] = {CGROUP: {"bind": CGROUP, "mode": self.cgroup_bind}}
        elif self.cgroup_bind == "ro":
            mount = Mount(CGROUP, CGROUP, type="bind", read_only=True)
            mount["BindOptions"] = {"ReadOnlyNonRecursive": True}  # API 1.44, Docker 25+
            options["mounts"] = [mount]
        return options

    def cli_args(self) -> list[str]:
        """The same as ``docker run`` flags (Vagrant's docker provider passes them on).
        The command is not among them: see :attr:`command`."""
        args = list(COMMON_CLI)
        if self.cgroupns:
            args += ["--cgroupns", self.cgroupns]
        for option in self.security_opt:
            args += ["--security-opt", option]
        if self.plain_bind:
            args += ["-v", f"{CGROUP}:{CGROUP}:{self.cgroup_bind}"]
        elif self.cgroup_bind == "ro":
            args += ["--mount", f"type=bind,src={CGROUP},dst={CGROUP},readonly,"
                                "bind-recursive=writable"]
        return args


def choose(facts: EngineFacts, override: str | None = None) -> RunMode:
    """The run mode for this engine: ``override`` (or ``LAB_DOCKER_RUN_MODE``) when given,
    else the least privilege that boots systemd there. Raises :class:`PrerequisiteError`
    for an engine on which no mode can work, saying what to change."""
    override = override if override is not None else os.environ.get(OVERRIDE) or None
    if override is not None and override not in MODES:
        raise UsageError(f"{OVERRIDE}={override}: not a run mode (known: {', '.join(MODES)})")
    _refuse_impossible(facts)
    has_cgroupns = facts.version_tuple >= (20, 10)
    name = override or ("private-cgroup" if has_cgroupns else "legacy")
    mode = _MAKERS[name](facts, has_cgroupns)
    if override:
        mode = replace(mode, why=f"chosen by {OVERRIDE}; {mode.why}")
    return _confinement(mode, facts)


def _refuse_impossible(facts: EngineFacts) -> None:
    if facts.cgroup_version == 2 and facts.version_tuple < (20, 10):
        raise PrerequisiteError(
            f"Docker {facts.version} does not support cgroup v2, which this host runs: "
            "upgrade Docker to 20.10 or later (25+ recommended)"
        )
    if facts.rootless and facts.cgroup_version == 1:
        raise PrerequisiteError(
            "rootless Docker on cgroup v1 gives containers no cgroup tree of their own, and "
            "systemd needs one: boot the host with cgroup v2 (kernel argument "
            "systemd.unified_cgroup_hierarchy=1) or use rootful Docker"
        )


def _private_cgroup(facts: EngineFacts, has_cgroupns: bool) -> RunMode:
    if not has_cgroupns:
        raise PrerequisiteError(
            f"Docker {facts.version} has no cgroup namespaces, which run mode private-cgroup "
            f"needs: upgrade Docker to 20.10 or later, or unset {OVERRIDE}"
        )
    return RunMode(
        "private-cgroup",
        "a private cgroup namespace whose own subtree is made writable at start: systemd "
        "sees only its container's cgroups (the least privilege that boots it)",
        ["/bin/sh", "-c", WRITABLE_OWN_CGROUP], cgroupns="private",
    )


def _host_cgroup(facts: EngineFacts, has_cgroupns: bool) -> RunMode:
    return RunMode(
        "host-cgroup",
        "the host's cgroup namespace and its whole cgroup tree read-write",
        ["/sbin/init"], cgroupns="host" if has_cgroupns else None, cgroup_bind="rw",
    )


def _legacy(facts: EngineFacts, has_cgroupns: bool) -> RunMode:
    recursive = facts.version_tuple >= (25, 0)
    how = ("through a bind mount whose submounts stay writable (Docker 25+ makes `:ro` "
           "recursive)" if recursive else "`:ro` (not recursive on this engine)")
    return RunMode(
        "legacy",
        f"the host's cgroup tree, read-only at its top, its hierarchies writable, {how}",
        ["/sbin/init"], cgroupns="host" if has_cgroupns else None, cgroup_bind="ro",
        recursive_ro=recursive,
    )


_MAKERS = {"private-cgroup": _private_cgroup, "host-cgroup": _host_cgroup, "legacy": _legacy}


def _confinement(mode: RunMode, facts: EngineFacts) -> RunMode:
    """Loosen what the host's security modules would forbid systemd, and say why."""
    options, notes = list(mode.security_opt), list(mode.notes)
    if "apparmor" in facts.security:
        options.append("apparmor=unconfined")
        notes.append("apparmor=unconfined: Docker's AppArmor profile forbids mount, which "
                     "systemd needs to sandbox services (and private-cgroup to start)")
    if "selinux" in facts.security:
        options.append("label=disable")
        notes.append("label=disable: SELinux's container policy forbids writing to cgroups "
                     "(container_manage_cgroup is off by default)")
    return replace(mode, security_opt=tuple(options), notes=tuple(notes))
