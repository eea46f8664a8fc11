"""What `lab up` will create on AWS and about what it costs an hour, shown before it does;
and what lab's resources of a region cost an hour now (`lab aws sweep --dry-run`, `lab doctor`).

Prices are approximate on-demand Linux list prices of us-east-1, from memory of AWS's pricing
pages, not fetched: other regions cost up to a third more, and prices change. They are an
estimate to decide with, not a bill; an instance type not in the table is shown without a
price rather than guessed.
"""

from __future__ import annotations

from typing import Any

from lab.targets.base import Line

INSTANCE_HOURLY = {
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
    "t3.large": 0.0832, "t3a.micro": 0.0094, "t3a.small": 0.0188, "t3a.medium": 0.0376,
    "t2.micro": 0.0116, "t2.small": 0.023, "t4g.micro": 0.0084, "t4g.small": 0.0168,
    "m5.large": 0.096, "m6i.large": 0.096, "c5.large": 0.085, "c6i.large": 0.085,
}
ALB_HOURLY = 0.0225 + 0.008  # the load balancer, plus one load balancer capacity unit
PUBLIC_IPV4_HOURLY = 0.005  # each public IPv4 address, in use or not
DISK_GB = 8
EBS_GB_MONTH = 0.08  # gp3
SNAPSHOT_GB_MONTH = 0.05  # EBS snapshots, standard tier (billed by the volume's size here)
HOURS_A_MONTH = 730
BALANCER_ZONES = 2  # lab's ALBs span two zones, the fewest an ALB takes (lab.aws.network)
# What lab makes that AWS does not bill by itself (an AMI bills through its snapshots).
FREE = frozenset({"listeners", "target_groups", "launch_templates", "security_groups",
                  "key_pairs", "images"})


def instances_line(instance_type: str, count: int) -> Line:
    price = INSTANCE_HOURLY.get(instance_type)
    disk = DISK_GB * EBS_GB_MONTH / HOURS_A_MONTH
    hourly = None if price is None else count * (price + PUBLIC_IPV4_HOURLY + disk)
    return Line(f"EC2 {instance_type} instance (public IPv4, {DISK_GB} GB disk)", count, hourly)


def balancer_line(zones: int) -> Line:
    """An internet-facing ALB: itself, and one public IPv4 address in each of its ``zones``
    (AWS bills those like any other, which the ALB's own price leaves out)."""
    return Line(f"Application Load Balancer ({zones} zones, {zones} public IPv4)", 1,
                ALB_HOURLY + zones * PUBLIC_IPV4_HOURLY)


def hourly_of(kind: str, item: dict[str, Any]) -> float | None:
    """About what one resource of ``kind`` (a field of resources.Found) costs an hour, from
    AWS's description of it; 0.0 for what is free, None where the price is not known."""
    if kind in FREE:
        return 0.0
    if kind == "instances":
        return instances_line(item.get("InstanceType", ""), 1).hourly
    if kind == "load_balancers":
        return balancer_line(len(item.get("AvailabilityZones", []))).hourly
    if kind == "snapshots" and "VolumeSize" in item:
        return float(item["VolumeSize"]) * SNAPSHOT_GB_MONTH / HOURS_A_MONTH
    return None


def after_expiry(lifetime: str, balancer: bool) -> str:
    """What still bills after ``aws.lifetime``: the instances power themselves off (and so
    terminate), but nothing stops a load balancer; it bills until something removes it."""
    note = f"after {lifetime} (aws.lifetime) the instances power off and terminate"
    if not balancer:
        return note
    hourly = balancer_line(BALANCER_ZONES).hourly or 0.0
    return (f"{note}, but the load balancer keeps billing (~${hourly:.4f}/h, "
            f"${hourly * 24:.2f} a day) until `lab destroy` or `lab aws sweep`")
