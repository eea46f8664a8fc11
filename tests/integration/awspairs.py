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

        def table() -> list[tuple[int, list[str]]]:
            with stand_in._lock:
                if time.monotonic() - stand_in._read_at > 0.2:
                    stand_in.balancer._group_cache = None  # the release makes groups
                    weights = stand_in.balancer._weights()
                    stand_in._table = [(weights.get(group, 0), sorted(
                        n for n, state in stand_in.balancer._health(group).items()
                        if state == "healthy"))
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
