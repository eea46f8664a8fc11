"""Each exit status from a real cause, through the real CLI: 3, 70 and 130.

Exit 3 (a missing prerequisite) comes from an engine that does not answer; 70 (a bug in lab)
and 130 (Ctrl-C) from the fake target of ``release_fakes``, registered by name as a real
target is, raising inside `lab up` where a plugin's bug or the user's Ctrl-C would land.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from release_fakes import FakeTarget, World, interrupt
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ExitStatus
from lab.events import Event, Listener, ignore
from lab.state import ServerRecord
from lab.targets.base import ServerSpec

runner = CliRunner(env={"LAB_FILE": None})
LAB_YML = "name: exits\ntarget: {target}\nservers:\n  web: {{count: 2}}\n"


@pytest.fixture
def world(world: World, tmp_path: Path) -> World:
    """conftest's fake world (internal-error logs kept in ``tmp_path``), with a lab on it."""
    (tmp_path / "lab.yml").write_text(LAB_YML.format(target="fake"))
    return world


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def last_line(stderr: str) -> str:
    """The command's verdict, after the progress lines it printed while it worked."""
    assert "Traceback" not in stderr
    return stderr.splitlines()[-1]


@pytest.mark.parametrize("command", [["up"], ["status"], ["doctor"]])
def test_no_engine_is_a_missing_prerequisite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    (tmp_path / "lab.yml").write_text(LAB_YML.format(target="docker"))
    result = runner.invoke(app, command)
    assert result.exit_code == ExitStatus.MISSING_PREREQUISITE == 3, result.output
    if command != ["doctor"]:  # doctor prints its table of checks instead
        assert "no Docker engine answers" in one_line(result.stderr)
        assert "lab doctor" in result.stderr
    assert "Traceback" not in result.output


def test_a_bug_is_exit_70_with_its_traceback_in_a_log(world: World, tmp_path: Path) -> None:
    def bug() -> None:
        raise RuntimeError("a plugin's bug")

    world.when("target.create web-1 web-2", bug)
    result = runner.invoke(app, ["up"])
    assert result.exit_code == ExitStatus.INTERNAL == 70, result.output
    line = last_line(result.stderr)
    assert line.startswith("internal error (a bug in lab): RuntimeError(\"a plugin's bug\")")
    log = Path(line.rsplit("traceback written to ", 1)[1])
    assert log.parent == tmp_path and "Traceback" in log.read_text()
    assert "Traceback" not in result.output


def test_traceback_option_shows_the_bug_itself(world: World) -> None:
    def bug() -> None:
        raise RuntimeError("a plugin's bug")

    world.when("target.create web-1 web-2", bug)
    result = runner.invoke(app, ["--traceback", "up"])
    assert isinstance(result.exception, RuntimeError)


def interrupt_after_first_created(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the fake makes its second server, the first one made."""
    create = FakeTarget.create

    def interrupted(self: FakeTarget, specs: list[ServerSpec],
                    on_event: Listener = ignore) -> list[ServerRecord]:
        def listen(event: Event) -> None:
            on_event(event)
            if event.kind == "created":
                world.calls.append(f"interrupted with {' '.join(sorted(world.servers))}")
                interrupt()

        return create(self, specs, listen)

    monkeypatch.setattr(FakeTarget, "create", interrupted)


def interrupt_while_waiting_ready(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while `lab up` waits for the servers it made to be ready."""
    def interrupted(self: FakeTarget, servers: list[ServerRecord],
                    on_event: Listener = ignore) -> None:
        world.calls.append(f"interrupted with {' '.join(sorted(world.servers))}")
        interrupt()

    monkeypatch.setattr(FakeTarget, "wait_ready", interrupted)


@pytest.mark.parametrize(("when", "made"), [(interrupt_after_first_created, "web-1"),
                                            (interrupt_while_waiting_ready, "web-1 web-2")])
def test_ctrl_c_is_exit_130_after_clean_up(world: World, monkeypatch: pytest.MonkeyPatch,
                                           when: Callable[[World, pytest.MonkeyPatch], None],
                                           made: str) -> None:
    when(world, monkeypatch)
    result = runner.invoke(app, ["up"])
    assert result.exit_code == ExitStatus.INTERRUPTED == 130, result.output
    assert last_line(result.stderr) == "interrupted; cleaned up what this command had started"
    # Ctrl-C came with servers made, and none of them is left.
    assert f"interrupted with {made}" in world.calls, world.calls
    assert world.servers == {}, "what `lab up` was making is left behind"
