"""The course's format without servers: every exercise loads, a bad exercise.yml is one line
naming the field, workspaces keep the attendee's files, progress is counted, and a broken
workspace is explained before any goal runs. (With servers: tests/integration/
test_exercises.py.)"""

from __future__ import annotations

import shutil
import sqlite3
import tomllib
from pathlib import Path

import pytest
import yaml

from lab.course.exercises import PACKAGED, course, course_dir, find_exercise, load_exercise
from lab.course.grader import Feedback, check
from lab.course.workspace import apply_wrong, hint, next_exercise, open_workspace, solve, start
from lab.errors import ConfigError, UsageError
from lab.state import State

HARNESS = 8  # the exercise whose start makes no servers: its workspace needs no engine


def test_every_exercise_of_the_course_loads_with_its_checks_and_wrong_answers() -> None:
    exercises = course()
    assert [e.number for e in exercises][:4] == [1, 2, 3, 4]
    for exercise in exercises:
        assert (exercise.folder / "README.md").is_file()
        assert set(exercise.checks) == {g.check for g in exercise.spec.goals}
        assert exercise.spec.wrong and exercise.spec.hints
        assert exercise.solution_dir.is_dir() or exercise.spec.solution


@pytest.fixture
def copy_of(tmp_path: Path):  # -> Callable[[int], Path]
    def copy(number: int) -> Path:
        source = find_exercise(number).folder
        target = tmp_path / "course" / source.name
        shutil.copytree(source, target)
        return target
    return copy


@pytest.mark.parametrize(("change", "message"), [
    ({"minutes": 0}, "exercise.yml: minutes: must be >= 1, got 0"),
    ({"goals": [{"check": "no_such", "goal": "x"}]},
     "exercise.yml: goals[0].check: no function 'no_such' in checks.py"),
    ({"start": ["up", "reboot"]}, "exercise.yml: start[1].do: must be one of 'up', "),
    ({"start": [{"ssh": "web 1", "run": "true"}]},
     "exercise.yml: start[0].ssh: must name a server like web-1, got 'web 1'"),
    ({"solution": [{"run": "true"}]}, "solution[0]: an ssh action is `{ssh: SERVER"),
    ({"wrong": [{"name": "x", "why": "y", "feedback": "z"}]},
     "wrong[0]: neither files in wrong/x/ nor actions"),
    ({"titel": "typo"}, "exercise.yml: titel: unknown field"),
])
def test_a_bad_exercise_yml_is_one_line_naming_the_field(copy_of, change: dict,
                                                         message: str) -> None:
    folder = copy_of(HARNESS)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec | change))
    with pytest.raises(ConfigError) as caught:
        load_exercise(folder)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_exercise_yml_that_is_not_yaml_names_its_line(copy_of) -> None:
    folder = copy_of(HARNESS)
    (folder / "exercise.yml").write_text("title: x\ngoals: [\n")
    with pytest.raises(ConfigError, match=r"08-harness/exercise.yml:3:[0-9]+: invalid YAML"):
        load_exercise(folder)


def test_the_course_folder_can_be_elsewhere(copy_of, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_of(HARNESS)
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    assert course_dir() == folder.parent
    assert [e.number for e in course()] == [HARNESS]
    with pytest.raises(UsageError, match="no exercise 1 "):
        find_exercise(1)


def test_the_course_ships_inside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel has the course: lab/course/data/ links to the checkout's exercises/ and
    solutions/, and package-data takes what is below it (a wheel built from this checkout
    holds every file of both); without LAB_COURSE, lab reads the course there."""
    monkeypatch.delenv("LAB_COURSE", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert PACKAGED.resolve() == course_dir() == root / "exercises"
    assert (PACKAGED.parent / "solutions").resolve() == root / "solutions"
    assert course()[1].solution_dir == root / "solutions" / course()[1].folder.name
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert "course/data/**/*" in data["tool"]["setuptools"]["package-data"]["lab"]


def test_start_lays_down_the_files_with_the_lab_name_and_records_progress(
        tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    assert yaml.safe_load((tmp_path / "ws" / "lab.yml").read_text())["name"] == "ex-unit"
    assert (tmp_path / "ws" / "playbooks" / "web.yml").is_file()
    assert open_workspace(tmp_path / "ws" / "playbooks").exercise.number == HARNESS
    assert workspace.progress.checks == 0 and workspace.progress.started > 0


def test_start_refuses_a_directory_with_files_of_someone_else(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match="not empty and not an exercise workspace"):
        start(HARNESS, tmp_path)


def test_hints_come_in_order_and_are_counted(tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    hints = workspace.exercise.spec.hints
    assert [(h.number, h.text) for h in (hint(workspace) for _ in hints)] == list(
        enumerate(hints, start=1))
    last = hint(workspace)
    assert last.number == 0 and "no more hints" in last.text
    assert workspace.progress.hints == len(hints)


def test_solve_and_wrong_answers_keep_the_attendees_files(tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    playbook = tmp_path / "ws" / "playbooks" / "web.yml"
    playbook.write_text("# my attempt\n")
    backup = solve(workspace)
    assert (backup / "playbooks" / "web.yml").read_text() == "# my attempt\n"
    solution = workspace.exercise.solution_dir / "playbooks" / "web.yml"
    assert playbook.read_text() == solution.read_text()
    apply_wrong(workspace, "changed-when-false")
    assert "changed_when: false" in playbook.read_text()
    assert len(list((tmp_path / "ws" / ".lab" / "backups").iterdir())) == 2


@pytest.mark.parametrize(("damage", "said"), [
    (("lab.yml", "name: [\n"), "lab.yml:2"),
    (("lab.yml", "name: x\n"), "lab.yml: servers: is required"),
    (("playbooks/web.yml", "- hosts: web\n  tasks: [\n"), "playbooks/web.yml:3: not valid YAML"),
    (("tests/test_web.py", "def test(:\n"), "tests/test_web.py:1: syntax error"),
])
def test_a_broken_workspace_is_explained_before_any_goal(tmp_path: Path,
                                                         damage: tuple[str, str],
                                                         said: str) -> None:
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    path, text = damage
    (tmp_path / "ws" / path).write_text(text)
    report = check(workspace)
    assert not report.ok and [s.name for s in report.steps.done] == ["workspace"]
    shown = report.to_dict()
    assert said in shown["workspace"] and "lab exercise reset" in shown["workspace"]
    assert [g["status"] for g in shown["goals"]] == ["not checked"] * len(
        workspace.exercise.spec.goals)
    assert workspace.progress.checks == 1 and workspace.progress.passes == 0


def test_feedback_reads_as_found_expected_next() -> None:
    feedback = Feedback("nginx is not enabled at boot on web-1", "nginx started at boot",
                        "try `enabled: true`")
    assert feedback.problem == ("nginx is not enabled at boot on web-1; expected: nginx "
                                "started at boot; next: try `enabled: true`")
    assert feedback.outcome().figures["next"] == "try `enabled: true`"


def test_progress_counts_checks_passes_and_time(tmp_path: Path) -> None:
    state = State(tmp_path)
    first = state.exercise_started("01-pet-server")
    state.record_exercise("01-pet-server", check=False)
    done = state.record_exercise("01-pet-server", check=True)
    assert (done.checks, done.passes, done.started) == (2, 1, first.started)
    assert done.passed_at is not None and done.seconds >= 0
    state.exercise_started("02-servers-as-code")
    assert state.current_exercise().exercise == "02-servers-as-code"  # type: ignore[union-attr]
    again = state.exercise_started("01-pet-server")
    assert again.started == first.started and again.checks == 2


def test_a_state_db_from_before_the_course_gains_the_progress_table(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("CREATE TABLE servers (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
                   "target TEXT NOT NULL, created REAL NOT NULL)")
    state = State(tmp_path)
    assert state.all_progress() == []
    assert state.exercise_started("02-servers-as-code").checks == 0


def test_next_after_the_last_exercise_says_so(copy_of, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_COURSE", str(copy_of(HARNESS).parent))  # 08 is the last one
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    with pytest.raises(UsageError, match="exercise 08 is the last one"):
        next_exercise(workspace)
