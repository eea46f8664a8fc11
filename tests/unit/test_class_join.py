"""`lab class join` against a real class server on 127.0.0.1, and `lab class status`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.classroom.config import Classroom, load_class
from lab.classroom.membership import Membership, find, user_file, workspace_file
from lab.classroom.store import Report, open_store
from lab.classroom.web import running
from lab.cli import app

runner = CliRunner(env={"LAB_FILE": None, "COLUMNS": "200", "TERM": "dumb"})
CODE = "k7f3-q9x2"


@pytest.fixture
def classroom(tmp_path: Path) -> Classroom:
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "class.yml").write_text(
        f"name: workshop\ncode: {CODE}\nstudents: [alice]\nexercises: [1, 2]\n")
    return load_class(tmp_path / "class")


@pytest.fixture
def url(classroom: Classroom) -> Iterator[str]:
    with running(classroom) as found:
        yield found


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_join_writes_the_users_membership_with_the_servers_token(url: str) -> None:
    result = runner.invoke(app, ["class", "join", url, "--code", CODE, "--name", "dave"])
    assert result.exit_code == 0, result.output
    saved = json.loads(user_file().read_text())
    assert saved["url"] == url and saved["code"] == CODE and saved["name"] == "dave"
    assert saved["token"] and user_file().stat().st_mode & 0o077 == 0
    # Joining again as the same name from the same place keeps the token.
    again = runner.invoke(app, ["class", "join", url + "/", "--code", CODE, "--name", "dave"])
    assert again.exit_code == 0, again.output
    assert json.loads(user_file().read_text())["token"] == saved["token"]


def test_join_for_one_workspace_writes_its_own_file(url: str, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    result = runner.invoke(app, ["class", "join", url, "--code", CODE, "--name", "erin",
                                 "--workspace", str(workspace)])
    assert result.exit_code == 0, result.output
    found = find(workspace)
    assert found is not None and found.name == "erin" and found.url == url
    assert not user_file().exists()


def test_a_wrong_code_is_bad_input(url: str) -> None:
    result = runner.invoke(app, ["class", "join", url, "--code", "guess-1234", "--name", "x"])
    assert result.exit_code == 2
    assert "refused the join code" in result.output and "Traceback" not in result.output
    assert not user_file().exists()


def test_a_name_someone_else_joined_with_is_bad_input(url: str, tmp_path: Path) -> None:
    first = runner.invoke(app, ["class", "join", url, "--code", CODE, "--name", "frank",
                                "--workspace", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    result = runner.invoke(app, ["class", "join", url, "--code", CODE, "--name", "frank"])
    assert result.exit_code == 2 and "frank" in result.output and "choose another" in \
        result.output
    assert not user_file().exists()


def test_a_student_of_class_yml_joins_without_a_token(url: str) -> None:
    result = runner.invoke(app, ["class", "join", url, "--code", CODE, "--name", "alice"])
    assert result.exit_code == 0, result.output
    assert json.loads(user_file().read_text())["token"] is None


def test_an_unreachable_class_is_a_missing_prerequisite() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = runner.invoke(app, ["class", "join", f"http://127.0.0.1:{port}",
                                     "--code", CODE, "--name", "x"])
    assert result.exit_code == 3
    assert "cannot reach the class" in result.output and "lab class serve" in result.output


def test_a_url_that_is_not_http_is_bad_input() -> None:
    result = runner.invoke(app, ["class", "join", "ftp://x", "--code", CODE, "--name", "x"])
    assert result.exit_code == 2 and "URL" in result.output


def test_status_reads_class_db_without_a_server(classroom: Classroom) -> None:
    store = open_store(classroom)
    store.add(Report("alice", 2, "02-servers-as-code", "check", False, failing="provisioned",
                     feedback="nginx is not installed on web-1", hints=2, seconds=600))
    shown = runner.invoke(app, ["class", "status", str(classroom.directory), "--json"])
    assert shown.exit_code == 0, shown.output
    grid = json.loads(shown.stdout)
    assert grid["students"][0]["cells"]["2"]["state"] == "working"
    assert grid["stuck"][0]["student"] == "alice"
    table = runner.invoke(app, ["class", "status", str(classroom.directory)])
    assert table.exit_code == 0
    assert "nginx is not installed on web-1" in table.stdout
    assert "stuck: alice on 02 at provisioned" in table.stdout


def test_status_of_a_folder_without_class_yml_is_bad_input(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["class", "status", str(tmp_path)])
    assert shown.exit_code == 2 and "class.yml" in shown.output


def test_a_class_up_workspace_membership_needs_no_token(url: str, tmp_path: Path) -> None:
    """What `lab class up` writes (url, code, name; no token) is enough to report."""
    from lab.classroom.membership import save
    from lab.classroom.reporter import send

    save(Membership(url, CODE, "alice"), workspace_file(tmp_path / "alice"))
    found = find(tmp_path / "alice")
    assert found is not None and found.token is None
    assert send(found.url, {"code": found.code, "student": found.name, "token": found.token,
                            "exercise": 1, "exercise_id": "01-pet-server", "kind": "start"})
