"""A `lab up` on aws whose servers never answer (issue "AWS as a real account behaves",
checked from outside): the wait is an EC2 boot's (minutes, not a container's 90 s), an
instance that stopped is reported at once with AWS's reason, the error says what usually
causes it on AWS (the caller's address outside aws.ssh_cidr) and shows the console, and the
servers that never answered are removed: they would bill for nothing. moto's instances have
addresses nobody may be sent to, so each server is reached at a closed port of 127.0.0.1."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from awslab import REGION, key_for, lab_config, leftovers

from lab.errors import TargetError
from lab.fleet import Fleet
from lab.state import ServerRecord
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every instance's SSH is a closed port on 127.0.0.1: sshd never answers."""
    port = closed_port()
    real = AwsTarget.record

    def record(self: AwsTarget, instance: dict) -> ServerRecord:  # type: ignore[type-arg]
        return replace(real(self, instance), ssh_host="127.0.0.1", ssh_port=port)

    monkeypatch.setattr(AwsTarget, "record", record)
    monkeypatch.setenv("LAB_BOOT_TIMEOUT", "2")


def test_servers_that_never_answer_are_removed_and_the_error_says_why(
        aws_env: str, tmp_path: Path, unreachable: None) -> None:
    with Fleet(lab_config(tmp_path, aws_env, count=2)) as fleet, pytest.raises(
            TargetError) as raised:
        fleet.up()

    message = str(raised.value)
    assert "not ready after 2 s" in message
    assert "aws.ssh_cidr" in message and "console:" in message
    assert "removed: web-1, web-2" in message
    assert leftovers("t") == {}  # instances, and the key pair, groups and template up made


def test_an_instance_that_stopped_is_reported_at_once_with_its_state(
        aws_env: str, tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env)
    target = AwsTarget(config, key_for(config))
    [server] = target.create([ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])])
    assert target.boot_failure(server) is None
    boto3.client("ec2", region_name=REGION).terminate_instances(
        InstanceIds=[i["InstanceId"] for i in target._instances(Filters=target._filters())])
    target._boot_look_at = 0.0  # the next look, without waiting 10 s

    assert (target.boot_failure(server) or "").startswith(
        ("its instance is terminated", "its instance is shutting-down"))
    target.destroy()


def test_the_wait_is_an_ec2_boots(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.targets.base import boot_timeout

    monkeypatch.delenv("LAB_BOOT_TIMEOUT", raising=False)
    assert boot_timeout(AwsTarget.boot_seconds) >= 300
