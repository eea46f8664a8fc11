"""``lab exercise``: the course, one exercise at a time, with a grader that explains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lab.cli.base import current, handled
from lab.cli.output import out, print_step, progress
from lab.errors import CheckFailed, UsageError

if TYPE_CHECKING:
    from lab.course.grader import CheckReport
    from lab.course.snapshots import Snapshot
    from lab.course.workspace import Workspace

app = typer.Typer(
    help="The course: start an exercise, check your work, get a hint, reset, move on.\n\n"
         "Start with:  lab exercise start 1 ~/ex && cd ~/ex && lab exercise check",
    no_args_is_help=True,
)


def _workspace(ctx: typer.Context) -> Workspace:
    from lab.course.workspace import open_workspace

    return open_workspace(current(ctx).file.resolve().parent)


@app.command("list")
@handled
def list_exercises(ctx: typer.Context) -> None:
    """The exercises in order; inside a workspace, with your progress in each.

    Example:  lab exercise list
    """
    from lab.course.exercises import course
    from lab.state import State

    state_dir = current(ctx).file.resolve().parent / ".lab"
    progress_of = {p.exercise: p for p in State(state_dir).all_progress()} \
        if (state_dir / "state.db").is_file() else {}
    table = Table(box=None, title_justify="left")
    for column in ("#", "exercise", "minutes", "checks", "passed", "hints", "time"):
        table.add_column(column)
    for exercise in course():
        done = progress_of.get(exercise.id)
        table.add_row(
            f"{exercise.number:02d}", exercise.title, str(exercise.spec.minutes),
            *(("", "", "", "") if done is None else (
                str(done.checks), "[green]yes[/green]" if done.passes else "no",
                str(done.hints), f"{done.seconds / 60:.0f} min")))
    out.print(table)


@app.command()
@handled
def start(
    number: Annotated[int, typer.Argument(help="The exercise's number, as `list` shows it.")],
    directory: Annotated[Path, typer.Argument(help="The workspace (new or empty, or a "
                                                   "workspace to move on).")] = Path("."),
    name: Annotated[str | None, typer.Option(help="The lab's name (default: from "
                                                  "DIRECTORY).")] = None,
) -> None:
    """Make a workspace: the exercise's files and README.md, its servers in the starting
    state; then print the README's first step.

    Example:  lab exercise start 1 ~/ex && cd ~/ex
    """
    from lab.classroom.reporter import report_start
    from lab.course.workspace import start as run

    with progress(f"lab exercise start {number}") as listener:
        workspace = run(number, directory, name, listener)
        report_start(workspace, listener)
    _print_start(workspace, f"cd {directory}, do that, then `lab exercise check`")


def _print_start(workspace: Workspace, then: str) -> None:
    """The exercise begun, where to read it (its README.md, in the workspace) and its first
    step (lab.course.exercises.first_step), so the attendee can begin before opening it."""
    exercise = workspace.exercise
    out.print(f"exercise {exercise.number:02d}: {escape(exercise.title)} "
              f"({exercise.spec.minutes} min): read {workspace.directory / 'README.md'}")
    step = exercise.first_step()
    if step:
        out.print(f"first step: {escape(step)}", soft_wrap=True)
    out.print(f"next: {escape(then)}")


@app.command()
@handled
def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The goals as JSON.")] = False,
) -> None:
    """Check every goal of the exercise: pass, or FAIL with what to try next (exit 1).

    Your files are never changed. Example:  lab exercise check
    """
    from lab.classroom.reporter import report_check
    from lab.course.grader import check as run

    workspace = _workspace(ctx)
    with progress(f"lab exercise check ({workspace.exercise.id})") as listener:
        report = run(workspace, listener)
    shown = report.to_dict()
    if as_json:
        out.print_json(json.dumps(shown))
    else:
        _print_goals(report)
    report_check(workspace, report)  # to the class, if any, once shown; never fails
    if not report.ok:
        raise CheckFailed("not done yet: see the first FAIL above (`lab exercise hint` helps)"
                          if not as_json else "not done yet")
    if not as_json:
        out.print("[green]done[/green]: `lab exercise next` moves on")


def _print_goals(report: CheckReport) -> None:
    """Each goal as the step runner recorded it (lab.cli.output.print_step), in order."""
    shown = report.to_dict()
    out.print(f"[bold]{shown['exercise']}[/bold]: {escape(shown['title'])}")
    done = {step.name: step for step in report.steps.done}
    workspace = done.get("workspace")
    if workspace is not None and not workspace.ok:
        print_step(workspace, "the workspace")
        return
    for goal in report.exercise.spec.goals:
        step = done.get(goal.check)
        if step is None:
            out.print(f"[dim]  -  {escape(goal.goal)} (not checked yet)[/dim]")
        else:
            print_step(step, goal.goal)


@app.command()
@handled
def hint(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The hint as JSON.")] = False,
) -> None:
    """The next hint for the first goal your last check failed, gentle first, the fix last
    (before any check: the exercise's own hints). Each is counted in your progress.

    Example:  lab exercise hint
    """
    from lab.classroom.reporter import report_hint
    from lab.course.grader import hint as next_hint

    workspace = _workspace(ctx)
    step = next_hint(workspace)
    goal = workspace.exercise.goal(step.figures.get("goal"))
    if as_json:
        out.print_json(json.dumps({"exercise": workspace.exercise.id,
                                   "goal": goal.check if goal else None} | step.to_dict()))
    else:
        print_step(step, f"{step.name}, for: {goal.goal}" if goal else None)
    if step.ok:
        report_hint(workspace)  # to the class, if any; never fails


@app.command()
@handled
def solve(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Catch up: replace your files by the solution's and apply it (asks first).

    Your files are moved to .lab/backups/, never deleted. Example:  lab exercise solve --yes
    """
    from lab.course.workspace import solve as run

    workspace = _workspace(ctx)
    if not yes:
        if not typer.get_text_stream("stdin").isatty():
            raise UsageError("solve replaces your files (kept in .lab/backups/): pass --yes")
        typer.confirm(f"Apply the solution of {workspace.exercise.id}? Your files go to "
                      ".lab/backups/", abort=True)
    with progress("lab exercise solve") as listener:
        backup = run(workspace, listener)
    out.print(f"solution applied; your files are in {backup}")
    out.print("next: lab exercise check")


@app.command()
@handled
def reset(ctx: typer.Context) -> None:
    """Back to the exercise's start: its files, and its servers rebuilt.

    Your files are moved to .lab/backups/, never deleted. Example:  lab exercise reset
    """
    from lab.course.workspace import reset as run

    workspace = _workspace(ctx)
    with progress(f"lab exercise reset ({workspace.exercise.id})") as listener:
        backup = run(workspace, listener)
    out.print(f"back at the start of {workspace.exercise.id}; your files are in {backup}")


@app.command("next")
@handled
def next_command(ctx: typer.Context) -> None:
    """Move on to the next exercise, in this workspace (your files kept in .lab/backups/).

    Example:  lab exercise next
    """
    from lab.classroom.reporter import report_start
    from lab.course.workspace import next_exercise

    workspace = _workspace(ctx)
    with progress("lab exercise next") as listener:
        moved = next_exercise(workspace, listener)
        report_start(moved, listener)
    _print_start(moved, "do that, then `lab exercise check`")


@app.command()
@handled
def snapshots(
    ctx: typer.Context,
    number: Annotated[int | None, typer.Argument(help="Only this exercise's.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove them (an image servers "
                                                          "still run from is kept).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The exercises' start snapshots on this Docker engine: list them, or remove them.

    An exercise's first start on an engine is made the usual way (servers provisioned by
    Ansible, changed by hand) and then kept as images, one per server: every later start or
    reset of that exercise, in any workspace, creates its servers from them in a few seconds
    and provisions nothing. `lab class up` makes one with its first seat. A changed exercise
    or base image makes a new one at the next start (state `stale` is the old). They need no
    registry; LAB_SNAPSHOTS=0 turns them off.

    Example:  lab exercise snapshots

    Example:  lab exercise snapshots 4 --remove
    """
    import time

    from lab.course import snapshots as kept
    from lab.course.exercises import course, find_exercise
    from lab.docker.engine import docker_client

    exercise = find_exercise(number).id if number is not None else None
    client = docker_client()
    try:
        found = [s for s in kept.listing(client) if exercise in (None, s.exercise)]
        current = kept.current_keys(client, course())
        removed = kept.remove(client, exercise) if remove else None
    finally:
        client.close()
    if removed is not None:
        if as_json:
            out.print_json(json.dumps({"removed": removed.tags, "kept": removed.kept}))
            return
        for tag in removed.tags:
            out.print(f"removed {tag}")
        for tag, why in removed.kept.items():
            out.print(f"kept {tag}: {escape(why)} (`lab exercise reset` or `lab class destroy` "
                      "the labs that run from it first)")
        if not removed.tags and not removed.kept:
            out.print("no start snapshot to remove")
        return
    states = {s.key: _snapshot_state(s, current) for s in found}
    if as_json:
        out.print_json(json.dumps([s.to_dict() | {"state": states[s.key]} for s in found]))
        return
    if not found:
        out.print("no start snapshot on this engine: an exercise's first start makes one")
        return
    table = Table(box=None, title_justify="left")
    for column in ("exercise", "snapshot", "servers", "size", "made", "state"):
        table.add_column(column)
    for snapshot in found:
        servers = ", ".join(f"{name} (provisioned again)" if name in snapshot.again else name
                            for name in snapshot.servers)
        table.add_row(snapshot.exercise, snapshot.short, servers,
                      f"{snapshot.size / 1e6:.0f} MB",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(snapshot.made)),
                      states[snapshot.key])
    out.print(table)


def _snapshot_state(snapshot: Snapshot, current: dict[str, str]) -> str:
    """current (the next start uses it), stale (its exercise or base image changed since),
    or incomplete (an image is missing: the next start makes it again)."""
    if not snapshot.complete:
        return "incomplete"
    return "current" if current.get(snapshot.exercise) == snapshot.key else "stale"
