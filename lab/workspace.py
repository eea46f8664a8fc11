"""An attendee's workspace: one directory holding an exercise's files and its lab.

``start`` lays down the exercise's start/ files and makes the servers' starting state (its
``start:`` actions); ``reset`` goes back there, ``solve`` applies the solution, ``next`` moves
on. Whatever the attendee wrote is moved to ``.lab/backups/<when>-<why>/`` first, never
deleted. Progress (checks, passes, hints, time) is kept in the workspace's state.db.

A pristine copy of the start files, with the lab's name filled in, is kept in
``.lab/exercise/start/``: reset and the grader compare against it, and it still names the
lab's servers when the attendee's lab.yml no longer loads.

A workspace started with ``listen`` (one of a class's: many on one machine) keeps that port
in ``.lab/placement.json``: every lab.yml it lays down from then on (start, reset, solve,
next) has its balancer, if it has one, on that port instead of the exercise's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.config import CONFIG_FILE, LAB_NAME, LabConfig, load_config
from lab.errors import CheckFailed, ConfigError, LabError, TargetError, UsageError
from lab.events import Event, Listener, ignore
from lab.exercises import Action, Exercise, course, find_exercise
from lab.fleet import Fleet
from lab.harness import drift, provision
from lab.scaffold import edit_lab_yml, lab_name_for
from lab.ssh import run_as_root
from lab.state import ExerciseProgress, State

STATE_DIR = ".lab"
NAME_MARK = "__NAME__"
PLACEMENT = "placement.json"


@dataclass(frozen=True)
class Workspace:
    """A directory an exercise was started in, and the exercise it is on."""

    directory: Path
    exercise: Exercise

    @property
    def state(self) -> State:
        return State(self.directory / STATE_DIR)

    @property
    def pristine(self) -> Path:
        """The start files as they were laid down (the lab's name filled in)."""
        return self.directory / STATE_DIR / "exercise" / "start"

    @property
    def progress(self) -> ExerciseProgress:
        found = self.state.exercise_progress(self.exercise.id)
        assert found is not None  # recorded by start
        return found

    def config(self) -> LabConfig:
        """The attendee's lab.yml (a ConfigError when it does not load)."""
        return load_config(self.directory / CONFIG_FILE)

    def start_config(self) -> LabConfig:
        """The lab as start/ made it, placed in the workspace: it names the servers even
        when the attendee's lab.yml is broken."""
        config = load_config(self.pristine / CONFIG_FILE)
        return config.located(self.directory.resolve())


def open_workspace(directory: Path) -> Workspace:
    """The workspace at ``directory`` (or above it), on its current exercise."""
    directory = directory.resolve()
    for candidate in (directory, *directory.parents):
        db = candidate / STATE_DIR / "state.db"
        if db.is_file():
            current = State(candidate / STATE_DIR).current_exercise()
            if current is not None:
                return Workspace(candidate, _exercise_by_id(current.exercise))
    raise UsageError(f"{directory}: not an exercise workspace (start one with "
                     "`lab exercise start 1 DIR`)")


def _exercise_by_id(exercise_id: str) -> Exercise:
    for exercise in course():
        if exercise.id == exercise_id:
            return exercise
    raise ConfigError(f"exercise {exercise_id}: no longer in the course")


def start(number: int, directory: Path, name: str | None = None,
          on_event: Listener = ignore, listen: int | None = None) -> Workspace:
    """Lay down exercise ``number``'s start files in ``directory`` and make its starting
    state. A directory that is already a workspace keeps its lab name; its files are backed
    up and its servers replaced. Any other directory must be empty. ``listen`` pins the
    balancer's port of this and every later lab.yml of the workspace (kept in
    .lab/placement.json)."""
    exercise = find_exercise(number)
    directory = directory.resolve()
    previous = _previous(directory)
    if previous is None and directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory}: not empty and not an exercise workspace (choose a new "
                         "directory)")
    if name is not None and not LAB_NAME.match(name):
        raise UsageError(f"lab name must be 1-32 lowercase letters, digits or '-', got {name!r}")
    if previous is not None:
        name = name or previous.start_config().name
        _take_down(previous, "start", on_event)
    directory.mkdir(parents=True, exist_ok=True)
    if listen is not None:
        _pin_listen(directory, listen)
    workspace = Workspace(directory, exercise)
    _lay_down(workspace, name or f"ex-{lab_name_for(directory)}"[:32].rstrip("-"))
    workspace.state.exercise_started(exercise.id)
    _make_start(workspace, on_event)
    return workspace


def _previous(directory: Path) -> Workspace | None:
    try:
        return open_workspace(directory) if (directory / STATE_DIR).is_dir() else None
    except LabError:
        return None


def reset(workspace: Workspace, on_event: Listener = ignore) -> Path:
    """Back to the starting state, files and servers; returns where the attendee's files went."""
    name = workspace.start_config().name
    backup = _take_down(workspace, "reset", on_event)
    _lay_down(workspace, name)
    workspace.state.record_exercise(workspace.exercise.id, reset=True)
    _make_start(workspace, on_event)
    return backup


def solve(workspace: Workspace, on_event: Listener = ignore) -> Path:
    """The solution's files over the start's, then its actions (on the servers as they are);
    returns where the attendee's files went."""
    backup = _back_up(workspace.directory, "solve")
    _lay_down(workspace, workspace.start_config().name, workspace.exercise.solution_dir)
    run_actions(workspace.config(), workspace.exercise.spec.solution, on_event)
    return backup


def apply_wrong(workspace: Workspace, answer: str, on_event: Listener = ignore) -> Path:
    """A wrong answer the exercise lists: solution files, the answer's files over them, then
    its actions. For instructors and CI, to prove the grader catches it."""
    exercise = workspace.exercise
    wrong = exercise.wrong_answer(answer)
    backup = _back_up(workspace.directory, f"wrong-{answer}")
    _lay_down(workspace, workspace.start_config().name, exercise.solution_dir,
              exercise.wrong_dir(answer))
    run_actions(workspace.config(), wrong.then, on_event)
    return backup


def next_exercise(workspace: Workspace, on_event: Listener = ignore) -> Workspace:
    """The exercise after this one, in the same workspace (files backed up first)."""
    later = [e for e in course() if e.number > workspace.exercise.number]
    if not later:
        raise UsageError(f"exercise {workspace.exercise.number:02d} is the last one: well done")
    return start(later[0].number, workspace.directory, workspace.start_config().name, on_event)


def hint(workspace: Workspace) -> tuple[int, str]:
    """The next hint (its number from 1, and its text); counted in progress."""
    hints = workspace.exercise.spec.hints
    used = workspace.progress.hints
    if used >= len(hints):
        return 0, (f"no more hints ({len(hints)} shown): `lab exercise solve` applies the "
                   "solution, and the README explains each step")
    workspace.state.record_exercise(workspace.exercise.id, hint=True)
    return used + 1, hints[used]


# actions -------------------------------------------------------------------------------------


def run_actions(config: LabConfig, actions: list[Action], on_event: Listener = ignore) -> None:
    """``up``, ``provision``, ``drift``, ``destroy`` and ``ssh`` commands, in order
    (exercise.yml)."""
    if not actions:
        return
    with Fleet(config, on_event) as fleet:
        for action in actions:
            if action.do == "ssh" and action.ssh and action.run:
                on_event(Event("phase", f"on {action.ssh}: {action.run}"))
                result = run_as_root(fleet.find(action.ssh), fleet.key, action.run)
                if result.returncode != 0:
                    raise TargetError(f"{action.ssh}: `{action.run}` exited "
                                      f"{result.returncode}: {result.stderr.strip()[:200]}")
            elif action.do == "up":
                fleet.up()
            elif action.do == "destroy":
                fleet.destroy()
            elif action.do == "drift":
                drift(fleet, on_event=on_event)  # recorded in state, as `lab drift` does
            else:
                report = provision(fleet, on_event=on_event)
                if not report.ok:
                    raise CheckFailed(f"provisioning the exercise's lab failed: {report.problem}")


# files ---------------------------------------------------------------------------------------


def _lay_down(workspace: Workspace, name: str, *overlays: Path) -> None:
    """The start files (then each overlay's) into the workspace, with the lab's name; the
    pristine copy is refreshed from start/ alone."""
    exercise = workspace.exercise
    shutil.rmtree(workspace.pristine, ignore_errors=True)
    _copy_tree(exercise.start_dir, workspace.pristine, name)
    for source in (exercise.start_dir, *overlays):
        if source.is_dir():
            _copy_tree(source, workspace.directory, name)
    listen = pinned_listen(workspace.directory)
    place_balancer(workspace.pristine / CONFIG_FILE, listen)
    place_balancer(workspace.directory / CONFIG_FILE, listen)


def pinned_listen(directory: Path) -> int | None:
    """The balancer port this workspace's labs listen on, when one was pinned at start."""
    try:
        value = json.loads((directory / STATE_DIR / PLACEMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    listen = value.get("listen") if isinstance(value, dict) else None
    return listen if isinstance(listen, int) else None


def _pin_listen(directory: Path, listen: int) -> None:
    file = directory / STATE_DIR / PLACEMENT
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"listen": listen}) + "\n", encoding="utf-8")


def place_balancer(lab_yml: Path, listen: int | None) -> None:
    """The balancer of a laid-down lab.yml on the workspace's pinned port (through
    edit_lab_yml, so the variant is validated like any lab.yml; its comments go)."""
    if listen is None or not lab_yml.is_file():
        return
    data = yaml.safe_load(lab_yml.read_text(encoding="utf-8"))
    balancer = data.get("balancer") if isinstance(data, dict) else None
    if isinstance(balancer, dict) and balancer.get("listen") != listen:
        edit_lab_yml(lab_yml, listen=listen)


def _copy_tree(source: Path, destination: Path, name: str) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == CONFIG_FILE:
            target.write_text(path.read_text(encoding="utf-8").replace(NAME_MARK, name),
                              encoding="utf-8")
        else:
            shutil.copyfile(path, target)


def _back_up(directory: Path, why: str) -> Path:
    """Move everything the attendee has (all but .lab/) to .lab/backups/<when>-<why>/."""
    backup = directory / STATE_DIR / "backups" / f"{time.strftime('%Y%m%d-%H%M%S')}-{why}"
    suffix = 1
    while backup.exists():
        suffix += 1
        backup = backup.with_name(f"{backup.name.split('~')[0]}~{suffix}")
    backup.mkdir(parents=True)
    for entry in directory.iterdir():
        if entry.name != STATE_DIR:
            shutil.move(str(entry), backup / entry.name)
    return backup


def _take_down(workspace: Workspace, why: str, on_event: Listener) -> Path:
    """Back up the attendee's files and remove the lab's servers (found by the start's lab
    name, so a mangled lab.yml does not stop it)."""
    backup = _back_up(workspace.directory, why)
    with Fleet(workspace.start_config(), on_event) as fleet:
        fleet.destroy()
    _fresh_state(workspace.directory / STATE_DIR, backup)
    return backup


def _fresh_state(state_dir: Path, backup: Path) -> None:
    """A new state.db carrying only the course's progress: the start's servers get the
    names the exercise's README uses (web-1), which the old one's log would never give again.
    The old state.db, logbook and all, goes with the backup."""
    progress = State(state_dir).all_progress()
    shutil.move(str(state_dir / "state.db"), backup / "state.db")
    fresh = State(state_dir)
    for row in progress:
        fresh.keep_progress(row)


def _make_start(workspace: Workspace, on_event: Listener) -> None:
    run_actions(workspace.config(), workspace.exercise.spec.start, on_event)

