"""The one step runner behind `lab test`, `lab demo` and a release's phases (lab.steps)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from lab.errors import TargetError
from lab.events import Event
from lab.steps import FAILED, OK, Outcome, Result, Steps


@dataclass
class Report:
    """Any of lab's results: provision, drift, idempotence, verify."""

    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def test_what_a_body_may_return() -> None:
    assert Outcome.of(None) == Outcome(OK)
    assert Outcome.of(["web-1"]) == Outcome(OK)  # what it made
    assert Outcome.of("") == Outcome(OK)
    assert Outcome.of("nginx not running") == Outcome(FAILED, "nginx not running")
    assert isinstance(Report(), Result)
    assert Outcome.of(Report("web-2: task 'nginx' failed")) == Outcome(
        FAILED, "web-2: task 'nginx' failed")
    assert Outcome.of(Outcome("promoted", figures={"failed": 0})).figures == {"failed": 0}


def test_steps_after_a_failure_are_skipped_but_clean_up_runs() -> None:
    events: list[Event] = []
    steps = Steps(events.append)
    ran: list[str] = []
    steps.run("create", lambda: ran.append("create"))
    steps.run("provision", lambda: Report("web-1: task 'nginx' failed"))
    assert steps.run("verify", lambda: ran.append("verify")) is None
    steps.run("destroy", lambda: ran.append("destroy"), always=True)

    assert ran == ["create", "destroy"]
    assert [(s.name, s.ok) for s in steps.done] == [
        ("create", True), ("provision", False), ("destroy", True)]
    assert not steps.ok
    assert steps.problem == "provision failed: web-1: task 'nginx' failed"
    messages = [e.message.rsplit(" (", 1)[0] for e in events]
    assert messages == ["create...", "create ok", "provision...", "provision FAILED",
                        "destroy...", "destroy ok"]


def test_a_lab_error_is_the_steps_failure() -> None:
    steps = Steps()
    step = steps.run("create", lambda: (_ for _ in ()).throw(TargetError("no engine")))
    assert step is not None and not step.ok
    assert (step.outcome, step.detail) == ("error: no engine", "no engine")
    assert steps.problem == "create failed: no engine"


def test_expected_outcomes_other_than_ok() -> None:
    steps = Steps()
    steps.run("release broken v3", lambda: Outcome("rolled-back"), "rolled-back")
    assert steps.ok
    steps.run("release v2", lambda: Outcome("rolled-back", "error rate 12%"), "promoted",
              always=True)
    assert not steps.ok
    assert steps.problem == "release v2 failed: error rate 12%"
    steps.run("release v4", lambda: Outcome("promoted"), "rolled-back", always=True)
    assert steps.done[-1].to_dict()["ok"] is False


def test_ctrl_c_and_bugs_are_recorded_then_let_through() -> None:
    steps = Steps()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        steps.run("provision", interrupted)
    assert steps.done[-1].outcome == "error" and not steps.ok


def test_catch_false_lets_a_lab_error_through_after_recording_it() -> None:
    """A release's phases: the failure is the rollback's to handle."""
    steps = Steps()
    with pytest.raises(TargetError):
        steps.run("create", lambda: (_ for _ in ()).throw(TargetError("boom")), catch=False)
    assert steps.problem == "create failed: boom"


def test_steps_run_together_run_at_once_and_are_recorded_in_order() -> None:
    # Each body waits for the other: run one after the other, the barrier breaks.
    both = threading.Barrier(2, timeout=30)
    events: list[Event] = []
    steps = Steps(events.append)
    steps.run("provision", lambda: None)

    done = steps.run_together({
        "idempotence": lambda: (both.wait(), Report("not idempotent: web-1: page"))[1],
        "verify": lambda: (both.wait(), Outcome(OK, figures={"passed": 5}))[1],
    })

    assert [(s.name, s.ok) for s in done] == [("idempotence", False), ("verify", True)]
    assert [s.name for s in steps.done] == ["provision", "idempotence", "verify"]
    assert done[1].figures == {"passed": 5}
    assert steps.problem == "idempotence failed: not idempotent: web-1: page"
    finished = [e.message for e in events if e.kind == "phase" and e.message.endswith(" s)")]
    assert [m.rsplit(" (", 1)[0] for m in finished] == [
        "provision ok", "idempotence FAILED", "verify ok"]


def test_steps_run_together_are_skipped_after_a_failure() -> None:
    steps = Steps()
    steps.run("provision", lambda: "web-1: task 'nginx' failed")
    ran: list[str] = []

    assert steps.run_together({"idempotence": lambda: ran.append("i"),
                               "verify": lambda: ran.append("v")}) == []
    assert ran == []


def test_steps_run_together_wait_for_each_other_before_an_interrupt_goes_on() -> None:
    steps = Steps()
    finished: list[str] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    def slow_then_error() -> None:
        finished.append("verify")
        raise TargetError("web-2: not answering")

    with pytest.raises(KeyboardInterrupt):
        steps.run_together({"idempotence": interrupted, "verify": slow_then_error})

    assert finished == ["verify"]
    assert [(s.name, s.outcome) for s in steps.done] == [
        ("idempotence", "error"), ("verify", "error: web-2: not answering")]
