"""Everything lab made on AWS, found by tag per service, and removed in dependency order.

Tags are the truth: ``lab.name`` says which lab a resource belongs to and ``lab.expires``
until when it may live, so ``lab destroy`` works after ``.lab/state.db`` is gone and
``lab aws sweep`` can clear a whole class's leftovers. The tagging API would be one call, but
it lists neither key pairs, launch templates nor listeners, and it lists terminated
instances: each service is asked itself.

Order matters: listeners before the load balancers and target groups they use, instances
before the security groups they sit in, AMIs before the snapshots behind them (deregistering
an AMI leaves its snapshots billing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from lab.aws.api import Clients, clients, code_of, tags_of, translated
from lab.config import LabConfig
from lab.errors import TargetError
from lab.events import Event, Listener, ignore
from lab.state import EventKind, State
from lab.targets.base import LABEL_PREFIX, ServerSpec, labels_for

NAME = f"{LABEL_PREFIX}name"
EXPIRES = f"{LABEL_PREFIX}expires"
GENERATION_TAG = f"{LABEL_PREFIX}generation"
# Instances in these states still exist (and may bill); terminated ones are gone.
EXISTING = ["pending", "running", "shutting-down", "stopping", "stopped"]
Match = Callable[[dict[str, str]], bool]


def tags(lab: str, lifetime: timedelta, spec: ServerSpec | None = None,
         **extra: str) -> dict[str, str]:
    """The tags of everything lab makes: its labels (``LAB_LABELS`` included) and when it
    expires, as UTC ISO 8601 (lexical order is time order)."""
    expires = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
    return labels_for(lab, spec) | {EXPIRES: expires} | {
        f"{LABEL_PREFIX}{key}": value for key, value in extra.items()}


def of_lab(lab: str) -> Match:
    return lambda found: found.get(NAME) == lab


def expired(now: datetime | None = None) -> Match:
    """Resources whose ``lab.expires`` has passed (unparseable: left alone)."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return lambda found: NAME in found and EXPIRES in found and found[EXPIRES] < moment


@dataclass
class Found:
    """lab's resources in one region, by type: ids, ARNs, and names for key pairs. Also the
    ledger of what one command made, for it to remove on failure."""

    listeners: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    launch_templates: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    key_pairs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {kind: len(ids) for kind, ids in vars(self).items() if ids}

    @property
    def empty(self) -> bool:
        return not self.counts()

    def describe(self) -> str:
        """"security groups sg-1, sg-2; target groups arn:..." for a person to read."""
        return "; ".join(f"{kind.replace('_', ' ')} {', '.join(ids)}"
                         for kind, ids in vars(self).items() if ids)


def find(aws: Clients, match: Match, images: bool = True) -> Found:
    """Every lab resource ``match`` accepts (by its tags), per service."""
    ec2 = aws.ec2
    found = Found()
    lbs = found.load_balancers = load_balancers(aws, match)
    for arn in lbs:
        for page in pages(aws.elbv2, "describe_listeners", "Listeners", LoadBalancerArn=arn):
            found.listeners.append(page["ListenerArn"])
    found.target_groups = _elbv2_tagged(aws, "describe_target_groups", "TargetGroups",
                                        "TargetGroupArn", match)
    tagged = [{"Name": "tag-key", "Values": [NAME]}]
    found.instances = [
        i["InstanceId"]
        for r in pages(ec2, "describe_instances", "Reservations",
                           Filters=[*tagged, {"Name": "instance-state-name", "Values": EXISTING}])
        for i in r["Instances"] if match(tags_of(i))]
    found.launch_templates = [
        t["LaunchTemplateId"] for t in pages(ec2, "describe_launch_templates",
                                                 "LaunchTemplates", Filters=tagged)
        if match(tags_of(t))]
    found.security_groups = [
        g["GroupId"] for g in pages(ec2, "describe_security_groups", "SecurityGroups",
                                        Filters=tagged) if match(tags_of(g))]
    # By name: deleting a key pair by its id is what moto ignores.
    found.key_pairs = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
                       if match(tags_of(k))]
    if images:
        found.images = [i["ImageId"] for i in ec2.describe_images(
            Owners=["self"], Filters=tagged)["Images"] if match(tags_of(i))]
        found.snapshots = [s["SnapshotId"] for s in pages(
            ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=tagged)
            if match(tags_of(s))]
    return found


def load_balancers(aws: Clients, match: Match) -> list[str]:
    """The ARNs of the load balancers ``match`` accepts."""
    return _elbv2_tagged(aws, "describe_load_balancers", "LoadBalancers", "LoadBalancerArn",
                         match)


def remove(aws: Clients, found: Found, on_event: Listener = ignore) -> Found:
    """Delete what ``found`` lists, dependents first; returns what is still there (usually
    nothing: an instance that will not terminate, a group AWS still says is in use)."""
    ec2, elb = aws.ec2, aws.elbv2
    left = Found()
    for arn in found.listeners:
        _quietly(lambda a=arn: elb.delete_listener(ListenerArn=a))
    for arn in found.load_balancers:
        _quietly(lambda a=arn: elb.delete_load_balancer(LoadBalancerArn=a))
        on_event(Event("destroyed", f"load balancer {arn.rsplit('/', 2)[-2]} removed"))
    if found.load_balancers:
        ec2_wait(elb, "load_balancers_deleted", LoadBalancerArns=found.load_balancers)
    if found.instances:
        ec2.terminate_instances(InstanceIds=found.instances)
    for arn in found.target_groups:
        if not _retrying(lambda a=arn: elb.delete_target_group(TargetGroupArn=a)):
            left.target_groups.append(arn)
    if found.instances:
        _wait_terminated(ec2, found.instances)
        on_event(Event("destroyed", f"{len(found.instances)} instance(s) terminated"))
    for template in found.launch_templates:
        _quietly(lambda t=template: ec2.delete_launch_template(LaunchTemplateId=t))
    _unlink_groups(aws, found.security_groups)
    for group in found.security_groups:
        if not _retrying(lambda g=group: ec2.delete_security_group(GroupId=g)):
            left.security_groups.append(group)
    for pair in found.key_pairs:
        _quietly(lambda p=pair: ec2.delete_key_pair(KeyName=p))  # moto ignores KeyPairId
    snapshots = list(found.snapshots)
    for image in found.images:
        snapshots += image_snapshots(aws, image)
        _quietly(lambda i=image: ec2.deregister_image(ImageId=i))
        on_event(Event("destroyed", f"image {image} deregistered"))
    for snapshot in dict.fromkeys(snapshots):
        if not _retrying(lambda s=snapshot: ec2.delete_snapshot(SnapshotId=s)):
            left.snapshots.append(snapshot)
    return left


def image_snapshots(aws: Clients, image: str) -> list[str]:
    """The EBS snapshots behind an AMI, read before it is deregistered."""
    try:
        found = aws.ec2.describe_images(ImageIds=[image])["Images"]
    except ClientError:
        return []
    return [m["Ebs"]["SnapshotId"] for i in found for m in i.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]


def sweep(region: str | None = None, now: datetime | None = None,
          on_event: Listener = ignore, logbook: State | None = None) -> Found:
    """Remove every lab-tagged resource of ``region`` (None: boto3's default) past its
    ``lab.expires``, whichever lab made it: the instructor's end-of-day command for a whole
    class. Returns what was found expired (and removed); a ``logbook`` (the state of the lab
    it was run in) records the sweep as a ``swept`` event: the region, the counts and the
    labs they belonged to, as JSON."""

    aws = clients(region)
    is_expired = expired(now)
    labs: set[str] = set()  # whose expired resources they were

    def match(tags: dict[str, str]) -> bool:
        if is_expired(tags):
            labs.add(tags[NAME])
            return True
        return False

    with translated(aws.region):
        found = find(aws, match)
        if logbook is not None:
            logbook.log(EventKind.SWEPT, None, json.dumps({
                "region": aws.region, "found": found.counts(), "labs": sorted(labs)}))
        if found.empty:
            on_event(Event("destroy", f"{aws.region}: nothing lab made has expired"))
            return found
        on_event(Event("destroy", f"{aws.region}: removing expired " + ", ".join(
            f"{n} {kind.replace('_', ' ')}" for kind, n in found.counts().items())))
        left = remove(aws, found, on_event)
    if not left.empty:
        on_event(Event("warning", f"still there: {left.describe()}"))
    return found


def sweep_in_lab(config: LabConfig, region: str | None = None,
                 on_event: Listener = ignore) -> Found:
    """``lab aws sweep`` run inside a lab: by default in the region the lab runs in (its
    ``aws.region``, when it targets aws), recorded in the lab's logbook, where a course's
    grader sees that the trainee swept after destroying."""
    if region is None and config.target == "aws":
        region = getattr(config.settings("aws"), "region", None)
    return sweep(region, on_event=on_event, logbook=State(config.state_dir))


# helpers ---------------------------------------------------------------------------------


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a paginated describe call."""
    return [item for page in client.get_paginator(operation).paginate(**kwargs)
            for item in page.get(key, [])]


def _wait_terminated(ec2: Any, ids: list[str], seconds: float = 600.0) -> None:
    """Until every instance of ``ids`` says terminated. botocore's InstanceTerminated waiter
    gives up at once on a reading of "pending", which an instance launched seconds before
    may still show after TerminateInstances (eventual consistency): here it is waited out."""
    import time

    from botocore.exceptions import ClientError

    deadline = time.monotonic() + seconds
    while True:
        try:
            states = {i["InstanceId"]: i["State"]["Name"]
                      for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
                      for i in r["Instances"]}
        except ClientError as exc:
            if code_of(exc) != "InvalidInstanceID.NotFound":
                raise
            return  # long gone: AWS forgets terminated instances
        left = sorted(i for i in ids if states.get(i, "terminated") != "terminated")
        if not left:
            return
        if time.monotonic() > deadline:
            raise TargetError(f"instances not terminated after {seconds:g} s: "
                              f"{', '.join(left)} (`lab aws sweep` finds them)")
        time.sleep(5)


def ec2_wait(client: Any, waiter: str, **kwargs: Any) -> None:
    client.get_waiter(waiter).wait(**kwargs, WaiterConfig={"Delay": 5, "MaxAttempts": 60})


def _elbv2_tagged(aws: Clients, operation: str, key: str, id_key: str,
                  match: Match) -> list[str]:
    arns = [item[id_key] for item in pages(aws.elbv2, operation, key)]
    chosen = []
    for start in range(0, len(arns), 20):  # describe_tags takes 20 at a time
        for description in aws.elbv2.describe_tags(
                ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            if match(tags_of(description)):
                chosen.append(description["ResourceArn"])
    return chosen


def _unlink_groups(aws: Clients, groups: list[str]) -> None:
    """Drop the rules that name these groups (servers allow HTTP from the balancer's group),
    wherever they are: AWS will not delete a group another group's rule refers to. A group
    kept (the servers' group, when only a balancer's group made by a failed `lab up` goes)
    loses only the part of a rule that names a group going."""
    if not groups:
        return
    naming = aws.ec2.describe_security_groups(
        Filters=[{"Name": "ip-permission.group-id", "Values": groups}])["SecurityGroups"]
    for group in naming:
        linked = [{key: rule[key] for key in ("IpProtocol", "FromPort", "ToPort") if key in rule}
                  | {"UserIdGroupPairs": pairs}
                  for rule in group.get("IpPermissions", [])
                  if (pairs := [pair for pair in rule.get("UserIdGroupPairs", [])
                                if pair.get("GroupId") in groups])]
        if linked:
            _quietly(lambda g=group["GroupId"], r=linked: aws.ec2.revoke_security_group_ingress(
                GroupId=g, IpPermissions=r))


GONE_ALREADY = ("NotFound", "NotFoundException", "LoadBalancerNotFound", "TargetGroupNotFound",
                "ListenerNotFound")


def _quietly(call: Callable[[], Any]) -> None:
    """A deletion whose target may be gone already (a second destroy, a concurrent one)."""
    try:
        call()
    except ClientError as exc:
        if not any(code_of(exc).endswith(tail) for tail in GONE_ALREADY):
            raise


def _retrying(call: Callable[[], Any], seconds: float = 300.0) -> bool:
    """A deletion AWS may refuse for a while (a group whose network interfaces a deleted
    load balancer still holds, a target group still in use): retried; False if it never went."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            _quietly(call)
            return True
        except ClientError as exc:
            if code_of(exc) not in ("DependencyViolation", "ResourceInUse",
                                    "InvalidSnapshot.InUse"):
                raise
            if time.monotonic() > deadline:
                return False
            time.sleep(5)
