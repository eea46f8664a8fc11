"""A fake target, balancer, probe and checks that drive `lab release` without Docker.

They share one :class:`World`, a pretend cloud: the servers that exist, what the balancer
holds, and every call that changed something, in order. Scripted actions (raise Ctrl-C, kill a
server, make a member fail) run when a given call is made, so a test can put a failure at any
point of the release. The classes are registered by name, as a real target and balancer are:
tests add them to the registries' built-in tables (``tests/unit/conftest.py``). :class:`Cycle`
is one release on them, with what a test asserts of every rollback.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from lab.access.keys import KeyPair
from lab.balancers.base import Balancer, Member, Tally
from lab.config import DEFAULT_IMAGE, HealthCheck, LabConfig
from lab.errors import TargetError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.release import Checks, ReleaseReport, release
from lab.release.probe import Window
from lab.release.report import chart
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
    lingering: list[str] = field(default_factory=list)  # members that would not drain
    balancer_down: bool = False  # members() cannot be asked
    balancer_running: bool = True  # False: find() finds none (its server is not running)
    images: set[str] = field(default_factory=set)  # what servers can start from
    waited: list[str] = field(default_factory=list)  # what wait_ready was asked to wait for
    slow_health: bool = False  # health checks pass only when given up on (or after 10 s)
    # What the fakes were given, for tests of what the release passes on.
    found_among: list[str] = field(default_factory=list)  # servers the balancer was found in
    found_key: KeyPair | None = None  # the key it was found with
    found_for: str = ""  # the lab it was found for
    health: HealthCheck | None = None  # what join was told to check
    give_up: threading.Event | None = None  # what wait_healthy was told to stop on
    retire_timeouts: dict[str, float] = field(default_factory=dict)
    windows: list[float | None] = field(default_factory=list)  # each probe window's `since`
    ends: list[float | None] = field(default_factory=list)  # ... and its `until`
    checked: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # What the probe saw of each generation in a step: p99 ms and requests, new then old.
    new_answers: tuple[float, int] = (5.06, 20)
    old_answers: tuple[float, int] = (5.06, 20)
    apart: bool = True  # False: the answers say nothing of who gave them (an ALB, one page)

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
            if name in self.pool:
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
            # Published as the real targets publish: a port of the fake's choosing, or the
            # one the balancer fixed (HAProxy's listen port).
            ports = {port: 32000 + 10 * len(self.world.servers) + n
                     for n, port in enumerate(spec.ports)} | spec.fixed_ports
            record = ServerRecord(spec.name, spec.role, self.name, address=f"10.9.0.{len(made)}",
                                  image=spec.image, generation=spec.generation,
                                  liveness=Liveness.RUNNING, ports=ports)
            self.world.servers[spec.name] = record
            made.append(record)
            on_event(Event("created", f"{spec.name} created", spec.name))
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
        removed = [n for n in names if self.world.servers.pop(n, None) is not None]
        for name in removed:  # as the real targets say it
            on_event(Event("destroyed", f"{name} removed", subject=name))
        return removed

    def wait_ready(self, servers: list[ServerRecord], on_event: Listener = ignore) -> None:
        """Fake servers are ready when made; who was waited for is noted, and said, as the
        real wait says it."""
        for server in servers:
            self.world.waited.append(server.name)
            on_event(Event("ready", f"{server.name} ready", server.name))

    def remove_images(self) -> list[str]:
        removed, self.world.images = sorted(self.world.images), set()
        return removed

    def has_image(self, image: str) -> bool:
        return image in self.world.images


class FakeBalancer(Balancer):
    kind = "fake"

    def __init__(self) -> None:
        self.world = world

    @classmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> FakeBalancer | None:
        world.found_among, world.found_key = sorted(s.name for s in servers), key
        world.found_for = config.name
        return cls() if world.balancer_running else None

    @property
    def url(self) -> str:
        return "http://balancer.invalid:8080/"

    def members(self) -> dict[str, Member]:
        self.world.record("balancer.members", log=False)
        if self.world.balancer_down:
            raise TargetError("the balancer does not answer")
        pool = dict(self.world.pool)
        taking = {n: m.share for n, m in pool.items() if m.healthy and m.state == "ready"}
        total = sum(taking.values())
        return {n: Member(name=n, health="UP" if m.healthy else "DOWN", healthy=m.healthy,
                          share=taking.get(n, 0) / total if total else 0.0,
                          serving=m.share > 0, weight=m.share)
                for n, m in pool.items()}

    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        self.world.health = health
        for server in servers:
            self.world.pool[server.name] = FakeMember(
                share=0, healthy=server.name not in self.world.unhealthy_on_join)
        self.world.record("balancer.join", *(s.name for s in servers))  # Ctrl-C: they are in

    def wait_healthy(self, names: list[str], timeout: float = 15.0,
                     give_up: threading.Event | None = None) -> list[str]:
        self.world.record("balancer.wait_healthy", *names)
        self.world.give_up = give_up
        if self.world.slow_health:
            gave_up = give_up is not None and give_up.wait(10)
            self.world.record("balancer.gave_up" if gave_up else "balancer.waited_in_vain")
        return [n for n in names if n not in self.world.pool or not self.world.pool[n].healthy]

    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        for name in old:
            if name not in self.world.pool:
                raise TargetError(f"{name} is not in the balancer")
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
        self.world.retire_timeouts.update(dict.fromkeys(names, timeout))
        for name in names:
            if name in self.world.pool:
                self.world.pool[name].state = "drain"
        self.world.record("balancer.retire", *names)  # Ctrl-C here leaves them draining
        lingering = [n for n in names if n in self.world.lingering]
        for name in names:
            if name not in lingering:
                self.world.pool.pop(name, None)
        return lingering


class FakeProbe:
    """What users see: every window holds 40 requests over 3 s, ``world.user_errors`` of them
    failed; latencies with more digits than lab shows."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.world = world

    def start(self) -> None:
        self.world.record("probe.start", self.url)

    def stop(self) -> None:
        self.world.record("probe.stop")

    def window(self, since: float, until: float | None = None) -> Window:
        self.world.record("probe.window", log=False)
        self.world.windows.append(since)
        self.world.ends.append(until)
        errors = self.world.user_errors
        return Window(seconds=3.0, requests=40, errors=errors, p50_ms=2.54, p99_ms=5.06,
                      versions={"v2": 40 - errors})

    def settle(self, until: float) -> None:
        self.world.record("probe.settle", log=False)

    def generations(self, since: float, new: Collection[str], old_versions: Collection[str],
                    until: float | None = None) -> tuple[Window, Window] | None:
        self.world.record("probe.generations", log=False)
        if not self.world.apart:
            return None
        (new_p99, new_requests), (old_p99, old_requests) = (self.world.new_answers,
                                                            self.world.old_answers)
        return (Window(seconds=3.0, requests=new_requests, p99_ms=new_p99),
                Window(seconds=3.0, requests=old_requests, p99_ms=old_p99))

    def series(self, since: float, until: float | None = None) -> list[Window]:
        return [self.window(since, until)]


def fake_provision(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                   on_event: Listener) -> str:
    world.record("provision", *names)
    return _check("provision", fleet, names, overrides, on_event) or world.provision_problem


def fake_verify(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                on_event: Listener) -> str:
    world.record("verify", *names)
    return _check("verify", fleet, names, overrides, on_event) or world.verify_problem


def _check(kind: str, fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
           on_event: Listener) -> str:
    """What a real check does with its arguments: reads the lab, applies the overrides,
    reports progress to the release's listener."""
    world.checked.append((kind, fleet.config.name, overrides))
    on_event(Event(kind, f"{kind} {' '.join(names)}"))
    return ""


# A lab of the fakes: web-1 and web-2 (generation 1) behind the balancer; the release makes
# web-3 and web-4. db-1 is a role the release must never touch.
OLD = ["web-1", "web-2"]
NEW = ["web-3", "web-4"]
OTHERS = ["db-1"]
LAB_YML = """\
name: cycle
servers:
  web:
    count: 2
    health: {path: /health, port: 80}
  db: {count: 1}
balancer: {kind: fake, routes_to: web}
release: {steps: [10, 50, 100], step_seconds: 0.02, max_error_rate: 0.01}
vars: {version: v1}
"""
START = ["probe.start http://balancer.invalid:8080/", "target.create web-3 web-4",
         "provision web-3 web-4"]
# The tests and the join run side by side: their order among themselves is not fixed.
JOIN = {"balancer.join web-3 web-4", "balancer.wait_healthy web-3 web-4", "verify web-3 web-4"}
CANARY = ["balancer.shift 10", "verify web-3 web-4", "balancer.shift 50", "balancer.shift 100"]
ROLLBACK = ["balancer.shift 0", "balancer.retire web-3 web-4", "target.destroy web-3 web-4",
            "probe.stop"]


def populate(world: World) -> None:
    """The lab before the release: the old generation at full share, and a db server."""
    for index, name in enumerate(OLD):
        world.servers[name] = ServerRecord(name, "web", "fake", address=f"10.9.1.{index}",
                                           image=DEFAULT_IMAGE, generation=1,
                                           liveness=Liveness.RUNNING)
        world.pool[name] = FakeMember(share=FULL)
    world.servers["db-1"] = ServerRecord("db-1", "db", "fake", address="10.9.2.0",
                                         generation=1, liveness=Liveness.RUNNING)


@dataclass
class Cycle:
    world: World
    fleet: Fleet
    events: list[Event]
    overrides: dict[str, Any] = field(default_factory=lambda: {"version": "v2"})

    def __post_init__(self) -> None:
        self.before = {n: ServerRecord(**s.to_dict()) for n, s in self.world.servers.items()}

    def release(self, **options: Any) -> ReleaseReport:
        options.setdefault("probe", FakeProbe)
        return release(self.fleet, self.overrides, on_event=self.events.append,
                       checks=Checks(fake_provision, fake_verify), **options)

    def saved(self) -> dict[str, Any]:
        """The release as `lab history` will show it: from state, and its JSON file."""
        (record,) = self.fleet.state.releases()
        (path,) = (self.fleet.config.state_dir / "releases").glob("*.json")
        assert json.loads(path.read_text())["outcome"] == record["outcome"]
        return record

    def messages(self, kind: str) -> list[str]:
        return [e.message for e in self.events if e.kind == kind]

    def assert_untouched(self, names: list[str]) -> None:
        """These servers are as they were before the release, record for record."""
        assert {n: self.world.servers.get(n) for n in names} == {
            n: self.before[n] for n in names}, "a server the release must not touch changed"

    def assert_rolled_back(self, reason: str) -> None:
        """Old generation at full share and in service, nothing of the new one left, the
        other roles untouched; the user was told, and `lab history` says why."""
        pool = self.world.pool
        assert {n: (pool[n].share, pool[n].state) for n in pool} == {
            "web-1": (FULL, "ready"), "web-2": (FULL, "ready")}, "old generation not restored"
        assert sorted(self.world.servers) == OTHERS + OLD, "new generation not destroyed"
        self.assert_untouched(OLD + OTHERS)
        saved = self.saved()
        assert saved["outcome"] == "rolled-back"
        assert reason in str(saved["reason"])
        # Its picture marks the rollback with the very reason the release gives.
        drawn = chart(ReleaseReport.from_dict(saved))
        assert drawn is not None and drawn.rollback is not None
        assert drawn.rollback[1] == saved["reason"]
        # And its timeline: the rollback with its reason, then the new servers thrown away.
        events = saved["timeline"]["events"]
        assert [(m["label"], m.get("detail")) for m in events if m["kind"] == "rollback"] == [
            ("rollback", saved["reason"])]
        [destroyed] = [m for m in events if m["kind"] == "destroyed"]
        assert destroyed["label"] == "new generation"
        assert set(saved["new"]) <= set(destroyed.get("detail", "").split(", ")) - set(
            self.world.servers)
        rollback = self.messages("rollback")
        assert rollback[0] == f"rolling back: {saved['reason']}", rollback
        assert rollback[-1] == "rolled back: the old generation serves all traffic", rollback


# Makes a Cycle from a lab.yml (the ``make_cycle`` fixture of tests/unit/conftest.py).
MakeCycle = Callable[..., Cycle]


def expect(calls: list[str], *parts: str | set[str]) -> None:
    """``calls`` is ``parts`` in order; a set stands for calls in any order among themselves."""
    at = 0
    for part in parts:
        if isinstance(part, set):
            assert set(calls[at:at + len(part)]) == part, (at, calls)
            at += len(part)
        else:
            assert calls[at:at + 1] == [part], (at, calls)
            at += 1
    assert at == len(calls), calls[at:]
