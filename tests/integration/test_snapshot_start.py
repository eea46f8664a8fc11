"""Start snapshots on the real engine (lab.course.snapshots), with exercise 04's start: up,
provision, then a change made by hand.

Its first start is made the usual way and kept; a second workspace starts from the snapshot
without running Ansible, writes the logbook the first wrote, and its check says the same
first feedback; a changed exercise file makes the next reset provision again and replace the
snapshot; `lab exercise snapshots --remove` leaves no image of it.

The exercise is a copy of 04 under a number of its own (LAB_COURSE): its snapshots are this
test's alone, whatever else the engine holds. One test, steps in order: each builds on the
last, and the whole costs about two usual starts.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound
from labhelpers import first_feedback, lab_command, unique_lab_name

import lab.provision
from lab.course import snapshots
from lab.course.exercises import find_exercise
from lab.course.grader import check
from lab.course.workspace import Workspace, reset, start
from lab.events import Event
from lab.fleet import Fleet
from lab.state import State

EXERCISE = 41
FOLDER = "41-drift-snapshot"


@pytest.fixture
def course(tmp_path: Path, docker_client: docker.DockerClient,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Exercise 04 as exercise 41 of a course of its own; its workspaces' servers and its
    snapshots removed at the end, whatever happened."""
    folder = tmp_path / "course" / FOLDER
    shutil.copytree(find_exercise(4).folder, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    monkeypatch.delenv(snapshots.OFF, raising=False)
    try:
        yield folder
    finally:
        for state in (tmp_path / "ws").glob("*/.lab"):
            with contextlib.suppress(Exception):
                config = Workspace(state.parent, find_exercise(EXERCISE)).start_config()
                with Fleet(config) as fleet:
                    fleet.destroy()
        for image in docker_client.images.list(
                filters={"label": f"{snapshots.PREFIX}exercise={FOLDER}"}):
            for tag in image.tags:
                with contextlib.suppress(ImageNotFound):
                    docker_client.images.remove(tag, force=True)


def ours(client: docker.DockerClient) -> list[snapshots.Snapshot]:
    return [s for s in snapshots.listing(client) if s.exercise == FOLDER]


def logbook(workspace: Workspace) -> list[tuple[str | None, str]]:
    return [(e.server, str(e.kind)) for e in State(workspace.directory / ".lab").events()]


def test_a_start_kept_as_a_snapshot_starts_the_next_without_ansible_and_checks_the_same(
        course: Path, tmp_path: Path, docker_client: docker.DockerClient,
        test_run_label: str, monkeypatch: pytest.MonkeyPatch) -> None:
    playbooks: list[str] = []  # each Ansible run, as provision starts it
    real_run = lab.provision.run_playbook

    def counted(playbook: Path, *args: object, **kwargs: object) -> object:
        playbooks.append(playbook.name)
        return real_run(playbook, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lab.provision, "run_playbook", counted)

    # The first start: made the usual way, then kept.
    said: list[Event] = []
    first = start(EXERCISE, tmp_path / "ws" / "a", unique_lab_name(), said.append)
    assert playbooks == ["web.yml"]
    assert any("start snapshot" in e.message and "made" in e.message for e in said)
    [kept] = ours(docker_client)
    assert kept.complete and kept.servers == ("web-1",) and kept.again == []
    image = docker_client.images.get(kept.images["web-1"].tag)
    assert image.labels[test_run_label.split("=")[0]] == test_run_label.split("=")[1]

    # The second: from the snapshot, no Ansible, the same logbook and the same feedback.
    said.clear()
    second = start(EXERCISE, tmp_path / "ws" / "b", unique_lab_name(), said.append)
    assert playbooks == ["web.yml"], "the start from a snapshot ran Ansible"
    assert not (second.directory / ".lab" / "runs").exists()
    assert any(e.message.startswith(f"from start snapshot {kept.short}") for e in said)
    assert logbook(second) == logbook(first) == [
        ("web-1", "named"), ("web-1", "created"), ("web-1", "ready"), ("web-1", "provisioned")]
    feedback = first_feedback(check(second))
    assert feedback == first_feedback(check(first))
    assert find_exercise(EXERCISE).spec.start_feedback in feedback

    # A changed exercise file: the next reset provisions again and replaces the snapshot.
    playbook = course / "start" / "playbooks" / "web.yml"
    playbook.write_text(playbook.read_text() + "\n# changed by the test\n")
    playbooks.clear()
    reset(second)
    assert playbooks == ["web.yml"]
    [remade] = ours(docker_client)
    assert remade.key != kept.key and remade.complete
    with pytest.raises(ImageNotFound):  # the old one went: no server runs from it now
        docker_client.images.get(kept.images["web-1"].tag)

    # Listed, then removed through the CLI: no image left.
    listed = _lab("exercise", "snapshots", str(EXERCISE), "--json")
    assert [(s["key"], s["state"]) for s in json.loads(listed)] == [(remade.key, "current")]
    removed = json.loads(_lab("exercise", "snapshots", str(EXERCISE), "--remove", "--json"))
    assert removed == {"removed": [remade.images["web-1"].tag], "kept": {}}
    assert docker_client.images.list(
        filters={"label": f"{snapshots.PREFIX}exercise={FOLDER}"}) == []


def _lab(*args: str) -> str:
    result = subprocess.run(lab_command(*args), capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout
