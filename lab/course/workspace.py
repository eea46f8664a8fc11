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

A start (and a reset) comes from the exercise's start snapshot when this engine has one
(lab.course.snapshots): servers created from its images, its logbook lines written again;
else it is made the usual way, and kept as the snapshot for the next.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.access.ports import free_local_port
from lab.access.ssh import run_as_root
from lab.config import CONFIG_FILE, LAB_NAME, LabConfig, load_config
from lab.course import snapshots
from lab.course.exercises import Action, Exercise, Hint, course, find_exercise
from lab.errors import (
    CheckFailed,
    ConfigError,
    LabError,
    PrerequisiteError,
    TargetError,
    UsageError,
)
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import drift, provision, verify
from lab.release import ReleaseFailed, release
from lab.release.bake import bake
from lab.scaffold import edit_lab_yml, lab_name_for
from lab.state import EventKind, ExerciseProgress, State
from lab.targets.base import get_target

STATE_DIR = ".lab"
NAME_MARK = "__NAME__"
PORT_MARK = "__PORT__"  # a balancer's `listen:`, free on 127.0.0.1 when the workspace starts
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
    check_targets(exercise)
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
    listen = pinned_listen(directory)
    workspace = Workspace(directory, exercise)
    if name is None:
        name = workspace_lab_name(directory, "".join(
            get_target(target).owner() for target in exercise.spec.targets))
    _lay_down(workspace, {NAME_MARK: name, PORT_MARK: str(listen or free_local_port())})
    workspace.state.exercise_started(exercise.id)
    _make_start(workspace, on_event)
    return workspace


def workspace_lab_name(directory: Path, owner: str = "") -> str:
    """``ex-<folder>-<hash>``: the folder's name for people, and six hex digits of its
    absolute path (and of the target's ``owner``: the AWS caller) so that two workspaces in
    folders of the same name, on one engine or in one AWS account, never share a lab."""
    digest = hashlib.sha256(f"{directory.resolve()}\0{owner}".encode()).hexdigest()[:6]
    folder = lab_name_for(directory)[:32 - len("ex--") - len(digest)].rstrip("-")
    return f"ex-{folder}-{digest}"


def _previous(directory: Path) -> Workspace | None:
    try:
        return open_workspace(directory) if (directory / STATE_DIR).is_dir() else None
    except LabError:
        return None


def reset(workspace: Workspace, on_event: Listener = ignore) -> Path:
    """Back to the starting state, files and servers; returns where the attendee's files went."""
    marks = _kept_marks(workspace)
    backup = _take_down(workspace, "reset", on_event)
    _lay_down(workspace, marks)
    workspace.state.record_exercise(workspace.exercise.id, reset=True)
    _make_start(workspace, on_event)
    return backup


def solve(workspace: Workspace, on_event: Listener = ignore) -> Path:
    """The solution's files over the start's, then its actions (on the servers as they are);
    returns where the attendee's files went."""
    backup = _back_up(workspace.directory, "solve")
    _lay_down(workspace, _kept_marks(workspace), workspace.exercise.solution_dir)
    run_actions(workspace.config(), workspace.exercise.spec.solution, on_event,
                workspace.exercise.calls)
    return backup


def apply_wrong(workspace: Workspace, answer: str, on_event: Listener = ignore) -> Path:
    """A wrong answer the exercise lists: solution files, the answer's files over them, then
    its actions. For instructors and CI, to prove the grader catches it."""
    exercise = workspace.exercise
    wrong = exercise.wrong_answer(answer)
    backup = _back_up(workspace.directory, f"wrong-{answer}")
    _lay_down(workspace, _kept_marks(workspace), exercise.solution_dir,
              exercise.wrong_dir(answer))
    if wrong.then:  # an answer may be a lab.yml that does not load: nothing to run then
        run_actions(workspace.config(), wrong.then, on_event, exercise.calls)
    return backup


def next_exercise(workspace: Workspace, on_event: Listener = ignore) -> Workspace:
    """The exercise after this one, in the same workspace (files backed up first)."""
    later = [e for e in course() if e.number > workspace.exercise.number]
    if not later:
        raise UsageError(f"exercise {workspace.exercise.number:02d} is the last one: well done")
    return start(later[0].number, workspace.directory, workspace.start_config().name, on_event)


def hint(workspace: Workspace) -> Hint:
    """The next hint for the first goal the last `lab exercise check` failed (that goal's
    own hints, gentle first, the literal fix last), else the exercise's own (no check yet,
    or a goal without hints); counted in progress, per goal."""
    goal, hints, used = workspace.exercise.hints_for(workspace.progress)
    if used >= len(hints):
        where = "for this goal " if goal else ""
        return Hint(0, len(hints), f"no more hints {where}({len(hints)} shown): README.md "
                    "explains each step, and `lab exercise solve` applies the solution", goal)
    workspace.state.record_exercise(workspace.exercise.id, hint=True,
                                    goal=goal.check if goal else None)
    return Hint(used + 1, len(hints), hints[used], goal)


# actions -------------------------------------------------------------------------------------


def run_actions(config: LabConfig, actions: list[Action], on_event: Listener = ignore,
                calls: Mapping[str, Callable[[Fleet], object]] | None = None,
                only: Collection[str] | None = None) -> None:
    """``up``, ``provision``, ``drift``, ``destroy``, ``ssh``, ``verify``, ``bake``,
    ``release``, ``call`` and ``sweep`` actions, in order (exercise.yml); ``calls`` are the
    exercise's functions that ``call:`` names. With ``only`` (server names), the start's
    actions again on those servers of a lab made from a snapshot: `up` is done, an ``ssh``
    on another server is skipped, provision, drift and verify reach only them."""
    if not actions:
        return
    names = sorted(only) if only is not None else None
    with Fleet(config, on_event) as fleet:
        for action in actions:
            if action.do == "ssh" and action.ssh and action.run:
                if names is not None and action.ssh not in names:
                    continue
                on_event(Event("phase", f"on {action.ssh}: {action.run}"))
                result = run_as_root(fleet.find(action.ssh), fleet.key, action.run)
                if result.returncode != 0:
                    raise TargetError(f"{action.ssh}: `{action.run}` exited "
                                      f"{result.returncode}: {result.stderr.strip()[:200]}")
            elif action.do == "verify":
                checked = verify(fleet, names, on_event=on_event)
                if not checked.ok:
                    raise CheckFailed(f"verifying the exercise's lab failed: {checked.problem}")
            elif action.do in ("bake", "release", "call"):
                _release_action(fleet, action, on_event, calls or {})
            elif action.do == "up":
                if names is None:
                    fleet.up()
            elif action.do == "destroy":
                fleet.destroy()
            elif action.do == "drift":
                drift(fleet, names, on_event=on_event)  # recorded in state, as `lab drift` does
            elif action.do == "sweep":
                _sweep(fleet, on_event)
            else:
                report = provision(fleet, names, on_event=on_event)
                if not report.ok:
                    raise CheckFailed(f"provisioning the exercise's lab failed: {report.problem}")


def _release_action(fleet: Fleet, action: Action, on_event: Listener,
                    calls: Mapping[str, Callable[[Fleet], object]]) -> None:
    """``bake`` (`lab bake`), ``release`` (`lab release`, with ``--set`` vars, or
    ``--from-image`` the last baked image) and ``call``. A release that rolls back is kept in
    the history, as when the attendee runs it, and does not stop the actions: some wrong
    answers are one."""
    if action.do == "bake":
        bake(fleet, on_event=on_event)
    elif action.do == "call":
        calls[action.call or ""](fleet)
    else:
        image = last_baked(fleet) if action.from_image else None
        if action.from_image and image is None:
            raise UsageError("`{release: baked}`: no image baked yet (a `bake` action first)")
        overrides = action.release if isinstance(action.release, dict) else None
        try:
            release(fleet, overrides, image, on_event, untested=action.untested)
        except ReleaseFailed as exc:
            shown = " ".join(f"{k}={v}" for k, v in (overrides or {}).items()) or "as lab.yml says"
            on_event(Event("phase", f"release ({shown}): {exc}; kept in `lab history`"))


def last_baked(fleet: Fleet) -> str | None:
    """What the lab's newest `lab bake` made (its image tag, or AMI id), from its logbook."""
    baked = [e.detail for e in fleet.state.events() if e.kind is EventKind.BAKED]
    return baked[-1] if baked else None


def _sweep(fleet: Fleet, on_event: Listener) -> None:
    from lab.aws.resources import sweep_in_lab

    sweep_in_lab(fleet.config, on_event=on_event)  # recorded in the lab's logbook


def check_targets(exercise: Exercise) -> None:
    """What the exercise's targets need (09: AWS credentials and a region), checked before
    anything is laid down: PrerequisiteError, one line saying what to set."""
    for name in exercise.spec.targets:
        missing = [c for c in get_target(name).prerequisites() if not c.ok]
        if missing:
            raise PrerequisiteError(
                f"exercise {exercise.number:02d} runs on {name}, which needs: "
                + "; ".join(f"{c.name}: {c.fix or c.detail}" for c in missing))


# files ---------------------------------------------------------------------------------------


def _lay_down(workspace: Workspace, marks: dict[str, str], *overlays: Path) -> None:
    """The start files (then each overlay's) into the workspace, lab.yml's marks filled in
    (the lab's name, a balancer's port), and last the exercise's README.md at its root (what
    the attendee reads; an overlay's README.md never replaces it); the pristine copy is
    refreshed from start/ alone."""
    exercise = workspace.exercise
    shutil.rmtree(workspace.pristine, ignore_errors=True)
    _copy_tree(exercise.start_dir, workspace.pristine, marks)
    for source in (exercise.start_dir, *overlays):
        if source.is_dir():
            _copy_tree(source, workspace.directory, marks)
    if exercise.readme.is_file():  # what the attendee reads, beside their files
        shutil.copyfile(exercise.readme, workspace.directory / "README.md")
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


def _kept_marks(workspace: Workspace) -> dict[str, str]:
    """The marks the workspace was started with: its lab keeps its name and its port."""
    config = workspace.start_config()
    listen = pinned_listen(workspace.directory) or (
        config.balancer.listen if config.balancer else free_local_port())
    return {NAME_MARK: config.name, PORT_MARK: str(listen)}


def _copy_tree(source: Path, destination: Path, marks: dict[str, str]) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == CONFIG_FILE:
            text = path.read_text(encoding="utf-8")
            for mark, value in marks.items():
                text = text.replace(mark, value)
            target.write_text(text, encoding="utf-8")
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
    start_config = workspace.start_config()
    moved = _moved_lab(workspace, start_config)
    backup = _back_up(workspace.directory, why)
    for config in (start_config, *moved):
        with Fleet(config, on_event) as fleet:
            fleet.destroy(images=True)  # images baked in this workspace (exercise 07) too
    _fresh_state(workspace.directory / STATE_DIR, backup)
    return backup


def _moved_lab(workspace: Workspace, start_config: LabConfig) -> list[LabConfig]:
    """The attendee's lab when it runs on another target than the start's (09 moves it to
    AWS): it is destroyed too, or a reset would leave it running, and paying. A lab.yml that
    no longer loads names no other target."""
    try:
        config = workspace.config()
    except ConfigError:
        return []
    return [config] if config.target != start_config.target else []


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
    """The start's actions, or the exercise's start snapshot when this engine has one (a
    start made the usual way is then kept as one: see lab.course.snapshots)."""
    exercise, config = workspace.exercise, workspace.config()
    plan = snapshots.plan(exercise, config, on_event)
    if plan is not None and plan.found is not None:
        again = snapshots.start_from(config, plan.found, on_event)
        if again:
            run_actions(config, exercise.spec.start, on_event, exercise.calls, only=again)
        return
    run_actions(config, exercise.spec.start, on_event, exercise.calls)
    if plan is not None:
        snapshots.keep(config, exercise, plan.key, on_event)

