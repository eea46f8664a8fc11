"""``lab class``: an instructor's class (lab/classroom/): workspaces, reset, progress page."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run a class: one workspace per student, one-command reset, and a live "
                       "page of who is stuck.", no_args_is_help=True)

# Workspaces: init, up, reset, destroy.

# Progress: serve, join, status.
