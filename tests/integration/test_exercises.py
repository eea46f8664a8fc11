"""Every exercise of the course, proven on real servers: the start fails its check with the
feedback the exercise promises, each wrong answer it lists fails with its own, the solution
passes, and reset brings back the start (files and servers) from a broken workspace.

One workspace per exercise (module-scoped, parametrized: pytest runs one exercise's tests
together), the grader called in-process; one test drives the CLI for exit codes and --json.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from labhelpers import first_feedback, lab_command, unique_lab_name

from lab.course.exercises import Exercise, course
from lab.course.grader import Attempt, check
from lab.course.workspace import Workspace, apply_wrong, reset, solve, start
from lab.fleet import Fleet

# Exercises this module cannot drive, each proven the same four ways by a module of its own:
# 09 runs on AWS (moto, instances paired with containers, the ALB answered locally).
OWN_MODULE = {"09-aws": "test_exercise_aws.py"}
HERE = Path(__file__).parent
# An exercise leaves this module only for a module of its own that exists.
EXERCISES = [exercise.number for exercise in course()
             if not (HERE / OWN_MODULE.get(exercise.id, "-")).is_file()]


def test_an_exercise_left_out_here_has_its_own_module() -> None:
    ids = {exercise.id for exercise in course()}
    for exercise_id, module in OWN_MODULE.items():
        assert exercise_id in ids, f"{exercise_id}: no longer in the course"
        assert (HERE / module).is_file(), f"{exercise_id}: {module} is missing"
        assert f"EXERCISE = {int(exercise_id[:2])}\n" in (HERE / module).read_text()


@pytest.fixture(scope="module", params=EXERCISES, ids=lambda n: f"ex{n:02d}")
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              docker_client: docker.DockerClient) -> Iterator[Workspace]:
    """The exercise started in a fresh workspace; its servers destroyed at the end."""
    directory = tmp_path_factory.mktemp(f"ex{request.param:02d}") / "ws"
    made = None
    try:
        made = start(request.param, directory, name=unique_lab_name())
        yield made
    finally:
        if made is not None:
            with Fleet(made.start_config()) as fleet:
                fleet.destroy(images=True)  # 07 bakes images


def test_start_fails_with_the_first_feedback(workspace: Workspace) -> None:
    report = check(workspace)
    assert workspace.exercise.spec.start_feedback in first_feedback(report)
    assert report.steps.done[0].name == "workspace" and report.steps.done[0].ok
    assert "Traceback" not in first_feedback(report)


def test_each_wrong_answer_fails_with_its_feedback(workspace: Workspace) -> None:
    exercise: Exercise = workspace.exercise
    assert exercise.spec.wrong, f"{exercise.id} lists no wrong answer"
    for answer in exercise.spec.wrong:
        apply_wrong(workspace, answer.name)
        feedback = first_feedback(check(workspace))
        assert answer.feedback in feedback, f"{answer.name}: {feedback}"


def test_the_solution_passes(workspace: Workspace) -> None:
    before = workspace.progress.passes
    backup = solve(workspace)
    report = check(workspace)
    assert report.ok, report.problem
    assert [s.name for s in report.steps.done] == [
        "workspace", *(g.check for g in workspace.exercise.spec.goals)]
    assert workspace.progress.passes == before + 1
    assert (backup / "lab.yml").is_file()  # what was there before is kept


def test_a_broken_workspace_says_how_to_get_back_and_reset_brings_back_the_start(
        workspace: Workspace) -> None:
    lab_yml = workspace.directory / "lab.yml"
    good = lab_yml.read_text()
    lab_yml.write_text(good + "servers: [oops\n")
    broken = first_feedback(check(workspace))
    assert "lab.yml" in broken and "lab exercise reset" in broken
    lab_yml.write_text(good)
    has_servers = any(a.do == "up" for a in workspace.exercise.spec.start)
    if has_servers:
        with Fleet(workspace.config()) as fleet:
            fleet.destroy()
        gone = first_feedback(check(workspace))
        assert "servers are gone" in gone and "lab exercise reset" in gone
    (workspace.directory / "notes.txt").write_text("mine")

    backup = reset(workspace)

    assert (backup / "notes.txt").read_text() == "mine"
    assert not (workspace.directory / "notes.txt").exists()
    for path in sorted(workspace.exercise.start_dir.rglob("*")):
        if path.is_file() and path.name != "lab.yml":
            relative = path.relative_to(workspace.exercise.start_dir)
            assert (workspace.directory / relative).read_text() == path.read_text()
    assert workspace.exercise.spec.start_feedback in first_feedback(check(workspace))
    if workspace.exercise.number == 2:  # the start is a bare server again
        attempt = Attempt(workspace, workspace.config())
        assert not attempt.host(attempt.server_names()[0]).package("nginx").is_installed
        attempt.close()
    assert workspace.progress.resets == 1


@pytest.mark.parametrize("workspace", [1], indirect=True, ids=["ex01"])
def test_the_cli_exits_1_on_a_failed_check_and_prints_json(workspace: Workspace) -> None:
    """Once, on exercise 01's workspace (back at its start after the reset test):
    `check --json` names the first FAIL; the other commands' exit statuses."""

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(lab_command("exercise", *args), cwd=workspace.directory,
                              capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, check=False)

    checked = lab("check", "--json")
    assert checked.returncode == 1, checked.stderr
    shown = json.loads(checked.stdout)
    assert shown["exercise"] == "01-pet-server" and shown["ok"] is False
    assert shown["goals"][0]["status"] == "FAIL"
    assert "Welcome to the shop" in shown["goals"][0]["found"]
    assert shown["goals"][1]["status"] == "not checked"

    hinted = lab("hint")
    assert hinted.returncode == 0 and hinted.stdout.startswith("hint 1/")
    refused = lab("solve")  # no terminal to ask, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert lab("solve", "--yes").returncode == 0
    passed = lab("check")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "done" in passed.stdout and "FAIL" not in passed.stdout
    listed = lab("list")
    assert listed.returncode == 0 and "A pet server" in listed.stdout
    assert "yes" in listed.stdout  # passed, read from this workspace's progress

    not_empty = lab("start", "2", str(workspace.directory / "playbooks"))
    assert not_empty.returncode == 2 and "not empty" in not_empty.stderr
    assert "Traceback" not in not_empty.stderr + refused.stderr + checked.stderr
