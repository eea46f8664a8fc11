"""Hints keyed to the failing goal, and a workspace that holds what the attendee reads.

`lab exercise hint` gives the next of the own hints of the first goal the last `lab exercise
check` failed (recorded in the workspace's progress at check time), gentle first, the literal
fix last; before any check, or for a goal without hints, the exercise's own hints. Hints are
counted per goal, and in all (the class page reads the total). The exercise's README.md is laid
down in the workspace, `lab exercise start` prints its first step, and every exercise has a
solutions/ folder (01's and 04's say the commands their `solution:` runs). No engine needed:
the goals' checks are stood in for.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import lab.course.workspace
from lab.cli.main import app
from lab.course.exercises import course, find_exercise, first_step, load_exercise
from lab.course.grader import Feedback, check, hint
from lab.course.workspace import Workspace, solve, start
from lab.errors import ConfigError
from lab.state import State

HARNESS = 8  # its start makes no servers
runner = CliRunner(env={"LAB_FILE": None})


def test_every_goal_of_every_exercise_has_its_own_hints() -> None:
    for exercise in course():
        assert exercise.spec.hints, exercise.id  # the fallback, before any check
        for goal in exercise.spec.goals:
            assert len(goal.hints) >= 2, f"{exercise.id}: {goal.check}: gentle, then the fix"
            assert len(set(goal.hints)) == len(goal.hints), f"{exercise.id}: {goal.check}"


def test_a_goal_hint_is_checked_like_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "course" / find_exercise(HARNESS).folder.name
    shutil.copytree(find_exercise(HARNESS).folder, folder)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    spec["goals"][1]["hints"] = ["fine", ""]
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"exercise.yml: goals\[1\]\.hints\[1\]: "):
        load_exercise(folder)


Verdicts = dict[str, "Feedback | None"]


@pytest.fixture
def graded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Verdicts]:
    """Exercise 08's workspace whose goals answer what the test says (all pass at first)."""
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    verdicts: Verdicts = {g.check: None for g in workspace.exercise.spec.goals}
    for goal in workspace.exercise.spec.goals:
        monkeypatch.setitem(workspace.exercise.checks, goal.check,
                            lambda _attempt, name=goal.check: verdicts[name])
    return workspace, verdicts


def failing(verdicts: Verdicts, check_name: str) -> None:
    for name in verdicts:
        verdicts[name] = None
    verdicts[check_name] = Feedback("found", "expected", "look there")


def test_hints_follow_the_first_failing_goal_of_the_last_check(graded) -> None:
    workspace, verdicts = graded
    first, second = workspace.exercise.spec.goals[:2]
    general = workspace.exercise.spec.hints

    before = hint(workspace)  # no check yet: the exercise's own
    assert (before.name, before.detail) == (f"hint 1/{len(general)}", general[0])
    assert "goal" not in before.figures

    failing(verdicts, first.check)
    assert not check(workspace).ok and workspace.progress.failing == first.check
    shown = [hint(workspace) for _ in first.hints]
    assert [s.detail for s in shown] == first.hints  # gentle first, the fix last
    assert [s.name for s in shown] == [f"hint {n}/{len(first.hints)}"
                                       for n in range(1, len(first.hints) + 1)]
    assert {s.figures["goal"] for s in shown} == {first.check}
    done = hint(workspace)
    assert (done.name, done.outcome, done.figures["hint"]) == ("hint", "none left", 0)
    assert "no more hints for this goal" in done.detail

    failing(verdicts, second.check)
    check(workspace)
    assert hint(workspace).detail == second.hints[0]

    failing(verdicts, "nothing")  # every goal passes: back to the exercise's own, where it was
    assert check(workspace).ok and workspace.progress.failing is None
    assert hint(workspace).detail == general[1]

    progress = workspace.progress
    assert progress.goal_hints == {first.check: len(first.hints), second.check: 1}
    assert progress.hints == len(first.hints) + 1 + 2  # the total the class page reads
    assert progress.general_hints == 2


def test_a_broken_workspace_keys_no_goal(graded) -> None:
    workspace, verdicts = graded
    failing(verdicts, workspace.exercise.spec.goals[0].check)
    check(workspace)
    (workspace.directory / "lab.yml").write_text("name: [\n")
    assert [s.name for s in check(workspace).steps.done] == ["workspace"]
    assert workspace.progress.failing is None
    assert hint(workspace).detail == workspace.exercise.spec.hints[0]


def test_a_goal_without_hints_gives_the_exercises(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "course" / find_exercise(HARNESS).folder.name
    shutil.copytree(find_exercise(HARNESS).folder, folder)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    del spec["goals"][0]["hints"]
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    workspace.state.record_exercise(workspace.exercise.id, check=False,
                                    failing=spec["goals"][0]["check"])
    given = hint(workspace)
    assert given.detail == spec["hints"][0] and "goal" not in given.figures


def test_a_start_or_a_reset_forgets_the_failing_goal_and_keeps_the_counts(
        tmp_path: Path) -> None:
    state = State(tmp_path)
    state.exercise_started("02-servers-as-code")
    state.record_exercise("02-servers-as-code", check=False, failing="provisioned")
    state.record_exercise("02-servers-as-code", hint=True, goal="provisioned")
    done = state.record_exercise("02-servers-as-code", reset=True)
    assert (done.failing, done.goal_hints, done.hints) == (None, {"provisioned": 1}, 1)
    state.record_exercise("02-servers-as-code", check=False, failing="idempotent")
    assert state.exercise_started("02-servers-as-code").failing is None


def test_a_state_db_from_before_goal_hints_gains_their_columns(tmp_path: Path) -> None:
    """A workspace started by an older lab: its progress is kept, its hints read are the
    exercise's own, and the next check and hint record the new columns."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("CREATE TABLE exercise_progress (exercise TEXT PRIMARY KEY, started REAL "
                   "NOT NULL, active_since REAL NOT NULL, last_at REAL NOT NULL, checks INTEGER "
                   "NOT NULL DEFAULT 0, passes INTEGER NOT NULL DEFAULT 0, hints INTEGER NOT "
                   "NULL DEFAULT 0, resets INTEGER NOT NULL DEFAULT 0, passed_at REAL)")
        db.execute("INSERT INTO exercise_progress (exercise, started, active_since, last_at, "
                   "checks, hints) VALUES ('02-servers-as-code', 1, 1, 2, 3, 2)")
    state = State(tmp_path)
    old = state.exercise_progress("02-servers-as-code")
    assert old is not None
    assert (old.checks, old.hints, old.failing, old.goal_hints, old.general_hints) == (
        3, 2, None, {}, 2)
    state.record_exercise("02-servers-as-code", check=False, failing="idempotent")
    now = state.record_exercise("02-servers-as-code", hint=True, goal="idempotent")
    assert (now.failing, now.goal_hints, now.hints, now.general_hints) == (
        "idempotent", {"idempotent": 1}, 3, 2)
    State(tmp_path)  # opened again: nothing to add twice
    assert state.all_progress() == [now]


def test_the_cli_names_the_goal_of_the_hint(graded) -> None:
    workspace, verdicts = graded
    goal = workspace.exercise.spec.goals[1]
    lab_yml = str(workspace.directory / "lab.yml")
    before = runner.invoke(app, ["-f", lab_yml, "exercise", "hint", "--json"])
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["goal"] is None
    failing(verdicts, goal.check)
    check(workspace)
    shown = runner.invoke(app, ["-f", lab_yml, "exercise", "hint"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"hint 1/{len(goal.hints)}, for: {goal.goal}\n")
    assert goal.hints[0][:40] in " ".join(shown.stdout.split())
    as_json = json.loads(runner.invoke(app, ["-f", lab_yml, "exercise", "hint",
                                             "--json"]).stdout)
    assert (as_json["goal"], as_json["detail"]) == (goal.check, goal.hints[1])
    assert as_json["figures"] == {"hint": 2, "of": len(goal.hints), "goal": goal.check}


# what the attendee reads ---------------------------------------------------------------------


def test_start_lays_down_the_readme_and_prints_the_first_step(tmp_path: Path) -> None:
    started = runner.invoke(app, ["exercise", "start", str(HARNESS), str(tmp_path / "ws"),
                                  "--name", "ex-unit"])
    assert started.exit_code == 0, started.output
    exercise = find_exercise(HARNESS)
    readme = tmp_path / "ws" / "README.md"
    assert readme.read_text() == exercise.readme.read_text()
    assert f"read {readme}" in started.stdout
    assert "first step: Run the harness: `lab test`" in started.stdout
    assert not (tmp_path / "ws" / ".lab" / "exercise" / "start" / "README.md").exists()


@pytest.mark.parametrize(("readme", "step"), [
    ("# 01\n\n## What to do\n\n1. Log in and change it:\n\n   ```sh\n   cd ~/ex\n"
     "   lab ssh web-1      # a shell\n   ```\n", "Log in and change it: `lab ssh web-1`"),
    ("1. Start: `lab exercise start 9 ~/ex`.\n\n2. Point the lab at AWS. Change\n   one "
     "line:\n\n   ```yaml\n   target: aws\n   ```\n",
     "Point the lab at AWS. Change one line: see README.md"),
    ("1. Run it twice,\n   and compare.\n\n   More.\n", "Run it twice, and compare."),
    ("# No steps\n\nJust words.\n", ""),
])
def test_the_first_step_is_the_first_numbered_one_not_the_start(readme: str,
                                                                step: str) -> None:
    assert first_step(readme) == step


def test_every_exercise_says_its_first_step() -> None:
    for exercise in course():
        step = exercise.first_step()
        assert step and "lab exercise start" not in step, exercise.id


def test_every_exercise_has_a_solution_folder() -> None:
    for exercise in course():
        files = [p for p in exercise.solution_dir.rglob("*") if p.is_file()]
        assert files, f"solutions/{exercise.id}/ is missing or empty"
        assert not (exercise.solution_dir / "README.md").exists()  # the workspace's is the README


@pytest.mark.parametrize("number", [1, 4])
def test_solve_of_an_exercise_answered_by_commands(number: int, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """01 and 04 are answered by commands: solve runs exercise.yml's `solution:` and leaves
    SOLUTION.md, saying them, beside the files; the workspace's README.md stays the
    exercise's. (Their start's servers are left out: no engine here.)"""
    exercise = find_exercise(number)
    folder = tmp_path / "course" / "exercises" / exercise.folder.name
    shutil.copytree(exercise.folder, folder)
    shutil.copytree(exercise.solution_dir, tmp_path / "course" / "solutions" / folder.name)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec | {"start": []}))
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    workspace = start(number, tmp_path / "ws", name="ex-unit")
    ran: list[object] = []

    def record(_config: object, actions: list[object], *_args: object, **_kw: object) -> None:
        ran.extend(actions)

    monkeypatch.setattr(lab.course.workspace, "run_actions", record)
    solve(workspace)
    assert ran == list(workspace.exercise.spec.solution) and ran
    assert (tmp_path / "ws" / "README.md").read_text() == exercise.readme.read_text()
    said = (tmp_path / "ws" / "SOLUTION.md").read_text()
    assert all(word in said for word in ("lab drift" if number == 1 else "lab provision",))
    started = exercise.start_dir / "playbooks" / "web.yml"
    assert (tmp_path / "ws" / "playbooks" / "web.yml").read_text() == started.read_text()
