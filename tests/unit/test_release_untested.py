"""A release no test gates is refused (issue "The course": exercise 05 passed with every test
removed, since a tests gate that ran nothing passed). Before anything is made when the role
has no `tests:`; at the tests gate, rolled back, when its tests ran none or skipped all.
`--untested` lets it through, and the report records it."""

from __future__ import annotations

from typing import Any

import pytest
from release_fakes import FakeProbe, MakeCycle, fake_provision, fake_verify

from lab.errors import UsageError
from lab.release import cycle as release_cycle
from lab.release import release
from lab.release.cycle import Checks, verify_gate
from lab.verify import TestOutcome, VerifyResult


def test_a_role_without_tests_is_refused_before_anything_is_made(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle()
    with pytest.raises(UsageError, match=r"^servers\.web\.tests: none in lab\.yml.*--untested"):
        release(cycle.fleet, {"version": "v2"}, probe=FakeProbe)
    cycle.assert_untouched(list(cycle.world.servers))
    assert cycle.fleet.state.releases() == []


def test_untested_is_let_through_and_recorded(make_cycle: MakeCycle) -> None:
    cycle = make_cycle()
    report = cycle.release(untested=True)
    assert report.outcome == "promoted" and report.untested
    assert cycle.saved()["untested"] is True
    assert cycle.release().untested is False  # only the release that asked


def outcomes(*statuses: str) -> VerifyResult:
    return VerifyResult([TestOutcome(host="web-3", test=f"t{i}", status=s, message="")
                         for i, s in enumerate(statuses)])


@pytest.mark.parametrize(("result", "problem"), [
    (outcomes(), "no tests ran on web-3: add tests"),
    (outcomes("skipped", "skipped"), "no test passed on web-3 (2 ran, all skipped): add tests"),
    (outcomes("passed", "skipped"), ""),
])
def test_the_tests_gate_fails_when_no_test_passed(
        monkeypatch: pytest.MonkeyPatch, result: VerifyResult, problem: str) -> None:
    monkeypatch.setattr(release_cycle, "verify", lambda *a, **k: result)
    said = verify_gate(Any, ["web-3"], None, lambda event: None)  # type: ignore[arg-type]
    assert said.startswith(problem) if problem else said == ""


def test_a_gate_that_ran_nothing_rolls_the_release_back(make_cycle: MakeCycle) -> None:
    cycle = make_cycle()

    def none_ran(*args: Any) -> str:
        fake_verify(*args)
        return "no tests ran on web-3, web-4: add tests"

    with pytest.raises(release_cycle.ReleaseFailed, match="no tests ran"):
        release(cycle.fleet, {"version": "v2"}, probe=FakeProbe, on_event=cycle.events.append,
                checks=Checks(fake_provision, none_ran))
    cycle.assert_rolled_back("no tests ran")
