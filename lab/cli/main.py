"""The ``lab`` program: its global options and its command groups, put together.

A new command group is a module here with its own ``app = typer.Typer(...)`` and one line
below: top-level commands are merged in, subcommand groups are added under their name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab.cli import aws, cache, classroom, exercise, image, lab, release
from lab.cli.base import Globals, stop_on_signals
from lab.cli.output import reflow
from lab.config import CONFIG_FILE

app = typer.Typer(
    name="lab",
    add_completion=False,
    help=(
        "Disposable, immutable servers on your laptop: build a new server, test it, put it into "
        "rotation slowly, throw the old one away.\n\n"
        "Start with:  lab init demo && cd demo && lab up && lab status"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Top-level commands (`lab up`, `lab release`, ...), in the order `lab --help` lists them.
for group in (lab.app, release.app):
    app.registered_commands += group.registered_commands
# Subcommand groups (`lab image build`).
app.add_typer(image.app, name="image")
app.add_typer(exercise.app, name="exercise")
app.add_typer(cache.app, name="cache")
app.add_typer(aws.app, name="aws")
app.add_typer(classroom.app, name="class")


@app.callback()
def _global(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", "-f", envvar="LAB_FILE",
                                       help="The lab's lab.yml.")] = Path(CONFIG_FILE),
    show_traceback: Annotated[bool, typer.Option("--traceback",
                                                 help="Show tracebacks of internal errors.")]
    = False,
) -> None:
    ctx.obj = Globals(file=file, show_traceback=show_traceback)


def _reflow_help(typer_app: typer.Typer) -> None:
    """Give every command its docstring as help, reflowed for the terminal (see `reflow`)."""
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            command.help = reflow(command.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def main() -> None:
    stop_on_signals()
    app()
