"""An AWS Application Load Balancer in front of the balanced role (target aws).

One target group per generation, and one listener whose forward action is weighted between
them: a canary step is a weight change (``modify_listener``), a member's health is its target
group's, retiring deregisters members (the target group's drain delay lets requests in flight
finish) and deletes their target group once it is empty, and a rollback puts the weights
back. `lab up` makes it (:meth:`ALB.ensure`) with the current generation behind it at full
weight; `lab destroy` removes it with everything else tagged with the lab's name.

The ALB does not report a member's own failed requests through its API (CloudWatch does,
minutes later), so :meth:`failures` says it cannot tell and the probe's view gates a step.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from lab.aws import network
from lab.aws.api import Clients, clients, tag_list, tags_of, translated
from lab.aws.resources import (
    GENERATION_TAG,
    NAME,
    Found,
    ec2_wait,
    load_balancers,
    of_lab,
    pages,
    remove,
    tags,
)
from lab.balancers.base import Balancer, Member, Tally
from lab.errors import TargetError
from lab.events import Event, Listener, ignore

if TYPE_CHECKING:
    from lab.access.keys import KeyPair
    from lab.config import HealthCheck, LabConfig
    from lab.state import ServerRecord
    from lab.targets.aws import AwsSettings

FULL_WEIGHT = 100
DRAIN_SECONDS = 5  # each target group's deregistration delay: requests in flight finish
HEALTH_TIMEOUT = 180.0  # an ALB needs two passed checks 5 s apart, after registration
POLL_SECONDS = 2.0  # between looks at target health: the API's rate limits are per account


def short_name(lab: str, suffix: str = "") -> str:
    """A load balancer or target group name (at most 32 characters, letters, digits and
    '-'): ``lab-<lab><suffix>``, shortened with a hash of the lab's name when too long."""
    name = f"lab-{lab}{suffix}"
    if len(name) <= 32:
        return name
    digest = hashlib.sha1(lab.encode()).hexdigest()[:6]
    return f"lab-{lab[:32 - 5 - 6 - len(suffix)]}-{digest}{suffix}"


class ALB(Balancer):
    """Talks to one lab's ALB, its listener and its target groups through elbv2."""

    kind = "alb"
    # ELBv2 refills 10 Describe calls a second per account and region; a release looks at
    # target health (and EC2 at its instances) every 4 s, so ten releases at once fit.
    poll_seconds = 4.0  # an ALB checks its targets' health every 5 s at the most often
    targets = ("aws",)
    # How long retire waits for deregistered members to leave their target group. AWS keeps
    # a member "draining" for the group's deregistration delay and then some: with a 5 s
    # delay, real ones have stayed a minute or two. Past this, retire returns them.
    drain_ceiling: ClassVar[float] = 180.0

    def __init__(self, config: LabConfig, aws: Clients, arn: str, dns: str) -> None:
        self.config, self.aws, self.arn, self.dns = config, aws, arn, dns
        self._names: dict[str, str] = {}  # instance id -> server name
        # The lab's target groups by generation, asked once: a release reads members twice
        # a second, and each question costs API calls shared by the whole account.
        self._group_cache: dict[int, str] | None = None
        # The listener's weights, read once and then kept as lab sets them: only lab changes
        # them, and one release at a time (its lock), so a look at the members costs only
        # the target groups' health.
        self._weights_known: dict[str, int] | None = None
        self._listener_arn: str | None = None
        # Which group each member is in, from the last look at their health: a shift needs
        # it, and lab's own registrations are the only changes.
        self._where: dict[str, str] | None = None

    # making it -------------------------------------------------------------------------------

    @classmethod
    def ensure(cls, config: LabConfig, servers: list[ServerRecord], key: KeyPair,
               on_event: Listener = ignore) -> None:
        """The lab's ALB, its security group and a listener forwarding to the target group
        of the balanced role's current generation; on failure, what this made is removed."""
        settings = _settings(config)
        aws = clients(settings.region)
        made = Found()  # what this call created, removed should it fail
        with translated(aws.region):
            try:
                balancer = cls._find(config, aws) or cls._create(config, aws, settings, made,
                                                                  on_event)
                balancer._take(servers)
            except BaseException:
                remove(aws, made)
                raise

    @classmethod
    def _create(cls, config: LabConfig, aws: Clients, settings: AwsSettings, made: Found,
                on_event: Listener) -> ALB:
        assert config.balancer is not None
        place = network.placement(aws, settings.subnet)
        health = config.health_of(config.balancer.routes_to)
        ports = sorted({health.port, *config.servers[config.balancer.routes_to].ports})
        labels = tags(config.name, settings.lifetime_delta)
        groups = network.ensure_groups(aws, config.name, place.vpc, cast(str, settings.ssh_cidr),
                                       ports, config.balancer.listen, labels, made)
        on_event(Event("create", f"creating load balancer {short_name(config.name)}"))
        found = aws.elbv2.create_load_balancer(
            Name=short_name(config.name), Subnets=place.balancer_subnets,
            SecurityGroups=[groups["balancer"]], Scheme="internet-facing",
            Type="application", IpAddressType="ipv4", Tags=tag_list(labels),
        )["LoadBalancers"][0]
        made.load_balancers.append(found["LoadBalancerArn"])
        ec2_wait(aws.elbv2, "load_balancer_available", f"load balancer {short_name(config.name)}",
                 on_event, LoadBalancerArns=[found["LoadBalancerArn"]])
        return cls(config, aws, found["LoadBalancerArn"], found["DNSName"])

    def _take(self, servers: list[ServerRecord]) -> None:
        """Register the balanced role's current generation; the first time, make the
        listener forward to it at full weight."""
        assert self.config.balancer is not None
        role = [s for s in servers if s.role == self.config.balancer.routes_to and not s.gone]
        if not role:
            return
        generation = max(s.generation for s in role)
        current = [s for s in role if s.generation == generation]
        health = self.config.health_of(self.config.balancer.routes_to)
        group = self._ensure_group(generation, health)
        self._register(group, [s.name for s in current], health.port)
        weights = self._weights()
        if self._listener() is None:
            self.aws.elbv2.create_listener(
                LoadBalancerArn=self.arn, Protocol="HTTP", Port=self.config.balancer.listen,
                DefaultActions=_forward({group: FULL_WEIGHT}),
                Tags=tag_list(tags(self.config.name, _settings(self.config).lifetime_delta)))
            self._weights_known = None
        elif group not in weights:
            serving = any(weights.values())
            self._set_weights(weights | {group: 0 if serving else FULL_WEIGHT})

    # finding it ------------------------------------------------------------------------------

    @classmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> ALB | None:
        aws = clients(_settings(config).region)
        with translated(aws.region):
            return cls._find(config, aws)

    @classmethod
    def _find(cls, config: LabConfig, aws: Clients) -> ALB | None:
        arns = load_balancers(aws, of_lab(config.name))
        if not arns:
            return None
        found = aws.elbv2.describe_load_balancers(LoadBalancerArns=arns[:1])["LoadBalancers"][0]
        return cls(config, aws, found["LoadBalancerArn"], found["DNSName"])

    # the Balancer interface ------------------------------------------------------------------

    @property
    def url(self) -> str:
        listen = self.config.balancer.listen if self.config.balancer else 80
        return f"http://{self.dns}:{listen}/"

    def members(self) -> dict[str, Member]:
        with translated(self.aws.region):
            weights = self._weights()
            health = {group: self._health(group) for group in self._groups().values()}
        self._where = {name: group for group, rows in health.items() for name in rows}
        healthy = {g: [n for n, state in rows.items() if state == "healthy"]
                   for g, rows in health.items()}
        total = sum(weights.get(g, 0) for g, names in healthy.items() if names)
        members = {}
        for group, rows in health.items():
            weight = weights.get(group, 0)
            for name, state in rows.items():
                share = (weight / total / len(healthy[group])
                         if total and state == "healthy" else 0.0)
                members[name] = Member(name=name, health=state, healthy=state == "healthy",
                                       share=share, serving=weight > 0 and state != "draining",
                                       weight=weight)
        return members

    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        with translated(self.aws.region):
            for generation in sorted({s.generation for s in servers}):
                group = self._ensure_group(generation, health)
                self._register(group, [s.name for s in servers if s.generation == generation],
                               health.port)
                weights = self._weights()
                if group not in weights:
                    self._set_weights(weights | {group: 0})

    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        with translated(self.aws.region):
            where = self._group_of_members()
            weights = self._weights()
            for name in old:
                if name in where:
                    weights[where[name]] = FULL_WEIGHT - percent
            for name in new:
                if name in where:
                    weights[where[name]] = percent
            self._set_weights(weights)
        absent = [n for n in old if n not in where]
        if percent > 0:
            absent += [n for n in new if n not in where]
        if absent:
            raise TargetError(f"balancer: {', '.join(absent)} not in a target group, cannot "
                              f"move {percent}% of traffic")

    def failures(self, names: list[str]) -> Tally | None:
        return None

    def retire(self, names: list[str], timeout: float = 10.0) -> list[str]:
        """Deregister (the drain delay lets requests in flight finish), wait for them to
        leave (up to :attr:`drain_ceiling`, or ``timeout`` when longer), then delete target
        groups left empty and take them out of the listener (also an empty one a join cut
        short left behind at zero weight)."""
        with translated(self.aws.region):
            where = self._group_of_members()
            ids = self._ids()
            by_group: dict[str, list[str]] = {}
            for name in names:
                if name in where:
                    by_group.setdefault(where[name], []).append(name)
            for group, members in by_group.items():
                self._where = None
                self.aws.elbv2.deregister_targets(TargetGroupArn=group, Targets=[
                    {"Id": ids[n]} for n in members if n in ids])
            lingering = self._drained(by_group, timeout)
            weights = self._weights()
            for group in set(by_group) | set(self._groups().values()):
                # Emptied now, or left empty and weightless by a join cut short.
                if (group in by_group or not weights.get(group)) and not self._health(group):
                    self._drop_group(group)
        return lingering

    def wait_healthy(self, names: list[str], timeout: float = 15.0,
                     give_up: threading.Event | None = None) -> list[str]:
        """As the base's, with the time an ALB needs to pass a new target's checks, asking
        every :data:`POLL_SECONDS`."""
        deadline = time.monotonic() + max(timeout, HEALTH_TIMEOUT)
        while True:
            members = self.members()
            unhealthy = [n for n in names if n not in members or not members[n].healthy]
            if not unhealthy or time.monotonic() >= deadline or (give_up and give_up.is_set()):
                return unhealthy
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    # target groups and the listener --------------------------------------------------------

    def _groups(self) -> dict[int, str]:
        """The lab's target groups by generation."""
        if self._group_cache is None:
            self._group_cache = self._find_groups()
        return dict(self._group_cache)

    def _find_groups(self) -> dict[int, str]:
        chosen: dict[int, str] = {}
        # All of the region's, matched by tag: asked by load balancer, moto raises when
        # it has none, and a group taken out of the listener is no longer the balancer's.
        arns = [g["TargetGroupArn"] for g in pages(self.aws.elbv2, "describe_target_groups",
                                                   "TargetGroups")]
        for start in range(0, len(arns), 20):
            for found in self.aws.elbv2.describe_tags(
                    ResourceArns=arns[start:start + 20])["TagDescriptions"]:
                labels = tags_of(found)
                if labels.get(NAME) == self.config.name and GENERATION_TAG in labels:
                    chosen[int(labels[GENERATION_TAG])] = found["ResourceArn"]
        return chosen

    def _ensure_group(self, generation: int, health: HealthCheck) -> str:
        existing = self._groups().get(generation)
        if existing:
            return existing
        settings = _settings(self.config)
        labels = tags(self.config.name, settings.lifetime_delta, generation=str(generation))
        network_ = network.placement(self.aws, settings.subnet)
        group = self.aws.elbv2.create_target_group(
            Name=short_name(self.config.name, f"-g{generation}"), Protocol="HTTP",
            Port=health.port, VpcId=network_.vpc, TargetType="instance",
            HealthCheckProtocol="HTTP", HealthCheckPath=health.path,
            HealthCheckPort=str(health.port), HealthCheckIntervalSeconds=5,
            HealthCheckTimeoutSeconds=4, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
            Matcher={"HttpCode": "200-399"}, Tags=tag_list(labels),
        )["TargetGroups"][0]["TargetGroupArn"]
        self._group_cache = None
        self.aws.elbv2.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(DRAIN_SECONDS)}])
        return str(group)

    def _register(self, group: str, names: list[str], port: int) -> None:
        self._where = None
        ids = self._ids()
        missing = [n for n in names if n not in ids]
        if missing:
            raise TargetError(f"balancer: no running instance for {', '.join(missing)}")
        if names:
            self.aws.elbv2.register_targets(TargetGroupArn=group, Targets=[
                {"Id": ids[n], "Port": port} for n in names])

    def _listener(self) -> dict[str, Any] | None:
        found = self.aws.elbv2.describe_listeners(LoadBalancerArn=self.arn)["Listeners"]
        return found[0] if found else None

    def _weights(self) -> dict[str, int]:
        """Each target group's weight in the listener's forward action."""
        if self._weights_known is not None:
            return dict(self._weights_known)
        listener = self._listener()
        if listener is None:
            return {}
        self._listener_arn = listener["ListenerArn"]
        weights: dict[str, int] = {}
        for action in listener["DefaultActions"]:
            forward = action.get("ForwardConfig", {}).get("TargetGroups", [])
            weights |= {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in forward}
            if not forward and action.get("TargetGroupArn"):
                weights[action["TargetGroupArn"]] = FULL_WEIGHT
        self._weights_known = dict(weights)
        return weights

    def _set_weights(self, weights: dict[str, int]) -> None:
        if self._listener_arn is None:
            listener = self._listener()
            if listener is None:
                raise TargetError("balancer: the load balancer has no listener: run `lab up`")
            self._listener_arn = listener["ListenerArn"]
        self._weights_known = None  # unknown until AWS has taken the change
        self.aws.elbv2.modify_listener(ListenerArn=self._listener_arn,
                                       DefaultActions=_forward(weights))
        self._weights_known = dict(weights)

    def _drop_group(self, group: str) -> None:
        weights = self._weights()
        weights.pop(group, None)
        if weights:
            self._set_weights(weights)
        self._group_cache = None
        self.aws.elbv2.delete_target_group(TargetGroupArn=group)

    def _health(self, group: str) -> dict[str, str]:
        """Each registered member of a target group by name, with its state."""
        rows = self.aws.elbv2.describe_target_health(TargetGroupArn=group)[
            "TargetHealthDescriptions"]
        names = self._names_of([r["Target"]["Id"] for r in rows])
        return {names.get(r["Target"]["Id"], r["Target"]["Id"]): r["TargetHealth"]["State"]
                for r in rows}

    def _group_of_members(self) -> dict[str, str]:
        if self._where is None:
            self._where = {name: group for group in self._groups().values()
                           for name in self._health(group)}
        return dict(self._where)

    def _drained(self, by_group: dict[str, list[str]], timeout: float) -> list[str]:
        """Wait until the members deregistered from each group have left it, looking every
        :data:`POLL_SECONDS` (the Describe calls' rate limit is the account's): those still
        there at the ceiling."""
        deadline = time.monotonic() + max(timeout, self.drain_ceiling, 3 * DRAIN_SECONDS)
        lingering = self._lingering(by_group)
        if lingering:
            self.on_event(Event("wait", f"waiting for {', '.join(lingering)} to finish "
                                        "draining (AWS takes a minute or two)"))
        while lingering and time.monotonic() < deadline:
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            lingering = self._lingering(by_group)
        return lingering

    def _lingering(self, by_group: dict[str, list[str]]) -> list[str]:
        """The members of ``by_group`` still in their group: one look per group."""
        return [n for group, names in by_group.items()
                for there in [self._health(group)] for n in names if n in there]

    def _ids(self) -> dict[str, str]:
        """The lab's running instances: server name -> instance id."""
        found = {}
        for reservation in pages(self.aws.ec2, "describe_instances", "Reservations", Filters=[
                {"Name": f"tag:{NAME}", "Values": [self.config.name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}]):
            for instance in reservation["Instances"]:
                name = tags_of(instance).get("lab.server", instance["InstanceId"])
                found[name] = instance["InstanceId"]
                self._names[instance["InstanceId"]] = name
        return found

    def _names_of(self, ids: list[str]) -> dict[str, str]:
        if any(i not in self._names for i in ids):
            self._ids()
        return {i: self._names[i] for i in ids if i in self._names}


def _forward(weights: dict[str, int]) -> list[dict[str, Any]]:
    return [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": g, "Weight": w} for g, w in weights.items()],
        "TargetGroupStickinessConfig": {"Enabled": False}}}]


def _settings(config: LabConfig) -> AwsSettings:
    return cast("AwsSettings", config.settings("aws"))
