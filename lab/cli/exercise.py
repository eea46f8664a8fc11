"""``lab exercise``: the course, one exercise at a time, with a grader that explains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lab.cli.base import current, handled
from lab.cli.output import err, out, print_step, progress
from lab.errors import CheckFailed, UsageError

if TYPE_CHECKING:
    from lab.course.grader import CheckReport
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
    """Make a workspace: the exercise's files, and its servers in the starting state.

    Example:  lab exercise start 1 ~/ex && cd ~/ex
    """
    from lab.classroom.reporter import report_start
    from lab.course.workspace import start as run

    with progress(f"lab exercise start {number}") as listener:
        workspace = run(number, directory, name, listener)
        report_start(workspace, listener)
    exercise = workspace.exercise
    out.print(f"exercise {exercise.number:02d}: {exercise.title} ({exercise.spec.minutes} min)")
    out.print(f"read {exercise.folder / 'README.md'}")
    out.print(f"next: cd {directory} && lab exercise check")


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
    """The next hint of this exercise (each is counted in your progress).

    Example:  lab exercise hint
    """
    from lab.classroom.reporter import report_hint
    from lab.course.grader import hint as next_hint

    workspace = _workspace(ctx)
    step = next_hint(workspace)
    if as_json:
        out.print_json(json.dumps({"exercise": workspace.exercise.id} | step.to_dict()))
    else:
        print_step(step)
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
    exercise = moved.exercise
    out.print(f"exercise {exercise.number:02d}: {exercise.title} ({exercise.spec.minutes} min)")
    out.print(f"read {exercise.folder / 'README.md'}")
    err.print("next: lab exercise check")
