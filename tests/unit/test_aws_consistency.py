"""AWS's eventual consistency, which moto hides, injected on botocore's hooks (issue "AWS as a
real account behaves"): a security group just made is not yet known to the next call
(InvalidGroup.NotFound, named by EC2's eventual-consistency page), an AMI just made is not yet
known to DescribeImages (InvalidAMIID.NotFound, which the ImageAvailable waiter does not
retry). lab waits them out; any other error still stops it at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from awslab import fail, key_for, lab_config, leftovers
from botocore.exceptions import ClientError

from lab.aws import api
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]


@pytest.fixture
def target(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # the backoff, not the test, waits
    config = lab_config(tmp_path, aws_env)
    return AwsTarget(config, key_for(config))


def test_a_security_group_not_yet_known_is_waited_for(target: AwsTarget) -> None:
    attempts = fail(target.aws.ec2, "AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound",
                    times=2)

    servers = target.create(SPECS)

    assert [s.name for s in servers] == ["web-1"] and len(attempts) == 3
    target.destroy()
    assert leftovers("t") == {}


def test_an_ami_not_yet_known_is_waited_for(target: AwsTarget) -> None:
    server = target.create(SPECS)[0]
    attempts = fail(target.aws.ec2, "DescribeImages", "InvalidAMIID.NotFound", times=2)

    ami = target.bake(server, "lab/t-web:v2", {"lab.name": "t", "lab.role": "web",
                                                "lab.version": "v2"})

    assert ami.startswith("ami-") and len(attempts) >= 3
    target.destroy()
    target.remove_images()


def test_other_errors_are_not_waited_for() -> None:
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "X")

    with pytest.raises(ClientError):
        api.eventually(refuse)
    assert calls == [1]


def test_a_resource_that_never_appears_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    monkeypatch.setattr("time.sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))

    def missing() -> None:
        raise ClientError({"Error": {"Code": "InvalidGroup.NotFound", "Message": "no"}}, "X")

    with pytest.raises(ClientError):
        api.eventually(missing, seconds=30)
    assert 15 <= clock[0] <= 30


def test_a_launch_that_fails_removes_its_instance_even_before_a_listing_shows_it(
        target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.aws import resources
    from lab.errors import TargetError

    def never_running(*args: object, **kwargs: object) -> None:
        raise TargetError("the instance did not start")

    monkeypatch.setattr(resources, "ec2_wait", never_running)
    monkeypatch.setattr(AwsTarget, "_instance_ids", lambda self, names: [])  # not listed yet

    with pytest.raises(TargetError, match="did not start"):
        target.create(SPECS)

    assert leftovers("t") == {}  # terminated by the id RunInstances gave


def test_an_instance_still_reading_pending_after_terminate_is_waited_for(
        target: AwsTarget) -> None:
    target.create(SPECS)
    readings: list[int] = []
    by_id: list[bool] = []  # the wait asks by id; a listing asks by tag

    def note(params: dict, **_: object) -> None:
        by_id.append("InstanceIds" in params and "Filters" not in params)

    def pending_twice(parsed: dict, **_: object) -> None:
        if not by_id[-1]:
            return
        readings.append(1)
        if len(readings) <= 2:
            for reservation in parsed.get("Reservations", []):
                for instance in reservation["Instances"]:
                    instance["State"] = {"Code": 0, "Name": "pending"}

    events = target.aws.ec2.meta.events
    events.register("provide-client-params.ec2.DescribeInstances", note)
    events.register("after-call.ec2.DescribeInstances", pending_twice)
    target.destroy()  # botocore's InstanceTerminated waiter fails at once on "pending"

    assert len(readings) >= 3 and leftovers("t") == {}


def test_destroy_says_what_aws_would_not_delete_and_fails_until_it_is_gone(
        target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    from awslab import Clock

    from lab.aws import resources
    from lab.errors import TargetError

    target.create(SPECS)
    monkeypatch.setattr(resources, "time", Clock())  # a retried deletion gives up at once
    refused = fail(target.aws.ec2, "DeleteSecurityGroup", "DependencyViolation")

    with pytest.raises(TargetError) as caught:
        target.destroy()

    assert refused and str(caught.value).startswith("AWS still holds security groups sg-")
    assert "run `lab destroy` again in a few minutes" in str(caught.value)
    assert list(leftovers("t")) == ["security_groups"]  # only what AWS refused
    # Minutes later AWS lets go (a new command, new clients): `lab destroy` again ends it.
    AwsTarget(target.config, target.key).destroy()
    assert leftovers("t") == {}
