"""``lab class``: an instructor's class (lab/classroom/): workspaces, reset, progress page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lab.cli.base import handled
from lab.cli.output import err, out
from lab.events import Event

app = typer.Typer(help="Run a class: one workspace per student, one-command reset, and a live "
                       "page of who is stuck.", no_args_is_help=True)

# Workspaces: init, up, reset, destroy.

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
    from lab.classroom.web import is_loopback
    from lab.classroom.web import serve as run

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
    failing the same check longest.

    Example:  lab class status ~/workshop --json
    """
    from lab.classroom.config import load_class
    from lab.classroom.store import class_grid

    grid = class_grid(load_class(directory)).to_dict()
    if as_json:
        out.print_json(json.dumps(grid))
        return
    _print_grid(grid)


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
