"""``lab class``: an instructor's class (lab/classroom/): workspaces, reset, progress page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lab.cli.base import handled
from lab.cli.output import err, out, progress
from lab.errors import CheckFailed
from lab.events import Event

app = typer.Typer(help="Run a class: one workspace per student, one-command reset, and a live "
                       "page of who is stuck.", no_args_is_help=True)

# Workspaces: init, up, reset, destroy.

ClassDir = Annotated[Path, typer.Argument(help="The class's directory (holding class.yml).")]
StudentList = Annotated[str | None, typer.Option(
    "--students", help="Students by name, comma-separated: alice,bob.")]


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


@app.command()
@handled
def init(
    ctx: typer.Context,
    directory: ClassDir = Path("."),
    name: Annotated[str | None, typer.Option(help="The class's name (default: the "
                                                  "directory's).")] = None,
    students: StudentList = None,
    count: Annotated[int | None, typer.Option(help="Or a number of students: student-01 "
                                                   "...")] = None,
    exercises: Annotated[str | None, typer.Option(help="Which exercises, in order: 1-4,8 "
                                                       "(default: the whole course).")] = None,
    target: Annotated[str, typer.Option(
        help="Where the workspaces' servers run: docker, or aws (each seat its own lab in "
             "one AWS account; needs --ssh-cidr).")] = "docker",
    ssh_cidr: Annotated[str | None, typer.Option(
        help="aws: the addresses that may reach the seats' servers by SSH, e.g. the "
             "room's: 203.0.113.0/24.")] = None,
    region: Annotated[str | None, typer.Option(
        help="aws: the region of every seat's lab (default: AWS_REGION, or the "
             "profile's).")] = None,
) -> None:
    """Write class.yml for a new class, with a fresh join code (never overwrites one).

    On aws the class takes the exercises that start without servers (like 09): `lab class
    up` makes none there, each attendee runs `lab up`.

    Example:  lab class init ~/workshop --students alice,bob,carol --exercises 1-4

    Example:  lab class init ~/aws-day --count 30 --target aws --ssh-cidr 203.0.113.0/24
    """
    from lab.classroom.config import exercise_numbers, region_of, write_class
    from lab.errors import UsageError

    if students and count is not None:
        raise UsageError("give --students or --count, not both")
    who: list[str] | int = _names(students) or (count if count is not None else 1)
    classroom = write_class(directory, name or directory.resolve().name, who,
                            exercise_numbers(exercises, target), target, ssh_cidr, region)
    spec = classroom.spec
    where = f" on aws in {region_of(spec)}" if spec.target == "aws" else ""
    out.print(f"class {escape(spec.name)}: {len(spec.students)} students{where}, exercises "
              f"{', '.join(map(str, spec.exercises))}; join code {spec.code}")
    out.print(f"next: lab class up {directory}")


@app.command()
@handled
def up(
    ctx: typer.Context,
    directory: ClassDir = Path("."),
    exercise: Annotated[int | None, typer.Option(help="The exercise to start (default: the "
                                                      "class's first).")] = None,
    students: StudentList = None,
    parallel: Annotated[int, typer.Option(min=1, max=10, help="Students started at a "
                                                              "time.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="The outcome as JSON.")] = False,
) -> None:
    """One workspace per student (DIR/STUDENT/), each with its own lab and ports, at an
    exercise's start; workspaces already there are skipped. Exit 1 if any failed.

    On aws (class.yml `target: aws`) it creates no cloud servers: each workspace's lab.yml
    says `target: aws` with the class's `aws:`, and its lab name (class and student) tags
    whatever the attendee makes with `lab up` when the exercise says so. Only exercises
    that start without servers (like 09) can start there.

    Example:  lab class up ~/workshop --exercise 1
    """
    from lab.classroom.config import load_class
    from lab.classroom.workspaces import up as run

    classroom = load_class(directory)
    with progress(f"lab class up {classroom.spec.name}") as listener:
        outcomes = run(classroom, exercise, _names(students), parallel, listener)
    if as_json:
        out.print_json(json.dumps([o.to_dict() for o in outcomes]))
    else:
        table = Table(box=None, title_justify="left")
        for column in ("student", "lab", "balancer port", "exercise", "", "seconds"):
            table.add_column(column)
        colors = {"ready": "green", "skipped": "dim", "failed": "red"}
        for o in outcomes:
            status = f"[{colors[o.status]}]{o.status}[/{colors[o.status]}]"
            table.add_row(o.student, o.lab, str(o.listen or ""), f"{o.exercise:02d}", status,
                          f"{o.seconds:.0f}")
        out.print(table)
        if classroom.spec.target == "aws":
            out.print(f"no servers created on AWS: each attendee runs `lab up` in their "
                      f"workspace when the exercise says so; `lab class status {directory}` "
                      "shows what each seat has there and its cost")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(outcomes)} workspaces failed: "
                          + "; ".join(f"{o.student}: {o.problem}" for o in failed))


@app.command()
@handled
def reset(
    ctx: typer.Context,
    student: Annotated[str, typer.Argument(help="Whose workspace.")],
    directory: ClassDir = Path("."),
    exercise: Annotated[int | None, typer.Option(help="Back at this exercise's start "
                                                      "(default: their current one).")] = None,
    solved_through: Annotated[int | None, typer.Option(
        help="At this exercise with its solution applied, to catch up.")] = None,
) -> None:
    """A student's workspace back at an exercise's start, or solved through one to catch
    up. Their files are moved to .lab/backups/ first, never deleted.

    On aws the seat's lab is removed from AWS and its lab.yml is on aws again; a solution
    would make servers there, so --solved-through is refused.

    Example:  lab class reset bob ~/workshop --solved-through 2
    """
    from lab.classroom.config import load_class
    from lab.classroom.workspaces import reset as run

    classroom = load_class(directory)
    with progress(f"lab class reset {student}") as listener:
        result = run(classroom, student, exercise, solved_through, listener)
    state = "solved" if result.solved else "at the start"
    out.print(f"{student}: exercise {result.exercise:02d} {state} ({result.seconds:.0f} s); "
              f"their files are in {result.backup}")


@app.command()
@handled
def destroy(
    ctx: typer.Context,
    directory: ClassDir = Path("."),
    files: Annotated[bool, typer.Option("--files", help="Also delete the students' "
                                                        "folders.")] = False,
) -> None:
    """Remove every server and network of the class's workspaces, found by label (also
    those whose folder was deleted). The students' files stay unless --files.

    On aws: everything tagged with one of the class's lab names, in class.yml's region;
    exit 1 naming what AWS still holds, if anything. Then, at the end of the day,
    `lab aws sweep --region REGION` removes what any lab left there once it expired.

    Example:  lab class destroy ~/workshop
    """
    from lab.classroom.config import load_class
    from lab.classroom.workspaces import destroy as run

    classroom = load_class(directory)
    with progress(f"lab class destroy {classroom.spec.name}") as listener:
        done = run(classroom, files, listener)
    if classroom.spec.target == "aws":
        from lab.classroom.cloud import counted, tally

        what = (f"removed from AWS in {done.region}: {tally(done.removed)} of "
                f"{counted(len(done.labs), 'labs')}")
    else:
        what = f"removed {len(done.servers)} servers of {len(done.labs)} labs"
    out.print(what + (f" and {len(done.folders)} folders" if files else
                      "; the students' folders are kept (--files deletes them)"))
    if classroom.spec.target == "aws":
        out.print(f"at the end of the day: `lab aws sweep --region {done.region}` removes "
                  "whatever any lab left there once its lifetime (aws.lifetime) is over")

# Progress: serve, join, status.

ClassDir = Annotated[Path, typer.Argument(help="The class's directory (holding class.yml).")]


@app.command()
@handled
def serve(
    ctx: typer.Context,
    directory: ClassDir = Path("."),
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (default: class.yml's serve.host, 127.0.0.1). Another "
             "address lets attendees' laptops report; anyone who reaches it sees the page.")]
    = None,
    port: Annotated[int | None, typer.Option(
        help="Port (default: class.yml's serve.port, 8760).")] = None,
) -> None:
    """Serve the class's live progress page: students x exercises, who is stuck, feedback.

    Workspaces report every `lab exercise check` and hint to it. It listens on 127.0.0.1
    unless you pass --host; every join and report carries the class's join code and is
    refused without it, so on a room's network only those given the code can report.
    Progress is kept in class.db next to class.yml, across restarts. Ctrl-C stops it.

    Example:  lab class serve ~/workshop --host 0.0.0.0 --port 8760
    """
    from lab.classroom.config import load_class
    from lab.classroom.web import serve as run
    from lab.state import is_loopback

    classroom = load_class(directory)
    host = host or classroom.spec.serve.host
    port = port or classroom.spec.serve.port
    if not is_loopback(host):
        err.print(f"listening on {escape(host)}: reports need the join code "
                  f"{escape(classroom.spec.code)}; anyone who reaches the page sees names")

    def shown(event: Event) -> None:
        if event.kind == "serve":
            out.print(f"class {escape(classroom.spec.name)}: {escape(event.message)} "
                      "(Ctrl-C stops)")

    run(classroom, host, port, shown)


@app.command()
@handled
def join(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The class's page, as your instructor gave it.")],
    code: Annotated[str, typer.Option(help="The class's join code.")],
    name: Annotated[str, typer.Option(help="Your name, as the page will show it.")],
    workspace: Annotated[Path | None, typer.Option(
        help="Join for this workspace only (default: every workspace of this user).")] = None,
) -> None:
    """Join a class once: from then on every `lab exercise check` and hint reports to it.

    Reporting is best effort: a check never fails because the class cannot be reached, and
    waits at most 2 s for it, after showing its result. The membership is kept in
    ~/.config/lab/class.json (or the workspace's .lab/class.json with --workspace).

    Example:  lab class join http://192.168.1.20:8760 --code k7f3-q9x2 --name alice
    """
    from lab.classroom.membership import user_file, workspace_file
    from lab.classroom.reporter import join as run

    file = user_file() if workspace is None else workspace_file(workspace)
    membership = run(url, code, name, file)
    out.print(f"joined as {escape(membership.name)}: checks and hints report to "
              f"{escape(membership.url)} (kept in {file})")


@app.command()
@handled
def status(
    ctx: typer.Context,
    directory: ClassDir = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="The grid as JSON.")] = False,
) -> None:
    """The class's grid in the terminal, from class.db (the page need not be running).

    Each cell: passed, working (checks, hints, minutes) or not started; then who has been
    failing the same check longest. On aws, also what each seat's lab has on AWS now and
    about what it costs an hour (one listing of the region for the whole class).

    Example:  lab class status ~/workshop --json
    """
    from lab.classroom.config import load_class
    from lab.classroom.store import class_grid

    classroom = load_class(directory)
    grid = class_grid(classroom).to_dict()
    cost = None
    if classroom.spec.target == "aws":
        from lab.classroom.cloud import costs

        cost = costs(classroom)
    if as_json:
        out.print_json(json.dumps(grid | ({"aws": cost.to_dict()} if cost else {})))
        return
    _print_grid(grid)
    if cost is not None:
        for seat in cost.seats:
            out.print(f"{escape(seat.student or seat.lab)}: {seat.summary()}", soft_wrap=True)
        out.print(f"class total in {cost.region}: {cost.summary()}", soft_wrap=True)


STATE_STYLE = {"passed": "green", "working": "yellow", "not started": "dim"}


def _print_grid(grid: dict[str, Any]) -> None:
    table = Table(title=f"class {escape(grid['class'])}", title_justify="left")
    table.add_column("student")
    for exercise in grid["exercises"]:
        table.add_column(escape(exercise["id"]))
    table.add_column("time")
    table.add_column("last feedback", overflow="fold", max_width=60)
    for student in grid["students"]:
        cells = []
        for exercise in grid["exercises"]:
            cell = student["cells"][str(exercise["number"])]
            style = STATE_STYLE[cell["state"]]
            extra = "" if cell["state"] == "not started" else \
                f" {cell['checks']}c {cell['hints']}h {cell['seconds'] // 60}m"
            cells.append(f"[{style}]{cell['state']}{extra}[/{style}]")
        table.add_row(escape(student["student"]), *cells,
                      "" if student["current"] is None else f"{student['seconds'] // 60} min",
                      escape(student["feedback"]))
    out.print(table)
    for stuck in grid["stuck"]:
        out.print(f"stuck: {escape(stuck['student'])} on {stuck['exercise']:02d} at "
                  f"{escape(stuck['check'])} for {stuck['seconds'] // 60} min "
                  f"({stuck['failures']} checks)", soft_wrap=True)
