"""Workspaces report to their class: real `lab exercise check` and `hint` runs in three
workspaces with the membership `lab class up` writes (url, code, name), a real class server
on 127.0.0.1, and the grid as `lab class status --json` reads it from class.db and as the
page shows it in a real browser. With the class's
server down (refusing, or hanging), a check exits exactly as it does without a class.

Exercise 08 starts without servers, so the failing check and the hint take a second; the
passing check runs its real `lab test` cycle (servers made and destroyed, about a minute).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labhelpers import TIMEOUT, chromium_driver, class_grid_shown, lab_command, unique_lab_name
from selenium.webdriver.support.ui import WebDriverWait

from lab.classroom.config import Classroom, load_class
from lab.classroom.membership import Membership, save, workspace_file
from lab.classroom.store import open_store
from lab.classroom.web import running
from lab.course.exercises import find_exercise

CODE = "k7f3-q9x2"
EXERCISE = find_exercise(8)


@dataclass
class Class:
    classroom: Classroom
    url: str


@pytest.fixture(scope="module")
def the_class(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Class]:
    where = tmp_path_factory.mktemp("class")
    (where / "class.yml").write_text(f"name: workshop\ncode: {CODE}\n"
                                     "students: [alice, bob, carol]\nexercises: [8]\n")
    classroom = load_class(where)
    with running(classroom) as url:
        yield Class(classroom, url)


def lab(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab_command(*args), cwd=directory, capture_output=True, text=True,
                          timeout=TIMEOUT * 2, stdin=subprocess.DEVNULL, check=False)


def workspace(the_class: Class, student: str, *overlays: Path) -> Path:
    """Exercise 08 started for ``student`` (through the CLI), joined to the class as
    `lab class up` joins it, with ``overlays``' files copied over the start's."""
    directory = the_class.classroom.workspace(student)
    started = lab(the_class.classroom.directory, "exercise", "start", "8", str(directory),
                  "--name", unique_lab_name(student[:4].strip("-")))
    assert started.returncode == 0, started.stderr
    for overlay in overlays:
        shutil.copytree(overlay, directory, dirs_exist_ok=True)
    save(Membership(the_class.url, CODE, student), workspace_file(directory))
    return directory


def status(the_class: Class) -> dict:
    shown = lab(the_class.classroom.directory, "class", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_a_class_of_three_through_real_checks(the_class: Class, tmp_path: Path) -> None:
    alice = workspace(the_class, "alice", EXERCISE.wrong_dir("changed-when-false"))
    failed = lab(alice, "exercise", "check")
    assert failed.returncode == 1, failed.stderr

    bob = workspace(the_class, "bob")
    hinted = lab(bob, "exercise", "hint")
    assert hinted.returncode == 0 and "hint 1/" in hinted.stdout, hinted.stderr

    carol = workspace(the_class, "carol", EXERCISE.solution_dir)
    passed = lab(carol, "exercise", "check")
    assert passed.returncode == 0, passed.stdout + passed.stderr

    reports = {r.student: r for r in open_store(the_class.classroom).reports()}
    assert reports["alice"].kind == "check" and reports["alice"].passed is False
    assert reports["alice"].failing == "no_hidden_changes"
    assert "changed_when" in reports["alice"].feedback
    assert [g["status"] for g in reports["alice"].goals] == ["FAIL"] + ["not checked"] * (
        len(EXERCISE.spec.goals) - 1)
    assert reports["bob"].kind == "hint" and reports["bob"].hints == 1
    assert reports["carol"].passed is True and reports["carol"].feedback == ""

    grid = status(the_class)
    cells = {s["student"]: s["cells"]["8"] for s in grid["students"]}
    assert cells["alice"]["state"] == "working" and cells["alice"]["checks"] == 1
    assert cells["bob"]["state"] == "working" and cells["bob"]["hints"] == 1
    assert cells["carol"]["state"] == "passed"
    assert [(s["student"], s["check"]) for s in grid["stuck"]] == [
        ("alice", "no_hidden_changes")]

    # The page, in a real browser, shows the same.
    with chromium_driver(tmp_path / "profile") as browser:
        browser.get(the_class.url)
        WebDriverWait(browser, 20).until(lambda b: len(class_grid_shown(b)) == 3)
        page = {student: cells["8"].split()[0] for student, cells in
                class_grid_shown(browser).items()}
    assert page == {"alice": "working", "bob": "working", "carol": "passed"}


def test_with_the_class_down_a_check_exits_as_before(the_class: Class,
                                                      tmp_path: Path) -> None:
    directory = workspace(the_class, "dan-down", EXERCISE.wrong_dir("changed-when-false"))
    workspace_file(directory).unlink()
    alone = lab(directory, "exercise", "check")
    with socket.socket() as sock:  # bound, never listening: every connection is refused
        sock.bind(("127.0.0.1", 0))
        save(Membership(f"http://127.0.0.1:{sock.getsockname()[1]}", CODE, "dan"),
             workspace_file(directory))
        down = lab(directory, "exercise", "check", "--json")
        shown = lab(directory, "exercise", "check")
    with socket.create_server(("127.0.0.1", 0)) as mute:  # takes the connection, never answers
        save(Membership(f"http://127.0.0.1:{mute.getsockname()[1]}", CODE, "dan"),
             workspace_file(directory))
        hung = lab(directory, "exercise", "check")
    assert alone.returncode == down.returncode == shown.returncode == hung.returncode == 1
    assert shown.stdout == alone.stdout == hung.stdout
    assert json.loads(down.stdout)["goals"][0]["status"] == "FAIL"
    assert "class" not in shown.stderr.lower() and "class" not in hung.stderr.lower()
