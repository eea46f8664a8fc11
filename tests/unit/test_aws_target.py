"""The aws target against moto: what `lab up` makes, how it is tagged and found, and that
destroy (with or without state), a failed or interrupted create, and sweep leave nothing."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from awslab import CIDR, REGION, Clock, fail, key_for, lab_config, leftovers
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from lab.access.knownhosts import KnownHosts
from lab.aws import api, resources
from lab.errors import ExitStatus, LabError
from lab.fleet import Fleet
from lab.state import Liveness, State
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec


def specs(count: int = 2, image: str = "lab/base:bookworm", generation: int = 1,
          start: int = 1) -> list[ServerSpec]:
    return [ServerSpec(f"web-{start + i}", "web", generation, image, ports=[80])
            for i in range(count)]


@pytest.fixture
def target(aws_env: str, tmp_path: Path) -> AwsTarget:
    config = lab_config(tmp_path, aws_env)
    return AwsTarget(config, key_for(config))


def test_create_makes_tagged_instances_reached_on_their_public_address(
        target: AwsTarget, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_LABELS", "lab.test-run=r1")
    records = target.create(specs())
    assert [r.name for r in records] == ["web-1", "web-2"]
    for record in records:
        assert record.ssh_host and record.ssh_host == record.ports_host
        assert (record.ssh_port, record.ssh_user, record.ports) == (22, "admin", {80: 80})
        assert record.liveness is Liveness.RUNNING and record.target == "aws"
    ec2 = boto3.client("ec2", region_name=REGION)
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert {i["ImageId"] for i in instances} == {aws_env}
    for instance in instances:
        tags = api.tags_of(instance)
        assert tags["lab.name"] == "t" and tags["lab.test-run"] == "r1"
        expires = datetime.strptime(tags["lab.expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert timedelta(hours=3, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=4)
    assert sorted(r.name for r in target.list()) == ["web-1", "web-2"]
    assert target.alive(["web-1", "web-9"]) == {"web-1"}
    assert sorted(target.destroy()) == ["web-1", "web-2"]
    assert leftovers("t") == {}


def test_two_labs_in_one_account_each_list_and_destroy_only_their_own(
        aws_env: str, tmp_path: Path) -> None:
    """Labs share an account and their servers' names; only the lab's name tag tells them
    apart. One named like the start of the other lists and destroys nothing of the other's,
    by server name or whole."""
    ours, theirs = (AwsTarget(config, key_for(config)) for config in (
        lab_config(tmp_path / "a", aws_env, name="t"),
        lab_config(tmp_path / "b", aws_env, name="tt")))
    ours.create(specs(2))
    theirs.create(specs(2))
    theirs_made = leftovers("tt")
    assert set(theirs_made) == {"instances", "volumes", "key_pairs", "launch_templates",
                                "security_groups"}
    assert sorted(r.name for r in ours.list()) == ["web-1", "web-2"]
    assert ours.destroy(["web-1"]) == ["web-1"]
    assert ours.alive(["web-1", "web-2"]) == {"web-2"}
    assert theirs.alive(["web-1", "web-2"]) == {"web-1", "web-2"}
    assert ours.destroy() == ["web-2"]
    assert leftovers("t") == {}
    assert leftovers("tt") == theirs_made
    assert sorted(theirs.destroy()) == ["web-1", "web-2"]
    assert leftovers("tt") == {}


def test_the_key_is_imported_and_ssh_is_open_to_the_cidr_only(target: AwsTarget) -> None:
    target.create(specs(1))
    ec2 = boto3.client("ec2", region_name=REGION)
    pair = ec2.describe_key_pairs(KeyNames=["lab-t"], IncludePublicKey=True)["KeyPairs"][0]
    assert pair["PublicKey"].split()[:2] == target.key.public_text.split()[:2]
    assert api.tags_of(pair)["lab.name"] == "t"
    group = ec2.describe_security_groups(Filters=[{"Name": "tag:lab.name", "Values": ["t"]}])[
        "SecurityGroups"]
    assert len(group) == 1
    rules = group[0]["IpPermissions"]
    assert [(r["FromPort"], [x["CidrIp"] for x in r["IpRanges"]]) for r in rules] == [(22, [CIDR])]
    target.destroy()
    assert leftovers("t") == {}


def test_every_launch_template_version_is_whole(target: AwsTarget, aws_env: str) -> None:
    target.create(specs(1))
    target.create(specs(1, start=2))
    ec2 = boto3.client("ec2", region_name=REGION)
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="lab-t")[
        "LaunchTemplateVersions"]
    assert len(versions) == 3  # the empty first version, and one per create
    for version in versions[1:]:
        data = version["LaunchTemplateData"]
        assert data["ImageId"] == aws_env and data["KeyName"] == "lab-t"
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
        boot = base64.b64decode(data["UserData"]).decode()
        assert boot.startswith("#cloud-config") and "systemctl poweroff" in yaml.safe_load(boot)[
            "bootcmd"][0][2]
    target.destroy()
    assert leftovers("t") == {}


def ctrl_c_at_the_second_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, Ctrl-C comes as the second instance is about to launch."""
    launched, calls = AwsTarget._run, []

    def run_then_interrupt(self: AwsTarget, *args: object) -> str:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return launched(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(AwsTarget, "_run", run_then_interrupt)


def test_an_interrupted_create_removes_what_it_made(target: AwsTarget,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the first instance launched: that instance, the key pair, the groups and
    the template (all made by this call) are gone when the interrupt goes on."""
    ctrl_c_at_the_second_launch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        target.create(specs(2))
    assert leftovers("t") == {}


def test_an_interrupted_create_leaves_the_servers_already_there(
        target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while adding servers to a running lab: the ones this call launched go, and
    nothing else of the lab; the clean-up is shown as it goes."""
    target.create(specs(1))
    ctrl_c_at_the_second_launch(monkeypatch)
    events: list = []
    with pytest.raises(KeyboardInterrupt):
        target.create(specs(2, start=2), events.append)
    assert target.alive(["web-1", "web-2", "web-3"]) == {"web-1"}
    assert [(e.kind, e.message) for e in events if e.kind.startswith("destroy")] == [
        ("destroy", "removing what this command made on AWS"),
        ("destroyed", "1 instance(s) terminated")]
    target.destroy()
    assert leftovers("t") == {}


def test_destroy_names_each_server_an_unnamed_one_by_its_id_and_stopped_ones_too(
        target: AwsTarget) -> None:
    target.create(specs(2))
    ec2 = boto3.client("ec2", region_name=REGION)
    web2 = ec2.describe_instances(Filters=[{"Name": "tag:lab.server", "Values": ["web-2"]}])[
        "Reservations"][0]["Instances"][0]
    ec2.stop_instances(InstanceIds=[web2["InstanceId"]])
    web1 = target._instance_ids(["web-1"])[0]
    ec2_backends[DEFAULT_ACCOUNT_ID][REGION].get_instance(web1)._state.name = "pending"
    # Still starting: alive; stopped: not alive, though still there.
    assert target.alive(["web-1", "web-2"]) == {"web-1"}
    unnamed = ec2.run_instances(
        ImageId=web2["ImageId"], MinCount=1, MaxCount=1, TagSpecifications=[{
            "ResourceType": "instance", "Tags": [{"Key": "lab.name", "Value": "t"}]}])[
        "Instances"][0]["InstanceId"]
    events: list = []
    assert sorted(target.destroy(on_event=events.append)) == sorted(["web-1", "web-2", unnamed])
    terminated = {(e.message, e.subject) for e in events if e.kind == "destroyed"
                  and e.message.endswith(" terminated") and e.subject}
    assert terminated == {(f"{n} terminated", n) for n in ("web-1", "web-2", unnamed)}
    assert ("destroyed", "3 instance(s) terminated") in [(e.kind, e.message) for e in events]
    assert leftovers("t") == {}


def test_what_aws_refuses_in_list_alive_or_destroy_names_the_region(target: AwsTarget) -> None:
    fail(target.aws.ec2, "DescribeInstances", "UnauthorizedOperation")
    for call in (target.list, lambda: target.alive(["web-1"]), target.destroy,
                 lambda: target.destroy(["web-1"])):
        with pytest.raises(LabError, match="in eu-west-1"):
            call()


def test_a_killed_up_is_destroyed_by_tag_without_state(aws_env: str, tmp_path: Path) -> None:
    """`lab up` killed outright (no clean-up ran) and .lab deleted: `lab destroy` still
    finds every resource by tag."""
    config = lab_config(tmp_path, aws_env, balancer=True, count=2)
    launched = AwsTarget._run
    calls = []

    def run_then_die(self: AwsTarget, *args: object) -> str:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return launched(self, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AwsTarget, "_run", run_then_die)
        patch.setattr(AwsTarget, "_undo", lambda *a, **k: None)  # the process died: no
        patch.setattr(Fleet, "destroy_servers", lambda *a, **k: [])  # clean-up ran
        with Fleet(config) as fleet, pytest.raises(KeyboardInterrupt):
            fleet.up()
    assert {"instances", "key_pairs", "security_groups", "launch_templates"} <= set(
        leftovers("t"))
    shutil.rmtree(config.state_dir)
    with Fleet(lab_config(tmp_path, aws_env, balancer=True, count=2)) as fleet:
        assert fleet.destroy() == ["web-1"]
    assert leftovers("t") == {}


def test_up_then_destroy_after_state_is_deleted(aws_env: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole `lab up` (with its ALB) and `lab destroy` with .lab/ gone in between. SSH
    readiness is the one boundary left out: moto's instances cannot be reached."""
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    config = lab_config(tmp_path, aws_env, balancer=True, count=2)
    with Fleet(config) as fleet:
        plan = fleet.plan()
        assert plan is not None and [line.count for line in plan.lines] == [2, 1]
        up = fleet.up()
        assert sorted(s.name for s in up) == ["web-1", "web-2"]
        assert fleet.plan() is None  # nothing missing: nothing to pay for
    assert set(leftovers("t")) >= {"instances", "load_balancers", "target_groups", "listeners"}
    shutil.rmtree(config.state_dir)
    with Fleet(lab_config(tmp_path, aws_env, balancer=True, count=2)) as fleet:
        assert sorted(fleet.destroy()) == ["web-1", "web-2"]
    assert leftovers("t") == {}


def test_the_finder_lists_every_kind_lab_makes_and_no_terminated_instance(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `lab destroy` and `lab aws sweep` remove, and count to the user, per kind."""
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    config = lab_config(tmp_path, aws_env, balancer=True, count=2)
    ec2 = boto3.client("ec2", region_name=REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": "lab.name", "Value": "t"}]}])
    ec2.delete_volume(VolumeId=volume)
    with Fleet(config) as fleet:
        fleet.up()
        fleet.destroy_servers(["web-1"])
        found = resources.find(api.clients(REGION), resources.of_lab("t"))
        assert found.counts() == {"listeners": 1, "load_balancers": 1, "target_groups": 1,
                                  "instances": 1, "launch_templates": 1, "security_groups": 2,
                                  "key_pairs": 1, "snapshots": 1}
        fleet.destroy()
    assert "snapshots" in leftovers("t")  # `lab destroy` keeps images and their snapshots
    resources.remove(api.clients(REGION), resources.find(api.clients(REGION),
                                                         resources.of_lab("t")))
    assert leftovers("t") == {}


def test_the_plan_checks_type_and_image_and_prices_before_making_anything(
        aws_env: str, tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env, balancer=True)
    plan = AwsTarget(config, key_for(config)).plan(specs(2))
    assert plan is not None
    assert [(line.count, line.hourly is not None) for line in plan.lines] == [(2, True), (1, True)]
    assert 0.05 < plan.hourly < 0.2 and "an hour" in plan.describe()[-2]
    odd = lab_config(tmp_path, aws_env, instance_type="z9.mega")
    with pytest.raises(LabError) as caught:
        AwsTarget(odd, key_for(odd)).plan(specs(1))
    assert caught.value.exit_code == ExitStatus.BAD_INPUT
    assert str(caught.value).startswith("aws.instance_type: not offered in eu-west-1")
    missing = lab_config(tmp_path, "ami-0123456789abcdef0")
    with pytest.raises(LabError, match="AMI not found in eu-west-1") as caught:
        AwsTarget(missing, key_for(missing)).plan(specs(1))
    assert caught.value.exit_code == ExitStatus.BAD_INPUT
    assert leftovers("t") == {}


def test_sweep_removes_only_what_has_expired(aws_env: str, tmp_path: Path) -> None:
    short = lab_config(tmp_path / "a", aws_env, name="short", lifetime="1h")
    long = lab_config(tmp_path / "b", aws_env, name="long", lifetime="8h")
    for config in (short, long):
        AwsTarget(config, key_for(config)).create(specs(1))
    assert resources.sweep(REGION).empty  # nothing has expired yet
    later = datetime.now(UTC) + timedelta(hours=2)
    removed = resources.sweep(REGION, now=later)
    assert removed.counts() == {"instances": 1, "launch_templates": 1, "security_groups": 1,
                                "key_pairs": 1}
    assert leftovers("short") == {} and "instances" in leftovers("long")
    resources.sweep(None, now=later + timedelta(hours=7))  # AWS_REGION's
    assert leftovers("long") == {}


def test_sweep_says_what_expired_what_it_removes_and_what_is_still_there(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = lab_config(tmp_path, aws_env, name="short", lifetime="1h")
    AwsTarget(config, key_for(config)).create(specs(1))
    events: list = []
    resources.sweep(REGION, on_event=events.append)
    assert [(e.kind, e.message) for e in events] == [
        ("destroy", "eu-west-1: nothing lab made has expired")]
    monkeypatch.setattr(resources, "time", Clock())  # a retried deletion gives up at once
    real = resources.clients

    def refusing(operation: str, code: str) -> Callable[[str | None], api.Clients]:
        def made(region: str | None) -> api.Clients:
            clients = real(region)
            fail(clients.ec2, operation, code)
            return clients
        return made

    # AWS keeps the group "in use" (a load balancer's network interface, say)
    monkeypatch.setattr(resources, "clients", refusing("DeleteSecurityGroup",
                                                       "DependencyViolation"))
    events.clear()
    found = resources.sweep(REGION, now=datetime.now(UTC) + timedelta(hours=2),
                            on_event=events.append)
    group = found.security_groups[0]
    assert [(e.kind, e.message) for e in events] == [
        ("destroy", "eu-west-1: removing expired 1 instances, 1 launch templates, "
                    "1 security groups, 1 key pairs"),
        ("destroyed", "1 instance(s) terminated"),
        ("warning", f"still there: security groups {group}")]
    assert leftovers("short") == {"security_groups": [group]}
    monkeypatch.setattr(resources, "clients", real)
    logbook = State(tmp_path / "logbook")
    resources.sweep(REGION, now=datetime.now(UTC) + timedelta(hours=2), logbook=logbook)
    [swept] = [e for e in logbook.events() if e.kind == "swept"]
    assert json.loads(swept.detail) == {"region": REGION, "labs": ["short"],
                                           "found": {"security_groups": 1}}
    assert leftovers("short") == {}
    monkeypatch.setattr(resources, "clients", refusing("DescribeInstances",
                                                       "UnauthorizedOperation"))
    with pytest.raises(LabError, match="in eu-west-1"):
        resources.sweep(REGION)


@contextlib.contextmanager
def local_time_zone(zone: str) -> Iterator[None]:
    """This process's local time in ``zone`` for a while (``TZ``, read by ``time.tzset``)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_an_expired_lab_is_swept_at_its_expiry_not_before(aws_env: str, tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env, name="short", lifetime="1h")
    AwsTarget(config, key_for(config)).create(specs(1))
    ec2 = boto3.client("ec2", region_name=REGION)
    tagged = [{"Name": "tag:lab.name", "Values": ["short"]}]
    made = ([i for r in ec2.describe_instances(Filters=tagged)["Reservations"]
             for i in r["Instances"]] + ec2.describe_security_groups(Filters=tagged)[
        "SecurityGroups"] + ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
        + ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"])
    # Each resource's expiry is the moment it was made, plus the lifetime.
    expiries = sorted(datetime.strptime(api.tags_of(r)["lab.expires"], "%Y-%m-%dT%H:%M:%SZ")
                      .replace(tzinfo=UTC) for r in made)
    assert len(expiries) == 4
    with local_time_zone("Etc/GMT-9"):  # nine hours ahead of UTC, where the clock is read
        assert resources.sweep(REGION).empty  # lab.expires is UTC, and an hour away
    assert resources.sweep(REGION, now=expiries[0]).empty  # its last second is still its own
    assert not resources.sweep(REGION, now=expiries[-1] + timedelta(seconds=1)).empty
    assert leftovers("short") == {}


def test_an_images_snapshots_are_its_ebs_ones_only(aws_env: str) -> None:
    """An AMI may map instance-store volumes too (no Ebs, no snapshot)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    mixed = ec2.register_image(Name="mixed", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvdb", "VirtualName": "ephemeral0"},
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    aws = api.clients(REGION)
    [ebs] = [m for m in ec2.describe_images(ImageIds=[mixed])["Images"][0][
        "BlockDeviceMappings"] if "Ebs" in m]
    assert resources.image_snapshots(aws, mixed) == [ebs["Ebs"]["SnapshotId"]]
    assert resources.image_snapshots(aws, "ami-0123456789abcdef0") == []  # gone already


def test_the_image_may_be_a_public_parameter(aws_env: str, tmp_path: Path) -> None:
    """The default is Debian's public parameter; moto has none, so the test makes its own."""
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/lab/test/debian-12", Value=aws_env, Type="String")
    config = lab_config(tmp_path, "/lab/test/debian-12")
    target = AwsTarget(config, key_for(config))
    assert target.image_id("lab/base:bookworm") == aws_env
    missing = lab_config(tmp_path, "/aws/service/debian/release/bookworm/latest/amd64")
    with pytest.raises(LabError, match=r"^aws\.image: no such public parameter in eu-west-1"):
        AwsTarget(missing, key_for(missing)).plan(specs(1))
    assert leftovers("t") == {}


def test_a_failure_after_the_servers_in_up_removes_everything_up_made(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the ALB is being made: the servers, groups, key pair and template that
    this `lab up` made go too, not only the balancer."""
    from lab.balancers.alb import ALB

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)
    monkeypatch.setattr(ALB, "_take", interrupted)
    with Fleet(lab_config(tmp_path, aws_env, balancer=True, count=2)) as fleet, pytest.raises(
            KeyboardInterrupt):
        fleet.up()
    assert leftovers("t") == {}


def test_each_instance_boots_with_its_own_host_key_recorded_in_known_hosts(
        target: AwsTarget) -> None:
    """Per-instance user data (not the shared template) carries each server's own host key,
    the one known_hosts holds for its public address; the template requires IMDSv2 tokens,
    since user data (a private key) is readable through the metadata service."""
    records = target.create(specs(2))
    ec2 = boto3.client("ec2", region_name=REGION)
    known = KnownHosts(target.key.known_hosts)
    publics = []
    for record in records:
        instance = target._instance_ids([record.name])[0]
        text = base64.b64decode(ec2.describe_instance_attribute(
            InstanceId=instance, Attribute="userData")["UserData"]["Value"]).decode()
        boot = yaml.safe_load(text)
        assert boot["ssh_deletekeys"] is True and boot["ssh_genkeytypes"] == []
        assert boot["ssh_keys"]["ed25519_private"].startswith("-----BEGIN OPENSSH PRIVATE KEY")
        public = " ".join(boot["ssh_keys"]["ed25519_public"].split()[:2])
        entry = known.key_at(record.ssh_host, 22)
        assert entry is not None and (entry.key, entry.server) == (public, record.name)
        publics.append(public)
    assert len(set(publics)) == 2 and publics[0].startswith("ssh-ed25519 ")
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="lab-t")[
        "LaunchTemplateVersions"]
    template = next(v["LaunchTemplateData"] for v in versions if "ImageId" in v[
        "LaunchTemplateData"])
    assert template["MetadataOptions"]["HttpTokens"] == "required"
    assert "ssh_keys" not in base64.b64decode(template["UserData"]).decode()
    target.destroy()
    assert leftovers("t") == {}
