"""A release on target aws killed outright (`kill -9`), and the command after it, for real.

SIGKILL gives a release no chance to roll back: the ALB's listener keeps the weights it had,
traffic split between two generations, for the next release to take the wrong one for the
old. The release's journal in state.db and its lock on .lab/release.lock let the next
command name it and put it right (lab.release.journal, lab.release.put_right). The fakes prove that
by freezing a world (test_release_journal.py); here a release runs in a process of its own
(aws_release_child.py) against moto's server on 127.0.0.1, is killed with SIGKILL once its
journal and the listener, read as another process reads them, show it inside the step, and
is put right in this process, the listener's weights and the instances read back from moto
with boto3. Nothing reaches a real endpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from awslab import CIDR, REGION, QuietProbe, fresh_sessions, leftovers, passing
from journalwatch import last_entry
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup
from moto.server import ThreadedMotoServer

from lab.config import LabConfig, load_config
from lab.events import Event
from lab.fleet import Fleet
from lab.release import Checks, ReleaseReport, journal, put_right, release
from lab.targets.aws import AwsTarget

CHILD = Path(__file__).with_name("aws_release_child.py")
# The helpers the child imports (awslab and what it imports), as pytest's pythonpath has them.
TESTS = f"{CHILD.parent}:{CHILD.parent.parent}"
NAME = "t"  # the lab's; its ALB is lab-t, generation N's target group lab-t-gN
WAIT = 60.0  # for a release to reach a step, or a killed one to be reaped: a bound, not a measure
OLD, NEW = ["web-1", "web-2"], ["web-3", "web-4"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto's server on a free loopback port, as in test_aws_subprocess.py: the AWS of this
    process and of the release's. Returns the environment of the release's process. SSH
    readiness, the one boundary moto cannot do, is left out here as in the child."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
           "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fresh_sessions(monkeypatch)  # this endpoint's, not another test's
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    try:
        yield dict(os.environ)
    finally:
        server.stop()


def lab_up(directory: Path, step_seconds: float) -> LabConfig:
    """lab.yml for two web servers behind `kind: haproxy` (an ALB on aws), released in steps
    of 10, 50 and 100 %; its first generation made by `lab up` in this process."""
    ami = boto3.client("ec2", region_name=REGION).register_image(
        Name="debian-12-test", RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    (directory / "lab.yml").write_text(yaml.safe_dump({
        "name": NAME, "target": "aws",
        "servers": {"web": {"count": 2, "ports": [80], "health": {"path": "/health"}}},
        "aws": {"ssh_cidr": CIDR, "image": ami},
        "balancer": {"kind": "haproxy", "routes_to": "web", "listen": 8080},
        "release": {"steps": [10, 50, 100], "step_seconds": step_seconds}}))
    config = load_config(directory / "lab.yml")
    with Fleet(config) as fleet:
        assert [s.name for s in fleet.up()] == OLD
    return config


class Child:
    """`lab release` (aws_release_child.py) in a process of its own; its output in a file."""

    def __init__(self, config: LabConfig, env: dict[str, str], version: str) -> None:
        self.log = config.directory / "release.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(CHILD), str(config.directory / "lab.yml"), version],
                env=env | {"PYTHONPATH": TESTS}, cwd=config.directory,
                stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)

    def kill_when(self, what: str, ready: Callable[[], bool]) -> None:
        """Look every 50 ms until ``ready()``, then `kill -9` the release and reap it."""
        deadline = time.monotonic() + WAIT
        while not ready():
            if self.process.poll() is not None:
                pytest.fail(f"the release ended (exit {self.process.returncode}) before "
                            f"{what}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} in {WAIT:.0f} s:\n{self.log.read_text()}")
            time.sleep(0.05)
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=WAIT) == -signal.SIGKILL  # killed, not ended

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *_: object) -> None:
        """Whatever happened: no release process outlives its test."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=WAIT)


def weights(elb: Any) -> dict[int, int]:
    """The ALB listener's weight per generation, read back from AWS."""
    [balancer] = elb.describe_load_balancers(Names=[f"lab-{NAME}"])["LoadBalancers"]
    [listener] = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    names = {g["TargetGroupArn"]: g["TargetGroupName"]
             for g in elb.describe_target_groups()["TargetGroups"]}
    return {int(names[g["TargetGroupArn"]].removeprefix(f"lab-{NAME}-g")): g["Weight"]
            for g in listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}


def target_states(elb: Any, generation: int) -> list[str]:
    """The states of the targets of a generation's target group, as AWS lists them."""
    [group] = elb.describe_target_groups(Names=[f"lab-{NAME}-g{generation}"])["TargetGroups"]
    return [d["TargetHealth"]["State"] for d in elb.describe_target_health(
        TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]]


def running(ec2: Any) -> list[str]:
    """The lab's servers whose instances run (or start), by name, as EC2 lists them."""
    return sorted(tag["Value"] for r in ec2.describe_instances(Filters=[
        {"Name": "tag:lab.name", "Values": [NAME]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"] for tag in i["Tags"] if tag["Key"] == "lab.server")


def killed_release(config: LabConfig, step: str) -> ReleaseReport:
    """The release the journal names as interrupted, at ``step``, with its lock free."""
    with Fleet(config) as fleet:
        found = journal.interrupted(fleet.state, config.state_dir)
        assert found is not None and journal.last_step(found) == step
        assert [r["outcome"] for r in journal.releases(fleet.state, config.state_dir)] == [
            "interrupted"]
        assert (found.old, found.new) == (OLD, NEW)
    return found


def warnings(said: list[Event]) -> list[str]:
    return [event.message for event in said if event.kind == "warning"]


class Draining:
    """As on AWS, a deregistered target stays in its group, ``draining``, for the group's
    deregistration delay, and a promote waits for it (moto drops it at once): here until
    :meth:`over`. That wait is where a kill during a promote lands."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.targets: dict[str, list[str]] = {}
        deregister, describe = FakeTargetGroup.deregister, ELBv2Backend.describe_target_health

        def deregistered(group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            deregister(group, targets)
            self.targets.setdefault(group.arn, []).extend(t["Id"] for t in targets)

        def health(backend: ELBv2Backend, arn: str,
                   targets: list[dict[str, Any]]) -> list[FakeHealthStatus]:
            group = backend.target_groups[arn]
            return describe(backend, arn, targets) + [
                FakeHealthStatus(target, str(group.port), group.health_check_port,
                                 "draining", "Target.DeregistrationInProgress")
                for target in self.targets.get(arn, [])]

        monkeypatch.setattr(FakeTargetGroup, "deregister", deregistered)
        monkeypatch.setattr(ELBv2Backend, "describe_target_health", health)

    def over(self) -> None:
        self.targets.clear()


@pytest.mark.parametrize("after", ["put_right", "next_release"])
def test_a_release_killed_at_50_percent_is_named_then_rolled_back(
        aws: dict[str, str], tmp_path: Path, after: str) -> None:
    """The defect: killed at 50 %, the release left the listener at 50/50 between two
    generations. The next command (put_right, or the next release before its own work)
    names it and rolls it back: generation 1 at full weight, generation 2 terminated."""
    config = lab_up(tmp_path, step_seconds=5.0)  # the window the kill lands in
    elb, ec2 = (boto3.client(service, region_name=REGION) for service in ("elbv2", "ec2"))
    with Child(config, aws, "v2") as child:
        state_db = config.state_dir / "state.db"
        child.kill_when("canary 50% with 50 on generation 2", lambda: last_entry(state_db) == (
            "canary 50%", "begun") and weights(elb).get(2) == 50)

    killed = killed_release(config, "canary 50%")
    assert weights(elb) == {1: 50, 2: 50}  # traffic left split
    assert running(ec2) == OLD + NEW
    said: list[Event] = []
    if after == "put_right":
        with Fleet(config) as fleet:
            [ended] = put_right(fleet, said.append)
            assert (ended.id, ended.outcome) == (killed.id, "rolled-back")
            assert weights(elb) == {1: 100}
            assert target_states(elb, 1) == ["healthy", "healthy"]
            assert running(ec2) == OLD
            assert put_right(fleet) == []  # once is enough
    else:
        fast = config.model_copy(update={"release": config.release.model_copy(
            update={"step_seconds": 0.1})})
        with Fleet(fast) as fleet:
            report = release(fleet, {"version": "v3"}, on_event=said.append,
                             probe=QuietProbe, checks=Checks(passing, passing))
        assert (report.outcome, report.old, report.new) == ("promoted", OLD, ["web-5", "web-6"])
        assert weights(elb) == {2: 100}  # the newest alone (the killed one's 2 was removed)
        assert running(ec2) == report.new
    assert f"release {killed.id} was interrupted at canary 50%" in warnings(said)[0]
    with Fleet(config) as fleet:
        saved = fleet.state.releases()
        assert journal.interrupted(fleet.state, config.state_dir) is None
        fleet.destroy()
    assert (saved[0]["id"], saved[0]["outcome"]) == (killed.id, "rolled-back")
    assert saved[0]["reason"].startswith("interrupted at canary 50%")
    assert [r["outcome"] for r in saved[1:]] == ([] if after == "put_right" else ["promoted"])
    assert leftovers(NAME) == {}


def test_a_release_killed_while_its_promote_drains_the_old_generation_is_promoted(
        aws: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed once all traffic was on generation 2 and generation 1 was leaving: put_right
    finishes the promote (generation 2 passed every gate) and removes generation 1."""
    drain = Draining(monkeypatch)
    config = lab_up(tmp_path, step_seconds=0.5)  # the promote's drain holds the release
    elb, ec2 = (boto3.client(service, region_name=REGION) for service in ("elbv2", "ec2"))
    with Child(config, aws, "v2") as child:
        state_db = config.state_dir / "state.db"
        child.kill_when("promote with generation 1 draining", lambda: last_entry(state_db) == (
            "promote", "begun") and target_states(elb, 1) == ["draining", "draining"])

    killed = killed_release(config, "promote")
    assert weights(elb) == {1: 0, 2: 100}
    assert running(ec2) == OLD + NEW
    drain.over()  # as AWS's deregistration delay would be by the next command
    with Fleet(config) as fleet:
        [ended] = put_right(fleet)
        saved = fleet.state.releases()
        assert journal.interrupted(fleet.state, config.state_dir) is None
        assert (ended.id, ended.outcome) == (killed.id, "promoted")
        assert weights(elb) == {2: 100}
        assert target_states(elb, 2) == ["healthy", "healthy"]
        assert running(ec2) == NEW
        fleet.destroy()
    assert [(r["id"], r["outcome"]) for r in saved] == [(killed.id, "promoted")]
    assert saved[0]["reason"].startswith("promote cut short (interrupted at promote")
    assert leftovers(NAME) == {}
