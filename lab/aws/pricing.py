"""What `lab up` will create on AWS and about what it costs an hour, shown before it does.

Prices are approximate on-demand Linux list prices of us-east-1, from memory of AWS's pricing
pages, not fetched: other regions cost up to a third more, and prices change. They are an
estimate to decide with, not a bill; an instance type not in the table is shown without a
price rather than guessed.
"""

from __future__ import annotations

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
HOURS_A_MONTH = 730


def instances_line(instance_type: str, count: int) -> Line:
    price = INSTANCE_HOURLY.get(instance_type)
    disk = DISK_GB * EBS_GB_MONTH / HOURS_A_MONTH
    hourly = None if price is None else count * (price + PUBLIC_IPV4_HOURLY + disk)
    return Line(f"EC2 {instance_type} instance (public IPv4, {DISK_GB} GB disk)", count, hourly)


def balancer_line() -> Line:
    return Line("Application Load Balancer", 1, ALB_HOURLY)
