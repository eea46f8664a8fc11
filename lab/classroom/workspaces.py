"""A class's workspaces on one machine: ``lab class up``, ``reset`` and ``destroy``.

Each student's workspace is an ordinary exercise workspace (lab.course.workspace) in
``<class dir>/<student>/``, with the lab name and balancer port the class gives it
(lab.classroom.seats) and a membership file pointing at the class's page, so that its checks
report there. Nothing here makes servers itself: start, reset and solve are lab.course.workspace's.

On ``target: aws`` (lab.classroom.cloud) each seat's lab.yml says ``target: aws`` and
carries the class's ``aws:``; no server is made for it: the attendee runs ``lab up``.

``up`` works on a few students at a time (a thread each: most of a start is waiting on
systemd, SSH and Ansible's subprocesses); a student whose start fails is reported and the
others go on. The first seat starts alone: when the engine has no start snapshot of the
exercise yet, that start makes it, and the others start from it (lab.course.snapshots).
A workspace that ``up`` (or ``reset``) finished at an exercise carries
``.lab/class-up.json``; ``up`` skips it while the workspace is still on that exercise.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lab.classroom import membership
from lab.classroom.config import Classroom
from lab.classroom.seats import in_class, lab_names, pick_ports, port_is_free
from lab.course import snapshots
from lab.course.exercises import find_exercise
from lab.course.workspace import (
    STATE_DIR,
    Workspace,
    open_workspace,
    pinned_listen,
    solve,
    start,
)
from lab.course.workspace import reset as reset_workspace
from lab.docker.dockerengine import DockerEngine
from lab.docker.engine import docker_client
from lab.errors import LabError, UsageError
from lab.events import Event, Listener, ignore
from lab.targets.base import LABEL_PREFIX

FINISHED = "class-up.json"  # in a workspace's .lab/: the exercise up or reset finished making
PARALLEL = 3  # students brought up at a time (see bench/bench_class.py)


@dataclass(frozen=True)
class Outcome:
    """What ``up`` did for one student."""

    student: str
    lab: str
    listen: int | None  # the balancer port pinned for the workspace
    exercise: int
    status: str  # ready, skipped or failed
    seconds: float
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class ResetResult:
    student: str
    exercise: int
    solved: bool  # the exercise's solution was applied (--solved-through)
    backup: Path  # where the student's files went
    seconds: float


@dataclass
class Destroyed:
    labs: list[str] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)  # docker: lab/server of each
    folders: list[Path] = field(default_factory=list)
    region: str = ""  # aws: where the class's labs were looked for
    removed: dict[str, int] = field(default_factory=dict)  # aws: how many of each kind


# choosing -------------------------------------------------------------------------------------


def students_of(classroom: Classroom, chosen: list[str] | None) -> list[str]:
    """``chosen`` (all the class's students when None), each one of the class's."""
    known = classroom.spec.students
    for student in chosen or []:
        if student not in known:
            raise UsageError(f"no student {student!r} in {classroom.directory / 'class.yml'} "
                             f"(students: {', '.join(known)})")
    return list(dict.fromkeys(chosen)) if chosen else list(known)


def exercise_of(classroom: Classroom, number: int | None) -> int:
    """``number`` (the class's first exercise when None), one of the class's exercises."""
    exercises = classroom.spec.exercises
    if number is None:
        number = exercises[0]
    elif number not in exercises:
        raise UsageError(f"exercise {number} is not one of the class's (class.yml exercises: "
                         f"{', '.join(map(str, exercises))})")
    find_exercise(number)  # in the course, else a UsageError naming those that are
    return number


def _on_aws(classroom: Classroom) -> bool:
    return classroom.spec.target == "aws"


def _no_servers_on_aws(classroom: Classroom, number: int) -> None:
    """A class on aws starts only exercises whose start makes no servers (cloud's why)."""
    if _on_aws(classroom):
        from lab.classroom.config import require_no_servers

        require_no_servers(number)


# up -------------------------------------------------------------------------------------------


def up(classroom: Classroom, exercise: int | None = None, students: list[str] | None = None,
       parallel: int = PARALLEL, on_event: Listener = ignore) -> list[Outcome]:
    """Each student's workspace at ``exercise``'s start (the class's first by default), a
    few at a time; workspaces already there are skipped. Returns one outcome per student.
    On aws no server is made: each seat's lab.yml is placed there, for its attendee's
    `lab up`, and its balancer (an ALB of its own) needs no port of this machine."""
    number = exercise_of(classroom, exercise)
    _no_servers_on_aws(classroom, number)
    chosen = students_of(classroom, students)
    names = lab_names(classroom.spec)
    ports: dict[str, int | None] = ({s: None for s in chosen} if _on_aws(classroom)
                                    else dict(_ports(classroom, chosen)))

    def one(student: str) -> Outcome:
        return _bring_up(classroom, student, names[student], ports[student], number, on_event)

    done: dict[str, Outcome] = {}
    rest = list(chosen)
    if not _on_aws(classroom) and snapshots.worth_keeping(find_exercise(number).spec.start):
        # One seat first, alone: it makes the exercise's start snapshot if this engine has
        # none (lab.course.snapshots), and every other seat starts from it.
        while rest and not any(o.status == "ready" for o in done.values()):
            student = rest.pop(0)
            done[student] = one(student)
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(rest) or 1)))
    try:
        futures = {student: pool.submit(one, student) for student in rest}
        done |= {student: future.result() for student, future in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no new student starts
    return [done[student] for student in chosen]


def _ports(classroom: Classroom, chosen: list[str]) -> dict[str, int]:
    """The balancer port of each chosen student: the one pinned in their workspace, else a
    new one that no other student of the class, nor any container on the engine, has."""
    pinned = {s: pinned_listen(classroom.workspace(s)) for s in classroom.spec.students}
    kept = {s: port for s, port in pinned.items() if s in chosen and port is not None}
    taken = {port for port in pinned.values() if port is not None} | _published_ports()
    new = [s for s in chosen if s not in kept]
    return kept | pick_ports(classroom.spec, new, taken, port_is_free)


def _published_ports() -> set[int]:
    """Host ports that containers on the engine publish, or will when started again."""
    client = docker_client()
    try:
        ports = set()
        for container in client.containers.list(all=True, ignore_removed=True):
            bindings = (container.attrs.get("HostConfig") or {}).get("PortBindings") or {}
            for binding in bindings.values():
                for one in binding or []:
                    if str(one.get("HostPort", "")).isdigit():
                        ports.add(int(one["HostPort"]))
        return ports
    finally:
        client.close()


def _bring_up(classroom: Classroom, student: str, lab: str, listen: int | None, number: int,
              on_event: Listener) -> Outcome:
    directory = classroom.workspace(student)
    tell = _for_student(student, on_event)
    began = time.monotonic()

    def outcome(status: str, problem: str = "") -> Outcome:
        return Outcome(student, lab, listen, number, status, time.monotonic() - began, problem)

    if _finished_at(directory) == number:
        tell(Event("phase", f"already at exercise {number:02d}: skipped"))
        return outcome("skipped")
    _forget_finished(directory)
    tell(Event("phase", f"starting exercise {number:02d} (lab {lab})"))
    try:
        workspace = start(number, directory, lab, tell, listen=listen)
        _place(classroom, workspace)
    except Exception as exc:  # one student's failure must not stop the others
        problem = str(exc) if isinstance(exc, LabError) else f"internal error: {exc!r}"
        tell(Event("warning", f"failed: {problem}"))
        return outcome("failed", problem)
    finally:
        if (directory / STATE_DIR).is_dir():
            _join(classroom, student, directory)
    _mark_finished(directory, number)
    done = outcome("ready")
    tell(Event("phase", f"ready at exercise {number:02d} ({done.seconds:.0f} s)"))
    return done


def _place(classroom: Classroom, workspace: Workspace) -> None:
    """On aws, the seat's lab.yml says so (target and the class's aws: section)."""
    if _on_aws(classroom):
        from lab.classroom.cloud import place

        place(workspace, classroom.spec)


def _join(classroom: Classroom, student: str, directory: Path) -> None:
    """The workspace reports its checks to the class's page."""
    serve = classroom.spec.serve
    membership.save(membership.Membership(url=f"http://{serve.host}:{serve.port}",
                                          code=classroom.spec.code, name=student),
                    membership.workspace_file(directory))


def _for_student(student: str, on_event: Listener) -> Listener:
    """A listener that says whose workspace each event is about."""

    def tell(event: Event) -> None:
        subject = f"{student} {event.subject}" if event.subject else student
        on_event(replace(event, message=f"{student}: {event.message}", subject=subject,
                         data=event.data | {"student": student}))

    return tell


# the finished mark ----------------------------------------------------------------------------


def _finished_at(directory: Path) -> int | None:
    """The exercise up or reset finished making here, while the workspace is still on it."""
    try:
        mark = json.loads((directory / STATE_DIR / FINISHED).read_text(encoding="utf-8"))
        current = open_workspace(directory).exercise.number
    except (OSError, ValueError, LabError):
        return None
    return current if isinstance(mark, dict) and mark.get("exercise") == current else None


def _mark_finished(directory: Path, number: int) -> None:
    (directory / STATE_DIR / FINISHED).write_text(json.dumps({"exercise": number}) + "\n",
                                                  encoding="utf-8")


def _forget_finished(directory: Path) -> None:
    (directory / STATE_DIR / FINISHED).unlink(missing_ok=True)


# reset ----------------------------------------------------------------------------------------


def reset(classroom: Classroom, student: str, exercise: int | None = None,
          solved_through: int | None = None, on_event: Listener = ignore) -> ResetResult:
    """One student's workspace back at an exercise's start (their current one by default),
    or, with ``solved_through``, at that exercise with its solution applied so they can
    catch up (each exercise starts from its own files, so the last one's solution is what
    the earlier ones lead to). Their files go to a backup first."""
    if exercise is not None and solved_through is not None:
        raise UsageError("give --exercise or --solved-through, not both")
    if _on_aws(classroom) and solved_through is not None:
        raise UsageError("--solved-through: a solution makes servers (`lab up`), which a "
                         "class on aws never makes: the attendee runs `lab exercise solve`")
    students_of(classroom, [student])
    directory = classroom.workspace(student)
    if not (directory / STATE_DIR / "state.db").is_file():
        raise UsageError(f"{student} has no workspace in {directory} yet "
                         f"(`lab class up --students {student}` makes it)")
    wanted = solved_through if solved_through is not None else exercise
    number = exercise_of(classroom, wanted) if wanted is not None else None
    tell = _for_student(student, on_event)
    began = time.monotonic()
    workspace = open_workspace(directory)
    _no_servers_on_aws(classroom, workspace.exercise.number if number is None else number)
    _forget_finished(directory)
    if number is None or number == workspace.exercise.number:
        backup = reset_workspace(workspace, tell)
    else:
        before = set(_backups(directory))
        workspace = start(number, directory, on_event=tell)
        backup = max(set(_backups(directory)) - before, default=directory / STATE_DIR / "backups")
    _place(classroom, workspace)
    if solved_through is not None:
        solve(workspace, tell)
    _mark_finished(directory, workspace.exercise.number)
    return ResetResult(student, workspace.exercise.number, solved_through is not None, backup,
                       time.monotonic() - began)


def _backups(directory: Path) -> list[Path]:
    folder = directory / STATE_DIR / "backups"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# destroy --------------------------------------------------------------------------------------


def destroy(classroom: Classroom, files: bool = False,
            on_event: Listener = ignore) -> Destroyed:
    """Remove every server and network of the class's labs, found by label on the engine
    (also a workspace's whose folder is gone), or on aws everything tagged with one of the
    class's lab names; the students' folders too with ``files``. On aws, what AWS would not
    remove is a LeftBehind error, and the folders are then kept."""
    done = _destroy_on_aws(classroom, on_event) if _on_aws(classroom) else \
        _destroy_on_docker(classroom, on_event)
    if files:
        for student in classroom.spec.students:
            folder = classroom.workspace(student)
            if folder.is_dir():
                shutil.rmtree(folder)
                done.folders.append(folder)
                on_event(Event("destroy", f"{folder} removed", subject=student))
    return done


def _destroy_on_docker(classroom: Classroom, on_event: Listener) -> Destroyed:
    done = Destroyed()
    client = docker_client()
    try:
        done.labs = sorted(_class_labs(client, lambda lab: in_class(classroom.spec, lab)))
        for lab in done.labs:
            engine = DockerEngine(lab, client)
            done.servers += [f"{lab}/{server}" for server in engine.remove(None, on_event)]
            engine.remove_images()
    finally:
        client.close()
    return done


def _destroy_on_aws(classroom: Classroom, on_event: Listener) -> Destroyed:
    from lab.classroom.cloud import destroy as clear

    cleared = clear(classroom, on_event)
    return Destroyed(labs=cleared.labs, region=cleared.region, removed=cleared.removed)


def _class_labs(client: Any, belongs: Callable[[str], bool]) -> set[str]:
    """Names of the labs with containers or networks on the engine that ``belongs`` takes."""
    managed = {"label": f"{LABEL_PREFIX}managed=true"}
    labels = [c.attrs.get("Labels") or {} for c in
              client.containers.list(all=True, sparse=True, filters=managed)]
    labels += [n.attrs.get("Labels") or {} for n in client.networks.list(filters=managed)]
    names = {found.get(f"{LABEL_PREFIX}name", "") for found in labels}
    return {name for name in names if name and belongs(name)}
