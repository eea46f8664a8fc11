"""A class of three workspaces on the real engine: `lab class up` at exercise 1, a real check
in one of them, reset of one student (also solved through an exercise), and `lab class
destroy` finding every server and network of the class by label, also a workspace's whose
folder was deleted.

One class for the module (the tests run in order and build on each other), driven through
the CLI as an instructor runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from labhelpers import TIMEOUT, lab_command

from lab.classroom.config import Classroom, load_class
from lab.classroom.membership import find, workspace_file
from lab.classroom.seats import lab_names
from lab.classroom.workspaces import destroy
from lab.course.exercises import find_exercise

STUDENTS = ["alice", "bob", "carol"]
STRAY = "dave"  # whose folder holds a stray file: his start fails, the others' must not


def lab(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab_command(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class Class:
    room: Classroom
    up: list[dict]  # `lab class up --json`
    client: docker.DockerClient

    @property
    def labs(self) -> dict[str, str]:
        return lab_names(self.room.spec)

    def containers(self, student: str) -> list:
        return self.client.containers.list(
            all=True, filters={"label": f"lab.name={self.labs[student]}"}, ignore_removed=True)

    def networks(self, student: str) -> list:
        return self.client.networks.list(filters={"label": f"lab.name={self.labs[student]}"})


@pytest.fixture(scope="module")
def klass(tmp_path_factory: pytest.TempPathFactory,
          docker_client: docker.DockerClient) -> Iterator[Class]:
    directory = tmp_path_factory.mktemp("class") / "workshop"
    ok(lab("class", "init", str(directory), "--students", ",".join([*STUDENTS, STRAY]),
           "--exercises", "1-2"))
    room = load_class(directory)
    (directory / STRAY).mkdir()
    (directory / STRAY / "mine.txt").write_text("not a workspace\n")
    try:
        result = lab("class", "up", str(directory), "--exercise", "1", "--json",
                     timeout=3 * TIMEOUT)
        assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
        yield Class(room, json.loads(result.stdout), docker_client)
    finally:
        destroy(room)


def test_a_failed_start_is_reported_and_the_others_go_on(klass: Class) -> None:
    [stray] = [o for o in klass.up if o["student"] == STRAY]
    assert stray["status"] == "failed"
    assert "not empty and not an exercise workspace" in stray["problem"]
    assert (klass.room.workspace(STRAY) / "mine.txt").is_file()
    assert [o["status"] for o in klass.up if o["student"] != STRAY] == ["ready"] * 3


def test_up_makes_a_workspace_per_student_apart_from_each_other(klass: Class) -> None:
    ready = [o for o in klass.up if o["student"] != STRAY]
    assert [o["student"] for o in ready] == STUDENTS
    assert {o["status"] for o in ready} == {"ready"}
    assert len({o["lab"] for o in ready}) == 3
    assert len({o["listen"] for o in ready}) == 3
    published: list[str] = []
    for outcome in ready:
        student = outcome["student"]
        workspace = klass.room.workspace(student)
        assert (workspace / "lab.yml").read_text().count(f"name: {outcome['lab']}") == 1
        joined = find(workspace)
        assert joined is not None
        assert (joined.name, joined.code) == (student, klass.room.spec.code)
        assert joined.url == f"http://127.0.0.1:{klass.room.spec.serve.port}"
        [container] = klass.containers(student)
        assert container.status == "running"
        for bindings in container.ports.values():
            published += [f"{b['HostIp']}:{b['HostPort']}" for b in bindings]
    assert len(published) == len(set(published)) == 6  # 22 and 80 of each, none shared
    assert all(address.startswith("127.0.0.1:") for address in published)


def test_up_again_skips_the_workspaces_already_there(klass: Class) -> None:
    before = {s: klass.containers(s)[0].id for s in STUDENTS}
    again = json.loads(ok(lab("class", "up", str(klass.room.directory), "--json",
                              "--students", ",".join(STUDENTS))).stdout)
    assert {o["status"] for o in again} == {"skipped"}
    assert {s: klass.containers(s)[0].id for s in STUDENTS} == before


def test_a_real_check_in_a_workspace(klass: Class) -> None:
    result = lab("exercise", "check", "--json", cwd=klass.room.workspace("bob"))
    assert result.returncode == 1, result.stderr
    shown = json.loads(result.stdout)
    assert shown["exercise"] == find_exercise(1).id
    failed = [g for g in shown["goals"] if g["status"] == "FAIL"]
    assert find_exercise(1).spec.start_feedback in failed[0]["found"]


def test_reset_of_one_student_restores_the_start_and_keeps_their_files(klass: Class) -> None:
    alice = klass.room.workspace("alice")
    start_yml = (alice / "lab.yml").read_text()
    (alice / "notes.txt").write_text("my notes\n")
    (alice / "lab.yml").write_text("servers: [broken\n")
    others = {s: klass.containers(s)[0].id for s in ("bob", "carol")}
    before = klass.containers("alice")[0].id
    result = ok(lab("class", "reset", "alice", str(klass.room.directory)))
    assert "exercise 01 at the start" in result.stdout
    assert (alice / "lab.yml").read_text() == start_yml
    assert not (alice / "notes.txt").exists()
    [backup] = (alice / ".lab" / "backups").iterdir()
    assert (backup / "notes.txt").read_text() == "my notes\n"
    assert (backup / "lab.yml").read_text() == "servers: [broken\n"
    [container] = klass.containers("alice")
    assert container.id != before and container.status == "running"
    assert {s: klass.containers(s)[0].id for s in ("bob", "carol")} == others
    assert workspace_file(alice).is_file()  # still in the class
    assert find(alice) is not None and find(alice).name == "alice"


def test_reset_solved_through_an_exercise_lets_the_student_catch_up(klass: Class) -> None:
    carol = klass.room.workspace("carol")
    ok(lab("class", "reset", "carol", str(klass.room.directory), "--solved-through", "1"))
    result = lab("exercise", "check", "--json", cwd=carol)
    assert result.returncode == 0, result.stdout
    assert {g["status"] for g in json.loads(result.stdout)["goals"]} == {"pass"}


def test_destroy_finds_every_server_by_label_also_of_a_deleted_folder(klass: Class) -> None:
    shutil.rmtree(klass.room.workspace("bob"))
    assert all(klass.containers(s) and klass.networks(s) for s in STUDENTS)
    result = ok(lab("class", "destroy", str(klass.room.directory)))
    assert "removed 3 servers of 3 labs" in result.stdout
    for student in STUDENTS:
        assert klass.containers(student) == []
        assert klass.networks(student) == []
    assert (klass.room.workspace("alice") / "lab.yml").is_file()  # files kept without --files
