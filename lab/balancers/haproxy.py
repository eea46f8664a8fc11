"""HAProxy on a server of the lab's own (role ``lb``): its playbook and tests, and its runtime API.

lab never rewrites the configuration to move traffic: it adds and removes servers and sets
weights through HAProxy's runtime API (``add server``, ``set server ... weight``, ``set server
... state drain|maint|ready``, ``show stat``). The API socket is root-only inside the balancer;
lab reaches it over SSH with the lab key, so nothing else on the machine can.

A generation's share is a weight: the new servers get ``percent`` and the old ones
``100 - percent``, so with equal counts the new generation carries ``percent`` of requests.
"""

from __future__ import annotations

import csv
import io
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from lab.access.keys import KeyPair
from lab.access.knownhosts import raise_if_refused
from lab.access.ssh import as_root, ssh_argv
from lab.balancers.base import Balancer, Member, Tally
from lab.config import HealthCheck, LabConfig, Role
from lab.errors import TargetError
from lab.state import ServerRecord

ROLE = "lb"  # the balancer's own role, added to the lab when lab.yml has `balancer:`
BACKEND = "app"
SOCKET = "/run/haproxy/admin.sock"
FULL_WEIGHT = 100
# Health checks every 500 ms; two in a row change a server's state, so a dead server is out
# of rotation within about a second (the balancer playbook uses the same timing).
CHECK_TIMING = "inter 500ms fall 2 rise 2"


@dataclass(frozen=True)
class BackendServer:
    """One row of ``show stat`` for a server of the backend."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "no check", ...
    weight: int
    current_sessions: int
    total_sessions: int
    check: str
    # Requests this server failed: retried on another server (HAProxy's retry-on hides them
    # from users) or answered with a 5xx. What a canary is judged by, beside what users see.
    failed: int = 0

    @property
    def healthy(self) -> bool:
        return self.status.startswith("UP") or self.status == "no check"

    @property
    def passed(self) -> bool:
        """Healthy by a completed check (L7OK), not merely not-yet-checked."""
        return self.healthy and self.check.startswith("L7OK")


class HAProxy(Balancer):
    """Talks to one HAProxy's runtime API over SSH."""

    kind = "haproxy"
    # `inter 500ms` (lab/data/balancer/haproxy.yml): a check within half a second of a
    # change, and its answer; the first that fails leaves L7OK (a member "going down").
    notice_seconds = 1.5

    def __init__(self, config: LabConfig, server: ServerRecord, key: KeyPair) -> None:
        self.config = config
        self.server = server
        self.key = key

    # what the balancer adds to the lab ---------------------------------------------------

    @classmethod
    def roles(cls, config: LabConfig) -> dict[str, Role]:
        """One server, lab's own playbook and tests; port 80 is published by fixed_ports."""
        data = Path(str(files("lab") / "data" / "balancer"))
        return {ROLE: Role(count=1, playbook=data / "haproxy.yml",
                           tests=[data / "test_haproxy.py"], ports=[])}

    @classmethod
    def group_vars(cls, config: LabConfig) -> dict[str, dict[str, Any]]:
        if config.balancer is None:
            return {}
        health = config.health_of(config.balancer.routes_to)
        return {ROLE: {"lab_backend_role": config.balancer.routes_to,
                       "lab_health_path": health.path,
                       "lab_health_port": health.port}}

    @classmethod
    def fixed_ports(cls, config: LabConfig, role: str) -> dict[int, int]:
        if config.balancer is not None and role == ROLE:
            return {80: config.balancer.listen}
        return {}

    @classmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> HAProxy | None:
        running = [s for s in servers if s.role == ROLE and not s.gone]
        return cls(config, running[0], key) if running else None

    # the Balancer interface ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Its port 80, published at lab.yml's `listen` (fixed_ports) where its target
        publishes ports (127.0.0.1 for docker and Vagrant, a public address elsewhere)."""
        listen = self.server.ports.get(80) or (
            self.config.balancer.listen if self.config.balancer else 80)
        return f"http://{self.server.ports_host}:{listen}/"

    def members(self) -> dict[str, Member]:
        rows = self.servers()
        shares = share_of_traffic(rows)
        return {name: Member(name=name, health=row.status, healthy=row.healthy,
                             share=shares.get(name, 0.0),
                             serving=row.weight > 0 and row.status != "MAINT",
                             weight=row.weight)
                for name, row in rows.items()}

    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        for server in servers:
            self.add(server, health, weight=0)

    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        rows = self.servers()
        # What is in the pool moves even when something is missing: a rollback must restore
        # every old server it can.
        self.set_weights({n: FULL_WEIGHT - percent for n in old if n in rows}, state="ready",
                         also={n: percent for n in new if n in rows})
        absent = [n for n in old if n not in rows]
        if percent > 0:
            absent += [n for n in new if n not in rows]  # at 0 %, never joined is no matter
        if absent:
            raise TargetError(f"balancer: {', '.join(absent)} not in the pool, cannot move "
                              f"{percent}% of traffic")

    def failures(self, names: list[str]) -> Tally:
        rows = self.servers()
        present = [rows[n] for n in names if n in rows]
        return Tally(requests=sum(r.total_sessions for r in present),
                     failed=sum(r.failed for r in present))

    def retire(self, names: list[str], timeout: float = 10.0) -> list[str]:
        return self.remove(names, timeout)

    def wait_healthy(self, names: list[str], timeout: float = 15.0,
                     give_up: threading.Event | None = None) -> list[str]:
        """Wait until each of ``names`` passes a completed health check; returns those that
        did not."""
        deadline = time.monotonic() + timeout
        unhealthy = list(names)
        while time.monotonic() < deadline and not (give_up and give_up.is_set()):
            rows = self.servers()
            unhealthy = [n for n in names if n not in rows or not rows[n].passed]
            if not unhealthy:
                return []
            time.sleep(0.1)
        return unhealthy

    # the runtime API -----------------------------------------------------------------------

    def command(self, *commands: str) -> str:
        """Send commands (joined with ';') and return HAProxy's answer."""
        # A shared connection: a weight change costs milliseconds, not a handshake.
        argv = ssh_argv(self.server, self.key, as_root(self.server, ["socat", "stdio", SOCKET]),
                        reuse=True)
        try:
            result = subprocess.run(argv, input="; ".join(commands) + "\n", capture_output=True,
                                    text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            raise TargetError(f"balancer {self.server.name}: runtime API did not answer "
                              "within 30 s") from None
        raise_if_refused(self.server, self.key, result.stderr)
        if result.returncode != 0:
            raise TargetError(f"balancer {self.server.name}: runtime API unreachable: "
                              f"{result.stderr.strip() or result.returncode}")
        return result.stdout

    def servers(self) -> dict[str, BackendServer]:
        """The backend's servers as HAProxy sees them now."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        found = {}
        for row in rows:
            if row.get("pxname") != BACKEND or row.get("svname") in ("BACKEND", "FRONTEND"):
                continue
            found[row["svname"]] = BackendServer(
                name=row["svname"], status=row.get("status", ""),
                weight=int(row.get("weight") or 0), current_sessions=int(row.get("scur") or 0),
                total_sessions=int(row.get("stot") or 0), check=row.get("check_status", ""),
                failed=int(row.get("wretr") or 0) + int(row.get("hrsp_5xx") or 0),
            )
        return found

    def add(self, server: ServerRecord, health: HealthCheck, weight: int = 0) -> None:
        """Add a server at ``weight`` (0: in the pool, no traffic) with health checks on."""
        target = f"{BACKEND}/{server.name}"
        answer = self.command(
            "experimental-mode on",
            f"add server {target} {server.address}:{health.port} weight {weight} "
            f"check {CHECK_TIMING}",
        )
        if "New server registered" not in answer and "Already exists" not in answer:
            raise TargetError(f"balancer: could not add {server.name}: {answer.strip()}")
        self.command(f"enable health {target}", f"enable server {target}")

    def set_weights(self, weights: dict[str, int], state: str | None = None,
                    also: dict[str, int] | None = None) -> None:
        """Several weights (and optionally a state for ``weights``' servers, not ``also``'s)
        in one round trip to the API."""
        commands = [f"set server {BACKEND}/{n} weight {w}"
                    for n, w in (weights | (also or {})).items()]
        if state is not None:
            commands += [f"set server {BACKEND}/{n} state {state}" for n in weights]
        if not commands:
            return
        answer = self.command(*commands).strip()
        if answer:
            raise TargetError(f"balancer: setting weights answered: {answer}")

    def remove(self, names: list[str], timeout: float = 10.0) -> list[str]:
        """Drain, wait for in-flight requests, then delete servers; returns any that linger."""
        pool = self.servers()  # one round trip to the API, not one per name
        present = [n for n in names if n in pool]
        if not present:
            return []
        self.command(*(f"set server {BACKEND}/{n} state drain" for n in present))
        self.wait_idle(present, timeout)
        self.command(*(f"set server {BACKEND}/{n} state maint" for n in present))
        deadline = time.monotonic() + timeout
        while present and time.monotonic() < deadline:
            self.command("experimental-mode on",
                         *(f"del server {BACKEND}/{n}" for n in present))
            still = self.servers()
            present = [n for n in present if n in still]
            if present:
                time.sleep(0.2)
        return present

    def wait_idle(self, names: list[str], timeout: float = 10.0) -> None:
        """Wait until none of ``names`` has a request in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.servers()
            if all(rows[n].current_sessions == 0 for n in names if n in rows):
                return
            time.sleep(0.2)


def share_of_traffic(rows: dict[str, BackendServer]) -> dict[str, float]:
    """Each server's expected share of new requests, from weights of healthy servers."""
    live = {n: r.weight for n, r in rows.items() if r.healthy and r.status != "DRAIN"}
    total = sum(live.values())
    return {n: (w / total if total else 0.0) for n, w in live.items()}
