"""The CLI holds no policy and no state between invocations.

Which target a lab runs on is the library's call (`fleet.load_lab`); the global options belong
to one invocation, so a second `lab` run in the same process never sees the first one's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lab.cli
from lab.cli import app
from lab.fleet import load_lab
from lab.state import ServerRecord, State

runner = CliRunner(env={"LAB_FILE": None})
LAB_YML = "name: demo\nservers: {web: {}}\n"


def write_lab(directory: Path, name: str = "demo") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lab.yml"
    path.write_text(LAB_YML.replace("demo", name))
    return path


def test_a_lab_follows_the_target_its_servers_run_on(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    assert load_lab(path).target == "docker"
    config = load_lab(path)
    State(config.state_dir).save(ServerRecord("web-1", "web", "vagrant"))
    assert load_lab(path).target == "vagrant"
    assert load_lab(path, target="docker").target == "docker"


def test_servers_on_two_targets_leave_lab_yml_in_charge(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    state = State(load_lab(path).state_dir)
    state.save(ServerRecord("web-1", "web", "vagrant"))
    state.save(ServerRecord("web-2", "web", "docker"))
    assert load_lab(path).target == "docker"


def test_the_file_option_of_one_run_does_not_leak_into_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lab(tmp_path / "other", name="other")
    write_lab(tmp_path, name="here")
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["-f", "other/lab.yml", "history", "--json"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "other" / ".lab").is_dir()
    second = runner.invoke(app, ["history", "--json"])
    assert second.exit_code == 0, second.output
    assert (tmp_path / ".lab").is_dir()


def test_no_cli_module_keeps_mutable_state_at_module_level() -> None:
    """Module-level names in lab/cli are constants, apps, consoles and type aliases only."""
    allowed_calls = {"Typer", "Console", "TypeVar", "Annotated"}
    for path in Path(lab.cli.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
                func = node.value.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert name in allowed_calls, f"{path.name}:{node.lineno} makes a {name}()"
