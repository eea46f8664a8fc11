"""The Docker engine connection, shared by the docker target, image building and doctor."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from lab.errors import PrerequisiteError


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


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
