"""Where a lab's servers and its load balancer sit: subnets and the two security groups.

Servers start in one public subnet (lab.yml's, or the default VPC's first default one); the
ALB spans it and one public subnet of another zone: two, the fewest it takes, since each zone
it spans holds a public IPv4 address that bills. Public means reachable from the internet: a
route to an internet gateway, in an ordinary availability zone.

The servers' group lets SSH in from ``aws.ssh_cidr`` only, and the role's ports only from the
balancer's group; the balancer's group lets its listen port in from the same CIDR. Nothing
is open to the internet. Both groups are found by tag first, so a second `lab up` (or the
balancer, which needs its group too) reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.aws.api import Clients, eventually, tag_specs
from lab.aws.resources import NAME, Found, pages
from lab.errors import ConfigError

GROUP_TAG = "lab.group"  # servers | balancer
ORDINARY = "availability-zone"  # ZoneType of a zone, unlike a Local Zone or Wavelength zone


@dataclass(frozen=True)
class Placement:
    """The VPC and the subnet (and its zone) servers start in; the balancer spans
    ``balancer_subnets``."""

    vpc: str
    subnet: str
    zone: str
    aws: Clients = field(repr=False, compare=False)

    @property
    def balancer_subnets(self) -> list[str]:
        """The servers' subnet and one public subnet of another zone: two, the fewest an ALB
        takes, as each zone costs a public IPv4 address. Looked up only when an ALB is made:
        a lab without one may sit in a VPC with a single public subnet."""
        others = [s for s in _public(self.aws, _subnets_of(self.aws, self.vpc))
                  if s["AvailabilityZone"] != self.zone]
        if not others:
            raise ConfigError(
                f"aws.subnet: the load balancer (an ALB) needs two public subnets in two "
                f"zones, and VPC {self.vpc} has one only in {self.zone}: add a subnet in "
                "another zone whose route table sends 0.0.0.0/0 to an internet gateway, or "
                "set aws.subnet to a subnet of a VPC that has two")
        return [self.subnet, min(others, key=_preferred)["SubnetId"]]


def placement(aws: Clients, subnet: str | None) -> Placement:
    """lab.yml's subnet, which must be public, or the default VPC's first default subnet; a
    VPC without default subnets (or a region without a default VPC) is an error that says
    to name a subnet."""
    if subnet:
        chosen = aws.ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]
        why = _not_public(chosen, *_routes_and_zones(aws, chosen["VpcId"]))
        if why:
            raise ConfigError(f"aws.subnet: {subnet} {why}")
    else:
        chosen = _default_subnet(aws)
    return Placement(chosen["VpcId"], chosen["SubnetId"], chosen["AvailabilityZone"], aws)


def _default_subnet(aws: Clients) -> dict[str, Any]:
    vpcs = aws.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise ConfigError(f"aws.subnet: {aws.region} has no default VPC: set aws.subnet to "
                          "a public subnet's id (subnet-...)")
    defaults = [s for s in _subnets_of(aws, vpcs[0]["VpcId"]) if s.get("DefaultForAz")]
    if not defaults:
        raise ConfigError(f"aws.subnet: the default VPC of {aws.region} has no default "
                          "subnet: set aws.subnet to a public subnet's id (subnet-...)")
    return min(defaults, key=_preferred)


def _subnets_of(aws: Clients, vpc: str) -> list[dict[str, Any]]:
    return pages(aws.ec2, "describe_subnets", "Subnets",
                 Filters=[{"Name": "vpc-id", "Values": [vpc]}])


def _public(aws: Clients, subnets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The public ones of ``subnets`` (of one VPC): see :func:`_not_public`."""
    if all(s.get("DefaultForAz") for s in subnets):
        return subnets  # no need to ask for route tables and zones
    tables, zones = _routes_and_zones(aws, subnets[0]["VpcId"])
    return [s for s in subnets if not _not_public(s, tables, zones)]


def _routes_and_zones(aws: Clients, vpc: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The VPC's route tables, and the region's zones by name with their type."""
    tables = pages(aws.ec2, "describe_route_tables", "RouteTables",
                   Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    zones = {z["ZoneName"]: z.get("ZoneType", ORDINARY)
             for z in aws.ec2.describe_availability_zones()["AvailabilityZones"]}
    return tables, zones


def _not_public(subnet: dict[str, Any], tables: list[dict[str, Any]],
                zones: dict[str, str]) -> str:
    """Why servers (and an internet-facing ALB) cannot be reached in ``subnet``, as the end
    of a sentence naming it; "" when they can. A default subnet is public by AWS's making
    (the default VPC's main route table goes to its internet gateway); any other must have
    a route table (its own, else the VPC's main one) sending 0.0.0.0/0 to an internet
    gateway, and lie in an ordinary zone: a Local Zone or Wavelength zone offers few
    instance types, at other prices, and an ALB there is not what the lab expects."""
    if subnet.get("DefaultForAz"):
        return ""
    zone = subnet["AvailabilityZone"]
    if zones.get(zone) != ORDINARY:
        kind = zones.get(zone, "zone the account does not list").replace("-", " ")
        return (f"is in {zone}, a {kind}, not an ordinary availability zone: set aws.subnet "
                "to a public subnet of one")
    table = _route_table(subnet["SubnetId"], tables)
    if table is None or not any(_to_internet(route) for route in table.get("Routes", [])):
        return ("is private: its route table has no 0.0.0.0/0 route to an internet gateway "
                "(igw-...), so nothing outside the VPC can reach its servers: set aws.subnet "
                "to a public subnet, or add that route to its route table")
    return ""


def _route_table(subnet: str, tables: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The route table a subnet uses: the one associated with it, else the VPC's main one."""
    for table in tables:
        if any(a.get("SubnetId") == subnet for a in table.get("Associations", [])):
            return table
    return next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))),
                None)


def _to_internet(route: dict[str, Any]) -> bool:
    return (route.get("DestinationCidrBlock") == "0.0.0.0/0"
            and route.get("GatewayId", "").startswith("igw-")
            and route.get("State", "active") == "active")  # blackhole: the gateway is gone


def _preferred(subnet: dict[str, Any]) -> tuple[bool, str, str]:
    """A default subnet first, then by zone: the same choice at every `lab up`."""
    return (not subnet.get("DefaultForAz"), subnet["AvailabilityZone"], subnet["SubnetId"])


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
