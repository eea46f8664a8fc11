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

from botocore.exceptions import ClientError, WaiterError

from lab.aws import pricing
from lab.aws.api import Clients, clients, code_of, tags_of, translated
from lab.config import LabConfig
from lab.errors import LabError, TargetError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
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


def find(aws: Clients, match: Match, images: bool = True,
         seen: dict[str, dict[str, Any]] | None = None) -> Found:
    """Every lab resource ``match`` accepts (by its tags), per service. ``seen``, when given,
    receives each one as AWS described it (tags included), by its id: what a caller wants
    beyond the ids (whose lab, an instance's type) without asking AWS again."""
    ec2 = aws.ec2
    found = Found()
    noted: dict[str, dict[str, Any]] = {} if seen is None else seen

    def kept(item: dict[str, Any], key: str) -> bool:
        if not match(tags_of(item)):
            return False
        noted[item[key]] = item
        return True

    lbs = found.load_balancers = _elbv2_tagged(
        aws, "describe_load_balancers", "LoadBalancers", "LoadBalancerArn", match, noted)
    for arn in lbs:
        for page in pages(aws.elbv2, "describe_listeners", "Listeners", LoadBalancerArn=arn):
            found.listeners.append(page["ListenerArn"])
            noted[page["ListenerArn"]] = page | {"Tags": noted[arn].get("Tags", [])}
    found.target_groups = _elbv2_tagged(aws, "describe_target_groups", "TargetGroups",
                                        "TargetGroupArn", match, noted)
    tagged = [{"Name": "tag-key", "Values": [NAME]}]
    found.instances = [
        i["InstanceId"]
        for r in pages(ec2, "describe_instances", "Reservations",
                           Filters=[*tagged, {"Name": "instance-state-name", "Values": EXISTING}])
        for i in r["Instances"] if kept(i, "InstanceId")]
    found.launch_templates = [
        t["LaunchTemplateId"] for t in pages(ec2, "describe_launch_templates",
                                                 "LaunchTemplates", Filters=tagged)
        if kept(t, "LaunchTemplateId")]
    found.security_groups = [
        g["GroupId"] for g in pages(ec2, "describe_security_groups", "SecurityGroups",
                                        Filters=tagged) if kept(g, "GroupId")]
    # By name: deleting a key pair by its id is what moto ignores.
    found.key_pairs = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
                       if kept(k, "KeyName")]
    if images:
        found.images = [i["ImageId"] for i in ec2.describe_images(
            Owners=["self"], Filters=tagged)["Images"] if kept(i, "ImageId")]
        found.snapshots = [s["SnapshotId"] for s in pages(
            ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=tagged)
            if kept(s, "SnapshotId")]
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
    return sweep(region_of(config, region), on_event=on_event, logbook=State(config.state_dir))


def region_of(config: LabConfig | None, region: str | None = None) -> str | None:
    """``region``; else, inside a lab that targets aws, its ``aws.region``; else None
    (boto3's default): where `lab aws sweep` looks."""
    if region is None and config is not None and config.target == "aws":
        region = getattr(config.settings("aws"), "region", None)
    return region


@dataclass(frozen=True)
class Held:
    """What one lab holds of one kind in a region now: how many, how many of them are past
    ``lab.expires`` (what a sweep removes), and about what they all cost an hour."""

    lab: str
    kind: str  # a field of Found: "instances", "load_balancers", ...
    count: int
    expired: int
    hourly: float | None  # 0.0: free; None: a price lab.aws.pricing does not know

    @property
    def what(self) -> str:
        """"1 load balancer", "2 security groups"."""
        kind = self.kind.replace("_", " ")
        return f"{self.count} {kind[:-1] if self.count == 1 else kind}"


def holdings(aws: Clients, now: datetime | None = None) -> list[Held]:
    """Everything lab made in the region now, expired or not, per lab and kind, priced by
    lab.aws.pricing: what bills now, for `lab aws sweep --dry-run` and `lab doctor`. One
    pass of :func:`find` (each service asked once), which removes nothing."""
    seen: dict[str, dict[str, Any]] = {}
    found = find(aws, lambda tags: NAME in tags, seen=seen)
    is_expired = expired(now)
    held = []
    for kind, ids in vars(found).items():
        by_lab: dict[str, list[dict[str, Any]]] = {}
        for id_ in ids:
            by_lab.setdefault(tags_of(seen[id_])[NAME], []).append(seen[id_])
        for lab, items in by_lab.items():
            prices = [pricing.hourly_of(kind, item) for item in items]
            held.append(Held(lab, kind, len(items),
                             sum(is_expired(tags_of(item)) for item in items),
                             None if any(p is None for p in prices)
                             else sum(p or 0.0 for p in prices)))
    return sorted(held, key=lambda h: (h.lab, _rank(h.kind)))


def _rank(kind: str) -> int:
    """What bills most first (instances, load balancers, snapshots), then Found's order."""
    order = ["instances", "load_balancers", "snapshots", *vars(Found())]
    return order.index(kind)


def billing(held: list[Held]) -> str:
    """:func:`holdings` in a line: "2 instances, 1 load balancer of 1 lab: about $0.09/h"
    (what bills only), or "nothing lab made"."""
    if not held:
        return "nothing lab made"
    bills = [h for h in held if h.hourly != 0.0]
    if not bills:
        return f"nothing that bills (free: {_tally(held)})"
    hourly = sum(h.hourly or 0.0 for h in bills)
    at_least = "at least " if any(h.hourly is None for h in bills) else "about "
    return f"{_tally(bills)}: {at_least}${hourly:.2f}/h"


def billing_check(aws: Clients) -> Check:
    """`lab doctor`'s "aws billing now": what lab made in the region, in a line (an expired
    lab's load balancer bills on, unseen), or why AWS would not say."""
    try:
        with translated(aws.region):
            held = holdings(aws)
    except LabError as exc:
        return Check("aws billing now", False, "could not look", str(exc), required=False)
    listed = "; `lab aws sweep --dry-run` lists them" if held else ""
    return Check("aws billing now", True, billing(held) + listed, required=False)


def _tally(held: list[Held]) -> str:
    """"2 instances, 1 load balancer of 1 lab": counts per kind over every lab."""
    counts: dict[str, int] = {}
    for h in held:
        counts[h.kind] = counts.get(h.kind, 0) + h.count
    labs = len({h.lab for h in held})
    return (", ".join(Held("", kind, counts[kind], 0, None).what
                      for kind in sorted(counts, key=_rank))
            + f" of {labs} lab{'s' if labs > 1 else ''}")


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


@dataclass(frozen=True)
class Wait:
    """How lab waits for one of botocore's waiters: for what, how long at most (from the
    first look), how often it looks, and what a person does once that ceiling is reached."""

    what: str  # the resource, when the caller names none
    becomes: str  # said while waiting: "become active (it can take several minutes)"
    state: str  # said at the ceiling: "not active after 15 min"
    ceiling: float
    delay: float
    fix: str  # {region}: the client's


# botocore's own waiters give up after 10 minutes (15 s x 40 looks), and lab's gave up after
# 5: real ALBs have taken longer than 10 minutes to leave "provisioning", and an AMI takes
# minutes per snapshot, more for a large disk (ansible's ec2_ami waits 20 by default).
# Looks every 15 s as botocore's do: the Describe calls' rate limit is the account's.
WAITS = {
    "load_balancer_available": Wait(
        "load balancer", "become active (it can take several minutes)", "active", 15 * 60, 15,
        "AWS is slow to make load balancers in {region} now (its Health Dashboard says if "
        "Elastic Load Balancing has trouble): run `lab up` again later"),
    "image_available": Wait(
        "image", "become available (it can take several minutes)", "available", 20 * 60, 15,
        "AWS is slow to make images in {region} now: run `lab bake` again later"),
    "instance_running": Wait(
        "instances", "run", "running", 5 * 60, 5,
        "run `lab up` again, or set another aws.instance_type or aws.subnet (another zone)"),
    "load_balancers_deleted": Wait(
        "load balancers", "be deleted", "deleted", 5 * 60, 5,
        "run `lab destroy` again in a few minutes (`lab aws sweep` finds them too)"),
}
OTHER_WAIT = Wait("resources", "be ready", "ready", 5 * 60, 5, "run the command again later")
PROGRESS_SECONDS = 60.0  # between two "still waiting" events


def ec2_wait(client: Any, waiter: str, what: str = "", on_event: Listener = ignore,
             **kwargs: Any) -> None:
    """Until botocore's ``waiter`` is satisfied for ``kwargs``, up to its ceiling in
    :data:`WAITS` (:data:`OTHER_WAIT`'s for another waiter). botocore judges each look (its
    acceptors); lab sleeps between looks, on this module's clock, so that it can say how long
    it has waited and give up in one line naming ``what`` ("load balancer lab-x") and what to
    do."""
    wait, look = WAITS.get(waiter, OTHER_WAIT), client.get_waiter(waiter)
    what, started, said = what or wait.what, time.monotonic(), 0.0
    on_event(Event("wait", f"waiting for {what} to {wait.becomes}"))
    while not _looked(look, f"{what} will never be {wait.state}", kwargs):
        waited = time.monotonic() - started
        if waited >= wait.ceiling:
            raise TargetError(f"{what} not {wait.state} after {wait.ceiling / 60:g} min: "
                              + wait.fix.format(region=client.meta.region_name))
        if waited - said >= PROGRESS_SECONDS:
            said = waited
            on_event(Event("wait", f"still waiting for {what} to {wait.becomes}: "
                                   f"{waited / 60:.0f} min so far"))
        time.sleep(min(wait.delay, wait.ceiling - waited))


def _looked(waiter: Any, never: str, kwargs: dict[str, Any]) -> bool:
    """One look through botocore's waiter: True once done, False to look again. An error
    its acceptors do not expect is raised as the ClientError it was (``translated`` explains
    it); a state they call a failure (an AMI "failed", an instance terminated) ends the wait
    with ``never`` ("image ami-1 will never be available")."""
    try:
        waiter.wait(**kwargs, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
        return True
    except WaiterError as exc:
        if str(exc.kwargs.get("reason", "")).startswith("Max attempts exceeded"):
            return False
        if "Error" in (exc.last_response or {}):
            raise ClientError(exc.last_response, waiter.config.operation) from None
        raise TargetError(f"{never}: AWS reports a failure (the EC2 console says why); run "
                          "the command again") from None


def _elbv2_tagged(aws: Clients, operation: str, key: str, id_key: str, match: Match,
                  seen: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The ARNs ``match`` accepts; ``seen`` receives each one's description, with its tags."""
    items = {item[id_key]: item for item in pages(aws.elbv2, operation, key)}
    arns = list(items)
    chosen = []
    for start in range(0, len(arns), 20):  # describe_tags takes 20 at a time
        for description in aws.elbv2.describe_tags(
                ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            if match(tags_of(description)):
                chosen.append(description["ResourceArn"])
                if seen is not None:
                    seen[description["ResourceArn"]] = (items[description["ResourceArn"]]
                                                        | {"Tags": description["Tags"]})
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
