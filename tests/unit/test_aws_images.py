"""`lab bake` on aws makes an AMI (tagged, its snapshots tagged after creation), a release
starts servers from it, and `lab destroy --images` deregisters it *and* deletes its snapshots
(deregistering alone leaves them billing; moto, like AWS, leaves them)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from awslab import REGION, key_for, lab_config, leftovers

from lab.aws import api
from lab.fleet import Fleet
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

LABELS = {"lab.name": "t", "lab.role": "web", "lab.version": "v2", "lab.baked-from": "web-1"}


@pytest.fixture
def target(aws_env: str, tmp_path: Path) -> AwsTarget:
    config = lab_config(tmp_path, aws_env)
    return AwsTarget(config, key_for(config))


def test_bake_tags_the_ami_and_its_snapshots(target: AwsTarget) -> None:
    server = target.create([ServerSpec("web-1", "web", 1, "lab/base:bookworm")])[0]
    ami = target.bake(server, "lab/t-web:v2", LABELS)
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    tags = api.tags_of(image)
    assert tags["lab.version"] == "v2" and tags["lab.image-tag"] == "lab/t-web:v2"
    assert "lab.expires" in tags and image["Name"].startswith("lab/t-web-v2-")
    snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    assert snapshots
    for snapshot in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
        assert api.tags_of(snapshot)["lab.name"] == "t"
    assert target.has_image(ami)
    assert not target.has_image("ami-0123456789abcdef0") and not target.has_image("lab/x:1")
    target.destroy()
    assert set(leftovers("t")) == {"images", "snapshots"}  # destroy keeps baked images
    assert target.remove_images() == [ami]
    assert leftovers("t") == {}


def test_bake_never_reboots_a_server_in_traffic(target: AwsTarget) -> None:
    """CreateImage without NoReboot shuts the instance down and boots it again (AWS's API
    reference): a minute of errors behind the ALB, sshd without the host keys the scrub just
    removed, the power-off deadline gone. moto ignores it, so what lab asks is checked."""
    server = target.create([ServerSpec("web-1", "web", 1, "lab/base:bookworm")])[0]
    asked: list[dict[str, object]] = []
    target.aws.ec2.meta.events.register(
        "provide-client-params.ec2.CreateImage",
        lambda params, **_: asked.append(dict(params)))

    target.bake(server, "lab/t-web:v2", LABELS)

    assert [a.get("NoReboot") for a in asked] == [True]
    target.destroy()
    target.remove_images()


def test_servers_start_from_a_baked_ami(target: AwsTarget) -> None:
    server = target.create([ServerSpec("web-1", "web", 1, "lab/base:bookworm")])[0]
    ami = target.bake(server, "lab/t-web:v2", LABELS)
    new = target.create([ServerSpec("web-2", "web", 2, ami)])[0]
    assert new.image == ami and new.generation == 2
    ec2 = boto3.client("ec2", region_name=REGION)
    launched = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:lab.server", "Values": ["web-2"]}])["Reservations"] for i in r["Instances"]]
    assert [i["ImageId"] for i in launched] == [ami]
    target.destroy()
    target.remove_images()
    assert leftovers("t") == {}


def test_destroy_images_works_without_state(aws_env: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    config = lab_config(tmp_path, aws_env)
    with Fleet(config) as fleet:
        server = fleet.up()[0]
        fleet.target.bake(server, "lab/t-web:v1", LABELS | {"lab.version": "v1"})
    with Fleet(lab_config(tmp_path / "elsewhere", aws_env)) as fleet:
        assert fleet.destroy(images=True) == ["web-1"]
    assert leftovers("t") == {}
