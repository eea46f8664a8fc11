"""A moto instance paired with a local container of lab's base image: the aws target's whole
flow (up, provision, verify) over real SSH, without an AWS endpoint.

moto makes every EC2 instance, tag, group and template; nothing can log into one. Here each
instance gets a twin container, made by lab's own docker target under the same lab name and
server name, and the aws target's records point SSH (and ports) at the twin. The pairing
lives in tests only: ``lab/`` knows nothing of it.

SSH stays strict end to end: a twin boots with the host key in its instance's user data (as
cloud-init would install it), and is checked against the line the aws target wrote to
known_hosts, moved to where the twin is reached. A key the aws target handed over wrongly, or
recorded wrongly, is refused.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
import yaml

from lab.access.keys import HostKey
from lab.access.knownhosts import KnownHosts
from lab.config import DEFAULT_IMAGE
from lab.events import Listener, ignore
from lab.state import Liveness, ServerRecord
from lab.targets import docker as docker_target
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec
from lab.targets.docker import DockerTarget


def twin(target: AwsTarget) -> DockerTarget:
    config = target.config.model_copy(update={"target": "docker"}).located(
        target.config.directory, target.config.state_dir)
    return DockerTarget(config, target.key)


def boot_host_key(target: AwsTarget, server: str) -> HostKey:
    """The host key cloud-init would install on ``server``'s instance: its user data's."""
    instance = target._instance_ids([server])[0]
    value = target.aws.ec2.describe_instance_attribute(
        InstanceId=instance, Attribute="userData")["UserData"]["Value"]
    keys = yaml.safe_load(base64.b64decode(value))["ssh_keys"]
    return HostKey(keys["ed25519_private"], keys["ed25519_public"])


def twins_with_boot_keys(target: AwsTarget, specs: list[ServerSpec],
                         records: list[ServerRecord],
                         image: str = DEFAULT_IMAGE) -> dict[str, ServerRecord]:
    """Twins of the new instances, each started with its instance's host key, and reached
    under the key the aws target recorded for the instance (Fleet.follow's move, done now)."""
    known = KnownHosts(target.key.known_hosts)
    entries = {r.name: known.key_at(r.ssh_host, r.ssh_port) for r in records}
    recorded = {name: e.key for name, e in entries.items() if e is not None and e.server == name}
    assert recorded.keys() == entries.keys(), f"the aws target recorded no host key: {entries}"
    keys = {r.name: boot_host_key(target, r.name) for r in records}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(docker_target, "host_key_for", lambda server, lab: keys[server])
        local = {r.name: r for r in twin(target).create(
            [replace(s, image=image) for s in specs])}
    for name, record in local.items():
        known.trust(name, record.ssh_host, record.ssh_port, recorded[name])
    return local


def paired(aws: ServerRecord, local: ServerRecord | None) -> ServerRecord:
    """The instance's record, reached where its twin is; no twin: the server is dead."""
    if local is None:
        return replace(aws, liveness=Liveness.DEAD)
    return replace(aws, address=local.address, ssh_host=local.ssh_host,
                   ssh_port=local.ssh_port, ssh_user="root", ports=local.ports,
                   ports_host=local.ports_host)


def pair_instances_with_containers(monkeypatch: pytest.MonkeyPatch,
                                   image: str = DEFAULT_IMAGE) -> None:
    """Make AwsTarget create, list and destroy a twin container beside each instance; twins
    start from ``image`` (lab's base image unless a test has one made from it)."""
    create, listing, destroy = AwsTarget.create, AwsTarget.list, AwsTarget.destroy

    def create_paired(self: AwsTarget, specs: list[ServerSpec],
                      on_event: Listener = ignore) -> list[ServerRecord]:
        records = create(self, specs, on_event)
        local = twins_with_boot_keys(self, specs, records, image)
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


class AlbStandIn:
    """Answers for a moto ALB on 127.0.0.1: each request goes to a twin of a member of the
    listener's target groups, a group chosen by the listener's weights as moto holds them
    (read at most every 0.2 s), then members in turn. Nothing can send traffic to a moto
    ALB; this sends it where the ALB would."""

    def __init__(self, balancer: Any, fleet: Any) -> None:
        import itertools
        import random
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.request import urlopen

        self.balancer, self.fleet = balancer, fleet
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._table: list[tuple[int, list[str]]] = []
        self._turn = itertools.count()
        stand_in = self

        def healthy(group: str) -> list[str]:
            from botocore.exceptions import ClientError

            try:
                return sorted(n for n, state in stand_in.balancer._health(group).items()
                              if state == "healthy")
            except ClientError as exc:
                # Retired between the two reads: lab takes a group out of the listener before
                # deleting it, so an ALB would no longer send it anything.
                if "TargetGroupNotFound" in str(exc):
                    return []
                raise

        def table() -> list[tuple[int, list[str]]]:
            with stand_in._lock:
                if time.monotonic() - stand_in._read_at > 0.2:
                    # The release makes groups and sets weights through its own balancer:
                    # this one forgets what it read, as a real ALB would follow them.
                    stand_in.balancer._group_cache = None
                    stand_in.balancer._weights_known = None
                    weights = stand_in.balancer._weights()
                    stand_in._table = [(weights.get(group, 0), healthy(group))
                                       for group in stand_in.balancer._groups().values()]
                    stand_in._read_at = time.monotonic()
                return stand_in._table

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                groups = [(w, members) for w, members in table() if w > 0 and members]
                if not groups:
                    self.send_error(503)
                    return
                members = random.choices([m for _, m in groups], [w for w, _ in groups])[0]
                name = members[next(stand_in._turn) % len(members)]
                server = stand_in.fleet.state.server(name)
                try:
                    with urlopen(f"http://{server.ports_host}:{server.ports[80]}{self.path}",
                                 timeout=5) as answer:
                        body, status = answer.read(), answer.status
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
