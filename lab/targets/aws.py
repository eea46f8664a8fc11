"""AWS target: each server is an EC2 instance, launched from the lab's launch template.

``target: aws`` and an ``aws:`` section in lab.yml are all a local lab needs to run on EC2:
records carry the public address and port 22 like any target's, so provisioning, verify,
drift, ``lab test`` and ``lab ssh`` work unchanged. ``lab up`` imports the lab's ed25519 key
as a key pair, makes the security groups (SSH from ``aws.ssh_cidr`` only, the role's ports
from the balancer only), and launches instances from a launch template sent whole each time.

Nothing may be left billing: every resource is tagged ``lab.name`` and ``lab.expires``; a
command that fails or is interrupted removes what it made; ``destroy`` finds everything by
tag (lab.aws.resources) with or without state; each instance powers itself off, and so
terminates, at its expiry.

Nothing may be intercepted either: each instance boots with an SSH host key lab made for it
(its own user data, lab.aws.userdata), recorded in ``.lab/known_hosts`` as soon as its public
address is known, so even the first connection checks it strictly.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import time
import uuid
from datetime import timedelta
from typing import Any, ClassVar, cast

import boto3
from pydantic import Field, field_validator

from lab.access.keys import HostKey, KeyPair, host_key_for
from lab.aws import api, network, pricing, resources
from lab.aws.api import Clients, tag_specs, tags_of, translated
from lab.aws.resources import EXISTING, NAME, pages
from lab.aws.userdata import user_data
from lab.config import LabConfig, TargetSettings
from lab.errors import ConfigError, LabError, LeftBehind, UsageError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
from lab.state import Liveness, ServerRecord
from lab.targets.base import LABEL_PREFIX, Plan, ServerSpec, Target

# Debian's cloud team publishes its current AMI of each region under this public parameter.
DEBIAN_12 = "/aws/service/debian/release/bookworm/latest/amd64"
LIFETIME = re.compile(r"\A(\d+(?:\.\d+)?)\s*([mhd])\Z")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
STATUS = {"pending": Liveness.CREATING, "running": Liveness.RUNNING}
HOME = f"{LABEL_PREFIX}home"  # on the key pair: which folder and caller the lab is of
BOOT_LOOK_SECONDS = 10.0  # between looks at instance states while waiting for SSH
SERVER, ROLE, GENERATION, PORTS, IMAGE = (f"{LABEL_PREFIX}{k}" for k in (
    "server", "role", "generation", "ports", "image"))


class AwsSettings(TargetSettings):
    """``aws:`` in lab.yml: where and how the lab's instances run (target aws)."""

    region: str | None = None  # None: boto3's (AWS_REGION, the profile)
    instance_type: str = Field(default="t3.small", pattern=r"^[a-z0-9-]+\.[a-z0-9]+$")
    # An AMI id, or a public SSM parameter naming one (the default: Debian 12, amd64).
    image: str = DEBIAN_12
    subnet: str | None = Field(default=None, pattern=r"^subnet-[0-9a-f]+$")
    ssh_cidr: str | None = Field(default=None, validate_default=True)
    ssh_user: str = "admin"  # Debian's cloud images log in as admin
    lifetime: str = "4h"

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not (re.fullmatch(r"ami-[0-9a-f]{8,17}", value) or value.startswith("/")):
            raise ValueError(f"must be an AMI id (ami-...) or a public SSM parameter "
                             f"(/aws/service/...), got {value!r}")
        return value

    @field_validator("ssh_cidr")
    @classmethod
    def _ssh_cidr(cls, value: str | None) -> str:
        if value is None:
            raise ValueError(f"is required: the addresses allowed to reach SSH, e.g. your "
                             f"own ({api.OWN_ADDRESS_HINT})")
        try:
            network_ = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"must be a CIDR like 203.0.113.7/32, got {value!r}") from None
        if network_.prefixlen == 0:
            raise ValueError(f"{value} would let the whole internet try SSH: use your own "
                             f"address ({api.OWN_ADDRESS_HINT})")
        return str(network_)

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, value: str) -> str:
        match = LIFETIME.match(value.strip())
        if not match or float(match[1]) <= 0:
            raise ValueError(f"must be a duration like 4h, 90m or 2d, got {value!r}")
        return value

    @property
    def lifetime_delta(self) -> timedelta:
        match = LIFETIME.match(self.lifetime.strip())
        assert match is not None  # validated
        return timedelta(**{UNITS[match[2]]: float(match[1])})


class AwsTarget(Target):
    """Servers as EC2 instances of one region, found by their ``lab.name`` tag."""

    name = "aws"
    settings_model = AwsSettings
    charges = True
    boot_seconds = 300.0  # an EC2 instance takes a minute or two to boot and start sshd
    # lab.yml's balancer kinds this target runs as another: a local lab's HAProxy is an ALB.
    balancer_kinds: ClassVar[dict[str, str]] = {"haproxy": "alb"}

    def __init__(self, config: LabConfig, key: KeyPair) -> None:
        super().__init__(config, key)
        self.settings = cast(AwsSettings, config.settings(self.name))
        self._aws: Clients | None = None
        # Lab-wide resources (key pair, groups, template) this command made: should a later
        # step fail (the balancer, the SSH wait), they go with the last of its servers.
        self._made = resources.Found()
        self._home: str | None = None  # see home()
        self._boot_look_at = 0.0  # when boot_failure may ask AWS again
        self._boot_states: dict[str, tuple[str, str]] = {}

    @property
    def aws(self) -> Clients:
        if self._aws is None:
            self._aws = api.clients(self.settings.region)
        return self._aws

    def tags(self, spec: ServerSpec | None = None, **extra: str) -> dict[str, str]:
        return resources.tags(self.config.name, self.settings.lifetime_delta, spec, **extra)

    # what `lab up` will create ---------------------------------------------------------------

    def plan(self, specs: list[ServerSpec]) -> Plan | None:
        """What creating ``specs`` makes and costs an hour (None: nothing), and what still
        bills after aws.lifetime; checks the instance type, the image and the subnets first,
        so a typo or a private subnet stops here, before anything is made."""
        with translated(self.aws.region):
            self._refuse_another_home(self._home_of_key())
            self._architectures  # noqa: B018 - an unknown instance type stops here
            for image in {s.image for s in specs}:
                self.image_id(image)
            plan = Plan(f"{self.aws.region}, at us-east-1 on-demand prices")
            if specs:
                plan.lines.append(pricing.instances_line(self.settings.instance_type, len(specs)))
            balanced = self.config.balancer is not None
            if balanced and not self._has_balancer():  # its two public subnets, or stop here
                place = network.placement(self.aws, self.settings.subnet)
                plan.lines.append(pricing.balancer_line(len(place.balancer_subnets)))
            elif specs:
                network.placement(self.aws, self.settings.subnet)  # a private one stops here
        # One note: the money first, then the free rest, all tagged to expire.
        plan.notes.append(f"{pricing.after_expiry(self.settings.lifetime, balanced)}; also "
                          "made (free): key pair, security groups, launch template; all "
                          f"tagged lab.name={self.config.name}")
        return plan if plan.lines else None

    def _has_balancer(self) -> bool:
        return bool(resources.load_balancers(self.aws, resources.of_lab(self.config.name)))

    def image_id(self, image: str) -> str:
        """The AMI servers start from: ``image`` when it is an AMI id (a baked one), else
        lab.yml's ``aws.image`` (an AMI id, or a public parameter naming one). An AMI that
        ``aws.instance_type`` cannot run (amd64 on a Graviton t4g) stops here, before
        anything is made, rather than at RunInstances."""
        wanted = image if image.startswith("ami-") else self.settings.image
        if wanted.startswith("/"):
            wanted = self.aws.ssm.get_parameter(Name=wanted)["Parameter"]["Value"]
        found = self.aws.ec2.describe_images(ImageIds=[wanted])["Images"]  # NotFound: 1 line
        arch = next((i["Architecture"] for i in found if i.get("Architecture")), "")
        runs = self._architectures
        if arch and runs and arch not in runs:
            named = wanted if image.startswith("ami-") else f"aws.image ({self.settings.image})"
            wants = "arm64" if "arm64" in runs else "x86_64"
            debian = DEBIAN_12.replace("/amd64", "/arm64") if wants == "arm64" else DEBIAN_12
            raise ConfigError(
                f"aws.instance_type: {self.settings.instance_type} runs {'/'.join(runs)} but "
                f"{named} is {arch}: set aws.image to an {wants} one (Debian 12's: {debian}) "
                f"or aws.instance_type to an {arch} type (t3.small is x86_64, t4g.small arm64)")
        return wanted

    @functools.cached_property
    def _architectures(self) -> list[str]:
        """What ``aws.instance_type`` runs (x86_64, arm64): asked once per target, however
        many images a command starts servers from."""
        found = self.aws.ec2.describe_instance_types(
            InstanceTypes=[self.settings.instance_type])["InstanceTypes"]
        return sorted({a for t in found for a in t["ProcessorInfo"]["SupportedArchitectures"]})

    # create --------------------------------------------------------------------------------

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        """Key pair, security groups, launch template, instances (each handed its own host
        key, recorded in known_hosts); on any failure or Ctrl-C, what this call made is
        removed before the error goes on."""
        if not specs:
            return []
        made = resources.Found()  # the key pair, groups and template this call created
        try:
            with translated(self.aws.region):
                records = self._create(specs, made, on_event)
        except BaseException:
            self._undo([s.name for s in specs], made, on_event)
            raise
        for kind in ("key_pairs", "security_groups", "launch_templates"):
            getattr(self._made, kind).extend(getattr(made, kind))
        return records

    def _create(self, specs: list[ServerSpec], made: resources.Found,
                on_event: Listener) -> list[ServerRecord]:
        self._architectures  # noqa: B018 - an unknown instance type stops here
        place = network.placement(self.aws, self.settings.subnet)
        key_name = self._ensure_key(made)
        listen = self.config.balancer.listen if self.config.balancer else None
        ports = sorted({p for s in specs for p in s.ports} | self._health_ports())
        groups = network.ensure_groups(self.aws, self.config.name, place.vpc,
                                       cast(str, self.settings.ssh_cidr), ports, listen,
                                       self.tags(), made)
        template = self._ensure_template(made)
        versions: dict[str, str] = {}  # image -> launch template version, one per image
        ids = []
        host_keys: dict[str, HostKey] = {}
        for spec in specs:
            if spec.image not in versions:
                versions[spec.image] = self._template_version(
                    template, self.image_id(spec.image), key_name, place.subnet,
                    groups["servers"])
            host_keys[spec.name] = host_key_for(spec.name, self.config.name)
            ids.append(self._run(spec, template, versions[spec.image], host_keys[spec.name]))
            made.instances.append(ids[-1])  # undone by id: a listing by tag may lag behind
            on_event(Event("created", f"{spec.name} launched ({ids[-1]})", subject=spec.name))
        on_event(Event("create", f"waiting for {len(ids)} instance(s) to run"))
        resources.ec2_wait(self.aws.ec2, "instance_running", f"{len(ids)} instance(s)", on_event,
                           InstanceIds=ids)
        records = [self.record(i) for i in self._instances(InstanceIds=ids)]
        for record in filter(lambda r: r.ssh_host, records):  # no address: nothing to reach
            # The public address is known only now: the first connection is already strict.
            self.known_hosts.trust(record.name, record.ssh_host, record.ssh_port,
                                   host_keys[record.name].public)
        return records

    def _health_ports(self) -> set[int]:
        if self.config.balancer is None:
            return set()
        return {self.config.health_of(self.config.balancer.routes_to).port}

    def _ensure_key(self, made: resources.Found) -> str:
        """The lab's ed25519 public key as a key pair named ``lab-<lab>``, imported once and
        tagged with the lab's home: a lab of the same name from another folder or another
        person in the account is refused before anything is made, not taken over."""
        name = f"lab-{self.config.name}"
        found = self._key_pairs()
        if found:
            self._refuse_another_home(tags_of(found[0]).get(HOME))
        else:
            self.aws.ec2.import_key_pair(
                KeyName=name, PublicKeyMaterial=self.key.public_text.encode(),
                TagSpecifications=tag_specs(self.tags(home=self.home()), "key-pair"))
            made.key_pairs.append(name)
        return name

    def _key_pairs(self) -> list[dict[str, Any]]:
        return list(self.aws.ec2.describe_key_pairs(
            Filters=[{"Name": "key-name", "Values": [f"lab-{self.config.name}"]}])["KeyPairs"])

    def _home_of_key(self) -> str | None:
        found = self._key_pairs()
        return tags_of(found[0]).get(HOME) if found else None

    def home(self) -> str:
        """Who runs this lab from where: a hash of lab.yml's folder and the caller's ARN."""
        if self._home is None:
            caller = self.aws.sts.get_caller_identity()["Arn"]
            where = f"{self.config.directory.resolve()}\0{caller}"
            self._home = hashlib.sha256(where.encode()).hexdigest()[:16]
        return self._home

    def _refuse_another_home(self, theirs: str | None) -> None:
        if theirs is not None and theirs != self.home():
            raise ConfigError(
                f"name: lab {self.config.name} already runs in this AWS account from another "
                "folder or for another person (its key pair says so): give this lab another "
                "`name:` in lab.yml, or run lab from the folder that made it")

    def _ensure_template(self, made: resources.Found) -> str:
        """The lab's launch template (its versions are made per image, always whole)."""
        found = self.aws.ec2.describe_launch_templates(
            Filters=[{"Name": f"tag:{NAME}", "Values": [self.config.name]}])["LaunchTemplates"]
        if found:
            return str(found[0]["LaunchTemplateId"])
        template = self.aws.ec2.create_launch_template(
            LaunchTemplateName=f"lab-{self.config.name}",
            LaunchTemplateData={"InstanceType": self.settings.instance_type},
            TagSpecifications=tag_specs(self.tags(), "launch-template"),
        )["LaunchTemplate"]["LaunchTemplateId"]
        made.launch_templates.append(template)
        return str(template)

    def _template_version(self, template: str, ami: str, key_name: str, subnet: str,
                          group: str) -> str:
        """A new version holding the whole data (never a diff from another version: a
        partial version silently drops what it leaves out)."""
        data = template_data(ami, self.settings.instance_type, key_name, subnet, group,
                             user_data(self.settings.lifetime_delta))
        version = self.aws.ec2.create_launch_template_version(
            LaunchTemplateId=template, LaunchTemplateData=data)["LaunchTemplateVersion"]
        return str(version["VersionNumber"])

    def _run(self, spec: ServerSpec, template: str, version: str, host_key: HostKey) -> str:
        """Launch one instance. Its user data (overriding the template's) carries its own
        host key: in the shared template, every instance would have the same one."""
        tags = self.tags(spec, image=spec.image, ports=",".join(map(str, spec.ports)))
        boot = user_data(self.settings.lifetime_delta, {
            "ed25519_private": host_key.private, "ed25519_public": host_key.public})
        reservation = self.aws.ec2.run_instances(
            LaunchTemplate={"LaunchTemplateId": template, "Version": version},
            MinCount=1, MaxCount=1, ClientToken=f"{spec.name}-{uuid.uuid4().hex[:16]}",
            TagSpecifications=tag_specs(tags, "instance", "volume"),
            UserData=boot,  # boto3 encodes it in base64
        )
        return str(reservation["Instances"][0]["InstanceId"])

    def _undo(self, names: list[str], made: resources.Found, on_event: Listener) -> None:
        """Remove the instances this command launched (by the ids it was given, and by tag:
        a launch cut short by Ctrl-C still tagged one whose id never came back; a listing by
        tag may not show an instance launched seconds ago) and the key pair, groups and
        template it made."""
        on_event(Event("destroy", "removing what this command made on AWS"))
        with translated(self.aws.region):
            made.instances = sorted(set(made.instances) | set(self._instance_ids(names)))
            resources.remove(self.aws, made, on_event)

    # list / alive / destroy ------------------------------------------------------------------

    def list(self) -> list[ServerRecord]:
        with translated(self.aws.region):
            return [self.record(i) for i in self._instances(Filters=self._filters())]

    def alive(self, names: list[str]) -> set[str]:
        with translated(self.aws.region):
            running = self._instances(Filters=self._filters(names, ["pending", "running"]))
        return {tags_of(i).get(SERVER, "") for i in running}

    # a boot that does not finish -----------------------------------------------------------

    def boot_failure(self, server: ServerRecord) -> str | None:
        """An instance that stopped or terminated while lab waited for SSH (capacity, a
        failed boot, its own power-off) will never answer: its state and AWS's reason.
        One look at all of the lab's instances every :data:`BOOT_LOOK_SECONDS` at most:
        the wait asks each second, per server, and EC2's rate limits are per account."""
        now = time.monotonic()
        if now >= self._boot_look_at:
            self._boot_look_at = now + BOOT_LOOK_SECONDS
            with translated(self.aws.region):
                self._boot_states = {
                    tags_of(i).get(SERVER, ""): (i["State"]["Name"],
                                                 i.get("StateReason", {}).get("Message", ""))
                    for i in self._instances(Filters=self._filters()[:1])}  # any state
        state, reason = self._boot_states.get(server.name, ("running", ""))
        if state in STATUS:
            return None
        return f"its instance is {state}" + (f" ({reason})" if reason else "")

    def boot_report(self, server: ServerRecord) -> str:
        """The end of the instance's console (AWS shows it some minutes late, if at all),
        and the usual cause on AWS: aws.ssh_cidr no longer holding the caller's address."""
        lines = [f"    SSH to {server.ssh_host}:22 is allowed from aws.ssh_cidr "
                 f"{self.settings.ssh_cidr} only: if your address changed, set it "
                 f"({api.OWN_ADDRESS_HINT}) and run `lab up` again"]
        try:
            with translated(self.aws.region):
                ids = self._instance_ids([server.name])
                output = (self.aws.ec2.get_console_output(InstanceId=ids[0], Latest=True)
                          .get("Output", "") if ids else "")
        except LabError:
            output = ""
        tail = [line for line in output.splitlines() if line.strip()][-5:]
        lines += [f"    console: {line}" for line in tail] or ["    console: nothing yet "
                                                               "(AWS shows it minutes late)"]
        return "\n" + "\n".join(lines)

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        """The named servers' instances, or (``names`` None) everything tagged with the lab's
        name: load balancer, instances, template, groups, key pair. AMIs stay (``--images``)."""
        with translated(self.aws.region):
            servers = [tags_of(i).get(SERVER, i["InstanceId"])
                       for i in self._instances(Filters=self._filters(names))]
            if names is None:
                found = resources.find(self.aws, resources.of_lab(self.config.name),
                                       images=False)
            else:
                found = resources.Found(instances=self._instance_ids(names))
            left = resources.remove(self.aws, found, on_event)
            if names is not None and not self._made.empty and not self._instance_ids(None):
                resources.remove(self.aws, self._made, on_event)  # what made them failed
            self._made = resources.Found()
        for server in servers:
            on_event(Event("destroyed", f"{server} terminated", subject=server))
        if not left.empty:
            # Still billing, or in the way of the next `lab up`: never a silent success.
            raise LeftBehind(
                f"AWS still holds {left.describe()} of lab {self.config.name} (a load "
                "balancer's network interfaces keep its security group for minutes): run "
                "`lab destroy` again in a few minutes (`lab aws sweep` finds them too)",
                servers, left.describe())
        return servers

    def _filters(self, names: list[str] | None = None,
                 states: list[str] = EXISTING) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{NAME}", "Values": [self.config.name]},
                   {"Name": "instance-state-name", "Values": states}]
        if names is not None:
            filters.append({"Name": f"tag:{SERVER}", "Values": names or ["-"]})
        return filters

    def _instances(self, **query: Any) -> list[dict[str, Any]]:
        return [i for r in pages(self.aws.ec2, "describe_instances", "Reservations", **query)
                for i in r["Instances"]]

    def _instance_ids(self, names: list[str] | None) -> list[str]:
        return [i["InstanceId"] for i in self._instances(Filters=self._filters(names))]

    def record(self, instance: dict[str, Any]) -> ServerRecord:
        """A server as its instance shows it: SSH on its public address, port 22."""
        tags = tags_of(instance)
        public = instance.get("PublicIpAddress", "")
        ports = [int(p) for p in tags.get(PORTS, "").split(",") if p]
        return ServerRecord(
            name=tags.get(SERVER, instance["InstanceId"]), role=tags.get(ROLE, "unknown"),
            target=self.name, address=instance.get("PrivateIpAddress", ""),
            ssh_host=public, ssh_port=22, ssh_user=self.settings.ssh_user,
            image=tags.get(IMAGE, instance.get("ImageId", "")),
            generation=int(tags.get(GENERATION, "1")),
            liveness=STATUS.get(instance["State"]["Name"], Liveness.DEAD),
            ports={p: p for p in ports}, ports_host=public,
            created=instance["LaunchTime"].timestamp() if "LaunchTime" in instance
            else time.time(),
        )

    # images ----------------------------------------------------------------------------------

    def has_image(self, image: str) -> bool:
        if not image.startswith("ami-"):
            return False
        try:
            with translated(self.aws.region):
                self.aws.ec2.describe_images(ImageIds=[image])
        except UsageError:
            return False
        return True

    def bake(self, server: ServerRecord, tag: str, labels: dict[str, str]) -> str:
        """An AMI of the server's instance, tagged with ``labels`` and the lab's tags; its
        snapshots are tagged too (after creation: AWS tags an AMI's snapshots only then),
        so destroy and sweep find them."""
        with translated(self.aws.region):
            ids = self._instance_ids([server.name])
            if not ids:
                raise UsageError(f"{server.name}: no such instance in lab {self.config.name}")
            tags = self.tags() | labels | {f"{LABEL_PREFIX}image-tag": tag}
            name = re.sub(r"[^A-Za-z0-9()\[\]./\-'@_]", "-", tag)
            # NoReboot: without it CreateImage shuts the instance down and boots it again,
            # in traffic, after its host keys were scrubbed (sshd would have none) and with
            # its power-off deadline gone (it lived in /run). The scrub ends with `sync`.
            ami = self.aws.ec2.create_image(
                InstanceId=ids[0], Name=f"{name}-{int(time.time())}", NoReboot=True,
                Description=f"lab {self.config.name}: {tag}",
                TagSpecifications=tag_specs(tags, "image"))["ImageId"]
            try:
                # An AMI just made may not be known yet, and the waiter gives up at once on
                # InvalidAMIID.NotFound: it waits only once AWS has seen it.
                api.eventually(self.aws.ec2.describe_images, ImageIds=[ami])
                resources.ec2_wait(self.aws.ec2, "image_available", f"image {ami}", ImageIds=[ami])
                snapshots = resources.image_snapshots(self.aws, ami)
                if snapshots:
                    self.aws.ec2.create_tags(Resources=snapshots, Tags=api.tag_list(tags))
            except BaseException:
                resources.remove(self.aws, resources.Found(images=[ami]))
                raise
        return str(ami)

    def remove_images(self) -> list[str]:
        """Deregister the lab's baked AMIs and delete their snapshots."""
        with translated(self.aws.region):
            found = resources.find(self.aws, resources.of_lab(self.config.name))
            images = resources.Found(images=found.images, snapshots=found.snapshots)
            resources.remove(self.aws, images)
        return found.images

    # what the target needs -------------------------------------------------------------------

    @classmethod
    def owner(cls) -> str:
        """The caller's ARN (an IAM user or role): two trainees in one account get labs of
        their own. "" when AWS cannot be asked; `lab doctor` says why."""
        region = api.default_region()
        if not region:
            return ""
        try:
            with translated(region):
                return str(api.clients(region).sts.get_caller_identity()["Arn"])
        except LabError:
            return ""

    @classmethod
    def prerequisites(cls) -> list[Check]:
        """A region, and credentials AWS accepts (the caller identity). Optional: only labs
        with ``target: aws`` need them."""
        region = api.default_region()
        if not region:
            # Credentials are found without a region (no call): both missing say so at once.
            found = boto3.session.Session().get_credentials() is not None
            return [Check("aws region", False, "not set", "set AWS_REGION (or `aws.region` "
                          "in lab.yml)", required=False)] + ([] if found else [
                Check("aws credentials", False, "none found", api.CREDENTIALS_FIX,
                      required=False)])
        try:
            aws = api.clients(region)
        except ConfigError as exc:
            return [Check("aws region", False, region, str(exc), required=False)]
        except LabError as exc:
            return [Check("aws region", True, region),
                    Check("aws credentials", False, "not usable", str(exc), required=False)]
        try:
            with translated(region):
                who = aws.sts.get_caller_identity()
        except LabError as exc:
            return [Check("aws region", True, region),
                    Check("aws credentials", False, "not usable", str(exc), required=False)]
        return [Check("aws region", True, region),
                Check("aws credentials", True, f"{who['Arn']} (account {who['Account']})")]

    @classmethod
    def standing(cls) -> list[Check]:
        """What lab made in the region bills now (one look, see resources.billing_check),
        when AWS can be asked at all: `lab doctor` shows it, an exercise's start does not
        wait for it."""
        region = api.default_region()
        if not region or not all(c.ok for c in cls.prerequisites()):
            return []
        return [resources.billing_check(api.clients(region))]


def template_data(ami: str, instance_type: str, key_name: str, subnet: str, group: str,
                  user_data_text: str) -> dict[str, Any]:
    """A launch template version's whole data: image, size, key, network, boot script."""
    import base64

    return {
        "ImageId": ami, "InstanceType": instance_type, "KeyName": key_name,
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group],
                               "AssociatePublicIpAddress": True, "DeleteOnTermination": True}],
        "UserData": base64.b64encode(user_data_text.encode()).decode(),
        # Powering off (at lab.expires, by the user data) ends the instance and its bill.
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
    }
