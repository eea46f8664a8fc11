"""The ALB balancer against moto: made by `lab up`, one target group per generation, weights
as canary steps, health from the target group, retire and rollback, and a whole release (the
real release code) that promotes or rolls back and leaves nothing of the old generation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from awslab import CIDR, REGION, Clock, QuietProbe, fail, key_for, lab_config, leftovers, passing
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

from lab.aws.api import Clients
from lab.balancers import alb
from lab.balancers.alb import ALB, short_name
from lab.balancers.base import Member, balancer_class
from lab.config import LabConfig
from lab.errors import ConfigError, TargetError
from lab.fleet import Fleet
from lab.loaded import Lab
from lab.release import Checks, ReleaseFailed, release
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

Listener = Any


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(alb, "time", clock)
    return clock


@pytest.fixture
def lab(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: Clock) -> LabConfig:
    """A lab of two web servers behind `kind: haproxy` on target aws (an ALB), fast checks,
    on the ALB's virtual clock. SSH readiness is the one boundary left out: moto's instances
    cannot be reached."""
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    monkeypatch.setattr(alb, "DRAIN_SECONDS", 0)
    return lab_config(tmp_path, aws_env, balancer=True, count=2)


def alb_of(lab: LabConfig, fleet: Fleet) -> ALB:
    """The lab's balancer, which on AWS must be an ALB."""
    balancer = Lab.resolve(lab).open_balancer(fleet.live(), fleet.key)
    assert isinstance(balancer, ALB)
    return balancer


def joined_generation(lab: LabConfig, fleet: Fleet, balancer: ALB) -> list[str]:
    """A new generation of web, joined behind the listener at 0 %: its servers' names."""
    servers = fleet.add_generation("web")
    balancer.join(servers, lab.health_of("web"))
    return [s.name for s in servers]


def own_vpc() -> tuple[str, list[str]]:
    """A VPC other than the default one, with a public subnet (its main route table goes
    to an internet gateway) in each of two zones."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    [main] = ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}])[
        "RouteTables"]
    ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0",
                     GatewayId=gateway)
    return vpc, [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24",
                                   AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
                 for i, zone in enumerate("ab")]


def next_alb_clients(monkeypatch: pytest.MonkeyPatch, prepare: Callable[[Clients], Any]) -> None:
    """The clients lab.balancers.alb makes next are handed to ``prepare`` first."""
    real = alb.clients

    def clients(region: str | None) -> Clients:
        made = real(region)
        prepare(made)
        monkeypatch.setattr(alb, "clients", real)
        return made

    monkeypatch.setattr(alb, "clients", clients)


def refusing_once(monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    """The next ``operation`` the ALB code sends is refused (ValidationError)."""
    next_alb_clients(monkeypatch, lambda made: fail(made.elbv2, operation, "ValidationError",
                                                    times=1))


def weights(balancer: ALB) -> dict[int, int]:
    """The listener's weight per generation, read back from AWS."""
    by_arn = {arn: generation for generation, arn in balancer._groups().items()}
    return {by_arn[arn]: w for arn, w in balancer._weights().items()}


def test_haproxy_on_aws_is_an_alb_and_alb_elsewhere_says_why_not(lab: LabConfig) -> None:
    assert balancer_class(lab) is ALB
    local = lab.model_copy(update={"target": "docker",
                                   "balancer": lab.balancer.model_copy(update={"kind": "alb"})})
    with pytest.raises(ConfigError, match=r"^lab.yml: balancer.kind: alb runs only on target "
                                          r"aws, not docker \(use haproxy\)$"):
        balancer_class(local)


def test_up_makes_the_alb_with_the_first_generation_at_full_weight(lab: LabConfig) -> None:
    with Fleet(lab) as fleet:
        servers = fleet.up()
        balancer = Lab.resolve(lab).open_balancer(servers, fleet.key)
        assert isinstance(balancer, ALB)
        assert balancer.url.startswith("http://") and balancer.url.endswith(
            ".elb.amazonaws.com:8080/")
        members = balancer.members()
        assert sorted(members) == ["web-1", "web-2"]
        assert all(m.healthy and m.serving and m.share == 0.5 for m in members.values())
        assert weights(balancer) == {1: 100}
        fleet.up()  # again: nothing new, the same balancer and listener
        assert weights(balancer) == {1: 100}
        elb = boto3.client("elbv2", region_name=REGION)
        group = elb.describe_target_groups()["TargetGroups"][0]
        assert {key: group[key] for key in (
            "TargetGroupName", "Protocol", "Port", "TargetType", "HealthCheckProtocol",
            "HealthCheckPath", "HealthCheckPort", "HealthCheckIntervalSeconds",
            "HealthCheckTimeoutSeconds", "HealthyThresholdCount", "UnhealthyThresholdCount",
            "Matcher")} == {
            "TargetGroupName": "lab-t-g1", "Protocol": "HTTP", "Port": 80,
            "TargetType": "instance", "HealthCheckProtocol": "HTTP",
            "HealthCheckPath": "/health", "HealthCheckPort": "80",
            "HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 4,
            "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 2,
            "Matcher": {"HttpCode": "200-399"}}
        attributes = elb.describe_target_group_attributes(
            TargetGroupArn=group["TargetGroupArn"])["Attributes"]
        assert {"Key": "deregistration_delay.timeout_seconds", "Value": "0"} in attributes
        found = elb.describe_load_balancers()["LoadBalancers"][0]
        ec2 = boto3.client("ec2", region_name=REGION)
        own = ec2.describe_security_groups(GroupNames=["lab-t-balancer"])["SecurityGroups"]
        assert {key: found[key] for key in ("LoadBalancerName", "Scheme", "Type",
                                            "IpAddressType", "SecurityGroups")} == {
            "LoadBalancerName": "lab-t", "Scheme": "internet-facing", "Type": "application",
            "IpAddressType": "ipv4", "SecurityGroups": [own[0]["GroupId"]]}
        assert len({zone["ZoneName"] for zone in found["AvailabilityZones"]}) >= 2
        listener = elb.describe_listeners(LoadBalancerArn=found["LoadBalancerArn"])[
            "Listeners"][0]
        assert (listener["Protocol"], listener["Port"]) == ("HTTP", 8080)
        forward = listener["DefaultActions"][0]["ForwardConfig"]
        assert forward["TargetGroupStickinessConfig"]["Enabled"] is False  # weights rule alone
        tagged = elb.describe_tags(ResourceArns=[found["LoadBalancerArn"],
                                                 listener["ListenerArn"]])["TagDescriptions"]
        assert all({"Key": "lab.name", "Value": "t"} in d["Tags"] for d in tagged)
        fleet.destroy()
    assert leftovers("t") == {}


def test_the_servers_take_http_only_from_the_balancers_group(lab: LabConfig) -> None:
    with Fleet(lab) as fleet:
        fleet.up()
        ec2 = boto3.client("ec2", region_name=REGION)
        groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
            Filters=[{"Name": "tag:lab.name", "Values": ["t"]}])["SecurityGroups"]}
        servers, balancer = groups["lab-t-servers"], groups["lab-t-balancer"]
        http = [r for r in servers["IpPermissions"] if r["FromPort"] == 80]
        assert [p["GroupId"] for p in http[0]["UserIdGroupPairs"]] == [balancer["GroupId"]]
        assert http[0]["IpRanges"] == []
        assert [(r["FromPort"], r["IpRanges"][0]["CidrIp"]) for r in balancer["IpPermissions"]
                ] == [(8080, "203.0.113.7/32")]
        fleet.destroy()
    assert leftovers("t") == {}


def test_weights_shift_retire_and_roll_back(lab: LabConfig) -> None:
    with Fleet(lab) as fleet:
        old = fleet.up()
        balancer = Lab.resolve(lab).open_balancer(old, fleet.key)
        assert isinstance(balancer, ALB)
        new = fleet.add_generation("web")
        balancer.join(new, lab.health_of("web"))
        assert weights(balancer) == {1: 100, 2: 0}
        assert not any(balancer.members()[s.name].serving for s in new)
        olds, news = [s.name for s in old], [s.name for s in new]
        for percent in (10, 50, 100):
            balancer.shift(olds, news, percent)
            assert weights(balancer) == {1: 100 - percent, 2: percent}
        assert balancer.members()[news[0]].share == 0.5
        balancer.shift(olds, news, 0)  # the rollback's way back
        assert weights(balancer) == {1: 100, 2: 0}
        assert balancer.retire(news) == []
        assert weights(balancer) == {1: 100}  # the new generation's group is gone
        assert sorted(balancer.members()) == sorted(olds)
        balancer.shift(olds, news, 0)  # members gone from the balancer: no matter at 0 %
        assert weights(balancer) == {1: 100}
        with pytest.raises(TargetError) as caught:  # the old moves, the missing are named
            balancer.shift([*olds, "web-9"], news, 1)
        assert str(caught.value) == (f"balancer: web-9, {', '.join(news)} not in a target "
                                     "group, cannot move 1% of traffic")
        assert weights(balancer) == {1: 99}
        fleet.destroy()
    assert leftovers("t") == {}


def test_health_comes_from_the_target_group(lab: LabConfig, clock: Clock,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """moto calls every registered instance healthy; the test makes one fail its checks."""
    with Fleet(lab) as fleet:
        servers = fleet.up()
        balancer = Lab.resolve(lab).open_balancer(servers, fleet.key)
        assert isinstance(balancer, ALB)
        sick = balancer._ids()["web-2"]
        real = FakeTargetGroup.health_for

        def health_for(self: FakeTargetGroup, target: dict[str, Any],
                       ec2_backend: Any) -> FakeHealthStatus:
            if target["Id"] == sick:
                return FakeHealthStatus(sick, "80", "80", "unhealthy",
                                        "Target.ResponseCodeMismatch", "503")
            return real(self, target, ec2_backend)

        monkeypatch.setattr(FakeTargetGroup, "health_for", health_for)
        members = balancer.members()
        assert (members["web-2"].health, members["web-2"].healthy) == ("unhealthy", False)
        assert members["web-1"].share == 1.0 and members["web-2"].share == 0.0
        # At least the time an ALB needs, asking every POLL_SECONDS; a longer timeout in full.
        assert balancer.wait_healthy(["web-1", "web-2"], timeout=0.1) == ["web-2"]
        assert clock.naps == [alb.POLL_SECONDS] * 90 and alb.HEALTH_TIMEOUT == 180
        clock.naps = []
        assert balancer.wait_healthy(["web-1", "web-2", "web-9"], timeout=180.5) == [
            "web-2", "web-9"]
        assert clock.naps == [alb.POLL_SECONDS] * 90 + [0.5]  # not past its deadline
        clock.naps, give_up = [], threading.Event()
        give_up.set()  # a release told to stop: one look, no wait
        assert balancer.wait_healthy(["web-2"], give_up=give_up) == ["web-2"]
        assert balancer.wait_healthy(["web-1"], give_up=give_up) == []
        assert clock.naps == []
        sick = ""  # passes its checks now
        assert balancer.wait_healthy(["web-1", "web-2"], give_up=threading.Event()) == []
        assert clock.naps == []
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_release_promotes_through_the_alb_and_removes_the_old_generation(
        lab: LabConfig) -> None:
    fast = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [50, 100], "step_seconds": 0.1})})
    with Fleet(fast) as fleet:
        fleet.up()
        report = release(fleet, probe=QuietProbe, checks=Checks(passing, passing))
        assert report.outcome == "promoted" and report.old == ["web-1", "web-2"]
        balancer = Lab.resolve(fast).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        assert weights(balancer) == {2: 100}
        assert sorted(balancer.members()) == sorted(report.new)
        assert sorted(s.name for s in fleet.live()) == sorted(report.new)
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_release_on_aws_leaves_room_for_a_class_in_the_api_rate_limits(
        lab: LabConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """ELBv2 refills 10 Describe calls a second per account and region (40 at once): while
    traffic is on the new generation, a release asks at most one a second, so ten releases
    at once (a class doing exercise 09) are not throttled. EC2's calls are counted too."""
    import botocore.client

    calls: list[tuple[float, str]] = []
    real = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        calls.append((time.monotonic(), client.meta.service_model.service_name))
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    steady = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [50, 100], "step_seconds": 4.0})})
    phases: list[tuple[float, str]] = []
    with Fleet(steady) as fleet:
        fleet.up()
        report = release(fleet, probe=QuietProbe, checks=Checks(passing, passing),
                         on_event=lambda e: phases.append((time.monotonic(), e.message)))
        fleet.destroy()
    assert report.outcome == "promoted"
    began = next(t for t, message in phases if message.startswith("canary 50%"))
    ended = next(t for t, message in phases if message.startswith("promote"))
    seconds = ended - began
    per_second = {service: sum(1 for t, s in calls if began <= t < ended and s == service)
                  / seconds for service in ("elbv2", "ec2")}
    assert seconds >= 8 and per_second["elbv2"] <= 1.0, per_second
    assert per_second["ec2"] <= 1.0, per_second


def test_a_failed_release_puts_the_weights_back(lab: LabConfig) -> None:
    fast = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [50, 100], "step_seconds": 0.1})})

    def failing(fleet: Fleet, names: list[str], overrides: Any, on_event: Listener) -> str:
        return "test_web.py::test_index failed"

    with Fleet(fast) as fleet:
        fleet.up()
        with pytest.raises(ReleaseFailed, match="failed its tests"):
            release(fleet, probe=QuietProbe, checks=Checks(passing, failing))
        balancer = Lab.resolve(fast).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        assert weights(balancer) == {1: 100}
        assert sorted(s.name for s in fleet.live()) == ["web-1", "web-2"]
        fleet.destroy()
    assert leftovers("t") == {}


def test_names_fit_aws_limits() -> None:
    """32 characters at most; a longer name keeps its start and suffix, with a hash of the
    whole lab name between them so two long names stay apart."""
    assert short_name("t", "-g1") == "lab-t-g1"
    assert short_name("b" * 28) == "lab-" + "b" * 28  # 32: fits as it is
    assert short_name("b" * 29) == "lab-" + "b" * 21 + "-51ec03"
    assert short_name("b" * 25, "-g1") == "lab-" + "b" * 25 + "-g1"
    assert short_name("b" * 26, "-g1") == "lab-" + "b" * 18 + "-b77d62-g1"
    long = short_name("a" * 32, "-g12")
    assert long == "lab-" + "a" * 17 + "-68f84a-g12"
    assert long != short_name("a" * 31 + "b", "-g12")


def test_ctrl_c_in_a_release_rolls_back_and_removes_the_new_generation(
        lab: LabConfig) -> None:
    fast = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [50, 100], "step_seconds": 0.1})})

    def interrupted(fleet: Fleet, names: list[str], overrides: Any, on_event: Listener) -> str:
        raise KeyboardInterrupt

    with Fleet(fast) as fleet:
        fleet.up()
        with pytest.raises(KeyboardInterrupt):
            release(fleet, probe=QuietProbe, checks=Checks(passing, interrupted))
        balancer = Lab.resolve(fast).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        assert weights(balancer) == {1: 100}
        assert sorted(balancer._groups()) == [1]  # the new generation's group is gone
        assert sorted(s.name for s in fleet.target.list()) == ["web-1", "web-2"]
        fleet.destroy()
    assert leftovers("t") == {}


def test_ctrl_c_while_joining_leaves_no_target_group(lab: LabConfig,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted between making the new generation's target group and registering in it:
    the rollback deletes the empty group too."""
    fast = lab.model_copy(update={"release": lab.release.model_copy(
        update={"steps": [100], "step_seconds": 0.1})})
    with Fleet(fast) as fleet:
        fleet.up()
        real = ALB._register

        def register(self: ALB, group: str, names: list[str], port: int) -> None:
            if "web-3" in names:
                raise KeyboardInterrupt
            real(self, group, names, port)

        monkeypatch.setattr(ALB, "_register", register)
        with pytest.raises(KeyboardInterrupt):
            release(fleet, probe=QuietProbe, checks=Checks(passing, passing))
        balancer = Lab.resolve(fast).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        assert sorted(balancer._groups()) == [1] and weights(balancer) == {1: 100}
        fleet.destroy()
    assert leftovers("t") == {}


class Drain:
    """As on AWS, a deregistered target stays listed as ``draining`` for its target group's
    deregistration delay (moto drops it at once): here for ``seconds`` of the virtual clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, clock: Clock, seconds: float) -> None:
        self.seconds, self.until = seconds, dict[tuple[str, str], float]()
        deregister, describe = FakeTargetGroup.deregister, ELBv2Backend.describe_target_health

        def deregistered(group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            deregister(group, targets)
            for target in targets:
                self.until[(group.arn, target["Id"])] = clock.now + self.seconds

        def health(backend: ELBv2Backend, arn: str,
                   targets: list[dict[str, Any]]) -> list[FakeHealthStatus]:
            found = describe(backend, arn, targets)
            group = backend.target_groups[arn]
            return found + [FakeHealthStatus(target, str(group.port), group.health_check_port,
                                             "draining", "Target.DeregistrationInProgress")
                            for (where, target), until in self.until.items()
                            if where == arn and clock.now < until]

        monkeypatch.setattr(FakeTargetGroup, "deregister", deregistered)
        monkeypatch.setattr(ELBv2Backend, "describe_target_health", health)


def test_retire_waits_for_the_drain_then_gives_up_at_its_deadline(
        lab: LabConfig, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retired members stay in their group while requests in flight finish: retire looks
    every POLL_SECONDS, up to its drain ceiling (10 s here, 3 min on AWS), and returns those
    still draining; their group is deleted only once it is empty (a later retire does it)."""
    monkeypatch.setattr(alb, "DRAIN_SECONDS", 2)
    monkeypatch.setattr(ALB, "drain_ceiling", 10.0)
    drain = Drain(monkeypatch, clock, seconds=4.5)
    with Fleet(lab) as fleet:
        old = [s.name for s in fleet.up()]
        balancer = alb_of(lab, fleet)
        names = joined_generation(lab, fleet, balancer)
        draining = {n: m.serving for n, m in balancer.members().items()}
        assert draining == dict.fromkeys(old, True) | dict.fromkeys(names, False)

        assert balancer.retire(names, timeout=0) == []  # drained in 4.5 of 10 s
        assert clock.naps == [alb.POLL_SECONDS] * 3
        assert weights(balancer) == {1: 100} and sorted(balancer.members()) == old

        names = joined_generation(lab, fleet, balancer)
        drain.seconds, clock.naps = 11.5, []
        assert balancer.retire([*names, "web-9"]) == names  # the ceiling: still draining
        assert clock.naps == [alb.POLL_SECONDS] * 5
        members = balancer.members()
        assert {n: members[n].health for n in names} == dict.fromkeys(names, "draining")
        assert weights(balancer) == {1: 100, 3: 0}  # not empty yet: kept

        clock.now += 1.5  # drained now: the next retire deletes the group left empty
        clock.naps = []
        assert balancer.retire([], timeout=8) == []
        assert clock.naps == []
        assert weights(balancer) == {1: 100} and sorted(balancer._groups()) == [1]

        names = joined_generation(lab, fleet, balancer)
        drain.seconds, clock.naps = 11, []  # longer than the ceiling
        assert balancer.retire(names, timeout=0) == names
        assert clock.naps == [alb.POLL_SECONDS] * 5
        fleet.destroy()
    assert leftovers("t") == {}


def test_retire_keeps_a_group_with_members_left_and_waits_its_timeout(
        lab: LabConfig, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retiring one of two members leaves their group (and its weight) in place; a timeout
    longer than the drain ceiling is waited in full."""
    monkeypatch.setattr(alb, "DRAIN_SECONDS", 1)
    monkeypatch.setattr(ALB, "drain_ceiling", 4.0)
    Drain(monkeypatch, clock, seconds=8.5)
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        assert balancer.retire(["web-2"], timeout=8) == ["web-2"]
        assert clock.naps == [alb.POLL_SECONDS] * 4
        assert weights(balancer) == {1: 100} and sorted(balancer._groups()) == [1]
        members = balancer.members()
        assert (members["web-1"].share, members["web-2"].health) == (1.0, "draining")
        assert members["web-1"].serving and not members["web-2"].serving
        clock.now += 1
        assert sorted(balancer.members()) == ["web-1"]
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_member_that_passes_its_checks_later_is_waited_for(
        lab: LabConfig, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new target is ``initial`` until it passes its checks (moto: healthy at once)."""
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        ready = clock.now + 7
        real = FakeTargetGroup.health_for

        def health_for(self: FakeTargetGroup, target: dict[str, Any],
                       ec2_backend: Any) -> FakeHealthStatus:
            if clock.now < ready:
                return FakeHealthStatus(target["Id"], "80", "80", "initial",
                                        "Elb.RegistrationInProgress")
            return real(self, target, ec2_backend)

        monkeypatch.setattr(FakeTargetGroup, "health_for", health_for)
        assert not balancer.members()["web-1"].serving or balancer.members()["web-1"].share == 0
        assert balancer.wait_healthy(["web-1", "web-2"]) == []
        assert clock.naps == [alb.POLL_SECONDS] * 4
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_server_without_a_running_instance_or_a_balancer_without_listener_is_named(
        lab: LabConfig) -> None:
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        new = fleet.add_generation("web")
        gone = [replace(new[0], name="web-8"), new[1], replace(new[0], name="web-9")]
        with pytest.raises(TargetError, match=r"^balancer: no running instance for web-8, "
                                              r"web-9$"):
            balancer.join(gone, lab.health_of("web"))
        elb = boto3.client("elbv2", region_name=REGION)
        listener = balancer._listener()
        assert listener is not None
        elb.delete_listener(ListenerArn=listener["ListenerArn"])
        with pytest.raises(TargetError, match=r"^balancer: the load balancer has no listener: "
                                              r"run `lab up`$"):
            balancer.shift(["web-1"], [new[0].name], 50)
        fleet.destroy()
    assert leftovers("t") == {}


def test_what_aws_refuses_is_one_line_naming_the_region(lab: LabConfig) -> None:
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        new = fleet.add_generation("web")
        refused = r"^AWS in eu-west-1: {} failed: ValidationError: injected ValidationError$"
        for operation, call in [
                ("DescribeListeners", lambda: balancer.members()),
                ("DescribeTargetGroups", lambda: balancer.join(new, lab.health_of("web"))),
                ("ModifyListener", lambda: balancer.shift(["web-1"], ["web-3"], 50)),
                ("DeregisterTargets", lambda: balancer.retire(["web-2"]))]:
            fail(balancer.aws.elbv2, operation, "ValidationError", times=1)
            balancer._group_cache = None
            with pytest.raises(TargetError, match=refused.format(operation)):
                call()
        fleet.destroy()
    assert leftovers("t") == {}


def test_retire_drops_the_group_it_empties_and_no_other_that_carries_weight(
        lab: LabConfig) -> None:
    """Retiring a generation still at 50 % deletes its group; a group emptied by someone
    else (AWS drops terminated instances) keeps its place while it carries traffic."""
    with Fleet(lab) as fleet:
        old = [s.name for s in fleet.up()]
        balancer = alb_of(lab, fleet)
        new = joined_generation(lab, fleet, balancer)
        balancer.shift(old, new, 50)
        assert balancer.retire(new) == []
        assert weights(balancer) == {1: 50} and sorted(balancer._groups()) == [1]

        ids = balancer._ids()
        elb = boto3.client("elbv2", region_name=REGION)
        elb.deregister_targets(TargetGroupArn=balancer._groups()[1],
                               Targets=[{"Id": ids[n]} for n in old])
        joined_generation(lab, fleet, balancer)
        assert balancer.retire([]) == []
        assert weights(balancer) == {1: 50, 3: 0}
        fleet.destroy()
    assert leftovers("t") == {}


def test_members_as_the_listener_weighs_them_a_group_outside_it_at_zero(
        lab: LabConfig) -> None:
    """A group whose join was cut short before the listener took it carries nothing; a
    group at weight 1 serves; each member is named with its group's weight."""
    with Fleet(lab) as fleet:
        old = [s.name for s in fleet.up()]
        balancer = alb_of(lab, fleet)
        new = fleet.add_generation("web")
        names = [s.name for s in new]
        fail(balancer.aws.elbv2, "ModifyListener", "ValidationError", times=1)
        with pytest.raises(TargetError, match="ModifyListener failed"):
            balancer.join(new, lab.health_of("web"))
        assert weights(balancer) == {1: 100} and sorted(balancer._groups()) == [1, 2]
        expected = {n: Member(n, "healthy", True, 0.5, True, 100) for n in old} | {
            n: Member(n, "healthy", True, 0.0, False, 0) for n in names}
        assert balancer.members() == expected
        balancer.join(new, lab.health_of("web"))
        balancer.shift(old, names, 1)
        expected = {n: Member(n, "healthy", True, 0.495, True, 99) for n in old} | {
            n: Member(n, "healthy", True, 0.005, True, 1) for n in names}
        assert balancer.members() == expected
        fleet.destroy()
    assert leftovers("t") == {}


def test_the_alb_is_found_in_the_region_of_lab_yml_and_errors_name_it(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    config = lab_config(tmp_path, aws_env, balancer=True, region=REGION)
    with Fleet(config) as fleet:
        fleet.up()
        monkeypatch.setenv("AWS_REGION", "us-east-1")  # boto3's own choice is elsewhere
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        balancer = Lab.resolve(config).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB) and balancer.aws.region == REGION
        refusing_once(monkeypatch, "DescribeLoadBalancers")
        with pytest.raises(TargetError, match=r"^AWS in eu-west-1: DescribeLoadBalancers "
                                              r"failed: ValidationError: "):
            Lab.resolve(config).open_balancer(fleet.live(), fleet.key)
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_target_that_is_no_running_server_of_the_lab_is_shown_by_its_id(
        lab: LabConfig) -> None:
    """A stopped instance stays registered (``unused``): no server name is known for it, so
    `lab status` shows the instance id rather than drop it."""
    with Fleet(lab) as fleet:
        fleet.up()
        stopped = Lab.resolve(lab).open_balancer(fleet.live(), fleet.key)
        assert isinstance(stopped, ALB)
        instance = stopped._ids()["web-2"]
        boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[instance])
        balancer = Lab.resolve(lab).open_balancer(fleet.live(), fleet.key)  # knows no name for it
        assert isinstance(balancer, ALB)
        members = balancer.members()
        assert sorted(members) == sorted(["web-1", instance])
        assert (members[instance].health, members["web-1"].share) == ("unused", 1.0)
        fleet.destroy()
    assert leftovers("t") == {}


def test_up_again_puts_a_newer_generation_behind_the_listener(lab: LabConfig) -> None:
    """`lab up` after a release cut short (a new generation made, never joined) registers
    it: at 0 % while another group serves, at full weight when none does."""
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        fleet.add_generation("web")
        fleet.up()
        assert weights(balancer) == {1: 100, 2: 0}
        assert sorted(balancer.members()) == ["web-1", "web-2", "web-3", "web-4"]
        groups = balancer._groups()
        balancer._set_weights({groups[1]: 0, groups[2]: 0})
        fleet.add_generation("web")
        fleet.up()
        balancer = alb_of(lab, fleet)
        assert weights(balancer) == {1: 0, 2: 0, 3: 100}
        fleet.destroy()
    assert leftovers("t") == {}


def test_another_labs_servers_of_the_same_names_never_join_its_alb(
        lab: LabConfig, aws_env: str, tmp_path: Path) -> None:
    """Labs share an account and their servers' names: the ALB registers the instances of
    its own lab, found by the lab's name tag, also when another lab's were made since."""
    other = lab_config(tmp_path / "other", aws_env, name="tt")
    theirs = AwsTarget(other, key_for(other))
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        servers = fleet.add_generation("web")
        theirs.create([ServerSpec(s.name, "web", 1, s.image, ports=[80]) for s in servers])
        balancer.join(servers, lab.health_of("web"))
        ec2, elb = (boto3.client(service, region_name=REGION) for service in ("ec2", "elbv2"))
        ours = {i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "tag:lab.name", "Values": ["t"]}])["Reservations"] for i in r["Instances"]}
        registered = {d["Target"]["Id"] for g in elb.describe_target_groups()["TargetGroups"]
                      for d in elb.describe_target_health(
                          TargetGroupArn=g["TargetGroupArn"])["TargetHealthDescriptions"]}
        assert len(ours) == 4 and registered == ours
        assert sorted(balancer.members()) == ["web-1", "web-2", "web-3", "web-4"]
        fleet.destroy()
    assert sorted(theirs.destroy()) == ["web-3", "web-4"]
    assert leftovers("t") == {} and leftovers("tt") == {}


def test_only_the_balanced_role_goes_behind_the_alb(aws_env: str, tmp_path: Path,
                                                    lab: LabConfig) -> None:
    config = LabConfig.model_validate({
        "name": "t", "target": "aws",
        "servers": {"web": {"count": 1, "ports": [80], "health": {"path": "/health"}},
                    "db": {"count": 1}},
        "aws": {"ssh_cidr": CIDR, "image": aws_env},
        "balancer": {"kind": "haproxy", "routes_to": "web", "listen": 8080}}).located(tmp_path)
    with Fleet(config) as fleet:
        assert sorted(s.name for s in fleet.up()) == ["db-1", "web-1"]
        balancer = Lab.resolve(config).open_balancer(fleet.live(), fleet.key)
        assert isinstance(balancer, ALB)
        assert sorted(balancer.members()) == ["web-1"]
        fleet.destroy()
    assert leftovers("t") == {}


def test_the_labs_groups_are_found_by_tag_among_many_twenty_at_a_time(
        lab: LabConfig) -> None:
    """AWS describes the tags of 20 resources a call at most (moto takes any number): a
    region with more target groups than that, some of them another lab's, is read 20 at
    a time, and only this lab's generations are taken."""
    ec2, elb = (boto3.client(s, region_name=REGION) for s in ("ec2", "elbv2"))
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    for index in range(41):  # before the lab's own: its group comes 42nd
        tags = [{"Key": "lab.name", "Value": "other"},
                {"Key": "lab.generation", "Value": str(index % 3 + 1)}][:index % 3]
        elb.create_target_group(Name=f"other-{index}", Protocol="HTTP", Port=80,
                                VpcId=vpc["VpcId"], **({"Tags": tags} if tags else {}))
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        asked: list[int] = []
        balancer.aws.elbv2.meta.events.register(
            "before-parameter-build.elbv2.DescribeTags",
            lambda params, **_: asked.append(len(params["ResourceArns"])))
        ours = elb.describe_target_groups(Names=["lab-t-g1"])["TargetGroups"][0]
        assert balancer._find_groups() == {1: ours["TargetGroupArn"]}
        assert asked == [20, 20, 2]
        fleet.destroy()
    assert leftovers("t") == {}


def test_the_target_groups_live_in_the_vpc_of_lab_yml_s_subnet(
        aws_env: str, tmp_path: Path, lab: LabConfig) -> None:
    vpc, subnets = own_vpc()
    config = lab_config(tmp_path, aws_env, balancer=True, subnet=subnets[0])
    with Fleet(config) as fleet:
        fleet.up()
        elb = boto3.client("elbv2", region_name=REGION)
        assert [g["VpcId"] for g in elb.describe_target_groups()["TargetGroups"]] == [vpc]
        [found] = elb.describe_load_balancers()["LoadBalancers"]
        assert found["VpcId"] == vpc
        assert {zone["SubnetId"] for zone in found["AvailabilityZones"]} <= set(subnets)
        fleet.destroy()
    assert leftovers("t") == {}


def test_up_waits_for_its_own_load_balancer_only(lab: LabConfig,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Another load balancer of the region still being made is none of `lab up`'s business."""
    asked: list[dict[str, Any]] = []
    next_alb_clients(monkeypatch, lambda made: made.elbv2.meta.events.register(
        "before-parameter-build.elbv2.DescribeLoadBalancers",
        lambda params, **_: asked.append(dict(params))))
    with Fleet(lab) as fleet:
        fleet.up()
        arn = alb_of(lab, fleet).arn
        assert asked[-1] == {"LoadBalancerArns": [arn]}  # the wait for it to be available
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_lab_instance_still_starting_or_without_a_server_name_is_known(
        lab: LabConfig) -> None:
    """Instances are looked for while pending too, and one whose lab.server tag is gone is
    known by its id."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    with Fleet(lab) as fleet:
        fleet.up()
        ids = alb_of(lab, fleet)._ids()
        ec2_backends[DEFAULT_ACCOUNT_ID][REGION].get_instance(ids["web-1"])._state.name = \
            "pending"
        boto3.client("ec2", region_name=REGION).delete_tags(Resources=[ids["web-2"]],
                                                            Tags=[{"Key": "lab.server"}])
        assert alb_of(lab, fleet)._ids() == {"web-1": ids["web-1"], ids["web-2"]: ids["web-2"]}
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_balancer_added_to_a_running_lab_brings_its_own_security_group(
        aws_env: str, tmp_path: Path, lab: LabConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers' `lab up` made no balancer group (lab.yml had no balancer then): the ALB's
    `lab up` makes it, in lab.yml's VPC, open on the listen port to aws.ssh_cidr, the servers
    taking HTTP from it; and removes it again when the ALB cannot be made."""
    vpc, subnets = own_vpc()
    with Fleet(lab_config(tmp_path, aws_env, count=2, subnet=subnets[0])) as fleet:
        fleet.up()
    ec2 = boto3.client("ec2", region_name=REGION)

    def groups() -> dict[str, Any]:
        return {g["GroupName"]: g for g in ec2.describe_security_groups(
            Filters=[{"Name": "tag:lab.name", "Values": ["t"]}])["SecurityGroups"]}

    assert sorted(groups()) == ["lab-t-servers"]
    config = lab_config(tmp_path, aws_env, balancer=True, count=2, subnet=subnets[0])
    said: list[tuple[str, str]] = []
    with Fleet(config, on_event=lambda e: said.append((e.kind, e.message))) as fleet:
        refusing_once(monkeypatch, "CreateLoadBalancer")
        with pytest.raises(TargetError, match=r"^AWS in eu-west-1: CreateLoadBalancer failed"):
            fleet.up()
        assert sorted(groups()) == ["lab-t-servers"]  # the group it made went with it
        fleet.up()
        assert ("create", "creating load balancer lab-t") in said
        servers, balancer = groups()["lab-t-servers"], groups()["lab-t-balancer"]
        assert balancer["VpcId"] == vpc
        assert [(r["FromPort"], r["IpRanges"][0]["CidrIp"]) for r in balancer["IpPermissions"]
                ] == [(8080, CIDR)]
        http = [r for r in servers["IpPermissions"] if r["FromPort"] == 80]
        assert [pair["GroupId"] for pair in http[0]["UserIdGroupPairs"]] == [balancer["GroupId"]]
        fleet.destroy()
    assert leftovers("t") == {}


def test_up_makes_the_alb_in_the_region_of_lab_yml_and_its_errors_name_it(
        aws_env: str, tmp_path: Path, lab: LabConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    config = lab_config(tmp_path, aws_env, balancer=True, region=REGION)
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # boto3's own choice is elsewhere
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with Fleet(config) as fleet:
        refusing_once(monkeypatch, "DescribeLoadBalancers")
        with pytest.raises(TargetError, match=r"^AWS in eu-west-1: DescribeLoadBalancers "
                                              r"failed: ValidationError: "):
            fleet.up()
        fleet.up()
        found = boto3.client("elbv2", region_name=REGION).describe_load_balancers()
        assert [b["LoadBalancerName"] for b in found["LoadBalancers"]] == ["lab-t"]
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_listener_set_by_hand_is_read_at_aws_defaults(lab: LabConfig) -> None:
    """A forward action written without ForwardConfig (the console's plain form), or with
    groups but no weights, sends everything to its group(s) at AWS's default weight, 1."""
    with Fleet(lab) as fleet:
        fleet.up()
        balancer = alb_of(lab, fleet)
        listener = balancer._listener()
        assert listener is not None
        group = balancer._groups()[1]
        elb = boto3.client("elbv2", region_name=REGION)
        # Each change by hand is read by the next command (a balancer found afresh).
        elb.modify_listener(ListenerArn=listener["ListenerArn"],
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
        assert alb_of(lab, fleet)._weights() == {group: 100}
        assert alb_of(lab, fleet).members()["web-1"].share == 0.5
        elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": group}]}}])
        assert alb_of(lab, fleet)._weights() == {group: 1}
        elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[  # AWS's echo
            {"Type": "forward", "TargetGroupArn": group, "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": group, "Weight": 7}]}}])
        assert alb_of(lab, fleet)._weights() == {group: 7}
        fleet.destroy()
    assert leftovers("t") == {}
