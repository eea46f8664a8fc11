"""The Docker engine: the connection shared by the docker target, image building and doctor,
and the facts about the engine that decide how a server is run on it (:class:`EngineFacts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException

from lab.errors import PrerequisiteError

# Debian's names for the CPU architectures engines report (`docker info`'s Architecture is
# the kernel's `uname -m`): what debootstrap and Debian's images call them.
DEBIAN_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def docker_client(timeout: int = 120) -> docker.DockerClient:
    """A client for the local engine, or a PrerequisiteError telling how to get one."""
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=32)
        client.ping()
    except DockerException as exc:
        raise PrerequisiteError(
            "no Docker engine answers (" + _first_line(exc) + "); start it, or on Debian as "
            "root run `apt-get install -y docker.io && dockerd &`; `lab doctor` checks the rest"
        ) from None
    return client


@dataclass(frozen=True)
class EngineFacts:
    """What the engine is, as `docker info` tells it: enough to choose how systemd can run
    as PID 1 in a container there, and to explain a server that did not boot."""

    version: str  # "20.10.24+dfsg1", "26.1.5", "28.2.2"
    cgroup_version: int  # 1 or 2
    cgroup_driver: str  # cgroupfs, systemd, none
    rootless: bool
    architecture: str  # the engine's kernel's: x86_64, aarch64
    operating_system: str  # "Debian GNU/Linux 12 (bookworm)", "Docker Desktop", ...
    security: frozenset[str]  # apparmor, seccomp, selinux, cgroupns, rootless, userns

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> EngineFacts:
        """Facts from the answer to `docker info` (the API's /info)."""
        security = frozenset(
            part.removeprefix("name=")
            for option in info.get("SecurityOptions") or []
            for part in option.split(",")
            if part.startswith("name=")
        )
        return cls(
            version=str(info.get("ServerVersion") or "0"),
            # Engines before 20.10 do not say, and know only cgroup v1.
            cgroup_version=int(info.get("CgroupVersion") or 1),
            cgroup_driver=str(info.get("CgroupDriver") or "cgroupfs"),
            rootless="rootless" in security,
            architecture=str(info.get("Architecture") or "x86_64"),
            operating_system=str(info.get("OperatingSystem") or "unknown"),
            security=security,
        )

    @property
    def version_tuple(self) -> tuple[int, int]:
        """(major, minor): "20.10.24+dfsg1" -> (20, 10); unparsable -> (0, 0)."""
        match = re.match(r"(\d+)\.(\d+)", self.version)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    @property
    def debian_arch(self) -> str:
        return DEBIAN_ARCH.get(self.architecture, self.architecture)

    def describe(self) -> str:
        """One line, as `lab doctor` and boot failures show it."""
        who = "rootless" if self.rootless else "rootful"
        return (f"Docker {self.version}, cgroup v{self.cgroup_version} ({self.cgroup_driver}), "
                f"{who}, {self.architecture}, {self.operating_system}")


def engine_facts(client: docker.DockerClient) -> EngineFacts:
    return EngineFacts.from_info(client.info())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
