"""Exercise 09 (graduate to AWS), proven as test_exercises.py proves every exercise: the start
fails its check with `start_feedback`, each wrong answer with its `feedback`, the solution
passes, and reset brings back the start. The generic module cannot drive AWS, so 09 has this
module of its own: moto in-process for AWS (never a real endpoint), each instance paired with
a local container of lab's base image (awspairs.py), and the ALB answered for locally, so
`lab up`, provision, verify and a release run for real over SSH. Every test ends with nothing
of the lab left on AWS (listed type by type, apart from lab's own finder) or in Docker.

One workspace for the module, the grader called in-process, as in test_exercises.py.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import docker
import pytest
from awsleftovers import leftovers
from awspairs import AlbStandIn, pair_instances_with_containers
from labhelpers import RUN_LABEL, first_feedback, unique_lab_name
from moto import mock_aws
from moto.ssm.models import Parameter, ssm_backends

from lab.balancers.alb import ALB
from lab.config import DEFAULT_IMAGE
from lab.course.grader import check
from lab.course.workspace import Workspace, apply_wrong, reset, run_actions, solve, start
from lab.fleet import Fleet
from lab.state import State
from lab.targets.aws import DEBIAN_12

REGION = "eu-west-1"  # the solution's aws.region
EXERCISE = 9
ACCOUNT = "123456789012"  # moto's


def publish_debian_parameter(ami: str) -> None:
    """Debian's public SSM parameter, as AWS publishes it (moto has none, and refuses a
    user's parameter under /aws/): the solution's lab.yml keeps the default image."""
    backend = ssm_backends[ACCOUNT][REGION]
    backend._parameters[DEBIAN_12].append(Parameter(
        account_id=ACCOUNT, name=DEBIAN_12, value=ami, parameter_type="String",
        description=None, allowed_pattern=None, keyid=None,
        last_modified_date=datetime.now(UTC).timestamp(), version=1, data_type="aws:ec2:image"))


@pytest.fixture(scope="module")
def twin_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """lab's base image with nginx already installed, for the twins: the module provisions
    five fresh servers, and nginx from the mirror is most of each one's time on a busy
    machine. The playbook still runs whole on each (its apt task finds nginx there, as on a
    baked AMI); what it installs is exercise 02's business, proven there from a bare server."""
    tag = f"lab-test/ex09-twin:{uuid.uuid4().hex[:8]}"
    dockerfile = (f"FROM {DEFAULT_IMAGE}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive "
                  "apt-get install -y nginx\n").encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False,
                               labels={RUN_LABEL: "ex09"})
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def aws(twin_image: str) -> Iterator[None]:
    """moto for the module, with fake credentials; instances paired with containers; the
    ALB's URL answered by a local stand-in that follows its weights."""
    patch = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        patch.delenv(name, raising=False)
    stand_ins: list[AlbStandIn] = []

    def url(self: ALB) -> str:
        stand_ins.append(AlbStandIn(self, SimpleNamespace(state=State(self.config.state_dir))))
        return stand_ins[-1].url

    try:
        with mock_aws():
            publish_debian_parameter(boto3.client("ec2", region_name=REGION).register_image(
                Name="debian-12-test", RootDeviceName="/dev/xvda",
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
            )["ImageId"])
            pair_instances_with_containers(patch, twin_image)  # type: ignore[arg-type]
            patch.setattr(ALB, "url", property(url))
            yield
    finally:
        for stand_in in stand_ins:
            stand_in.close()
        patch.undo()


@pytest.fixture(scope="module")
def workspace(aws: None, tmp_path_factory: pytest.TempPathFactory,
              docker_client: docker.DockerClient) -> Iterator[Workspace]:
    directory = tmp_path_factory.mktemp("ex09") / "ws"
    made = None
    try:
        made = start(EXERCISE, directory, name=unique_lab_name("aws"))
        yield made
    finally:
        if made is not None:
            name = made.start_config().name
            for config in (made.start_config(), *configs_on_aws(made)):
                with Fleet(config) as fleet:
                    fleet.destroy()
            assert leftovers(name) == {}
            assert not docker_client.containers.list(
                all=True, filters={"label": f"lab.name={name}"})


def configs_on_aws(workspace: Workspace) -> list:
    try:
        config = workspace.config()
    except Exception:
        return []
    return [config] if config.target == "aws" else []


def test_start_fails_with_the_first_feedback(workspace: Workspace) -> None:
    report = check(workspace)
    assert workspace.exercise.spec.start_feedback in first_feedback(report)
    assert report.steps.done[0].name == "workspace" and report.steps.done[0].ok
    assert leftovers(workspace.start_config().name) == {}  # the start makes nothing on AWS


def test_each_wrong_answer_fails_with_its_feedback(workspace: Workspace) -> None:
    for answer in workspace.exercise.spec.wrong:
        apply_wrong(workspace, answer.name)
        feedback = first_feedback(check(workspace))
        assert answer.feedback in feedback, f"{answer.name}: {feedback}"
    name = workspace.start_config().name
    assert leftovers(name) == {}, "the last wrong answer (no-sweep) destroyed everything"


def test_the_solution_passes_and_leaves_nothing_on_aws(workspace: Workspace) -> None:
    before = workspace.progress.passes
    solve(workspace)
    report = check(workspace)
    assert report.ok, report.problem
    assert [s.name for s in report.steps.done] == [
        "workspace", *(g.check for g in workspace.exercise.spec.goals)]
    assert workspace.progress.passes == before + 1
    assert leftovers(workspace.start_config().name) == {}
    releases = [r for r in workspace.state.releases() if r["outcome"] == "promoted"]
    assert releases and releases[-1]["traffic"]["errors"] == 0  # through the ALB stand-in


def test_reset_takes_the_lab_down_on_aws_too_and_brings_back_the_start(
        workspace: Workspace, docker_client: docker.DockerClient) -> None:
    name = workspace.start_config().name
    run_actions(workspace.config(), workspace.exercise.spec.solution[:1])  # up, on aws
    assert "instances" in leftovers(name)
    (workspace.directory / "notes.txt").write_text("mine")

    backup = reset(workspace)

    assert leftovers(name) == {}  # a reset must not leave the trainee paying
    assert not docker_client.containers.list(all=True, filters={"label": f"lab.name={name}"})
    assert (backup / "notes.txt").read_text() == "mine"
    assert "target: aws" in (backup / "lab.yml").read_text()
    assert "target: docker" in (workspace.directory / "lab.yml").read_text()
    assert workspace.exercise.spec.start_feedback in first_feedback(check(workspace))
    assert workspace.progress.resets == 1
