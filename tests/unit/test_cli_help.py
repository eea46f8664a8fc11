"""`--help` teaches: every command explains itself in paragraphs that wrap cleanly."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.cli.image import app as image_app
from lab.cli.output import reflow as _reflow

runner = CliRunner(env={"LAB_FILE": None, "COLUMNS": "80", "TERM": "dumb"})
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


def test_reflow_joins_the_lines_of_a_paragraph_and_keeps_paragraphs_apart() -> None:
    doc = """First line
    goes on here.

    Example:  lab up
    """
    assert _reflow(doc) == "First line goes on here.\n\nExample:  lab up"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_a_summary(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: lab {command}" in result.stdout
    summary = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == command)
    assert summary.help and "\n" not in summary.help.split("\n\n")[0]


def test_a_long_paragraph_wraps_at_the_terminal_not_at_the_source() -> None:
    result = runner.invoke(app, ["release", "--help"])
    text = " ".join(result.stdout.split())
    assert "then get lab.yml's release steps of traffic while a probe watches" in text
    # The source's line break after "steps of" would leave it alone on a line.
    assert "steps of" not in [line.strip() for line in result.stdout.splitlines()]


def test_image_build_help_is_reflowed_too() -> None:
    build = image_app.registered_commands[0]
    assert build.help and "\n" not in build.help.split("\n\n")[0]
