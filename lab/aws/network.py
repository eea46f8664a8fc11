"""Where a lab's servers and its load balancer sit: subnets and the two security groups.

The servers' group lets SSH in from ``aws.ssh_cidr`` only, and the role's ports only from the
balancer's group; the balancer's group lets its listen port in from the same CIDR. Nothing
is open to the internet. Both groups are found by tag first, so a second `lab up` (or the
balancer, which needs its group too) reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.aws.api import Clients, eventually, tag_specs
from lab.aws.resources import NAME, Found, pages
from lab.errors import ConfigError

GROUP_TAG = "lab.group"  # servers | balancer


@dataclass(frozen=True)
class Placement:
    """The VPC and the subnet servers start in; the balancer spans ``balancer_subnets``."""

    vpc: str
    subnet: str
    balancer_subnets: list[str]


def placement(aws: Clients, subnet: str | None) -> Placement:
    """lab.yml's subnet, or the default VPC's first default subnet; a VPC without default
    subnets (or a region without a default VPC) is an error that says to name a subnet."""
    ec2 = aws.ec2
    if subnet:
        chosen = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]
    else:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise ConfigError(f"aws.subnet: {aws.region} has no default VPC: set aws.subnet to "
                              "a public subnet's id (subnet-...)")
        defaults = pages(ec2, "describe_subnets", "Subnets", Filters=[
            {"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]},
            {"Name": "default-for-az", "Values": ["true"]}])
        if not defaults:
            raise ConfigError(f"aws.subnet: the default VPC of {aws.region} has no default "
                              "subnet: set aws.subnet to a public subnet's id (subnet-...)")
        chosen = sorted(defaults, key=lambda s: s["AvailabilityZone"])[0]
    vpc = chosen["VpcId"]
    # An ALB needs subnets in two zones or more: one per zone of the same VPC, ours first.
    by_zone = {chosen["AvailabilityZone"]: chosen["SubnetId"]}
    for other in pages(ec2, "describe_subnets", "Subnets",
                       Filters=[{"Name": "vpc-id", "Values": [vpc]}]):
        by_zone.setdefault(other["AvailabilityZone"], other["SubnetId"])
    return Placement(vpc, chosen["SubnetId"], list(by_zone.values()))


def find_group(aws: Clients, lab: str, which: str) -> str | None:
    groups = aws.ec2.describe_security_groups(Filters=[
        {"Name": f"tag:{NAME}", "Values": [lab]},
        {"Name": f"tag:{GROUP_TAG}", "Values": [which]}])["SecurityGroups"]
    return groups[0]["GroupId"] if groups else None


def ensure_groups(aws: Clients, lab: str, vpc: str, ssh_cidr: str, ports: list[int],
                  listen: int | None, tags: dict[str, str],
                  made: Found | None = None) -> dict[str, str]:
    """The lab's security groups (``servers``, and ``balancer`` when ``listen`` is set), made
    when missing; new ones are added to ``made`` so a failed command can remove them."""
    groups = {}
    for which in ["servers"] + (["balancer"] if listen else []):
        found = find_group(aws, lab, which)
        if found is None:
            found = aws.ec2.create_security_group(
                GroupName=f"lab-{lab}-{which}", VpcId=vpc,
                Description=f"lab {lab}: {which}",
                TagSpecifications=tag_specs(tags | {GROUP_TAG: which}, "security-group"),
            )["GroupId"]
            if made is not None:
                made.security_groups.append(found)
            _allow(aws, found, [_from_cidr(22 if which == "servers" else listen, ssh_cidr)])
        groups[which] = found
    if listen:
        _allow(aws, groups["servers"], [_from_group(port, groups["balancer"]) for port in ports],
               quiet=True)
    return groups


def _from_cidr(port: int | None, cidr: str) -> dict[str, Any]:
    ranges = ({"Ipv6Ranges": [{"CidrIpv6": cidr, "Description": "aws.ssh_cidr"}]} if ":" in cidr
              else {"IpRanges": [{"CidrIp": cidr, "Description": "aws.ssh_cidr"}]})
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **ranges}


def _from_group(port: int, group: str) -> dict[str, Any]:
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "UserIdGroupPairs": [{"GroupId": group, "Description": "the load balancer"}]}


def _allow(aws: Clients, group: str, rules: list[dict[str, Any]], quiet: bool = False) -> None:
    from botocore.exceptions import ClientError

    for rule in rules:
        try:
            # Right after CreateSecurityGroup, AWS may not know the group yet.
            eventually(aws.ec2.authorize_security_group_ingress, GroupId=group,
                       IpPermissions=[rule])
        except ClientError as exc:
            if not (quiet and "Duplicate" in str(exc)):
                raise
