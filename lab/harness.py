"""The harness cycle: converge, check idempotence, look for drift, verify, and `lab test`.

Each function works on a :class:`~lab.fleet.Fleet`, records in state what each server has
been through, and returns a report with ``ok`` and ``problem`` (one line for the user); the
CLI renders the report and turns ``not ok`` into exit status 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.access.ports import free_local_port
from lab.config import LabConfig
from lab.errors import TargetError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.provision import RunResult, TaskOutcome, provision_lab, runs_problem
from lab.state import EventKind, ServerRecord, Stage
from lab.steps import FAILED, OK, Outcome, Step, Steps
from lab.verify import VerifyResult, verify_lab

DestroyPolicy = Literal["always", "passing", "never"]


@dataclass
class ProvisionReport:
    runs: list[RunResult] = field(default_factory=list)
    second: list[RunResult] = field(default_factory=list)  # the idempotence run, if asked
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def not_idempotent(self) -> list[TaskOutcome]:
        return [t for r in self.second for t in r.changed]


def provision(fleet: Fleet, names: list[str] | None = None,
              overrides: dict[str, Any] | None = None, idempotence: bool = False,
              on_event: Listener = ignore) -> ProvisionReport:
    """Run the playbooks; with ``idempotence``, run again and fail on any change."""
    servers, everyone = fleet.select(names)
    report = ProvisionReport(provision_lab(fleet.lab, servers, fleet.key, overrides,
                                           on_event=on_event, everyone=everyone))
    failed_hosts = {f.host for r in report.runs for f in r.failures}
    fleet.mark(sorted(failed_hosts), Stage.FAILED, report.runs[0].run_id if report.runs else "")
    if not all(r.ok for r in report.runs):
        report.problem = runs_problem(report.runs)
        return report
    fleet.mark([s.name for s in servers], Stage.PROVISIONED, json.dumps({
        "runs": [r.run_id for r in report.runs],
        "vars": fleet.config.vars | (overrides or {})}, default=str))
    report.problem = wait_for_rotation(fleet, servers, everyone, on_event)
    if idempotence and report.ok:
        on_event(Event("phase", "second run: checking idempotence"))
        second = check_idempotence(fleet, overrides, on_event, names)
        report.second, report.problem = second.second, second.problem
    return report


def wait_for_rotation(fleet: Fleet, provisioned: list[ServerRecord],
                      everyone: list[ServerRecord], on_event: Listener = ignore) -> str:
    """Wait until the balancer's health checks pass on the provisioned servers it sends
    traffic to (all of them when the balancer itself was provisioned).

    A playbook that restarts a service, or a balancer that was just reloaded, leaves a moment
    in which the balancer answers 503; `lab provision` returns once the lab serves again.
    Returns a problem line when a server does not pass, "" otherwise.
    """
    balancer = fleet.lab.open_balancer(everyone, fleet.key)
    if balancer is None or fleet.config.balancer is None:
        return ""
    try:
        members = balancer.members()
    except TargetError:
        return ""  # not answering yet: the balancer has not been provisioned
    names = {s.name for s in provisioned}
    own = fleet.lab.balancer_roles
    everything = any(s.role in own for s in provisioned)
    serving = [n for n, m in members.items() if m.serving and (everything or n in names)]
    if not serving:
        return ""
    on_event(Event("phase", f"waiting for the balancer's health checks on {', '.join(serving)}"))
    # The last check before the playbook changed anything may still say UP: only a check
    # made after it counts, so the balancer is given the time it takes to notice.
    time.sleep(balancer.notice_seconds)
    unhealthy = balancer.wait_healthy(serving)
    if not unhealthy:
        return ""
    health = fleet.config.health_of(fleet.config.balancer.routes_to)
    return (f"provisioned, but the balancer's health check (GET {health.path} on port "
            f"{health.port}) fails on {', '.join(unhealthy)}: see `lab status` and `lab verify`")


def check_idempotence(fleet: Fleet, overrides: dict[str, Any] | None = None,
                      on_event: Listener = ignore, names: list[str] | None = None,
                      ) -> ProvisionReport:
    """Run the playbooks again; any task that changes anything is named with its host."""
    report = ProvisionReport()
    servers, everyone = fleet.select(names)
    report.second = provision_lab(fleet.lab, servers, fleet.key, overrides,
                                  on_event=on_event, everyone=everyone)
    report.problem = idempotence_problem(report.second)
    return report


def idempotence_problem(second: list[RunResult]) -> str:
    """Molecule's judgement of a second run: it fails, or a task changed something on some
    host (each named with its host); "" when nothing changed anywhere."""
    if not all(r.ok for r in second):
        return "second run failed: " + runs_problem(second)
    changed = [t for r in second for t in r.changed]
    if changed:
        named = "; ".join(f"{t.host}: {t.task}" for t in changed)
        return f"not idempotent: changed on the second run: {named}"
    return ""


@dataclass
class DriftReport:
    runs: list[RunResult] = field(default_factory=list)
    problem: str = ""

    @property
    def drifted(self) -> list[TaskOutcome]:
        """Tasks whose result differs from the servers; handlers they would notify are
        consequences, not differences, and are left out."""
        return [t for r in self.runs for t in r.changed if not t.handler]

    @property
    def ok(self) -> bool:
        return not self.problem and not self.drifted


def drift(fleet: Fleet, names: list[str] | None = None,
          overrides: dict[str, Any] | None = None, on_event: Listener = ignore) -> DriftReport:
    """Check mode with diff: what on the running servers differs from the code."""
    servers, everyone = fleet.select(names)
    report = DriftReport(provision_lab(fleet.lab, servers, fleet.key, overrides, check=True,
                                       on_event=on_event, everyone=everyone))
    if not all(r.ok for r in report.runs):
        report.problem = "drift check failed: " + runs_problem(report.runs)
    for task in report.drifted:
        fleet.state.log(EventKind.DRIFT, task.host, task.task)
    return report


def verify(fleet: Fleet, names: list[str] | None = None,
           overrides: dict[str, Any] | None = None, on_event: Listener = ignore) -> VerifyResult:
    """Run the testinfra suites; servers that pass are marked verified in state."""
    servers, everyone = fleet.select(names)
    result = verify_lab(fleet.lab, servers, fleet.key, on_event, overrides, everyone)
    failed = {o.host for o in result.failures}
    fleet.mark([s.name for s in servers if s.name not in failed], Stage.VERIFIED)
    fleet.mark(sorted(failed), Stage.VERIFY_FAILED)
    return result


@dataclass
class TestReport:
    """`lab test`: each phase as a :class:`~lab.steps.Step` (name, ok, seconds, detail)."""

    __test__ = False

    lab: str
    steps: Steps = field(default_factory=Steps)
    notes: list[str] = field(default_factory=list)  # what was done otherwise, or not at all

    @property
    def phases(self) -> list[Step]:
        return self.steps.done

    @property
    def ok(self) -> bool:
        return self.steps.ok

    @property
    def problem(self) -> str:
        return self.steps.problem

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.ok, "problem": self.problem,
                "phases": [step.to_dict() for step in self.phases]} | (
                    {"notes": self.notes} if self.notes else {})


def test_lab_name(config: LabConfig) -> str:
    """The throwaway lab `lab test` uses, so it never touches the servers `lab up` made."""
    return f"{config.name[:27].rstrip('-')}-test"


def run_test_cycle(config: LabConfig, destroy: DestroyPolicy = "always",
                   overrides: dict[str, Any] | None = None,
                   on_event: Listener = ignore) -> TestReport:
    """Fresh servers, provision, then idempotence and verify side by side, destroy: Molecule's
    `test`, faster."""
    test_config = config.beside(test_lab_name(config), config.state_dir / "test",
                                listen=free_local_port())
    steps = Steps(on_event)
    report = TestReport(test_config.name, steps)
    with Fleet(test_config, on_event) as fleet:
        try:
            fleet.destroy()  # leftovers of an earlier, interrupted test
            converge_and_verify(fleet, steps, fleet.up, overrides, on_event)
        finally:
            end_cycle(fleet, report, destroy, on_event, "`lab test --destroy always` or "
                                                        "`lab destroy -f` on that lab")
    return report


@dataclass
class CycleRuns:
    """What each run of :func:`converge_and_verify` reported (None: it did not run)."""

    converge: ProvisionReport | None = None  # the first run, on fresh servers
    second: ProvisionReport | None = None  # the idempotence run
    verified: VerifyResult | None = None


def converge_and_verify(fleet: Fleet, steps: Steps, create: Callable[[], object],
                        overrides: dict[str, Any] | None = None,
                        on_event: Listener = ignore) -> CycleRuns:
    """The heart of `lab test` (and of a grader's rebuild): ``create`` fresh servers,
    provision them, then idempotence and verify side by side, each a step of ``steps``."""
    runs = CycleRuns()

    def converge() -> ProvisionReport:
        runs.converge = provision(fleet, overrides=overrides, on_event=on_event)
        return runs.converge

    def second() -> ProvisionReport:
        runs.second = check_idempotence(fleet, overrides, on_event)
        return runs.second

    def tests() -> Outcome:
        runs.verified = verify(fleet, overrides=overrides, on_event=on_event)
        return verify_outcome(runs.verified)

    steps.run("create", create)
    steps.run("provision", converge)
    # The second run changes nothing on servers that pass it, so the tests may read them
    # meanwhile; on servers that fail it, the cycle has failed anyway.
    steps.run_together({"idempotence": second, "verify": tests})
    return runs


def end_cycle(fleet: Fleet, report: TestReport, destroy: DestroyPolicy, on_event: Listener,
              remedy: str) -> None:
    """The last step of a test cycle: destroy the servers as ``destroy`` says, or say they
    were kept and how to remove them (``remedy``)."""
    if destroy == "always" or (destroy == "passing" and report.ok):
        report.steps.run("destroy", fleet.destroy, always=True)
    else:
        on_event(Event("phase", f"kept servers of {fleet.config.name} (--destroy {destroy}); "
                                f"remove them with {remedy}"))


def verify_outcome(result: VerifyResult) -> Outcome:
    """verify as a step of a test cycle, with how many tests passed and failed; its detail
    is the failed tests alone, as the step's name already says "verify failed"."""
    return Outcome(OK if result.ok else FAILED, result.failed_tests,
                   {"passed": result.passed, "failed": len(result.failures)})
