"""The throwaway-and-replace cycle: ``lab release``.

A change never touches a running server. A new generation of the role is built beside the
old one, provisioned (or started from a baked image) and verified out of rotation, then
dipped into traffic step by step while a probe measures errors, latency and which version
answers. Every step is gated; any failure, or Ctrl-C, rolls back: the new generation leaves
the balancer and is destroyed, the old one is back at full share. The old generation is
never modified; once the new one carries all traffic, the old one is drained and destroyed.

The release talks to the target, the balancer and the probe only through their interfaces
(``Target``, :class:`~lab.balancers.base.Balancer`, :class:`Traffic`), and runs the new
generation's provisioning and tests through :class:`Checks`: unit tests drive every path with
stand-ins, registered or passed the way real ones are.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from lab.balancers.base import Balancer, Member, Tally
from lab.config import HealthCheck, Pause, ReleasePolicy
from lab.errors import CheckFailed, LabError, Terminated, UsageError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import provision, verify
from lab.release import control, hooks
from lab.release.analysis import FAILED, INCONCLUSIVE, first, judge
from lab.release.journal import (
    INTERRUPTED,
    JournalEntry,
    ReleaseLock,
    ReleaseReport,
    StepReport,
    Verdict,
    describe,
    history,
    last_step,
    unfinished,
)
from lab.release.probe import Probe, Window
from lab.release.timeline import Recorder
from lab.state import EventKind, ServerRecord
from lab.steps import Steps


class ReleaseFailed(CheckFailed):
    """A gate said no; the release was rolled back. ``report`` is the release's record (its
    steps and their verdicts), for the caller to show."""

    report: ReleaseReport | None = None


class Traffic(Protocol):
    """What a release needs of its probe: lab's :class:`~lab.release.probe.Probe`, or a stand-in."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def window(self, since: float, until: float | None = None) -> Window: ...

    def generations(self, since: float, new: Collection[str], old_versions: Collection[str],
                    until: float | None = None) -> tuple[Window, Window] | None: ...

    def settle(self, until: float) -> None: ...

    def series(self, since: float, until: float | None = None) -> list[Window]: ...


# Makes the probe for the balancer's URL.
ProbeFactory = Callable[[str], Traffic]
# Runs a check on the named servers; returns "" when it passed, else one line saying why not.
Gate = Callable[[Fleet, list[str], dict[str, Any] | None, Listener], str]


def provision_gate(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                   on_event: Listener) -> str:
    """lab's provisioning (Ansible) as a release gate."""
    return provision(fleet, names, overrides, on_event=on_event).problem


def verify_gate(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                on_event: Listener) -> str:
    """lab's verification (testinfra) as a release gate: a test failed, or none passed (a
    gate that ran nothing proved nothing; `lab release --untested` to go without)."""
    result = verify(fleet, names, overrides, on_event=on_event)
    if result.problem or result.passed:
        return result.problem
    return (f"no test passed on {', '.join(names)} ({len(result.outcomes)} ran, all skipped)"
            if result.outcomes else f"no tests ran on {', '.join(names)}") + UNTESTED_HINT


def untested_gate(fleet: Fleet, names: list[str], overrides: dict[str, Any] | None,
                  on_event: Listener) -> str:
    """`--untested`: the tests that exist still gate; none at all is let through."""
    return verify(fleet, names, overrides, on_event=on_event).problem


UNTESTED_HINT = (": add tests (`tests:` of the role in lab.yml), or `lab release --untested` "
                 "to release without (`lab history` records it)")


@dataclass(frozen=True)
class Checks:
    """How the new generation is provisioned and tested: Ansible and testinfra, unless a
    caller (a unit test) passes stand-ins."""

    provision: Gate = provision_gate
    verify: Gate = verify_gate


CUT_SHORT = "cut short"  # a step interrupted (Ctrl-C, a bug) before its gates judged it


def release(fleet: Fleet, overrides: dict[str, Any] | None = None,
            from_image: str | None = None, on_event: Listener = ignore,
            probe_rate: float = 40.0, *, probe: ProbeFactory | None = None,
            checks: Checks | None = None, rollback_of: str | None = None,
            step_by_step: bool = False, untested: bool = False) -> ReleaseReport:
    """Replace the balanced role's servers with a new generation; roll back on any failure.

    The target is the fleet's and the balancer lab.yml's kind, each found through its
    registry; ``probe`` (default: lab's probe at ``probe_rate``) and ``checks`` (default:
    Ansible and testinfra) may be replaced. Raises :class:`ReleaseFailed` (after rolling
    back) when a gate fails or `lab abort` asks, and lets KeyboardInterrupt through after
    rolling back. ``step_by_step`` pauses after every step until `lab promote`. A role
    without tests is refused (a rollback, `lab rollback`'s, is let through: it is the way
    back) unless ``untested``, which the report records. The report is saved either way.
    """
    config = fleet.config
    if config.balancer is None:
        raise UsageError("lab.yml has no `balancer:`; a release needs one to move traffic")
    if checks is None:  # testinfra's gate (a caller's own checks judge for themselves)
        let_through = untested or rollback_of is not None
        if not let_through and not config.servers[config.balancer.routes_to].tests:
            raise UsageError(f"servers.{config.balancer.routes_to}.tests: none in lab.yml, so "
                             f"no test would gate the release{UNTESTED_HINT}")
        checks = Checks(verify=untested_gate if let_through else verify_gate)
    with ReleaseLock(config.state_dir):
        _end_unfinished(fleet, on_event)
        control.clear(config.state_dir)  # a command no earlier release read is void
        return _release(fleet, overrides, from_image, on_event, probe_rate, probe, checks,
                        rollback_of, step_by_step, untested)


def _release(fleet: Fleet, overrides: dict[str, Any] | None, from_image: str | None,
             on_event: Listener, probe_rate: float, probe: ProbeFactory | None,
             checks: Checks | None, rollback_of: str | None = None,
             step_by_step: bool = False, untested: bool = False) -> ReleaseReport:
    """The release itself, under the lab's release lock."""
    config = fleet.config
    assert config.balancer is not None  # release() checked
    role = config.balancer.routes_to
    live = fleet.live()
    balancer = fleet.lab.open_balancer(live, fleet.key)
    members = [s for s in live if s.role == role]
    if balancer is None or not members:
        raise UsageError("nothing to release into: run `lab up && lab provision` first")
    balancer.on_event = on_event  # a long wait (an ALB's drain) shows its progress
    generation = max(s.generation for s in members)
    old = [s for s in members if s.generation == generation]
    in_pool = balancer.members()
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
        previous=previous, old=[s.name for s in old], rollback_of=rollback_of,
        untested=untested,
    )
    health = config.health_of(role)
    traffic = (probe or (lambda url: Probe(url, rate=probe_rate)))(balancer.url)
    traffic.start()
    probe_started = time.monotonic()
    run = _Run(fleet, balancer, traffic, checks or Checks(), report, on_event,
               Recorder(probe_started))
    run.timeline.reading(in_pool, [], report.old)
    try:
        new = run.phase("create", lambda: fleet.add_generation(role, from_image))
        run.timeline.moment("created", "new generation", detail=", ".join(report.new))
        if from_image is None:
            run.phase("provision", lambda: run.gate_provision(new, overrides))
        # Tests and the balancer's health checks run side by side: at weight 0 the new
        # servers are in the pool but get no traffic until both gates have passed.
        run.phase("verify + join", lambda: run.verify_and_join(new, health, overrides))
        # What the old generation served alone, before any traffic moved: its versions tell
        # the new generation's answers apart where the balancer names no server (an ALB).
        run.before = traffic.window(probe_started)
        run.hook("pre-rollout", overrides)
        run.canary_steps(old, new, overrides, step_by_step)
        run.hook("confirm-promotion", overrides)
        run.phase("promote", lambda: run.promote(old))
        report.outcome = "promoted"
        run.hook("post-rollout", overrides)
    except BaseException as exc:  # a bug or Ctrl-C must not leave a half-made release
        reason = _reason(exc)
        rolled_back = run.rollback(old, reason)
        if not isinstance(exc, LabError):
            raise  # Ctrl-C (exit 130) or a bug (exit 70), after the clean-up
        if rolled_back:
            failed = ReleaseFailed(f"release rolled back: {reason}")
            failed.report = report
            raise failed from None
    finally:
        traffic.stop()
        until = time.monotonic()
        report.traffic = traffic.window(probe_started, until).to_dict()
        report.timeline = run.timeline.to_dict(traffic.series(probe_started, until))
        report.finished = time.time()
        _save(fleet, report)
    return report


def put_right(fleet: Fleet, on_event: Listener = ignore) -> list[ReleaseReport]:
    """End the releases of this lab whose process was killed before they ended (none when
    there are none); refused while a release runs. `lab release` does this first."""
    with ReleaseLock(fleet.config.state_dir):
        return _end_unfinished(fleet, on_event)


def _end_unfinished(fleet: Fleet, on_event: Listener) -> list[ReleaseReport]:
    """End the releases whose process was killed before they ended, from their journal.

    A release whose promote had begun passed every gate with all traffic on the new
    generation: the promote is finished (the old generation drained and destroyed). Any
    other is rolled back (the old generation at full share, the new one out and destroyed),
    as it would have been had it been stopped with Ctrl-C. The caller holds the lab's
    :class:`~lab.release.journal.ReleaseLock`, so no release of this lab runs meanwhile.
    """
    ended = []
    for report in unfinished(fleet.state):
        on_event(Event("warning", f"{describe(report)}: putting it right first"))
        _put_right(fleet, report, on_event)
        report.finished = time.time()
        _save(fleet, report)
        ended.append(report)
    return ended


def _put_right(fleet: Fleet, report: ReleaseReport, on_event: Listener) -> None:
    reason = f"interrupted at {last_step(report)} (its lab process ended before the release did)"
    live = fleet.live()
    old = [s for s in live if s.name in report.old]
    new = [s for s in live if s.role == report.role and s.name not in report.old]
    balancer = fleet.lab.open_balancer(live, fleet.key)
    if balancer is None:  # its servers are gone (`lab destroy`): nothing is split
        report.outcome, report.reason = INTERRUPTED, f"{reason}; its lab was taken down since"
        fleet.destroy_servers(_names(new))
        return
    run = _Run(fleet, balancer, _NoTraffic(), Checks(), report, on_event,
               Recorder(time.monotonic()))
    run.new = new
    if any(entry.step == "promote" for entry in report.journal) or (new and not old):
        run.write_journal("promote", "begun")
        run.timeline.moment("promote", "promote")
        lingering = balancer.retire([n for n in _names(old) if n in balancer.members()])
        run.finish_promote(old, reason, lingering)
    else:
        run.rollback(old, reason)
    report.timeline = run.timeline.to_dict([])


class _NoTraffic:
    """The probe of a release put right after its process died: nobody measured."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def window(self, since: float, until: float | None = None) -> Window:
        return Window(seconds=0.0)

    def generations(self, since: float, new: Collection[str], old_versions: Collection[str],
                    until: float | None = None) -> tuple[Window, Window]:
        return Window(seconds=0.0), Window(seconds=0.0)

    def settle(self, until: float) -> None: ...

    def series(self, since: float, until: float | None = None) -> list[Window]:
        return []


class _Run:
    """One release in progress: the phases, the gates and the rollback."""

    def __init__(self, fleet: Fleet, balancer: Balancer, probe: Traffic, checks: Checks,
                 report: ReleaseReport, on_event: Listener, timeline: Recorder) -> None:
        self.fleet, self.balancer, self.probe, self.checks = fleet, balancer, probe, checks
        self.report, self.on_event, self.timeline = report, on_event, timeline
        self.steps = Steps(on_event)
        self.new: list[ServerRecord] = []
        self.before = Window(seconds=0.0)  # the old generation alone, before the first step

    def phase(self, name: str, body: Any) -> Any:
        """One phase through lab's step runner; any exception goes on to the rollback."""
        self.abort_asked()
        made: list[Any] = []
        self.write_journal(name, "begun")
        self.timeline.moment("phase", name)
        try:
            step = self.steps.run(name, lambda: made.append(body()), catch=False)
        finally:
            self.timeline.phase_ended(name, ok=bool(made))
        assert step is not None  # a release stops at its first failure: nothing is skipped
        self.report.phases[name] = round(step.seconds, 2)
        if name == "create":
            self.new = made[0]
            self.report.new = _names(self.new)
        self.write_journal(name, "done")
        return made[0]

    def write_journal(self, step: str, state: str) -> None:
        """Save the report with this step noted, before the step acts (``begun``) and once
        it has (``done``): what a later command reads if this process is killed."""
        self.report.journal.append(JournalEntry(time.time(), step, state))
        self.fleet.state.save_release(self.report.to_dict())

    # gates ---------------------------------------------------------------------------------

    def gate_provision(self, new: list[ServerRecord], overrides: dict[str, Any] | None) -> None:
        problem = self.checks.provision(self.fleet, _names(new), overrides, self.on_event)
        reason = f"provisioning the new generation failed: {problem}" if problem else ""
        self.timeline.moment("gate", "provision", ok=not problem, detail=reason)
        if problem:
            raise ReleaseFailed(reason)

    def gate_verify(self, new: list[ServerRecord], overrides: dict[str, Any] | None) -> None:
        problem = self.checks.verify(self.fleet, _names(new), overrides, self.on_event)
        reason = f"the new generation failed its tests: {problem}" if problem else ""
        self.timeline.moment("gate", "tests", ok=not problem, detail=reason)
        if problem:
            raise ReleaseFailed(reason)

    def verify_and_join(self, new: list[ServerRecord], health: HealthCheck,
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

    def join(self, new: list[ServerRecord], health: HealthCheck,
             give_up: threading.Event | None = None) -> None:
        """Put the new servers in the pool at zero share and wait for their health checks."""
        self.balancer.join(new, health)
        unhealthy = self.balancer.wait_healthy(_names(new), give_up=give_up)
        problem = (f"health check {health.path} on port {health.port} failed on "
                   f"{', '.join(unhealthy)}" if unhealthy else "")
        self.timeline.moment("gate", "health checks", ok=not unhealthy, detail=problem)
        if unhealthy:
            raise ReleaseFailed(problem)

    def step(self, old: list[ServerRecord], new: list[ServerRecord], percent: int,
             policy: ReleasePolicy, verify_first: bool,
             overrides: dict[str, Any] | None) -> None:
        """Move ``percent`` of traffic to the new generation, watch it, judge it: at once
        when a server dies, fails its health checks or fails too many requests, and at the
        end on every rule of the analysis (:mod:`lab.release.analysis`)."""
        seconds = policy.step_seconds
        self.balancer.shift(_names(old), _names(new), percent)
        self.timeline.moment("step", f"{percent}%", percent=percent)
        step = StepReport(percent, {})
        self.report.steps.append(step)
        watch = _Watch(self, step, old, new)
        # At the first step the tests run again, under real traffic, while the step is held.
        tests = _Background(lambda: self.gate_verify(new, overrides)) if verify_first else None
        try:
            while True:
                time.sleep(min(self.balancer.poll_seconds,
                               max(0.0, watch.started + seconds - time.monotonic())))
                watch.once()
                if time.monotonic() - watch.started >= seconds and (tests is None or tests.done):
                    break
            if tests is not None:
                tests.result()
        except ReleaseFailed:
            if tests is not None:
                tests.wait()
            raise
        except BaseException:  # Ctrl-C, or a bug: the step was never judged, say so
            step.window, step.gate = self.probe.window(watch.started).to_dict(), CUT_SHORT
            raise
        ended = time.monotonic()
        self.probe.settle(ended)  # the step's slowest answers are part of it
        window = self.probe.window(watch.started, ended)
        step.window = window.to_dict()
        unknown = self.judge(step, window, watch.canary.since_start(), watch.started, ended,
                             _names(new))
        if unknown is not None:  # inconclusive: pause, a person decides
            step.gate = INCONCLUSIVE
            self.hold(old, new, f"inconclusive: {unknown.line()}")
            step.gate = "passed by a person"
        try:
            self.hook("rollout", overrides, percent=percent)
        except ReleaseFailed as exc:
            raise self._refuse(step, window, "rollout hook", f"at {percent}%: {exc}") from None

    def canary_steps(self, old: list[ServerRecord], new: list[ServerRecord],
                     overrides: dict[str, Any] | None, step_by_step: bool) -> None:
        """lab.yml's steps in order: each share of traffic watched and judged, each pause
        held (and, ``step_by_step``, a pause after every step that has none)."""
        policy = self.fleet.config.release
        for index, item in enumerate(policy.steps):
            if isinstance(item, Pause):
                self.phase(f"{control.PAUSE} {self.report.steps[-1].percent}%",
                           lambda s=item.seconds: self.hold(old, new, "a pause step", s))
                continue
            self.phase(f"canary {item}%", lambda p=item: self.step(
                old, new, p, policy, verify_first=not self.report.steps, overrides=overrides))
            after = policy.steps[index + 1] if index + 1 < len(policy.steps) else None
            if step_by_step and not isinstance(after, Pause):
                self.phase(f"{control.PAUSE} {item}%",
                           lambda: self.hold(old, new, "step by step"))

    def hold(self, old: list[ServerRecord], new: list[ServerRecord], why: str,
             seconds: float | None = None) -> None:
        """Pause at the last step's share, still watched (a server that dies or fails rolls
        back), until `lab promote`, until ``seconds`` have passed, or `lab abort`."""
        step = self.report.steps[-1]
        name = f"{control.PAUSE} {step.percent}%"
        journal = self.report.journal
        phased = bool(journal) and (journal[-1].step, journal[-1].state) == (name, "begun")
        if not phased:  # held inside a canary step (inconclusive): `lab promote` reads this
            self.write_journal(name, "begun")
        # A promote counts from the moment the journal said paused: `lab status` and `lab
        # promote` may read it before this line runs.
        since = journal[-1].at
        until = f"; goes on by itself in {seconds:g} s" if seconds is not None else ""
        self.on_event(Event("pause", f"paused at {step.percent}% ({why}): `lab promote` goes "
                                     f"on, `lab abort` rolls back{until}"))
        self.timeline.moment("pause", f"paused {step.percent}%", percent=step.percent,
                             detail=why)
        watch, looked = _Watch(self, step, old, new), time.monotonic()
        while True:
            command = control.take(self.fleet.config.state_dir, since)
            if command == control.ABORT:
                raise self._refuse(step, watch.window(), "aborted",
                                   f"at {step.percent}%: aborted by `lab abort` while paused")
            if command == control.PROMOTE:
                step.resumed_by = "lab promote"
                break
            if seconds is not None and time.monotonic() - watch.started >= seconds:
                step.resumed_by = f"{seconds:g} s passed"
                break
            time.sleep(0.5)  # a person's command is read twice a second
            if time.monotonic() - looked >= self.balancer.poll_seconds:
                watch.once(paused=True)
                looked = time.monotonic()
        step.paused = round(time.monotonic() - watch.started, 1)
        self.on_event(Event("pause", f"going on from {step.percent}% ({step.resumed_by})"))
        self.timeline.moment("resumed", step.resumed_by, percent=step.percent)
        if not phased:
            self.write_journal(name, "done")

    def hook(self, phase: str, overrides: dict[str, Any] | None = None, reason: str = "",
             percent: int | None = None) -> None:
        """lab.yml's hook for ``phase``, if any. One that blocks (pre-rollout, rollout,
        confirm-promotion) and fails refuses the release with its last line of output; the
        others only warn: the release has ended by then."""
        hook = getattr(self.fleet.config.release.hooks, phase.replace("-", "_"))
        if hook is None:
            return
        share = percent if percent is not None else (
            self.report.steps[-1].percent if self.report.steps else 0)
        generation = max((s.generation for s in self.new), default=0)
        told = hooks.facts(self.report.id, phase, generation, share, self.balancer.url,
                           self.report.new, self.report.old, reason)
        what = hook.run or str(hook.playbook)
        blocking = phase in hooks.BLOCKING

        def run() -> None:
            self.on_event(Event("phase", f"{phase} hook: {what}"))
            problem = hooks.run_hook(self.fleet, hook, told, self.on_event, overrides)
            reason = f"the {phase} hook failed: {problem}" if problem else ""
            if not (problem and phase == "rollout"):  # a refused step draws its own
                # A hook after the end cannot refuse anything: not a gate on the picture.
                self.timeline.moment("gate" if blocking else "hook", f"{phase} hook",
                                     ok=not problem, detail=reason, percent=share)
            if problem and blocking:
                raise ReleaseFailed(reason)
            if problem:
                self.on_event(Event("warning", reason))

        if phase == "rollout":
            run()  # part of the step it follows
        elif blocking:
            self.phase(f"{phase} hook", run)
        else:
            try:
                run()
            except Exception as exc:  # the release has ended: warn, nothing more
                self.on_event(Event("warning", f"the {phase} hook could not run: {exc}"))

    def abort_sent(self) -> bool:
        """`lab abort` came from another terminal (a promote is left for a pause to take)."""
        return control.take(self.fleet.config.state_dir, self.report.started,
                            (control.ABORT,)) == control.ABORT

    def abort_asked(self) -> None:
        """`lab abort` from another terminal: refused like a failed gate, at the next check
        (at each look in a canary step, else when the running phase ends)."""
        if self.abort_sent():
            raise ReleaseFailed("aborted by `lab abort`")

    def judge(self, step: StepReport, window: Window, own: Tally | None, started: float,
              ended: float, names: list[str]) -> Verdict | None:
        """The step's analysis: every rule judged and kept with its numbers; the first that
        failed refuses the step, as does one that had no data to judge (unless lab.yml says
        ``inconclusive: pause``: then that verdict is returned, for a person to decide)."""
        policy, percent = self.fleet.config.release, step.percent
        apart = self.probe.generations(started, names, set(self.before.versions), ended)
        if apart is None:  # no server names, one version: the answers are everyone's
            step.verdicts = judge(policy, window, own, None, self.before, "")
        else:
            fresh, seasoned = apart
            measured = "in this step"
            if not seasoned.requests:  # the old generation takes no traffic any more
                seasoned, measured = self.before, "before the release"
            step.verdicts = judge(policy, window, own, fresh, seasoned, measured)
        refused = first(step.verdicts, FAILED)
        if refused is not None and refused.rule == "error rate":
            raise self._refuse(step, window, "error rate too high",
                               f"at {percent}%: error rate {window.error_rate:.1%} is above "
                               f"{policy.max_error_rate:.1%} ({window.errors}/{window.requests})")
        if refused is not None:
            raise self._refuse(step, window, refused.rule, f"at {percent}%: {refused.line()}")
        unknown = first(step.verdicts, INCONCLUSIVE)
        if unknown is not None and policy.inconclusive == "pause":
            return unknown
        if unknown is not None:
            raise self._refuse(step, window, INCONCLUSIVE,
                               f"at {percent}%: inconclusive, too little data to judge: "
                               f"{unknown.line()} (raise step_seconds, or lower min_requests)")
        step.gate = "passed"
        self.timeline.moment("gate", f"{percent}%", ok=True, percent=percent,
                             detail="; ".join(v.line() for v in step.verdicts))
        return None

    def _refuse(self, step: StepReport, window: Window, gate: str,
                reason: str) -> ReleaseFailed:
        """A step's gate said no: recorded in the step, on the timeline, and raised."""
        step.window, step.gate = window.to_dict(), gate
        self.timeline.moment("gate", f"{step.percent}%", ok=False, detail=reason,
                             percent=step.percent)
        return ReleaseFailed(reason)

    def promote(self, old: list[ServerRecord]) -> None:
        """Drain the old generation (in-flight requests finish), then throw it away."""
        self.timeline.moment("promote", "promote")
        self._say_lingering(self.balancer.retire(_names(old)))
        self.fleet.destroy_servers(_names(old))
        self.timeline.moment("destroyed", "old generation", detail=", ".join(_names(old)))

    def rollback(self, old: list[ServerRecord], reason: str) -> bool:
        """Old generation back at full share; new generation out and destroyed. True once
        rolled back; False when the old generation had already left the balancer (a promote
        cut short): then the new one, which passed every gate, keeps serving and the promote
        is finished instead, since taking it out would leave nothing serving."""
        if self._old_generation_gone(old):
            self.finish_promote(old, reason)
            return False
        self.write_journal("rollback", "begun")
        self.report.outcome, self.report.reason = "rolled-back", reason
        self.on_event(Event("rollback", f"rolling back: {reason}"))
        self.timeline.moment("rollback", "rollback", detail=reason)
        try:
            self.balancer.shift(_names(old), _names(self.new), 0)
            self.timeline.reading(self.balancer.members(), _names(self.new), _names(old))
        except LabError as exc:
            self.on_event(Event("warning", f"rollback: {exc}"))
        try:
            self.balancer.retire(_names(self.new), timeout=5)
        except LabError as exc:
            self.on_event(Event("warning", f"rollback: {exc}"))
        # What create returned, and what the target holds of the role beyond the old
        # generation: a create cut short may have made servers it never reported.
        created = [s.name for s in self.fleet.reconcile()
                   if s.role == self.report.role and s.name not in self.report.old]
        gone = sorted(set(_names(self.new)) | set(created))
        self.fleet.destroy_servers(gone)
        self.timeline.moment("destroyed", "new generation", detail=", ".join(gone))
        self.write_journal("rollback", "done")
        self.on_event(Event("rollback", "rolled back: the old generation serves all traffic"))
        self.hook("rollback", reason=reason)
        return True

    def _old_generation_gone(self, old: list[ServerRecord]) -> bool:
        """None of the old generation is a member of the balancer any more (only promote
        removes it). A balancer that cannot be asked is assumed to still hold it."""
        if not any(step.name == "promote" for step in self.steps.done):
            return False
        try:
            members = self.balancer.members()
        except LabError:
            return False
        return not any(name in members for name in _names(old))

    def finish_promote(self, old: list[ServerRecord], reason: str,
                       lingering: list[str] | None = None) -> None:
        """The old generation has left the balancer: the new one keeps serving; the old
        one is destroyed."""
        self.report.outcome = "promoted"
        self.report.reason = f"promote cut short ({reason}); finished it"
        self.on_event(Event("warning", f"{reason} after the old generation left the balancer: "
                                       "the new generation keeps serving; removing the old one"))
        self._say_lingering(lingering or [])
        self.fleet.destroy_servers(_names(old))
        self.timeline.moment("destroyed", "old generation", detail=", ".join(_names(old)))

    def _say_lingering(self, lingering: list[str]) -> None:
        """Members a drain could not empty stay in maintenance: the user is told which."""
        if lingering:
            self.on_event(Event("warning", f"{', '.join(lingering)} left in maintenance "
                                           "in the balancer (connections would not close)"))

    def _tick(self, percent: int, members: dict[str, Member], window: Window,
              canary: dict[str, int]) -> None:
        self.on_event(Event("tick", f"{percent}% on the new generation", data={
            "percent": percent, "rps": round(window.rps, 1), "errors": window.errors,
            "requests": window.requests, "canary": canary, "p50_ms": round(window.p50_ms, 1),
            "p99_ms": round(window.p99_ms, 1), "versions": window.versions,
            "weights": {n: m.weight for n, m in members.items()},
            "health": {n: m.health for n, m in members.items()},
            "share": {n: round(m.share, 3) for n, m in members.items() if m.share},
        }))


class _Watch:
    """What a release checks twice a second while traffic is on the new generation (a
    canary step, or a pause after one): the readings, the ticks users see, and the gates
    that cannot wait for the step's end: a dead server, failing health checks, the new
    servers' own failures, and `lab abort`."""

    def __init__(self, run: _Run, step: StepReport, old: list[ServerRecord],
                 new: list[ServerRecord]) -> None:
        self.run, self.step = run, step
        self.old, self.new = _names(old), _names(new)
        self.started = time.monotonic()
        self.canary = _CanaryCount(run.balancer, self.new)

    def window(self) -> Window:
        return self.run.probe.window(self.started)

    def once(self, paused: bool = False) -> None:
        run, step, percent, names = self.run, self.step, self.step.percent, self.new
        limit = run.fleet.config.release.max_error_rate
        members = run.balancer.members()
        window = self.window()
        own = self.canary.since_start()
        step.canary = own.to_dict() if own is not None else {}
        run.timeline.reading(members, names, self.old, percent, own)
        run._tick(percent, members, window, step.canary)
        if run.abort_sent():
            raise run._refuse(step, window, "aborted", f"at {percent}%: aborted by `lab abort`"
                                                       f"{' while paused' if paused else ''}")
        # One cheap question to the target, not a reconcile: this runs twice a second.
        alive = run.fleet.target.alive(names)
        dead = [n for n in names if n not in alive]
        if dead:
            raise run._refuse(step, window, "server died",
                              f"at {percent}%: {', '.join(dead)} stopped running")
        down = [n for n in names if n not in members or not members[n].healthy]
        if down:
            raise run._refuse(step, window, "health check failed",
                              f"at {percent}%: health check failing on {', '.join(down)}")
        if own is not None and own.error_rate > limit:
            step.verdicts = [Verdict("new servers' errors", round(own.error_rate, 4), limit,
                                     own.requests, FAILED, "%")]
            raise run._refuse(step, window, "canary errors",
                              f"at {percent}%: the new generation failed {own.failed} of "
                              f"{own.requests} requests (retried on other servers or "
                              f"answered 5xx), above {limit:.1%}")


class _CanaryCount:
    """Requests the new servers took and failed since a step began, from the balancer's
    counters: a balancer may retry a failed request on another server, so users (and the
    probe) may never see what the canary got wrong; its own counters do. None throughout
    where the balancer cannot tell."""

    def __init__(self, balancer: Balancer, names: list[str]) -> None:
        self.balancer, self.names = balancer, names
        self.start: Tally | None = balancer.failures(names)

    def since_start(self) -> Tally | None:
        if self.start is None:
            return None
        now = self.balancer.failures(self.names)
        return now.since(self.start) if now is not None else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Terminated):
        return f"interrupted ({exc.signal_name})"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, LabError):
        return str(exc)
    return f"internal error: {exc!r}"


def _names(servers: list[ServerRecord]) -> list[str]:
    return [s.name for s in servers]


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
        return {"vars": last.vars, "image": last.image}
    image = old[0].image if old and old[0].image != fleet.config.image else None
    return {"vars": dict(fleet.config.vars), "image": image}


def _save(fleet: Fleet, report: ReleaseReport) -> None:
    data = report.to_dict()
    fleet.state.save_release(data)
    directory = fleet.config.state_dir / "releases"  # state_dir holds state.db: it exists
    directory.mkdir(exist_ok=True)
    (directory / f"{report.id}.json").write_text(json.dumps(data, indent=2))
    fleet.state.log(EventKind.release_ended(report.outcome), None, report.id)


# The phases that make the new generation ready, before any traffic reaches it.
READY_PHASES = ("create", "provision", "verify + join")


def ready_seconds(report: ReleaseReport) -> float | None:
    """How long a saved release took to get its new servers ready for traffic (create, then
    provision unless started from a baked image, then tests and health checks): what baking
    saves, without the canary steps every release holds for the same time. None when the
    release stopped before its servers were ready."""
    phases = report.phases
    if "verify + join" not in phases:
        return None
    return round(sum(phases.get(name, 0.0) for name in READY_PHASES), 1)


def _last_promoted(fleet: Fleet) -> ReleaseReport | None:
    promoted = [r for r in history(fleet.state) if r.outcome == "promoted"]
    return promoted[-1] if promoted else None
