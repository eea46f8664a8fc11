"""AWS takes its time where moto answers at once (issue "AWS as a real account behaves"): an
ALB stays "provisioning" for minutes (real ones over 10), an AMI "pending" as long, and a
deregistered target "draining" for a minute or two even with a 5 s deregistration delay.
Each state is injected on botocore's after-call hook for K looks, on a virtual clock: lab
waits it out up to a documented ceiling, says so while it waits, and past the ceiling gives
up in one line naming the resource and what to do, leaving nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from awslab import Clock, QuietProbe, answer, key_for, lab_config, leftovers, passing

from lab.aws import api, resources
from lab.aws.api import Clients
from lab.balancers import alb
from lab.balancers.alb import ALB
from lab.config import LabConfig
from lab.errors import ExitStatus, TargetError
from lab.events import Event
from lab.fleet import Fleet
from lab.loaded import Lab
from lab.release import Checks, release
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One virtual clock for lab.aws.resources' waits and the ALB's."""
    clock = Clock()
    monkeypatch.setattr(resources, "time", clock)
    monkeypatch.setattr(alb, "time", clock)
    return clock


@pytest.fixture
def lab(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: Clock) -> LabConfig:
    """Two web servers behind an ALB, as test_aws_alb.py's; SSH readiness left out."""
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    monkeypatch.setattr(alb, "DRAIN_SECONDS", 0)
    return lab_config(tmp_path, aws_env, balancer=True, count=2)


def alb_clients(monkeypatch: pytest.MonkeyPatch, prepare: Callable[[Clients], Any]) -> None:
    """Every client lab.balancers.alb makes from here on is handed to ``prepare`` first."""
    real = alb.clients

    def clients(region: str | None) -> Clients:
        made = real(region)
        prepare(made)
        return made

    monkeypatch.setattr(alb, "clients", clients)


def provisioning(parsed: dict[str, Any]) -> bool:
    """DescribeLoadBalancers, as AWS answers while an ALB is being made."""
    for found in parsed.get("LoadBalancers", []):
        found["State"] = {"Code": "provisioning"}
    return bool(parsed.get("LoadBalancers"))


# the load balancer ---------------------------------------------------------------------------


def test_an_alb_provisioning_for_minutes_is_waited_for_with_progress(
        lab: LabConfig, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """12 minutes: past lab's old 5 and botocore's own 10."""
    looks: list[list[int]] = []
    alb_clients(monkeypatch, lambda made: looks.append(
        answer(made.elbv2, "DescribeLoadBalancers", provisioning, times=48)))
    said: list[Event] = []

    ALB.ensure(lab, [], key_for(lab), on_event=said.append)

    assert sum(map(len, looks)) == 48 and clock.naps == [15] * 48  # botocore's delay
    waits = [e.message for e in said if e.kind == "wait"]
    becoming = "load balancer lab-t to become active (it can take several minutes)"
    assert waits == [f"waiting for {becoming}"] + [
        f"still waiting for {becoming}: {minutes} min so far" for minutes in range(1, 12)]
    assert "load_balancers" in leftovers("t")  # made, and kept
    AwsTarget(lab, key_for(lab)).destroy()
    assert leftovers("t") == {}


def test_an_alb_that_never_becomes_active_is_one_line_and_removed(
        lab: LabConfig, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    alb_clients(monkeypatch, lambda made: answer(made.elbv2, "DescribeLoadBalancers",
                                                 provisioning))

    with pytest.raises(TargetError) as caught:
        ALB.ensure(lab, [], key_for(lab))

    assert str(caught.value) == (
        "load balancer lab-t not active after 15 min: AWS is slow to make load balancers in "
        "eu-west-1 now (its Health Dashboard says if Elastic Load Balancing has trouble): run "
        "`lab up` again later")
    assert caught.value.exit_code == ExitStatus.CHECK_FAILED
    assert sum(clock.naps) == 15 * 60 and max(clock.naps) == 15  # the ceiling, looks 15 s apart
    assert leftovers("t") == {}  # the ALB and the security groups it made are gone


# the AMI ---------------------------------------------------------------------------------------


@pytest.fixture
def target(aws_env: str, tmp_path: Path, clock: Clock) -> AwsTarget:
    config = lab_config(tmp_path, aws_env)
    return AwsTarget(config, key_for(config))


def pending(parsed: dict[str, Any]) -> bool:
    """DescribeImages, as AWS answers while a baked AMI's snapshots are taken."""
    baked = [i for i in parsed.get("Images", []) if "lab.image-tag" in api.tags_of(i)]
    for image in baked:
        image["State"] = "pending"
    return bool(baked)


LABELS = {"lab.name": "t", "lab.role": "web", "lab.version": "v2"}


def test_an_ami_pending_for_minutes_is_waited_for(target: AwsTarget, clock: Clock) -> None:
    """17.5 minutes, 70 looks: past lab's old 60 looks (5 minutes) and botocore's 40."""
    server = target.create(SPECS)[0]
    looks = answer(target.aws.ec2, "DescribeImages", pending, times=71)

    ami = target.bake(server, "lab/t-web:v2", LABELS)

    # The first pending answer is the look that AWS knows the AMI; 70 more, 15 s apart.
    assert len(looks) == 71 and clock.naps == [15] * 70
    assert ami.startswith("ami-") and target.has_image(ami)
    target.destroy()
    target.remove_images()
    assert leftovers("t") == {}


def test_an_ami_never_available_is_one_line_and_deregistered(target: AwsTarget,
                                                             clock: Clock) -> None:
    server = target.create(SPECS)[0]
    answer(target.aws.ec2, "DescribeImages", pending)

    with pytest.raises(TargetError) as caught:
        target.bake(server, "lab/t-web:v2", LABELS)

    message = str(caught.value)
    assert message.startswith("image ami-") and "\n" not in message
    assert message.endswith(" not available after 20 min: AWS is slow to make images in "
                            "eu-west-1 now: run `lab bake` again later")
    assert sum(clock.naps) == 20 * 60
    assert not {"images", "snapshots"} & set(leftovers("t"))  # its snapshots went with it
    target.destroy()
    assert leftovers("t") == {}


def test_a_state_botocore_calls_a_failure_ends_the_wait_at_once(target: AwsTarget,
                                                                clock: Clock) -> None:
    server = target.create(SPECS)[0]

    def failed(parsed: dict[str, Any]) -> bool:
        baked = [i for i in parsed.get("Images", []) if "lab.image-tag" in api.tags_of(i)]
        for image in baked:
            image["State"] = "failed"
        return bool(baked)

    answer(target.aws.ec2, "DescribeImages", failed)
    with pytest.raises(TargetError, match=r"^image ami-\w+ will never be available: AWS "
                                          r"reports a failure"):
        target.bake(server, "lab/t-web:v2", LABELS)
    assert clock.naps == []
    target.destroy()
    assert leftovers("t") == {}


# the drain ------------------------------------------------------------------------------------


def draining(elbv2: Any, group: str, ids: list[str]) -> Callable[[dict[str, Any]], bool]:
    """DescribeTargetHealth of ``group``, as AWS answers while ``ids``, deregistered, drain
    (moto drops them at once)."""
    asked: list[str] = []
    elbv2.meta.events.register("provide-client-params.elbv2.DescribeTargetHealth",
                               lambda params, **_: asked.append(params["TargetGroupArn"]))

    def change(parsed: dict[str, Any]) -> bool:
        rows = parsed["TargetHealthDescriptions"]
        there = {r["Target"]["Id"] for r in rows}
        if asked[-1] != group or there & set(ids):
            return False  # another group, or not yet deregistered
        rows += [{"Target": {"Id": i, "Port": 80}, "TargetHealth": {
            "State": "draining", "Reason": "Target.DeregistrationInProgress"}} for i in ids]
        return True

    return change


def test_retire_waits_as_long_as_aws_drains_then_deletes_the_group(
        lab: LabConfig, clock: Clock) -> None:
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = Lab.resolve(lab).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        new = fleet.add_generation("web")
        balancer.join(new, lab.health_of("web"))
        names, group = [s.name for s in new], balancer._groups()[2]
        ids = [balancer._ids()[n] for n in names]
        looks = answer(balancer.aws.elbv2, "DescribeTargetHealth",
                       draining(balancer.aws.elbv2, group, ids), times=45)  # 90 s
        said: list[Event] = []
        balancer.on_event = said.append

        assert balancer.retire(names) == []

        assert len(looks) == 45 and clock.naps == [alb.POLL_SECONDS] * 45
        assert sorted(balancer._groups()) == [1]  # deleted once empty
        assert [e.message for e in said] == [f"waiting for {', '.join(names)} to finish "
                                             "draining (AWS takes a minute or two)"]

        # Past the ceiling (3 minutes), the members still draining are returned: a warning.
        new = fleet.add_generation("web")
        balancer.join(new, lab.health_of("web"))
        names, group = [s.name for s in new], balancer._groups()[3]
        ids = [balancer._ids()[n] for n in names]
        answer(balancer.aws.elbv2, "DescribeTargetHealth",
               draining(balancer.aws.elbv2, group, ids))
        clock.naps = []
        assert balancer.retire(names) == names
        assert sum(clock.naps) == ALB.drain_ceiling == 180
        assert max(clock.naps) == alb.POLL_SECONDS
        assert sorted(balancer._groups()) == [1, 3]  # kept: not empty
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_release_promotes_without_a_warning_while_the_old_generation_drains(
        lab: LabConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The promote retires the old generation, which AWS keeps draining for 90 s: no
    warning, and its target group is deleted."""
    fast = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [50, 100], "step_seconds": 0.1})})
    with Fleet(fast) as fleet:
        old = fleet.up()
        first = Lab.resolve(fast).open_balancer(old, fleet.key)
        assert isinstance(first, ALB)
        group, ids = first._groups()[1], list(first._ids().values())
        looks: list[list[int]] = []
        alb_clients(monkeypatch, lambda made: looks.append(answer(
            made.elbv2, "DescribeTargetHealth", draining(made.elbv2, group, ids), times=45)))
        said: list[Event] = []

        report = release(fleet, probe=QuietProbe, checks=Checks(passing, passing),
                         on_event=said.append)

        assert report.outcome == "promoted"
        assert [e.message for e in said if e.kind == "warning"] == []
        assert max(map(len, looks)) == 45  # the old generation drained for 90 s
        balancer = Lab.resolve(fast).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB) and sorted(balancer._groups()) == [2]
        fleet.destroy()
    assert leftovers("t") == {}
