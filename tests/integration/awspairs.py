"""A moto instance paired with a local container of lab's base image: the aws target's whole
flow (up, provision, verify) over real SSH, without an AWS endpoint.

moto makes every EC2 instance, tag, group and template; nothing can log into one. Here each
instance gets a twin container, made by lab's own docker target under the same lab name and
server name, and the aws target's records point SSH (and ports) at the twin. The pairing
lives in tests only: ``lab/`` knows nothing of it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lab.config import DEFAULT_IMAGE
from lab.events import Listener, ignore
from lab.state import Liveness, ServerRecord
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec
from lab.targets.docker import DockerTarget


def twin(target: AwsTarget) -> DockerTarget:
    config = target.config.model_copy(update={"target": "docker"}).located(
        target.config.directory, target.config.state_dir)
    return DockerTarget(config, target.key)


def paired(aws: ServerRecord, local: ServerRecord | None) -> ServerRecord:
    """The instance's record, reached where its twin is; no twin: the server is dead."""
    if local is None:
        return replace(aws, liveness=Liveness.DEAD)
    return replace(aws, address=local.address, ssh_host=local.ssh_host,
                   ssh_port=local.ssh_port, ssh_user="root", ports=local.ports,
                   ports_host=local.ports_host)


def pair_instances_with_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make AwsTarget create, list and destroy a twin container beside each instance."""
    create, listing, destroy = AwsTarget.create, AwsTarget.list, AwsTarget.destroy

    def create_paired(self: AwsTarget, specs: list[ServerSpec],
                      on_event: Listener = ignore) -> list[ServerRecord]:
        records = create(self, specs, on_event)
        local = {r.name: r for r in twin(self).create(
            [replace(s, image=DEFAULT_IMAGE) for s in specs])}
        return [paired(r, local.get(r.name)) for r in records]

    def list_paired(self: AwsTarget) -> list[ServerRecord]:
        local = {r.name: r for r in twin(self).list()}
        return [paired(r, local.get(r.name)) for r in listing(self)]

    def destroy_paired(self: AwsTarget, names: list[str] | None = None,
                       on_event: Listener = ignore) -> list[str]:
        twin(self).destroy(names)
        return destroy(self, names, on_event)

    def alive(self: AwsTarget, names: list[str]) -> set[str]:
        return {s.name for s in list_paired(self) if s.name in names and not s.gone}

    patches: dict[str, Any] = {"create": create_paired, "list": list_paired,
                               "destroy": destroy_paired, "alive": alive}
    for name, function in patches.items():
        monkeypatch.setattr(AwsTarget, name, function)
