"""A class on AWS, in-process against moto: `lab class init --target aws` and class.yml's
aws: section (validated by lab.yml's own rules), `lab class up` writing each seat's workspace
on aws and making nothing there, `lab class status` pricing what each seat's lab holds from
one listing of the region, and `lab class destroy` removing the class's labs, no other."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from awslab import CIDR, REGION, Clock, fail, leftovers
from typer.testing import CliRunner

import lab.aws.api
from lab.aws import pricing, resources
from lab.aws.api import Clients, tag_list, tag_specs
from lab.classroom.config import load_class
from lab.classroom.membership import workspace_file
from lab.classroom.seats import class_prefix, in_class, lab_names
from lab.cli import app
from lab.config import load_config
from lab.course.exercises import course
from lab.errors import ConfigError

runner = CliRunner(env={"LAB_FILE": None})
STUDENTS = ["alice", "bob", "carol"]
OTHER = "ex-someone-else-1a2b3c"  # a lab of the same account that is no seat of the class


def write(directory: Path, students: list[str] | int = STUDENTS,
          exercises: tuple[int, ...] = (9,), **aws: Any) -> Path:
    data = {"name": "aws-day", "code": "k7f3-q9x2", "students": students,
            "exercises": list(exercises), "target": "aws",
            "aws": {"region": REGION, "ssh_cidr": CIDR} | aws}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "class.yml").write_text(yaml.safe_dump(data))
    return directory


def calls() -> list[str]:
    """``Service.Operation`` of every call lab's clients made to AWS (moto) from here on:
    counted on the region's session, which the clients lab makes next copy handlers from."""
    made: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        made.append(".".join(event_name.split(".")[1:3]))

    lab.aws.api._session(REGION).events.register("before-call", count)
    return made


# seeding moto as if attendees had run `lab up` -------------------------------------------------


def instances(ami: str, lab_name: str, count: int = 1, kind: str = "t3.small") -> list[str]:
    ec2 = boto3.client("ec2", region_name=REGION)
    made = ec2.run_instances(
        ImageId=ami, MinCount=count, MaxCount=count, InstanceType=kind,
        TagSpecifications=tag_specs(resources.tags(lab_name, timedelta(hours=4)),
                                    "instance"))
    return [i["InstanceId"] for i in made["Instances"]]


def balancer(lab_name: str, name: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    two = sorted(subnets["Subnets"], key=lambda s: s["AvailabilityZone"])[:2]
    return str(boto3.client("elbv2", region_name=REGION).create_load_balancer(
        Name=name, Subnets=[s["SubnetId"] for s in two],
        Tags=tag_list(resources.tags(lab_name, timedelta(hours=4))),
    )["LoadBalancers"][0]["LoadBalancerArn"])


def group_and_key(lab_name: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    tags = resources.tags(lab_name, timedelta(hours=4))
    ec2.create_security_group(GroupName=f"lab-{lab_name}", Description="servers",
                              TagSpecifications=tag_specs(tags, "security-group"))
    ec2.create_key_pair(KeyName=f"lab-{lab_name}",
                        TagSpecifications=tag_specs(tags, "key-pair"))


# init and class.yml ---------------------------------------------------------------------------


def test_init_on_aws_writes_the_region_the_cidr_and_the_exercises_it_can_start(
        tmp_path: Path) -> None:
    done = runner.invoke(app, ["class", "init", str(tmp_path), "--count", "3", "--target",
                               "aws", "--ssh-cidr", "203.0.113.0/24", "--region", REGION])
    assert done.exit_code == 0, done.output
    written = yaml.safe_load((tmp_path / "class.yml").read_text())
    assert written["target"] == "aws"
    assert written["aws"] == {"region": REGION, "ssh_cidr": "203.0.113.0/24"}
    # The course's exercises that start without servers (08, 09), not those that start with
    # servers made for them (01's up, provision).
    assert written["exercises"] == [e.number for e in course() if not e.spec.start]
    assert 9 in written["exercises"] and 1 not in written["exercises"]
    assert f"on aws in {REGION}" in done.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--ssh-cidr", "nope"], "aws.ssh_cidr: must be a CIDR like 203.0.113.7/32, got 'nope'"),
    (["--ssh-cidr", "0.0.0.0/0"], "aws.ssh_cidr: 0.0.0.0/0 would let the whole internet"),
    ([], "aws.ssh_cidr: is required"),
    (["--ssh-cidr", CIDR, "--region", "eu-middle-7"], "aws.region: is not an AWS region"),
])
def test_init_on_aws_refuses_bad_values_naming_class_yml_and_the_field(
        tmp_path: Path, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["class", "init", str(tmp_path), "--target", "aws",
                                 "--region", REGION, *args])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'class.yml'}: {says}")
    assert not (tmp_path / "class.yml").exists()


def test_init_on_aws_without_a_region_says_to_give_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["class", "init", str(tmp_path), "--target", "aws",
                                 "--ssh-cidr", CIDR])  # and no AWS_REGION (conftest)
    assert result.exit_code == 2
    assert "class.yml: aws.region: is required for a class" in result.stderr


def test_init_on_aws_refuses_exercises_that_start_with_servers(tmp_path: Path) -> None:
    result = runner.invoke(app, ["class", "init", str(tmp_path), "--target", "aws",
                                 "--ssh-cidr", CIDR, "--region", REGION, "--exercises", "1,9"])
    assert result.exit_code == 2
    assert "exercise 01 starts with servers made for it (up, provision)" in result.stderr
    assert not (tmp_path / "class.yml").exists()


@pytest.mark.parametrize(("aws", "says"), [
    ({"ssh_cidr": "10.0.0.0/4"}, None),  # wide, but lab.yml accepts it: so does a class
    ({"lifetime": "soon"}, "aws.lifetime: must be a duration like 4h"),
    ({"instance_type": "T3 small"}, "aws.instance_type:"),
    ({"colour": "blue"}, "aws.colour: unknown field"),
    ({"region": None}, "aws.region: is required for a class"),
])
def test_class_yml_aws_section_is_checked_by_lab_yml_rules(tmp_path: Path, aws: dict[str, Any],
                                                           says: str | None) -> None:
    write(tmp_path, **aws)
    if says is None:
        assert load_class(tmp_path).spec.target == "aws"
        return
    with pytest.raises(ConfigError) as caught:
        load_class(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'class.yml'}: {says}")


def test_an_aws_section_on_a_docker_class_is_refused(tmp_path: Path) -> None:
    (tmp_path / "class.yml").write_text(yaml.safe_dump({
        "name": "a", "code": "k7f3-q9x2", "students": 2, "exercises": [1],
        "aws": {"region": REGION, "ssh_cidr": CIDR}}))
    with pytest.raises(ConfigError, match=r"class.yml: aws: is for `target: aws` only"):
        load_class(tmp_path)


# up -------------------------------------------------------------------------------------------


def test_up_writes_each_seat_on_aws_with_its_own_lab_and_makes_nothing_there(
        aws_env: str, tmp_path: Path) -> None:
    room = write(tmp_path / "class", lifetime="6h")
    asked = calls()
    result = runner.invoke(app, ["class", "up", str(room)])
    assert result.exit_code == 0, result.output
    assert "no servers created on AWS: each attendee runs `lab up`" in result.stdout
    spec = load_class(room).spec
    names = lab_names(spec)
    assert len(set(names.values())) == len(STUDENTS)  # no two seats share a lab
    for student, name in names.items():
        workspace = room / student
        config = load_config(workspace / "lab.yml")
        assert config.target == "aws" and config.name == name
        assert name.startswith(class_prefix(spec) + "-") and name.endswith(student)
        assert in_class(spec, name)  # what status, destroy and the sweep's report go by
        settings = config.settings("aws")
        assert (settings.region, settings.ssh_cidr, settings.lifetime) == (  # type: ignore[union-attr]
            REGION, CIDR, "6h")
        pristine = load_config(workspace / ".lab/exercise/start/lab.yml")
        assert (pristine.target, pristine.name) == ("aws", name)
        assert (workspace / "playbooks/web.yml").is_file()  # 09's start files
        assert workspace_file(workspace).is_file()  # reports to the class's page
        assert leftovers(name) == {}
    # Only questions (09's prerequisite check: who is calling, what bills now), never a
    # Create, Run or Import.
    assert asked and not [call for call in asked
                          if not call.split(".")[1].startswith(("Describe", "Get", "List"))]


def test_up_on_aws_refuses_an_exercise_that_starts_with_servers(aws_env: str,
                                                                tmp_path: Path) -> None:
    room = write(tmp_path, exercises=(1, 9))
    result = runner.invoke(app, ["class", "up", str(room), "--exercise", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: exercise 01 starts with servers made for it (up, provision), which a class "
        "on aws never makes: choose exercises that start without servers (08, 09), or a "
        "class on docker")
    assert not any((room / student).exists() for student in STUDENTS)


def test_reset_of_a_seat_on_aws_puts_it_back_on_aws(aws_env: str, tmp_path: Path) -> None:
    room = write(tmp_path)
    assert runner.invoke(app, ["class", "up", str(room), "--students", "alice"]).exit_code == 0
    lab_yml = room / "alice" / "lab.yml"
    lab_yml.write_text(lab_yml.read_text().replace("target: aws", "target: docker"))
    result = runner.invoke(app, ["class", "reset", "alice", str(room)])
    assert result.exit_code == 0, result.output
    assert load_config(lab_yml).target == "aws"
    refused = runner.invoke(app, ["class", "reset", "alice", str(room), "--solved-through", "9"])
    assert refused.exit_code == 2
    assert "a class on aws never makes" in refused.stderr


# status ---------------------------------------------------------------------------------------


def test_status_shows_each_seats_lab_on_aws_and_its_hourly_cost(aws_env: str,
                                                                tmp_path: Path) -> None:
    room = write(tmp_path, students=[*STUDENTS, "dave"])
    names = lab_names(load_class(room).spec)
    instances(aws_env, names["alice"], 2)
    balancer(names["alice"], "alice-alb")
    instances(aws_env, names["bob"], 1, kind="t3.micro")
    balancer(names["carol"], "carol-alb")  # her instances terminated at their lifetime
    instances(aws_env, OTHER, 3)  # not the class's: counted nowhere
    balancer(OTHER, "other-alb")

    alb = pricing.balancer_line(2).hourly  # moto's ALBs span the two zones given them
    alice = pricing.instances_line("t3.small", 2).hourly + alb
    bob = pricing.instances_line("t3.micro", 1).hourly
    assert alice and bob and alb

    result = runner.invoke(app, ["class", "status", str(room)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"alice: 2 instances, 1 load balancer ~${alice:.2f}/h" in lines
    assert f"bob: 1 instance ~${bob:.2f}/h" in lines
    assert f"carol: 1 load balancer ~${alb:.2f}/h" in lines
    assert "dave: nothing" in lines
    total = alice + bob + alb
    assert f"class total in {REGION}: 3 instances, 2 load balancers ~${total:.2f}/h" in lines

    shown = runner.invoke(app, ["class", "status", str(room), "--json"])
    on_aws = json.loads(shown.stdout)["aws"]
    by_seat = {seat["student"]: seat for seat in on_aws["seats"]}
    assert list(by_seat) == [*STUDENTS, "dave"]
    assert (by_seat["alice"]["lab"], by_seat["alice"]["instances"],
            by_seat["alice"]["load_balancers"]) == (names["alice"], 2, 1)
    assert on_aws["hourly"] == pytest.approx(total, abs=1e-4)


def test_status_of_30_seats_asks_aws_four_times(aws_env: str, tmp_path: Path) -> None:
    room = write(tmp_path, students=30)
    names = list(lab_names(load_class(room).spec).values())
    for index, name in enumerate(names):
        instances(aws_env, name, 2)
        if index < 25:  # more than describe_tags takes at once (20)
            balancer(name, f"seat-{index}")
    from lab.classroom import cloud

    asked = calls()
    cost = cloud.costs(load_class(room))
    assert Counter(asked) == {"ec2.DescribeInstances": 1,
                              "elastic-load-balancing-v2.DescribeLoadBalancers": 1,
                              "elastic-load-balancing-v2.DescribeTags": 2}, asked
    assert [sum(seat.instances.values()) for seat in cost.seats] == [2] * 30
    assert [len(seat.balancer_zones) for seat in cost.seats] == [1] * 25 + [0] * 5


# destroy --------------------------------------------------------------------------------------


def test_destroy_removes_every_seats_lab_and_leaves_other_labs(aws_env: str,
                                                               tmp_path: Path) -> None:
    room = write(tmp_path)
    names = lab_names(load_class(room).spec)
    instances(aws_env, names["alice"], 2)
    balancer(names["alice"], "alice-alb")
    group_and_key(names["alice"])
    instances(aws_env, names["bob"])
    instances(aws_env, OTHER)
    group_and_key(OTHER)

    result = runner.invoke(app, ["class", "destroy", str(room)])
    assert result.exit_code == 0, result.output
    assert f"removed from AWS in {REGION}: " in result.stdout
    assert "of 2 labs" in result.stdout
    assert f"`lab aws sweep --region {REGION}`" in result.stdout
    assert leftovers(names["alice"]) == {} and leftovers(names["bob"]) == {}
    assert set(leftovers(OTHER)) == {"instances", "security_groups", "key_pairs"}


def test_destroy_exits_1_naming_what_aws_still_holds_and_keeps_the_folders(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    room = write(tmp_path)
    names = lab_names(load_class(room).spec)
    group_and_key(names["alice"])
    (room / "alice").mkdir()
    monkeypatch.setattr(resources, "time", Clock())  # AWS refuses for 300 s: at once here
    real = lab.aws.api.clients

    def refusing(region: str | None) -> Clients:
        made = real(region)
        fail(made.ec2, "DeleteSecurityGroup", "DependencyViolation")
        return made

    monkeypatch.setattr(lab.aws.api, "clients", refusing)
    result = runner.invoke(app, ["class", "destroy", str(room), "--files"])
    assert result.exit_code == 1, result.output
    assert "AWS still holds security groups sg-" in result.stderr
    assert f"`lab aws sweep --region {REGION}` at the end of the day" in result.stderr
    assert (room / "alice").is_dir()
