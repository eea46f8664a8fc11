"""`lab exercise hint`: a step of the runner `check` and `lab demo` use (lab.steps), shown by
the same code as check's goals (lab.cli.output.print_step), and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli.main import app
from lab.cli.output import print_step
from lab.course.grader import SHOWN, hint
from lab.course.workspace import start
from lab.events import Event
from lab.steps import FAILED, OK, Step

HARNESS = 8  # its start makes no servers: no engine needed
runner = CliRunner(env={"LAB_FILE": None})


def test_each_hint_is_a_step_with_its_outcome_and_none_left_after_the_last(
        tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    hints = workspace.exercise.spec.hints
    events: list[Event] = []
    first = hint(workspace, events.append)
    assert (first.name, first.expected, first.outcome, first.ok) == (
        f"hint 1/{len(hints)}", SHOWN, SHOWN, True)
    assert first.detail == hints[0] and first.figures == {"hint": 1, "of": len(hints)}
    assert [e.data["step"]["name"] for e in events if "step" in e.data] == [first.name]
    rest = [hint(workspace) for _ in hints[1:]]
    assert [s.detail for s in rest] == hints[1:]
    last = hint(workspace)
    assert (last.name, last.outcome, last.ok) == ("hint", "none left", False)
    assert "no more hints" in last.detail and last.figures["hint"] == 0
    assert workspace.progress.hints == len(hints)  # the one with none left is not counted


def test_the_cli_prints_the_hint_step_and_its_json(tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    lab_yml = str(tmp_path / "ws" / "lab.yml")
    shown = runner.invoke(app, ["-f", lab_yml, "exercise", "hint"])
    assert shown.exit_code == 0, shown.output
    total = len(workspace.exercise.spec.hints)
    assert shown.stdout.startswith(f"hint 1/{total}\n")
    assert workspace.exercise.spec.hints[0][:40] in " ".join(shown.stdout.split())
    as_json = runner.invoke(app, ["-f", lab_yml, "exercise", "hint", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["exercise"] == workspace.exercise.id and data["name"] == f"hint 2/{total}"
    assert (data["expected"], data["outcome"], data["ok"]) == (SHOWN, SHOWN, True)
    assert data["detail"] == workspace.exercise.spec.hints[1]
    assert data["figures"] == {"hint": 2, "of": total}


@pytest.mark.parametrize(("step", "label", "printed"), [
    (Step("serves", OK, OK, 0.1), "the page is served", ["pass the page is served"]),
    (Step("serves", OK, FAILED, 0.1, "nginx stopped; next: start it",
          {"found": "nginx stopped", "expected": "", "next": "start it"}),
     "the page is served", ["FAIL the page is served", "     found: nginx stopped",
                            "     next: start it"]),
    (Step("workspace", OK, FAILED, 0.0, "lab.yml:2: not valid YAML"), "the workspace",
     ["FAIL the workspace", "     lab.yml:2: not valid YAML"]),
    (Step("hint 2/3", SHOWN, SHOWN, 0.0, "`lab drift` [changes nothing]"), None,
     ["hint 2/3", "     `lab drift` [changes nothing]"]),
])
def test_one_printer_for_goals_and_hints(capsys: pytest.CaptureFixture[str], step: Step,
                                         label: str | None, printed: list[str]) -> None:
    print_step(step, label)
    assert capsys.readouterr().out.splitlines() == printed
