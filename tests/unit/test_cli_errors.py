"""The CLI on bad input: exit status 2, one line on stderr, no traceback, nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app

# Typer's CliRunner keeps stderr apart from stdout (result.stderr), so no mix_stderr is needed.
runner = CliRunner(env={"LAB_FILE": None})

BAD_FILES = {
    "count-zero": ("name: demo\nservers:\n  web:\n    count: 0\n",
                   "lab.yml: servers.web.count: must be >= 1, got 0"),
    "unknown-top-key": ("name: demo\nservers: {web: {}}\nsevrers: 1\n", "lab.yml: sevrers: "),
    "unknown-nested-key": ("name: demo\nservers: {web: {cuont: 2}}\n",
                           "lab.yml: servers.web.cuont: unknown field"),
    "shell-name": ("name: 'a;rm -rf /'\nservers: {web: {}}\n", "lab.yml: name: "),
    "missing-servers": ("name: demo\n", "lab.yml: servers: is required"),
    "routes-to-nothing": ("name: demo\nservers: {web: {}}\nbalancer: {routes_to: db}\n",
                          "lab.yml: balancer.routes_to: must name a role"),
    "steps-not-100": ("name: demo\nservers: {web: {}}\nrelease: {steps: [10, 50]}\n",
                      "lab.yml: release.steps: must rise strictly and end at 100"),
    "missing-playbook": ("name: demo\nservers: {web: {playbook: nope.yml}}\n",
                         "lab.yml: servers.web.playbook: file not found: nope.yml"),
    "invalid-yaml": ("name: [demo\n", "lab.yml:2:1: invalid YAML: "),
    "list": ("- a\n- b\n", "lab.yml: must be a mapping of fields, got a list"),
    "empty": ("", "lab.yml: must be a mapping of fields, got nothing"),
    # longer than any terminal: must still come out as one line
    "long-message": ("name: demo\nservers: {web: {}}\n" + "x" * 300 + ": 1\n", "lab.yml: xxxx"),
}

# Every command that reads lab.yml, with the arguments it needs (a test below keeps this whole).
COMMANDS = {
    "up": ["up"],
    "status": ["status"],
    "status-json": ["status", "--json"],
    "destroy": ["destroy"],
    "ssh": ["ssh", "web-1", "--", "true"],
    "provision": ["provision"],
    "drift": ["drift"],
    "verify": ["verify"],
    "test": ["test"],
    "release": ["release"],
    "rollback": ["rollback"],
    "promote": ["promote"],
    "abort": ["abort"],
    "history": ["history"],
    "report": ["report"],
    "bake": ["bake"],
    "image-build": ["image", "build"],
}
# Commands that never read a lab.yml: init writes one, demo makes its own, doctor checks
# the machine.
NO_LAB_YML = {"init", "demo", "doctor"}


def test_every_command_that_reads_lab_yml_is_tried_on_bad_ones() -> None:
    names = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    tried = {argv[0] for argv in COMMANDS.values()}
    assert names - NO_LAB_YML <= tried, names - NO_LAB_YML - tried


def assert_one_line_error(exit_code: int, stdout: str, stderr: str, expected: str) -> None:
    lines = stderr.splitlines()
    assert exit_code == 2, (exit_code, stdout, stderr)
    assert len(lines) == 1, f"stderr is not one line: {stderr!r}"
    assert expected in lines[0], lines[0]
    assert "Traceback" not in stdout + stderr
    assert stdout == ""


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
@pytest.mark.parametrize(
    ("text", "expected"), list(BAD_FILES.values()), ids=list(BAD_FILES)
)
def test_bad_lab_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str],
                     text: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text(text)
    result = runner.invoke(app, command)
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, expected)
    assert not (tmp_path / ".lab").exists(), "a bad lab.yml must not create .lab"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yml"]


def test_no_lab_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["up"])
    assert_one_line_error(result.exit_code, result.stdout, result.stderr,
                          "lab.yml: not found (run `lab init`")
    assert list(tmp_path.iterdir()) == []


def test_file_option_names_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "lab.yml").write_text("name: demo\nservers: {web: {count: 0}}\n")
    result = runner.invoke(app, ["-f", "elsewhere/lab.yml", "status"])
    assert_one_line_error(result.exit_code, result.stdout, result.stderr,
                          "elsewhere/lab.yml: servers.web.count: must be >= 1, got 0")
    assert not (tmp_path / ".lab").exists()
    assert not (tmp_path / "elsewhere" / ".lab").exists()


def test_init_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text("# mine\n")
    result = runner.invoke(app, ["init", "."])
    assert_one_line_error(result.exit_code, result.stdout, result.stderr,
                          "already exists (use --force to overwrite)")
    assert (tmp_path / "lab.yml").read_text() == "# mine\n"
    assert not (tmp_path / "playbooks").exists()


def test_init_writes_a_lab_that_status_accepts(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "my-demo"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "my-demo" / "lab.yml").is_file()
    assert "next: cd my-demo && lab up" in result.stdout


def test_init_with_bad_name_is_a_usage_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where an internal-error log goes
    result = runner.invoke(app, ["init", "d", "--name", "A;rm -rf /"])
    assert not (tmp_path / "d").exists()
    assert result.exit_code == 2, result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("key", ["[/x]", "[bold]oops"])
def test_error_text_is_not_rich_markup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       key: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text(f'name: demo\nservers: {{web: {{}}}}\n"{key}": 1\n')
    result = runner.invoke(app, ["status"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, f"lab.yml: {key}: ")


def test_real_process_prints_one_line(tmp_path: Path) -> None:
    """The same through a real process: stderr is a pipe, not CliRunner's buffer."""
    (tmp_path / "lab.yml").write_text("name: demo\nservers:\n  web:\n    count: 0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_FILE", "FORCE_COLOR")}
    result = subprocess.run(
        [sys.executable, "-m", "lab", "up"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env=env, check=False,
    )
    assert_one_line_error(result.returncode, result.stdout, result.stderr,
                          "lab.yml: servers.web.count: must be >= 1, got 0")
    assert result.stderr == "error: lab.yml: servers.web.count: must be >= 1, got 0\n"
    assert not (tmp_path / ".lab").exists()
