"""What every command shares (lab/cli/base.py): the lab it acts on, and the error mapping when a
command is called on its own, without the `lab` group's options."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from release_fakes import World
from typer.testing import CliRunner

from lab.cli import app
from lab.cli.base import Globals, current, handled
from lab.errors import (
    CheckFailed,
    ConfigError,
    ExitStatus,
    PrerequisiteError,
    TargetError,
    UsageError,
)

runner = CliRunner(env={"LAB_FILE": None})


def test_up_target_overrides_lab_yml(world: World, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab up --target X` runs on X whatever lab.yml says (here: a docker with no engine)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    (tmp_path / "lab.yml").write_text("name: over\ntarget: docker\nservers: {web: {count: 2}}\n")

    result = runner.invoke(app, ["up", "--target", "fake"])

    assert result.exit_code == 0, result.output
    assert sorted(world.servers) == ["web-1", "web-2"]


def test_a_command_called_without_the_lab_group_has_the_default_options() -> None:
    assert current(None) == Globals(Path("lab.yml"), show_traceback=False)


@pytest.mark.parametrize(("raised", "status"), [
    (RuntimeError("a bug"), ExitStatus.INTERNAL),
    (PrerequisiteError("no engine"), ExitStatus.MISSING_PREREQUISITE),
    (ConfigError("lab.yml: name: ..."), ExitStatus.BAD_INPUT),
    (UsageError("no server 'web-9'"), ExitStatus.BAD_INPUT),
    (TargetError("the engine refused"), ExitStatus.CHECK_FAILED),
    (CheckFailed("verify failed"), ExitStatus.CHECK_FAILED),
    (KeyboardInterrupt(), ExitStatus.INTERRUPTED),
])
def test_a_command_called_on_its_own_maps_errors_to_exit_statuses(
        world: World, raised: BaseException, status: ExitStatus) -> None:
    """From Python (no `lab` group, no ctx): each failure still becomes its exit status."""
    @handled
    def command() -> None:
        raise raised

    with pytest.raises(typer.Exit) as caught:
        command()

    assert caught.value.exit_code == status
    assert int(status) == {"OK": 0, "CHECK_FAILED": 1, "BAD_INPUT": 2, "MISSING_PREREQUISITE": 3,
                           "INTERNAL": 70, "INTERRUPTED": 130}[status.name]  # README's table
