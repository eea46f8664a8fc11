"""The grader's judgements of *how* a goal was met, without servers: a ``changed_when`` that
cannot tell what its task did, a task that did its work on a fresh server and said it changed
nothing, the throwaway lab's name, the logbook's last `lab provision`, and exercise 08's tests
as given. (With servers: every exercise's wrong answers in tests/integration/
test_exercises.py.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from lab.config import LAB_NAME
from lab.course.exercises import find_exercise
from lab.course.grader import (
    Attempt,
    TaskResult,
    hidden_changes,
    quiet_changed_when,
    task_results,
    throwaway_name,
)
from lab.provision import RunResult
from lab.state import EventKind, Stage, State


@pytest.mark.parametrize(("task", "why"), [
    ({"changed_when": False}, "never true"),
    (yaml.safe_load("changed_when: no"), "never true"),
    ({"changed_when": 0}, "never true"),
    ({"changed_when": "False"}, "never true"),
    ({"changed_when": "{{ false }}"}, "never true"),
    ({"changed_when": "1 == 2"}, "never true"),
    ({"changed_when": ["r.rc == 0", "false"], "register": "r"}, "never true"),
    ({"changed_when": "r.rc == 0"}, "the task has no `register:`"),
    ({"changed_when": "inventory_hostname == 'x'", "register": "r"},
     "no variable its `register:` names"),
    ({"changed_when": "r.rc == 42", "register": "r"}, ""),  # reads it: only a run tells
    ({"changed_when": "'0 newly installed' not in out.stdout", "register": "out"}, ""),
    ({"changed_when": True}, ""),  # always changed: the second run says so
    ({"changed_when": []}, ""),  # Ansible takes the module's word
    ({"changed_when": "{{ 1 == "}, ""),  # does not parse: Ansible fails the task
    ({"name": "no changed_when"}, ""),
])
def test_a_changed_when_that_cannot_tell_what_the_task_did(task: dict[str, Any],
                                                           why: str) -> None:
    found = quiet_changed_when(task)
    assert (why in found) if why else found == ""


def test_a_blocks_changed_when_reaches_its_tasks(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text(
        "- hosts: web\n  tasks:\n    - block:\n        - name: stamp\n"
        "          ansible.builtin.shell: echo x > /x\n      changed_when: false\n")
    attempt = Attempt.__new__(Attempt)
    attempt.directory = tmp_path
    assert attempt.tasks("web.yml") == [
        {"changed_when": False, "name": "stamp", "ansible.builtin.shell": "echo x > /x"}]


class Stub:
    """What hidden_changes asks an Attempt for: the playbook's tasks, the fresh run."""

    def __init__(self, tasks: list[dict[str, Any]], results: list[TaskResult]) -> None:
        self._tasks, self.rebuilt = tasks, 0
        self._rebuild = SimpleNamespace(results=lambda phase="provision": results)

    def tasks(self, path: str) -> list[dict[str, Any]]:
        return self._tasks

    def rebuild(self) -> Any:
        self.rebuilt += 1
        return self._rebuild


SHELL = {"name": "stamp", "ansible.builtin.shell": "echo x > /x", "register": "r",
         "changed_when": "r.stdout != ''"}


def test_a_silenced_task_is_named_from_the_playbook_before_any_server_is_made() -> None:
    attempt = Stub([{"name": "stamp", "shell": "echo", "changed_when": False}], [])
    found = hidden_changes(attempt, "web.yml")  # type: ignore[arg-type]
    assert found is not None and attempt.rebuilt == 0
    assert "'stamp' says `changed_when: false`, and it is never true" in found.found
    assert found.next.startswith("remove `changed_when` from 'stamp'")


def test_a_task_that_did_its_work_on_a_fresh_server_and_said_nothing_is_hiding_it() -> None:
    ran = TaskResult("web-1", "stamp", "shell", "ok", {"cmd": "echo x > /x", "rc": 0})
    found = hidden_changes(Stub([SHELL], [ran]), "web.yml")  # type: ignore[arg-type]
    assert found is not None
    assert "on a fresh server, 'stamp' did its work (`echo x > /x`) and said it changed " \
           "nothing" in found.found


@pytest.mark.parametrize("result", [
    TaskResult("web-1", "stamp", "shell", "changed", {"cmd": "echo x > /x", "rc": 0}),
    TaskResult("web-1", "stamp", "command", "ok",  # `creates:` kept it from running
               {"msg": "Did not run command since '/x' exists", "rc": 0}),
    TaskResult("web-1", "stamp", "shell", "skipped", {"skipped": True}),
    TaskResult("web-1", "page", "copy", "ok", {"dest": "/x"}),  # no changed_when: its word
])
def test_a_task_that_said_its_change_or_did_nothing_hides_nothing(result: TaskResult) -> None:
    assert hidden_changes(Stub([SHELL], [result]), "web.yml") is None  # type: ignore[arg-type]


def test_what_each_task_did_is_read_from_the_runs_events(tmp_path: Path) -> None:
    events = tmp_path / "run" / "artifacts" / "id" / "job_events"
    events.mkdir(parents=True)
    written = [
        ("runner_on_start", {"task": "Install nginx"}),
        ("runner_on_ok", {"task": "Install nginx", "task_action": "ansible.builtin.apt",
                          "host": "web-1", "res": {"changed": True}}),
        ("runner_on_ok", {"task": "stamp", "task_action": "ansible.builtin.shell",
                          "host": "web-1", "res": {"changed": False, "cmd": "echo x"}}),
        ("runner_on_failed", {"task": "broken", "task_action": "ansible.builtin.command",
                              "host": "web-1", "ignore_errors": True, "res": {}}),
    ]
    for number, (kind, data) in enumerate(written, start=1):
        # ansible-runner's names: counter-uuid.json; 10 sorts after 9, as a number
        (events / f"{number * 5}-uuid.json").write_text(
            json.dumps({"event": kind, "event_data": data}))
    run = RunResult("id", tmp_path / "run", Path("web.yml"))
    assert [(r.task, r.action, r.status, r.ran) for r in task_results([run])] == [
        ("Install nginx", "apt", "changed", True), ("stamp", "shell", "ok", True),
        ("broken", "command", "failed", True)]  # failed, if ignored: it hid no change


def test_the_throwaway_lab_has_a_name_of_its_own_however_long_the_attendees() -> None:
    assert throwaway_name("ex-w02-8b79ac") == "ex-w02-8b79ac-check"
    long_one, long_two = "ex-a-very-long-folder-nam-8b79ac", "ex-a-very-long-folder-nam-3c1f00"
    shortened = {throwaway_name(long_one), throwaway_name(long_two)}
    assert len(shortened) == 2
    assert all(len(n) <= 32 and LAB_NAME.match(n) and n.endswith("-check") for n in shortened)


def test_the_last_provision_counts_from_the_servers_creation(tmp_path: Path) -> None:
    state = State(tmp_path)
    attempt = Attempt.__new__(Attempt)
    attempt.fleet = SimpleNamespace(state=state)
    assert attempt.last_provisioned("web-1") is None
    state.log(EventKind.CREATED, "web-1", "lab/base on docker")
    state.log(Stage.PROVISIONED, "web-1", "{}")
    state.log(Stage.PROVISIONED, "web-2", "{}")
    found = attempt.last_provisioned("web-1")
    assert found is not None and found.server == "web-1"
    state.log(EventKind.CREATED, "web-1", "lab/base on docker")  # made again: starts over
    assert attempt.last_provisioned("web-1") is None


def _web1(installed: bool = True) -> Any:
    return SimpleNamespace(package=lambda name: SimpleNamespace(is_installed=installed))


def test_02_a_web_1_behind_its_playbook_is_told_to_provision_first(tmp_path: Path) -> None:
    provisioned = find_exercise(2).checks["provisioned"]
    (tmp_path / "playbooks").mkdir()
    playbook = tmp_path / "playbooks" / "web.yml"
    playbook.write_text("- hosts: web\n")
    last = SimpleNamespace(at=time.time())
    attempt = SimpleNamespace(directory=tmp_path, server_names=lambda: ["web-1"],
                              host=lambda name: _web1(), last_provisioned=lambda name: last)
    os.utime(playbook, (last.at - 60, last.at - 60))
    assert provisioned(attempt) is None
    os.utime(playbook, (last.at + 60, last.at + 60))
    behind = provisioned(attempt)
    assert "changed after the last `lab provision` on web-1" in behind.found
    assert behind.next.startswith("`lab provision`")
    attempt.last_provisioned = lambda name: None  # installed by hand
    assert "no `lab provision` has finished on it" in provisioned(attempt).found


GIVEN = "def test_a(host):\n    assert host.run('true')\n\n\ndef test_b(host):\n    assert 1\n"


@pytest.mark.parametrize(("tests", "lab_tests", "said"), [
    (GIVEN + "\n# mine\ndef test_c(host):\n    assert 2\n", ["tests/test_web.py"], ""),
    (GIVEN.replace("assert 1", "assert  1  # same code"), ["tests/test_web.py"], ""),
    (GIVEN.split("\n\n\n")[0], ["tests/test_web.py"], "no longer has test_b"),
    (GIVEN.replace("host.run('true')", "True"), ["tests/test_web.py"], "changed test_a"),
    (GIVEN, [], "lab.yml no longer runs tests/test_web.py"),
])
def test_08_the_tests_as_given_still_run(tests: str, lab_tests: list[str], said: str) -> None:
    passes = find_exercise(8).checks["lab_test_passes"]
    attempt = SimpleNamespace(
        config=SimpleNamespace(servers={"web": SimpleNamespace(tests=lab_tests)}),
        started_files=lambda path: GIVEN, read=lambda path: tests,
        rebuild=lambda: SimpleNamespace(report=SimpleNamespace(ok=True), verified=None))
    found = passes(attempt)
    assert (said in found.found) if said else found is None
