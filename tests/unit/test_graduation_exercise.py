"""Exercise 09 without servers: `lab exercise start 9` says in one line what a machine without
AWS credentials must set (exit 3, nothing laid down); the lab.yml answers the grader judges
before anything runs (the whole internet, a /8); a sweep run in a lab is written in its
logbook, in the lab's region. (The whole exercise, on moto with paired containers:
tests/integration/test_exercise_aws.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from awslab import REGION
from typer.testing import CliRunner

from lab.aws.resources import sweep_in_lab
from lab.cli.main import app
from lab.config import load_config
from lab.course.exercises import find_exercise, load_exercise
from lab.course.grader import check
from lab.course.workspace import apply_wrong, start
from lab.errors import ConfigError
from lab.events import Event
from lab.state import State

AWS = 9
runner = CliRunner(env={"LAB_FILE": None})


def test_start_without_aws_credentials_says_what_to_set_and_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["exercise", "start", str(AWS), str(tmp_path / "ws")])
    assert result.exit_code == 3, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("error: exercise 09 runs on aws, which needs: aws region: set "
                              "AWS_REGION")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message
    assert not (tmp_path / "ws").exists()


def test_start_with_a_region_but_no_credentials_names_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    result = runner.invoke(app, ["exercise", "start", str(AWS), str(tmp_path / "ws")])
    assert result.exit_code == 3, result.output
    assert "aws credentials: no AWS credentials found: run `aws configure`" in result.stderr
    assert "aws region" not in result.stderr


def test_the_start_and_the_lab_yml_answers_are_judged_before_anything_runs(
        aws_env: str, tmp_path: Path) -> None:
    workspace = start(AWS, tmp_path / "ws", name="ex-unit")
    assert "lab.yml still says target: docker" in check(workspace).problem
    apply_wrong(workspace, "whole-internet")
    report = check(workspace)
    assert [s.name for s in report.steps.done] == ["workspace"]
    assert "aws.ssh_cidr: 0.0.0.0/0 would let the whole internet try SSH" in report.problem
    apply_wrong(workspace, "wide-open")
    assert "aws.ssh_cidr 203.0.0.0/8 lets 16,777,216 addresses" in check(workspace).problem
    lab_yml = tmp_path / "ws" / "lab.yml"
    lab_yml.write_text(lab_yml.read_text().replace("203.0.0.0/8", "198.51.100.0/24")
                       .replace("step_seconds: 2", "step_seconds: 1"))
    assert "lab.yml's release differ" in check(workspace).problem  # /24 passes, the rest not
    lab_yml.write_text(lab_yml.read_text().replace("step_seconds: 1", "step_seconds: 2"))
    assert "no server of this lab was ever created on AWS" in check(workspace).problem


def test_a_sweep_in_a_lab_is_in_its_logbook_in_the_labs_region(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exercise = find_exercise(AWS)
    shutil.copytree(exercise.start_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "lab.yml").write_text((exercise.solution_dir / "lab.yml").read_text()
                                      .replace("__NAME__", "t").replace("eu-west-1", "us-east-2"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["aws", "sweep"])
    assert (result.exit_code, result.stdout.strip()) == (0, "nothing lab made has expired")
    [swept] = [e for e in State(tmp_path / ".lab").events() if e.kind == "swept"]
    assert json.loads(swept.detail) == {"region": "us-east-2", "found": {}, "labs": []}
    events: list[Event] = []  # what `lab aws sweep` shows as it goes
    sweep_in_lab(load_config(tmp_path / "lab.yml"), on_event=events.append)
    assert [e.message for e in events] == ["us-east-2: nothing lab made has expired"]
    assert runner.invoke(app, ["aws", "sweep", "--region", REGION]).exit_code == 0
    assert json.loads(State(tmp_path / ".lab").events()[-1].detail)["region"] == REGION

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert runner.invoke(app, ["aws", "sweep"]).exit_code == 0  # AWS_REGION's: no lab here
    assert not (elsewhere / ".lab").exists()


def test_targets_in_exercise_yml_must_be_known(tmp_path: Path) -> None:
    folder = tmp_path / "course" / "09-aws"
    shutil.copytree(find_exercise(AWS).folder, folder)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec | {"targets": ["azure"]}))
    with pytest.raises(ConfigError) as caught:
        load_exercise(folder)
    assert "exercise.yml: targets: must be targets lab knows (" in str(caught.value)
    assert "got 'azure'" in str(caught.value) and "\n" not in str(caught.value)


def test_still_paying_names_what_the_last_destroy_could_not_delete(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ALB's network interfaces hold its security group for minutes after it is deleted:
    `lab destroy` says so and exits non-zero, its logbook keeps what AWS held, and the
    grader's "still paying" names the group and says to run destroy again, not "destroy"."""
    from types import SimpleNamespace

    import boto3
    from awslab import Clock, fail

    from lab.aws import api, resources
    from lab.errors import LeftBehind
    from lab.fleet import Fleet

    exercise = load_exercise(find_exercise(AWS).folder)
    shutil.copytree(exercise.start_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "lab.yml").write_text((exercise.solution_dir / "lab.yml").read_text()
                                      .replace("__NAME__", "t").replace("eu-west-1", REGION))
    config = load_config(tmp_path / "lab.yml")
    ec2 = boto3.client("ec2", region_name=REGION)
    group = ec2.create_security_group(
        GroupName="lab-t-balancer", Description="t",
        TagSpecifications=api.tag_specs(resources.tags("t", config.settings("aws")
                                                       .lifetime_delta), "security-group"),
    )["GroupId"]
    clock = Clock()
    monkeypatch.setattr("lab.aws.resources.time", clock)
    with Fleet(config) as fleet:
        fail(fleet.target.aws.ec2, "DeleteSecurityGroup", "DependencyViolation")  # type: ignore[attr-defined]
        with pytest.raises(LeftBehind, match=f"security groups {group}"):
            fleet.destroy()
        attempt = SimpleNamespace(config=config, events=lambda kind=None: [
            e for e in fleet.state.events() if kind is None or e.kind == kind])
        feedback = exercise.checks["nothing_left"](attempt)

    assert feedback is not None
    assert f"security groups {group}" in feedback.found
    assert "could not delete" in feedback.found and "again in a few minutes" in feedback.next
