"""Where a lab sits on AWS (issue "AWS as a real account behaves", subnet choice), against
moto: the ALB spans two subnets, the fewest it takes (each zone bills a public IPv4), not one
per zone; in a VPC of one's own, only public subnets are chosen (a route table sending
0.0.0.0/0 to an internet gateway, in an ordinary availability zone), and a private
aws.subnet, or a VPC without a second public zone for the ALB, is a one-line ConfigError
before anything is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from awslab import REGION, key_for, lab_config, leftovers

from lab.aws import api, network
from lab.errors import ConfigError, ExitStatus
from lab.fleet import Fleet
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]


def vpc(public: str = "", private: str = "", main_public: bool = False) -> dict[str, str]:
    """A VPC of one's own with a subnet in each zone named (by letter): ``public`` ones with
    a route table of their own that sends 0.0.0.0/0 to the VPC's internet gateway,
    ``private`` ones on the VPC's main route table, which does too when ``main_public``.
    Returns {"vpc": id, "a": subnet id, ...}."""
    ec2 = boto3.client("ec2", region_name=REGION)
    made = {"vpc": ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]}
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=made["vpc"])
    routed = ec2.create_route_table(VpcId=made["vpc"])["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=routed, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    if main_public:
        main = ec2.describe_route_tables(Filters=[
            {"Name": "vpc-id", "Values": [made["vpc"]]},
            {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
        ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0",
                         GatewayId=gateway)
    for i, zone in enumerate(public + private):
        made[zone] = ec2.create_subnet(VpcId=made["vpc"], CidrBlock=f"10.9.{i}.0/24",
                                       AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        if zone in public:
            ec2.associate_route_table(RouteTableId=routed, SubnetId=made[zone])
    return made


def own_table(subnet: str, vpc_id: str) -> None:
    """``subnet`` gets a route table of its own, with the VPC's local route only."""
    ec2 = boto3.client("ec2", region_name=REGION)
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)


def place(subnet: str | None = None) -> network.Placement:
    return network.placement(api.clients(REGION), subnet)


def refused(subnet: str | None, balancer: bool = False) -> str:
    """The ConfigError of placing a lab in ``subnet`` (and its ALB, with ``balancer``)."""
    with pytest.raises(ConfigError) as caught:
        found = place(subnet)
        assert not balancer or found.balancer_subnets  # asked for: the ALB is made
    assert caught.value.exit_code == ExitStatus.BAD_INPUT and "\n" not in str(caught.value)
    return str(caught.value)


def zone_of(subnet: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    return str(ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailabilityZone"])


def test_the_alb_spans_two_subnets_of_two_zones_not_one_per_zone(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default VPC of eu-west-1 has three default subnets: the ALB takes the servers'
    and one more, so two public IPv4 addresses bill, not three (six in us-east-1)."""
    found = place()
    assert len(found.balancer_subnets) == 2 and found.balancer_subnets[0] == found.subnet
    assert len({zone_of(s) for s in found.balancer_subnets}) == 2
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)  # moto: no SSH
    config = lab_config(tmp_path, aws_env, balancer=True)
    with Fleet(config) as fleet:
        fleet.up()
        elb = boto3.client("elbv2", region_name=REGION)
        [made] = elb.describe_load_balancers()["LoadBalancers"]
        assert sorted(z["SubnetId"] for z in made["AvailabilityZones"]) == sorted(
            found.balancer_subnets)
        fleet.destroy()
    assert leftovers("t") == {}


def test_a_named_private_subnet_stops_the_plan_naming_aws_subnet(
        aws_env: str, tmp_path: Path) -> None:
    own = vpc(public="a", private="b")
    message = refused(own["b"])
    assert message.startswith(f"aws.subnet: {own['b']} is private: its route table has no "
                              "0.0.0.0/0 route to an internet gateway")
    assert "set aws.subnet to a public subnet, or add that route" in message
    config = lab_config(tmp_path, aws_env, subnet=own["b"])
    with pytest.raises(ConfigError, match=r"^aws\.subnet: subnet-\w+ is private"):
        AwsTarget(config, key_for(config)).plan(SPECS)  # before `lab up` asks
    assert leftovers("t") == {}
    assert place(own["a"]).subnet == own["a"]  # its public neighbour will do


def test_the_albs_second_subnet_is_a_public_one_of_another_zone(aws_env: str) -> None:
    own = vpc(public="ac", private="b")
    assert place(own["a"]).balancer_subnets == [own["a"], own["c"]]  # not b, private
    assert place(own["c"]).balancer_subnets == [own["c"], own["a"]]


def test_a_subnet_without_a_table_of_its_own_goes_by_the_vpcs_main_table(aws_env: str) -> None:
    own = vpc(private="abc", main_public=True)
    own_table(own["c"], own["vpc"])  # its own table overrides the main one: private
    assert place(own["b"]).balancer_subnets == [own["b"], own["a"]]
    assert " is private: " in refused(own["c"])
    plain = vpc(private="ab")  # the main table has the local route only
    assert " is private: " in refused(plain["a"])


def test_a_local_zone_is_not_chosen(aws_env: str) -> None:
    """moto has no Local Zones: eu-west-1b is made one in DescribeAvailabilityZones' answer,
    as AWS lists an opted-in Local Zone, with its ZoneType."""
    own = vpc(public="abc")
    aws = api.clients(REGION)

    def local_b(parsed: dict[str, Any], **_: Any) -> None:
        for zone in parsed["AvailabilityZones"]:
            if zone["ZoneName"] == f"{REGION}b":
                zone["ZoneType"] = "local-zone"

    aws.ec2.meta.events.register("after-call.ec2.DescribeAvailabilityZones", local_b)
    with pytest.raises(ConfigError) as caught:
        network.placement(aws, own["b"])
    assert str(caught.value).startswith(f"aws.subnet: {own['b']} is in {REGION}b, a local "
                                        "zone, not an ordinary availability zone")
    assert network.placement(aws, own["a"]).balancer_subnets == [own["a"], own["c"]]


def test_without_a_second_public_zone_the_alb_says_it_needs_two(
        aws_env: str, tmp_path: Path) -> None:
    """A lab without an ALB may sit in a VPC with one public subnet; one with an ALB stops at
    the plan, before anything is made. Two public subnets of one zone are one zone."""
    own = vpc(public="a", private="b")
    ec2 = boto3.client("ec2", region_name=REGION)
    twin = ec2.create_subnet(VpcId=own["vpc"], CidrBlock="10.9.9.0/24",
                             AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    table = ec2.describe_route_tables(Filters=[
        {"Name": "association.subnet-id", "Values": [own["a"]]}])["RouteTables"][0]
    ec2.associate_route_table(RouteTableId=table["RouteTableId"], SubnetId=twin)
    message = refused(own["a"], balancer=True)
    assert message.startswith(f"aws.subnet: the load balancer (an ALB) needs two public "
                              f"subnets in two zones, and VPC {own['vpc']} has one only in "
                              f"{REGION}a: add a subnet in another zone")
    alone = lab_config(tmp_path, aws_env, subnet=own["a"])
    assert AwsTarget(alone, key_for(alone)).plan(SPECS) is not None
    balanced = lab_config(tmp_path, aws_env, subnet=own["a"], balancer=True)
    with pytest.raises(ConfigError, match="needs two public subnets in two zones"):
        AwsTarget(balanced, key_for(balanced)).plan(SPECS)
    assert leftovers("t") == {}


def test_an_alb_in_a_vpc_of_ones_own_spans_its_public_subnets(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = vpc(public="bc", private="a")
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)  # moto: no SSH
    config = lab_config(tmp_path, aws_env, balancer=True, subnet=own["c"])
    with Fleet(config) as fleet:
        fleet.up()
        elb = boto3.client("elbv2", region_name=REGION)
        [made] = elb.describe_load_balancers()["LoadBalancers"]
        assert made["VpcId"] == own["vpc"]
        assert sorted(z["SubnetId"] for z in made["AvailabilityZones"]) == sorted(
            [own["b"], own["c"]])
        fleet.destroy()
    assert leftovers("t") == {}
