"""What `lab rollback` goes back to (lab.release.rollback), from a lab's release history.

Histories are written into a real state.db as releases save themselves, then read back as
`lab rollback` reads them. A rollback must never go back to a revision the user already left
with a rollback (cf. argoproj/argo-rollouts#3039): v1, v2, `lab rollback` (to v1), and a second
`lab rollback` once released v2 again. The last test drives `lab rollback` itself, on the fakes
of ``release_fakes``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from release_fakes import Cycle, FakeProbe, fake_provision, fake_verify
from typer.testing import CliRunner

import lab.release.cycle
from lab.cli.main import app
from lab.errors import ExitStatus, UsageError
from lab.release import Checks, ReleaseReport, history
from lab.release.rollback import RollbackTarget, rollback_target
from lab.state import State

NOTHING_PROMOTED = "no promoted release to roll back (see `lab history`)"


class Lab:
    """A lab's release history, saved as `lab release` and `lab rollback` save theirs: each
    release remembers what served before it (``previous``); lab.yml runs v0 at first."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.serving: dict[str, Any] = {"vars": {"version": "v0"}, "image": None}
        self.made = 0

    def release(self, version: str, outcome: str = "promoted", image: str | None = None,
                rollback_of: str | None = None) -> ReleaseReport:
        self.made += 1
        report = ReleaseReport(
            id=f"r{self.made}-{version}", role="web", started=1000.0 + self.made,
            vars={"version": version}, image=image, previous=self.serving, outcome=outcome,
            finished=1000.5 + self.made, rollback_of=rollback_of)
        self.state.save_release(report.to_dict())
        if outcome == "promoted":
            self.serving = {"vars": report.vars, "image": image}
        return report

    def rollback(self, outcome: str = "promoted") -> ReleaseReport:
        """What `lab rollback` does: release its target, marked as the rollback it is."""
        target = rollback_target(self.state)
        return self.release(target.vars["version"], outcome, target.image,
                            rollback_of=target.rolls_back.id)


@pytest.fixture
def lab_(tmp_path: Path) -> Lab:
    return Lab(State(tmp_path / ".lab"))


def goes_to(lab_: Lab) -> tuple[str | None, str, str]:
    """Where `lab rollback` would go: (release id, version), and which release it leaves."""
    target = rollback_target(lab_.state)
    return target.release_id, target.vars["version"], target.rolls_back.id


def refusal(lab_: Lab) -> UsageError:
    with pytest.raises(UsageError) as caught:
        rollback_target(lab_.state)
    assert "\n" not in str(caught.value) and caught.value.exit_code == ExitStatus.BAD_INPUT
    return caught.value


def test_after_v1_and_v2_a_rollback_goes_back_to_v1(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    v2 = lab_.release("v2")

    target = rollback_target(lab_.state)

    assert target == RollbackTarget({"version": "v1"}, None, v1.id, history(lab_.state)[-1])
    assert target.rolls_back.id == v2.id
    assert target.announce() == (f"rolling back release {v2.id} (version v2, image -) "
                                 f"to release {v1.id} (version v1, image -)")


def test_the_first_promoted_release_goes_back_to_lab_yml_as_first_provisioned(
        lab_: Lab) -> None:
    v1 = lab_.release("v1", image="lab/demo-web:v1")

    target = rollback_target(lab_.state)

    assert (target.release_id, target.vars, target.image) == (None, {"version": "v0"}, None)
    assert target.announce() == (f"rolling back release {v1.id} (version v1, image "
                                 "lab/demo-web:v1) to lab.yml as first provisioned (version "
                                 "v0, image -)")


def test_nothing_promoted_is_nothing_to_roll_back(lab_: Lab) -> None:
    assert str(refusal(lab_)) == NOTHING_PROMOTED
    lab_.release("v1", outcome="rolled-back")
    lab_.release("v2", outcome="running")  # interrupted: its process died
    assert str(refusal(lab_)) == NOTHING_PROMOTED


def test_a_second_rollback_goes_further_back_never_to_the_version_it_left(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    v2 = lab_.release("v2")
    v3 = lab_.release("v3")
    first = lab_.rollback()
    assert (first.vars, first.rollback_of) == ({"version": "v2"}, v3.id)

    # The old rule took the rollback's `previous`: v3, the version just rolled back from.
    assert goes_to(lab_) == (v1.id, "v1", first.id)
    second = lab_.rollback()
    assert goes_to(lab_) == (None, "v0", second.id)
    assert v2.id not in {r.rollback_of for r in history(lab_.state)}


def test_rolling_back_until_nothing_is_left_refuses_with_what_to_do(lab_: Lab) -> None:
    lab_.release("v1")
    lab_.release("v2")
    lab_.rollback()  # to v1, leaving v2
    last = lab_.rollback()  # to lab.yml's v0, leaving v1
    assert last.vars == {"version": "v0"}

    # v1 and v2 were left, v0 serves now: nothing safe is left.
    refused = str(refusal(lab_))
    assert refused.startswith(f"nothing safe to roll back to: every deployment before "
                              f"release {last.id} runs what serves now or was rolled back "
                              "from (see `lab history`)")
    assert "`lab release --set version=...` or `--from-image`" in refused


def test_rolling_back_twice_from_the_first_release_refuses(lab_: Lab) -> None:
    lab_.release("v1")
    lab_.rollback()  # to v0: what lab.yml first provisioned

    assert str(refusal(lab_)).startswith("nothing safe to roll back to")


def test_a_rolled_back_release_never_served_and_is_passed_over(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    v2 = lab_.release("v2")
    lab_.release("v3", outcome="rolled-back")

    assert goes_to(lab_) == (v1.id, "v1", v2.id)


def test_interrupted_releases_are_passed_over(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    lab_.release("v2", outcome="interrupted")  # put right after its lab was taken down
    v3 = lab_.release("v3")
    lab_.release("v4", outcome="running")  # its process was killed: not put right yet

    assert goes_to(lab_) == (v1.id, "v1", v3.id)


def test_a_rollback_that_was_itself_rolled_back_left_nothing(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    v2 = lab_.release("v2")
    failed = lab_.rollback(outcome="rolled-back")  # v2 still serves
    assert failed.rollback_of == v2.id

    assert goes_to(lab_) == (v1.id, "v1", v2.id)


def test_a_deployment_running_what_serves_now_is_passed_over(lab_: Lab) -> None:
    v1 = lab_.release("v1")
    lab_.release("v2")
    again = lab_.release("v2")  # the same version released again: going back to it is no-op
    baked = lab_.release("v2", image="lab/demo-web:v2")  # the same vars on an image: not

    assert goes_to(lab_) == (again.id, "v2", baked.id)
    lab_.rollback()
    assert goes_to(lab_)[:2] == (v1.id, "v1")


def test_a_version_released_again_after_it_was_left_can_be_gone_back_to(lab_: Lab) -> None:
    lab_.release("v1")
    lab_.release("v2")
    lab_.rollback()  # v2 left
    fixed = lab_.release("v2")  # released again, on purpose, after the rollback
    v3 = lab_.release("v3")

    assert goes_to(lab_) == (fixed.id, "v2", v3.id)


def test_records_saved_before_the_marker_existed_are_read(lab_: Lab) -> None:
    """An older lab saved no ``rollback_of``: its releases read as no rollback's."""
    old = []
    for n, version in enumerate(["v1", "v2", "v1"], start=1):
        report = asdict(ReleaseReport(
            id=f"old-{n}", role="web", started=float(n), vars={"version": version},
            image=None, previous={"vars": {"version": f"v{n - 1}"}, "image": None},
            outcome="promoted", finished=n + 0.5))
        del report["rollback_of"]
        lab_.state.save_release(report)
        old.append(report)

    assert [r.rollback_of for r in history(lab_.state)] == [None] * 3
    # old-3 runs v1, as old-1 did: the deployment before it that runs something else is v2.
    assert goes_to(lab_) == ("old-2", "v2", "old-3")


def test_a_rollback_saves_its_marker_and_reads_it_back() -> None:
    plain = ReleaseReport(id="r1", role="web", started=1.0, vars={}, image=None, previous={})
    marked = ReleaseReport(id="r2", role="web", started=2.0, vars={}, image=None, previous={},
                           rollback_of="r1")

    assert plain.to_dict()["rollback_of"] is None
    assert marked.to_dict()["rollback_of"] == "r1"
    assert ReleaseReport.from_dict(marked.to_dict()) == marked


# through `lab rollback` ------------------------------------------------------------------------


def test_lab_rollback_says_where_it_goes_marks_its_release_and_refuses_at_the_end(
        cycle: Cycle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `lab rollback` releases with lab's own probe and checks: the fakes stand in for them.
    monkeypatch.setattr(lab.release.cycle, "Probe", lambda url, rate: FakeProbe(url))
    monkeypatch.setattr(lab.release.cycle, "Checks",
                        lambda **_: Checks(fake_provision, fake_verify))
    v2 = cycle.release()  # lab.yml's v1 served first
    cycle.overrides = {"version": "v3"}
    v3 = cycle.release()
    runner = CliRunner(env={"LAB_FILE": None, "COLUMNS": "200", "TERM": "dumb"})

    def rollback() -> Any:
        return runner.invoke(app, ["-f", str(tmp_path / "lab.yml"), "rollback"])

    first = rollback()
    assert first.exit_code == 0, first.output
    assert (f"rolling back release {v3.id} (version v3, image -) to release {v2.id} "
            "(version v2, image -)") in first.stderr.splitlines()
    back = history(cycle.fleet.state)[-1]
    assert (back.outcome, back.vars, back.rollback_of) == ("promoted", {"version": "v2"}, v3.id)

    second = rollback()
    assert second.exit_code == 0, second.output
    assert (f"rolling back release {back.id} (version v2, image -) to lab.yml as first "
            "provisioned (version v1, image -)") in second.stderr.splitlines()
    again = history(cycle.fleet.state)[-1]
    assert (again.vars, again.rollback_of) == ({"version": "v1"}, back.id)

    third = rollback()
    assert third.exit_code == ExitStatus.BAD_INPUT == 2, third.output
    (said,) = third.stderr.strip().splitlines()
    assert said.startswith(f"error: nothing safe to roll back to: every deployment before "
                           f"release {again.id}")
    assert len(history(cycle.fleet.state)) == 4  # refused before it began
