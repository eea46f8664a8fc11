"""The aws target's whole flow with real SSH: moto for AWS, each instance paired with a local
container (awspairs.py). `lab up` waits for SSH, Ansible provisions over it, testinfra
verifies over it, exactly as on EC2, each checking the host key the instance was handed in
its user data; a release moves the ALB's weights while lab's probe measures traffic through a
local stand-in that follows them (rollbacks through the ALB are the unit tests' business, on
moto alone); destroy leaves neither instances nor containers. One server per generation: each
release provisions its new generation from scratch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import docker
import pytest
from awspairs import AlbStandIn, boot_host_key, pair_instances_with_containers
from labhelpers import unique_lab_name
from moto import mock_aws

from lab.access.knownhosts import KnownHosts
from lab.balancers.alb import ALB
from lab.config import load_config
from lab.fleet import Fleet
from lab.harness import provision, verify
from lab.loaded import Lab
from lab.release import release
from lab.scaffold import edit_lab_yml, init_lab

REGION = "eu-west-1"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION).register_image(
            Name="debian-12-test", RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]


def test_up_provision_verify_destroy_on_aws(moto: str, tmp_path: Path,
                                            docker_client: docker.DockerClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pair_instances_with_containers(monkeypatch)
    name = unique_lab_name("aws")
    init_lab(tmp_path, name)
    edit_lab_yml(tmp_path / "lab.yml", target="aws", count=1, role="web", step_seconds=1.0)
    with (tmp_path / "lab.yml").open("a") as lab_yml:
        lab_yml.write(f"aws: {{ssh_cidr: 203.0.113.7/32, image: {moto}}}\n")
    config = load_config(tmp_path / "lab.yml")
    with Fleet(config) as fleet:
        try:
            servers = fleet.up()
            assert [s.name for s in servers] == ["web-1"]
            assert all(s.ssh_host == "127.0.0.1" for s in servers)  # the twins
            # Every connection below checks the host key from the instance's user data.
            known = KnownHosts(fleet.key.known_hosts)
            for server in servers:
                entry = known.key_at(server.ssh_host, server.ssh_port)
                boot = boot_host_key(fleet.target, server.name)  # type: ignore[arg-type]
                assert entry is not None and entry.key == " ".join(boot.public.split()[:2])
            report = provision(fleet)
            assert report.ok, report.problem
            result = verify(fleet)
            assert result.ok and result.passed >= 1, result.problem
            balancer = Lab.resolve(config).open_balancer(fleet.live(), fleet.key)
            assert isinstance(balancer, ALB)
            stand_in = AlbStandIn(balancer, fleet)
            monkeypatch.setattr(ALB, "url", property(lambda self: stand_in.url))
            try:
                promoted = release(fleet, {"version": "v2"})
                assert promoted.outcome == "promoted" and promoted.traffic["errors"] == 0
                assert set(promoted.traffic["versions"]) == {"v1", "v2"}
            finally:
                stand_in.close()
            assert sorted(s.name for s in fleet.live()) == sorted(promoted.new)
        finally:
            fleet.destroy()
    assert not docker_client.containers.list(all=True, filters={"label": f"lab.name={name}"})
    ec2 = boto3.client("ec2", region_name=REGION)
    assert not [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:lab.name", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"]]
