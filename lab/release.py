"""The throwaway-and-replace cycle: ``lab release``.

A change never touches a running server. A new generation of the role is built beside the
old one, provisioned (or started from a baked image) and verified out of rotation, then
dipped into traffic step by step while a probe measures errors, latency and which version
answers. Every step is gated; any failure, or Ctrl-C, rolls back: the new generation leaves
the balancer and is destroyed, the old one is back at full weight. The old generation is
never modified; once the new one carries all traffic, the old one is drained and destroyed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.balancer import (
    FULL_WEIGHT,
    BackendServer,
    Balancer,
    find_balancer,
    share_of_traffic,
)
from lab.errors import CheckFailed, LabError, UsageError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import provision, verify
from lab.probe import Probe, Window
from lab.state import ServerRecord
from lab.verify import failure_summary


class ReleaseFailed(CheckFailed):
    """A gate said no; the release was rolled back."""


@dataclass
class StepReport:
    percent: int
    window: dict[str, Any]
    gate: str = "passed"
    canary: dict[str, int] = field(default_factory=dict)  # requests, failed: the balancer's count


@dataclass
class ReleaseReport:
    id: str
    role: str
    started: float
    vars: dict[str, Any]
    image: str | None
    previous: dict[str, Any]
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    steps: list[StepReport] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    outcome: str = "running"  # promoted | rolled-back
    reason: str = ""
    finished: float | None = None
    traffic: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def release(fleet: Fleet, overrides: dict[str, Any] | None = None,
            from_image: str | None = None, on_event: Listener = ignore,
            probe_rate: float = 40.0) -> ReleaseReport:
    """Replace the balanced role's servers with a new generation; roll back on any failure.

    Raises :class:`ReleaseFailed` (after rolling back) when a gate fails, and lets
    KeyboardInterrupt through after rolling back. The report is saved either way.
    """
    config = fleet.config
    if config.balancer is None:
        raise UsageError("lab.yml has no `balancer:`; a release needs one to move traffic")
    role = config.balancer.routes_to
    live = fleet.live()
    balancer = find_balancer(live, fleet.key)
    members = [s for s in live if s.role == role]
    if balancer is None or not members:
        raise UsageError("nothing to release into: run `lab up && lab provision` first")
    generation = max(s.generation for s in members)
    old = [s for s in members if s.generation == generation]
    in_pool = balancer.servers()
    missing = [s.name for s in old if s.name not in in_pool]
    if missing:
        raise UsageError(f"{', '.join(missing)} not behind the balancer: run `lab provision`")

    if from_image is not None and not fleet.target.has_image(from_image):
        raise UsageError(f"no image {from_image} on {fleet.target.name}: `lab bake` makes one "
                         "(`lab history` shows what each release ran)")
    previous = _current_deployment(fleet, old)
    report = ReleaseReport(
        id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], role=role,
        started=time.time(), vars=config.vars | (overrides or {}), image=from_image,
        previous=previous, old=[s.name for s in old],
    )
    health = config.health_of(role)
    probe = Probe(config.balancer.listen, rate=probe_rate)
    run = _Run(fleet, balancer, probe, report, on_event)
    probe.start()
    probe_started = time.monotonic()
    try:
        new = run.phase("create", lambda: fleet.add_generation(role, from_image))
        report.new = [s.name for s in new]
        if from_image is None:
            run.phase("provision", lambda: run.gate_provision(new, overrides))
        # Tests and the balancer's health checks run side by side: at weight 0 the new
        # servers are in the pool but get no traffic until both gates have passed.
        run.phase("verify + join", lambda: run.verify_and_join(new, health, overrides))
        for index, percent in enumerate(config.release.steps):
            run.phase(f"canary {percent}%", lambda p=percent, i=index: run.step(
                old, new, p, config.release.step_seconds, config.release.max_error_rate,
                verify_first=(i == 0), overrides=overrides))
        run.phase("promote", lambda: run.promote(old))
        report.outcome = "promoted"
    except (LabError, KeyboardInterrupt) as exc:
        reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)
        run.rollback(old, reason)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ReleaseFailed(f"release rolled back: {reason}") from None
    finally:
        probe.stop()
        report.traffic = probe.window(probe_started).to_dict()
        report.finished = time.time()
        _save(fleet, report)
    return report


class _Run:
    """One release in progress: the phases, the gates and the rollback."""

    def __init__(self, fleet: Fleet, balancer: Balancer, probe: Probe, report: ReleaseReport,
                 on_event: Listener) -> None:
        self.fleet, self.balancer, self.probe = fleet, balancer, probe
        self.report, self.on_event = report, on_event
        self.new: list[ServerRecord] = []

    def phase(self, name: str, body: Any) -> Any:
        self.on_event(Event("phase", f"{name}..."))
        started = time.monotonic()
        result = body()
        self.report.phases[name] = round(time.monotonic() - started, 2)
        self.on_event(Event("phase", f"{name} ok ({self.report.phases[name]:.1f} s)"))
        if name == "create":
            self.new = result
        return result

    # gates ---------------------------------------------------------------------------------

    def gate_provision(self, new: list[ServerRecord], overrides: dict[str, Any] | None) -> None:
        outcome = provision(self.fleet, [s.name for s in new], overrides, on_event=self.on_event)
        if not outcome.ok:
            raise ReleaseFailed(f"provisioning the new generation failed: {outcome.problem}")

    def gate_verify(self, new: list[ServerRecord], overrides: dict[str, Any] | None) -> None:
        result = verify(self.fleet, [s.name for s in new], overrides, on_event=self.on_event)
        if not result.ok:
            raise ReleaseFailed(f"the new generation failed its tests: {failure_summary(result)}")

    def verify_and_join(self, new: list[ServerRecord], health: Any,
                        overrides: dict[str, Any] | None) -> None:
        give_up = threading.Event()
        joining = _Background(lambda: self.join(new, health, give_up))
        try:
            self.gate_verify(new, overrides)
        except BaseException:
            give_up.set()  # no need to wait for health checks: this release is over
            raise
        finally:
            joining.wait()
        joining.result()

    def join(self, new: list[ServerRecord], health: Any,
             give_up: threading.Event | None = None) -> None:
        """Put the new servers in the pool at weight 0 and wait for their health checks."""
        for server in new:
            self.balancer.add(server, health, weight=0)
        unhealthy = self.balancer.wait_healthy([s.name for s in new], give_up=give_up)
        if unhealthy:
            raise ReleaseFailed(f"health check {health.path} on port {health.port} failed on "
                                f"{', '.join(unhealthy)}")

    def step(self, old: list[ServerRecord], new: list[ServerRecord], percent: int,
             seconds: float, max_error_rate: float, verify_first: bool,
             overrides: dict[str, Any] | None) -> None:
        """Move ``percent`` of traffic to the new generation, watch it, judge it."""
        self.balancer.set_weights({s.name: percent for s in new}
                                  | {s.name: FULL_WEIGHT - percent for s in old})
        started = time.monotonic()
        step = StepReport(percent, {})
        canary = _CanaryCount(self.balancer.servers(), [s.name for s in new])
        self.report.steps.append(step)
        # At the first step the tests run again, under real traffic, while the step is held.
        tests = _Background(lambda: self.gate_verify(new, overrides)) if verify_first else None
        try:
            while True:
                time.sleep(min(0.5, max(0.0, started + seconds - time.monotonic())))
                rows = self.balancer.servers()
                window = self.probe.window(started)
                step.canary = canary.since_start(rows)
                self._tick(percent, rows, window, step.canary)
                alive = {s.name for s in self.fleet.live()}
                dead = [s.name for s in new if s.name not in alive]
                if dead:
                    step.window, step.gate = window.to_dict(), "server died"
                    raise ReleaseFailed(f"at {percent}%: {', '.join(dead)} stopped running")
                down = [s.name for s in new if s.name not in rows or not rows[s.name].healthy]
                if down:
                    step.window, step.gate = window.to_dict(), "health check failed"
                    raise ReleaseFailed(
                        f"at {percent}%: health check failing on {', '.join(down)}")
                if canary.error_rate(step.canary) > max_error_rate:
                    step.window, step.gate = window.to_dict(), "canary errors"
                    raise ReleaseFailed(
                        f"at {percent}%: the new generation failed {step.canary['failed']} of "
                        f"{step.canary['requests']} requests (retried on other servers or "
                        f"answered 5xx), above {max_error_rate:.1%}")
                if time.monotonic() - started >= seconds and (tests is None or tests.done):
                    break
            if tests is not None:
                tests.result()
        except ReleaseFailed:
            if tests is not None:
                tests.wait()
            raise
        window = self.probe.window(started)
        step.window = window.to_dict()
        if window.error_rate > max_error_rate:
            step.gate = "error rate too high"
            raise ReleaseFailed(f"at {percent}%: error rate {window.error_rate:.1%} is above "
                                f"{max_error_rate:.1%} ({window.errors}/{window.requests})")

    def promote(self, old: list[ServerRecord]) -> None:
        """Drain the old generation (in-flight requests finish), then throw it away."""
        lingering = self.balancer.remove([s.name for s in old])
        if lingering:
            self.on_event(Event("warning", f"{', '.join(lingering)} left in maintenance "
                                           "in the balancer (connections would not close)"))
        self.fleet.destroy_servers([s.name for s in old])

    def rollback(self, old: list[ServerRecord], reason: str) -> None:
        """Old generation back at full weight; new generation out and destroyed."""
        self.report.outcome, self.report.reason = "rolled-back", reason
        self.on_event(Event("rollback", f"rolling back: {reason}"))
        try:
            self.balancer.set_weights({s.name: FULL_WEIGHT for s in old}, state="ready")
        except LabError as exc:
            self.on_event(Event("warning", f"rollback: {exc}"))
        try:
            self.balancer.remove([s.name for s in self.new], timeout=5)
        except LabError as exc:
            self.on_event(Event("warning", f"rollback: {exc}"))
        names = self.report.new or [s.name for s in self.new]
        created = [s.name for s in self.fleet.reconcile()
                   if s.role == self.report.role and s.name not in self.report.old]
        self.fleet.destroy_servers(sorted(set(names) | set(created)))
        self.on_event(Event("rollback", "rolled back: the old generation serves all traffic"))

    def _tick(self, percent: int, rows: dict[str, Any], window: Window,
              canary: dict[str, int]) -> None:
        shares = share_of_traffic(rows)
        self.on_event(Event("tick", f"{percent}% on the new generation", data={
            "percent": percent, "rps": round(window.rps, 1), "errors": window.errors,
            "requests": window.requests, "canary": canary, "p50_ms": round(window.p50_ms, 1),
            "p99_ms": round(window.p99_ms, 1), "versions": window.versions,
            "weights": {n: r.weight for n, r in rows.items()},
            "health": {n: r.status for n, r in rows.items()},
            "share": {n: round(v, 3) for n, v in shares.items()},
        }))


class _CanaryCount:
    """Requests the new servers took and failed since a step began, from the balancer's
    counters: HAProxy retries a failed request on another server, so users (and the probe)
    may never see what the canary got wrong; its own counters do."""

    def __init__(self, rows: dict[str, BackendServer], names: list[str]) -> None:
        self.names = names
        self.start = self._totals(rows)

    def _totals(self, rows: dict[str, BackendServer]) -> dict[str, int]:
        present = [rows[n] for n in self.names if n in rows]
        return {"requests": sum(r.total_sessions for r in present),
                "failed": sum(r.failed for r in present)}

    def since_start(self, rows: dict[str, BackendServer]) -> dict[str, int]:
        now = self._totals(rows)
        return {key: max(0, now[key] - self.start[key]) for key in now}

    @staticmethod
    def error_rate(count: dict[str, int]) -> float:
        return count["failed"] / count["requests"] if count["requests"] else 0.0


class _Background:
    """Run a gate in a thread; ``result()`` re-raises what it raised."""

    def __init__(self, body: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(body,), daemon=True)
        self._thread.start()

    def _run(self, body: Any) -> None:
        try:
            body()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error


def _current_deployment(fleet: Fleet, old: list[ServerRecord]) -> dict[str, Any]:
    """What the old generation runs: the last promoted release, else lab.yml as it is."""
    last = _last_promoted(fleet)
    if last is not None:
        return {"vars": last["vars"], "image": last["image"]}
    image = old[0].image if old and old[0].image != fleet.config.image else None
    return {"vars": dict(fleet.config.vars), "image": image}


def _save(fleet: Fleet, report: ReleaseReport) -> None:
    data = report.to_dict()
    fleet.state.save_release(data)
    directory = fleet.config.state_dir / "releases"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{report.id}.json").write_text(json.dumps(data, indent=2))
    fleet.state.log(f"release-{report.outcome}", None, report.id)


def rollback_target(fleet: Fleet) -> dict[str, Any]:
    """What `lab rollback` releases: what ran before the last promoted release."""
    last = _last_promoted(fleet)
    if last is None:
        raise UsageError("no promoted release to roll back (see `lab history`)")
    return last["previous"]


def _last_promoted(fleet: Fleet) -> dict[str, Any] | None:
    promoted = [r for r in fleet.state.releases() if r["outcome"] == "promoted"]
    return promoted[-1] if promoted else None
