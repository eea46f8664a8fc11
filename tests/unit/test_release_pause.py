"""A person in the loop (issue "Canary analysis"): pause steps, `lab promote` and `lab abort`
from another terminal, `--step-by-step`, ``inconclusive: pause``, and `lab status` saying a
release is paused.

The release runs here in this process on the fakes; "another terminal" is a thread that waits
until the release's journal says it is paused (as `lab status` reads it) and then sends the
command the way `lab promote` does. The real HAProxy and two real processes are in
tests/integration/test_release.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from release_fakes import LAB_YML, Cycle, MakeCycle
from typer.testing import CliRunner

from lab.cli.main import app
from lab.config import LabConfig
from lab.errors import UsageError
from lab.release import ReleaseFailed
from lab.release.control import ABORT, PROMOTE, send
from lab.release.journal import describe_running, paused_since, running
from lab.state import State


def steps(items: str, seconds: float = 0.02) -> str:
    return LAB_YML.replace("steps: [10, 50, 100], step_seconds: 0.02",
                           f"steps: {items}, step_seconds: {seconds}")


class Person:
    """Another terminal: answers each pause of the running release with ``commands`` in
    turn, and keeps what `lab status` said at each."""

    def __init__(self, state_dir: Path, *commands: str, when: str = "paused") -> None:
        self.state_dir, self.commands, self.when = state_dir, list(commands), when
        self.said: list[str] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self) -> None:
        answered: set[float] = set()
        deadline = time.monotonic() + 20
        while self.commands and time.monotonic() < deadline:
            report = running(State(self.state_dir), self.state_dir)
            since = paused_since(report) if report is not None else None
            ready = since is not None and since not in answered if self.when == "paused" else (
                report is not None and any(e.step.startswith(self.when) for e in report.journal))
            if report is not None and ready:
                self.said.append(describe_running(report))
                try:
                    send(self.state_dir, self.commands.pop(0))
                except UsageError as exc:
                    self.errors.append(exc)
                answered.add(since or 0.0)
            time.sleep(0.02)

    def done(self) -> None:
        self.thread.join(timeout=25)
        assert not self.commands and not self.errors, (self.commands, self.errors)


def test_a_pause_step_holds_the_share_until_lab_promote(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(steps("[10, pause, 50, 100]"))
    person = Person(cycle.fleet.config.state_dir, PROMOTE)

    report = cycle.release()

    person.done()
    assert report.outcome == "promoted"
    held = report.steps[0]
    assert (held.percent, held.resumed_by) == (10, "lab promote") and held.paused > 0
    assert [s.resumed_by for s in report.steps[1:]] == ["", ""]
    # `lab status` named it paused, with what to do.
    assert person.said[0].startswith(f"release {report.id} is paused at 10% for ")
    assert person.said[0].endswith(": `lab promote` goes on, `lab abort` rolls back")
    journal = [(e.step, e.state) for e in report.journal]
    assert ("pause 10%", "begun") in journal and ("pause 10%", "done") in journal
    # While held, the step was still watched: the balancer was read during the pause.
    assert any(m["kind"] == "pause" for m in report.timeline["events"])
    assert cycle.world.pool["web-3"].share == 100


def test_lab_abort_while_paused_rolls_back_like_a_failed_gate(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(steps("[10, pause, 100]"))
    person = Person(cycle.fleet.config.state_dir, ABORT)

    with pytest.raises(ReleaseFailed, match=r"at 10%: aborted by `lab abort` while paused"):
        cycle.release()

    person.done()
    cycle.assert_rolled_back("aborted by `lab abort`")
    assert cycle.saved()["steps"][0]["gate"] == "aborted"


def test_lab_abort_during_a_canary_step_rolls_back_within_the_step(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle(steps("[10, 100]", seconds=30))
    person = Person(cycle.fleet.config.state_dir, ABORT, when="canary 10%")
    started = time.monotonic()

    with pytest.raises(ReleaseFailed, match=r"at 10%: aborted by `lab abort`"):
        cycle.release()

    person.done()
    assert time.monotonic() - started < 10  # not the step's 30 s
    cycle.assert_rolled_back("aborted by `lab abort`")
    assert "lab release --step-by-step" not in person.said[0]
    assert person.said[0] == (f"release {cycle.saved()['id']} is running (canary 10%): "
                              "`lab abort` rolls it back")


def test_promote_is_refused_unless_a_release_waits_for_it(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(steps("[10, 100]", seconds=30))
    state_dir = cycle.fleet.config.state_dir
    with pytest.raises(UsageError, match=r"^no release is running on this lab: nothing to "
                                         r"promote \(`lab history` lists past releases\)$"):
        send(state_dir, PROMOTE)

    refused: list[str] = []

    def try_promote_then_abort() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            report = running(State(state_dir), state_dir)
            if report is not None and report.journal[-1].step == "canary 10%":
                try:
                    send(state_dir, PROMOTE)
                except UsageError as exc:
                    refused.append(str(exc))
                send(state_dir, ABORT)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=try_promote_then_abort, daemon=True)
    thread.start()
    with pytest.raises(ReleaseFailed):
        cycle.release()
    thread.join()
    assert len(refused) == 1 and " is at canary 10%, not paused: `lab promote` lets a " in (
        refused[0])


def test_a_timed_pause_goes_on_by_itself(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(steps("[50, {pause: 1s}, 100]"))

    report = cycle.release()

    assert report.steps[0].resumed_by == "1 s passed" and report.steps[0].paused >= 1.0
    assert report.outcome == "promoted"


def test_step_by_step_pauses_after_every_step(make_cycle: MakeCycle) -> None:
    cycle = make_cycle()
    person = Person(cycle.fleet.config.state_dir, PROMOTE, PROMOTE, PROMOTE)

    report = cycle.release(step_by_step=True)

    person.done()
    assert [(s.percent, s.resumed_by) for s in report.steps] == [
        (10, "lab promote"), (50, "lab promote"), (100, "lab promote")]
    assert report.outcome == "promoted"


def test_an_inconclusive_step_waits_for_a_person_when_lab_yml_says_pause(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle(LAB_YML.replace("max_error_rate: 0.01}",
                                       "max_error_rate: 0.01, max_p99_ms: 500, "
                                       "inconclusive: pause}"))
    cycle.world.new_answers = (0.0, 0)  # no answer of the new generation: nothing to judge
    person = Person(cycle.fleet.config.state_dir, PROMOTE, PROMOTE, PROMOTE)

    report = cycle.release()

    person.done()
    assert [s.gate for s in report.steps] == ["passed by a person"] * 3
    assert "inconclusive: p99: no data" in report.timeline["events"][
        next(i for i, m in enumerate(report.timeline["events"]) if m["kind"] == "pause")
    ]["detail"]


def test_lab_promote_and_abort_refuse_in_one_line_when_nothing_runs(
        cycle: Cycle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cycle.fleet.config.directory)
    for command in ("promote", "abort"):
        result = CliRunner().invoke(app, [command])
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: no release is running on this lab: nothing "
                                         f"to {command} (`lab history` lists past releases)")


def test_pauses_are_read_in_minutes_and_hours_too() -> None:
    config = LabConfig.model_validate({"name": "x", "servers": {"web": {}}, "release": {
        "steps": [10, {"pause": "2m"}, 50, {"pause": "1h"}, 100, "pause"]}})

    assert [getattr(s, "seconds", s) for s in config.release.steps] == [
        10, 120.0, 50, 3600.0, 100, None]
    assert config.release.percents == [10, 50, 100]
