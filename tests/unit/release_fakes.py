"""A fake target, balancer, probe and checks that drive `lab release` without Docker.

They share one :class:`World`, a pretend cloud: the servers that exist, what the balancer
holds, and every call that changed something, in order. Scripted actions (raise Ctrl-C, kill a
server, make a member fail) run when a given call is made, so a test can put a failure at any
point of the release. The classes are registered by name, as a real target and balancer are:
tests add them to the registries' built-in tables (see ``test_release_unit.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.balancers.base import Balancer, Member, Tally
from lab.config import HealthCheck, LabConfig
from lab.events import Listener, ignore
from lab.fleet import Fleet
from lab.keys import KeyPair
from lab.probe import Window
from lab.state import Liveness, ServerRecord
from lab.targets.base import ServerSpec, Target

FULL = 100


@dataclass
class FakeMember:
    """What the fake balancer holds for one server: its generation's share (0..100), its
    admin state, its health, and its own counters."""

    share: int
    state: str = "ready"  # ready | drain
    healthy: bool = True
    requests: int = 0
    failed: int = 0


@dataclass
class World:
    servers: dict[str, ServerRecord] = field(default_factory=dict)
    pool: dict[str, FakeMember] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)  # what changed something, in order
    counts: Counter[str] = field(default_factory=Counter)  # every call, reads included
    actions: dict[tuple[str, int], Callable[[], None]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # members answering with errors
    unhealthy_on_join: set[str] = field(default_factory=set)
    counters: bool = True  # False: a balancer that cannot tell a member's own failures
    provision_problem: str = ""
    verify_problem: str = ""
    user_errors: int = 0  # errors per window the probe reports
    lock: threading.Lock = field(default_factory=threading.Lock)

    def when(self, call: str, action: Callable[[], None], nth: int = 1) -> None:
        """Run ``action`` at the ``nth`` time ``call`` is made (a name or a logged line)."""
        self.actions[(call, nth)] = action

    def record(self, call: str, *args: object, log: bool = True) -> None:
        """Log a call (unless it only reads), then run what was scripted for it."""
        entry = " ".join([call, *map(str, args)])
        with self.lock:
            if log:
                self.calls.append(entry)
            keys = {call, entry}
            for key in keys:
                self.counts[key] += 1
            todo = [self.actions.pop((key, self.counts[key]), None) for key in sorted(keys)]
        for action in todo:
            if action is not None:
                action()

    def kill(self, name: str) -> Callable[[], None]:
        def act() -> None:
            self.servers[name].liveness = Liveness.DEAD
            self.pool[name].healthy = False
        return act


world = World()  # replaced by each test (monkeypatch)


def interrupt() -> None:
    raise KeyboardInterrupt


class FakeTarget(Target):
    name = "fake"

    def __init__(self, config: LabConfig, key: KeyPair) -> None:
        super().__init__(config, key)
        self.world = world

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        self.world.record("target.create", *(s.name for s in specs))
        made = []
        for spec in specs:
            record = ServerRecord(spec.name, spec.role, self.name, address=f"10.9.0.{len(made)}",
                                  image=spec.image, generation=spec.generation,
                                  liveness=Liveness.RUNNING)
            self.world.servers[spec.name] = record
            made.append(record)
        return made

    def list(self) -> list[ServerRecord]:
        self.world.record("target.list", log=False)
        return [ServerRecord(**s.to_dict()) for s in self.world.servers.values()]

    def alive(self, names: list[str]) -> set[str]:
        self.world.record("target.alive", log=False)
        return {n for n in names if n in self.world.servers
                and self.world.servers[n].liveness is Liveness.RUNNING}

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        names = sorted(self.world.servers) if names is None else names
        self.world.record("target.destroy", *names)
        return [n for n in names if self.world.servers.pop(n, None) is not None]

    def wait_ready(self, servers: list[ServerRecord], on_event: Listener = ignore) -> None:
        """Fake servers are ready when made."""


class FakeBalancer(Balancer):
    kind = "fake"

    def __init__(self) -> None:
        self.world = world

    @classmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> FakeBalancer:
        return cls()

    @property
    def url(self) -> str:
        return "http://balancer.invalid:8080/"

    def members(self) -> dict[str, Member]:
        self.world.record("balancer.members", log=False)
        pool = dict(self.world.pool)
        taking = {n: m.share for n, m in pool.items() if m.healthy and m.state == "ready"}
        total = sum(taking.values())
        return {n: Member(name=n, health="UP" if m.healthy else "DOWN", healthy=m.healthy,
                          share=taking.get(n, 0) / total if total else 0.0,
                          serving=m.share > 0, weight=m.share)
                for n, m in pool.items()}

    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        for server in servers:
            self.world.pool[server.name] = FakeMember(
                share=0, healthy=server.name not in self.world.unhealthy_on_join)
        self.world.record("balancer.join", *(s.name for s in servers))  # Ctrl-C: they are in

    def wait_healthy(self, names: list[str], timeout: float = 15.0,
                     give_up: threading.Event | None = None) -> list[str]:
        self.world.record("balancer.wait_healthy", *names)
        return [n for n in names if n not in self.world.pool or not self.world.pool[n].healthy]

    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        for name in old:
            self.world.pool[name].share, self.world.pool[name].state = FULL - percent, "ready"
        for name in new:
            if name in self.world.pool:
                self.world.pool[name].share = percent
        self.world.record("balancer.shift", percent)  # Ctrl-C here: the traffic has moved

    def failures(self, names: list[str]) -> Tally | None:
        """Each reading, a member with a share took 10 more requests; a failing one failed 5."""
        self.world.record("balancer.failures", log=False)
        if not self.world.counters:
            return None
        for name, member in self.world.pool.items():
            if member.share and member.healthy:
                member.requests += 10
                member.failed += 5 if name in self.world.failing else 0
        present = [self.world.pool[n] for n in names if n in self.world.pool]
        return Tally(sum(m.requests for m in present), sum(m.failed for m in present))

    def retire(self, names: list[str], timeout: float = 10.0) -> list[str]:
        for name in names:
            if name in self.world.pool:
                self.world.pool[name].state = "drain"
        self.world.record("balancer.retire", *names)  # Ctrl-C here leaves them draining
        for name in names:
            self.world.pool.pop(name, None)
        return []


class FakeProbe:
    """What users see: every window holds 40 requests, ``world.user_errors`` of them failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.world = world

    def start(self) -> None:
        self.world.record("probe.start", self.url)

    def stop(self) -> None:
        self.world.record("probe.stop")

    def window(self, since: float, until: float | None = None) -> Window:
        self.world.record("probe.window", log=False)
        errors = self.world.user_errors
        return Window(seconds=1.0, requests=40, errors=errors, p50_ms=2.0, p99_ms=5.0,
                      versions={"v2": 40 - errors})

    def series(self, since: float, until: float | None = None) -> list[Window]:
        return [self.window(since, until)]


def fake_provision(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                   on_event: Listener) -> str:
    world.record("provision", *names)
    return world.provision_problem


def fake_verify(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                on_event: Listener) -> str:
    world.record("verify", *names)
    return world.verify_problem
