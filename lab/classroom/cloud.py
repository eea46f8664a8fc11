"""A class on AWS: every seat's lab in one account, told apart by its ``lab.name`` tag.

``lab class up`` makes no cloud servers: it writes each seat's workspace with ``target: aws``
and the class's ``aws:`` section, and the attendee runs ``lab up`` when the exercise says so
(it shows the cost and asks, as for anyone). So a class on aws starts only exercises whose
start makes no servers (08 and 09 today). One that starts with servers made for it (01's
up, provision) would either cost the instructor 30 labs at once, before anyone needs them,
or leave the attendee at a start its README does not describe: ``init`` and ``up`` refuse
it in one line instead.

A seat's lab name is the class's prefix and the student's name (lab.classroom.seats): what
the seat's resources are tagged with, how ``status`` and ``destroy`` find the whole class
in one listing of the region, and what ``lab aws sweep`` reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.aws import api, pricing, resources
from lab.aws.resources import EXISTING, NAME, pages
from lab.classroom.config import Classroom, ClassSpec, region_of, seat_settings
from lab.classroom.seats import in_class, lab_names
from lab.config import CONFIG_FILE, load_config
from lab.course.workspace import Workspace
from lab.errors import LeftBehind
from lab.events import Event, Listener, ignore
from lab.targets.base import Line

PLACED = ("# On AWS from the start: `lab class up` set `target: aws` and `aws:` from the "
          "class's class.yml.\n")


# up: the seat's lab.yml -----------------------------------------------------------------------


def place(workspace: Workspace, spec: ClassSpec) -> None:
    """The seat's lab.yml on aws: ``target: aws`` and the class's ``aws:`` section, in the
    attendee's file and in the pristine copy (what the grader compares with, and what
    ``lab exercise reset`` takes the lab down by: the seat's lab on AWS)."""
    settings = seat_settings(spec)
    for lab_yml in (workspace.directory / CONFIG_FILE, workspace.pristine / CONFIG_FILE):
        _target_aws(lab_yml, settings)


def _target_aws(lab_yml: Path, settings: dict[str, Any]) -> None:
    text = lab_yml.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["target"] = "aws"
    data["aws"] = settings
    header = "".join(_leading_comments(text))
    lab_yml.write_text(header + PLACED + yaml.safe_dump(data, sort_keys=False),
                       encoding="utf-8")
    load_config(lab_yml)  # validated as any lab.yml is: a ConfigError names the field


def _leading_comments(text: str) -> list[str]:
    """The comment lines a lab.yml starts with (what the lab is): kept above the fields."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


# status: what each seat has on AWS now, and its cost ------------------------------------------


@dataclass
class SeatCost:
    """What one seat's lab holds on AWS now (what bills by the hour), and about what it
    costs an hour at lab.aws.pricing's prices."""

    student: str  # "" for a lab of the class that no student of class.yml has now
    lab: str
    instances: Counter[str] = field(default_factory=Counter)  # instance type -> how many
    balancer_zones: list[int] = field(default_factory=list)  # each load balancer's zones

    @property
    def lines(self) -> list[Line]:
        made = [pricing.instances_line(kind, n) for kind, n in sorted(self.instances.items())]
        return made + [pricing.balancer_line(zones) for zones in self.balancer_zones]

    @property
    def hourly(self) -> float:
        """What the priced part costs an hour (see :attr:`unpriced` for the rest)."""
        return sum(line.hourly or 0.0 for line in self.lines)

    @property
    def unpriced(self) -> list[str]:
        return [kind for kind in sorted(self.instances)
                if pricing.instances_line(kind, 1).hourly is None]

    def summary(self) -> str:
        """"2 instances, 1 load balancer ~$0.07/h", or "nothing"."""
        return _summary(sum(self.instances.values()), len(self.balancer_zones), self.hourly,
                        self.unpriced)

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "lab": self.lab,
                "instances": sum(self.instances.values()),
                "instance_types": dict(self.instances),
                "load_balancers": len(self.balancer_zones), "hourly": round(self.hourly, 4),
                "unpriced": self.unpriced}


@dataclass
class ClassCost:
    """Every seat's :class:`SeatCost`, in class.yml's order (then labs of the class that no
    student has now), and the class's total."""

    region: str
    seats: list[SeatCost]

    @property
    def hourly(self) -> float:
        return sum(seat.hourly for seat in self.seats)

    def summary(self) -> str:
        return _summary(sum(sum(s.instances.values()) for s in self.seats),
                        sum(len(s.balancer_zones) for s in self.seats), self.hourly,
                        sorted({kind for s in self.seats for kind in s.unpriced}))

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "seats": [s.to_dict() for s in self.seats],
                "hourly": round(self.hourly, 4)}


def costs(classroom: Classroom) -> ClassCost:
    """What each seat's lab has on AWS now, from one listing of the region for the whole
    class: a describe of the instances (a page per 1,000) and of the load balancers, and
    their tags 20 at a time: 2 calls and one per 20 load balancers of the region (4 for 30
    seats with one each). resources.find per seat would ask each service for each seat,
    and even once for the class it asks for each load balancer's listeners, which cost
    nothing, on the ELB API whose rate limit the attendees' releases share."""
    spec = classroom.spec
    region = region_of(spec)
    aws = api.clients(region)
    seats = {lab: SeatCost(student, lab) for student, lab in lab_names(spec).items()}

    def seat(lab: str) -> SeatCost:
        return seats.setdefault(lab, SeatCost("", lab))

    with api.translated(aws.region):
        for lab, kind in _instances(aws, spec):
            seat(lab).instances[kind] += 1
        for lab, zones in _balancers(aws, spec):
            seat(lab).balancer_zones.append(zones)
    return ClassCost(aws.region, list(seats.values()))


def _instances(aws: api.Clients, spec: ClassSpec) -> list[tuple[str, str]]:
    """(lab, instance type) of each existing instance of the class's labs."""
    found = pages(aws.ec2, "describe_instances", "Reservations", Filters=[
        {"Name": "tag-key", "Values": [NAME]},
        {"Name": "instance-state-name", "Values": EXISTING}])
    labelled = [(api.tags_of(i).get(NAME, ""), i["InstanceType"])
                for r in found for i in r["Instances"]]
    return [(lab, kind) for lab, kind in labelled if in_class(spec, lab)]


def _balancers(aws: api.Clients, spec: ClassSpec) -> list[tuple[str, int]]:
    """(lab, zones) of each load balancer of the class's labs."""
    zones = {b["LoadBalancerArn"]: len(b.get("AvailabilityZones", []))
             for b in pages(aws.elbv2, "describe_load_balancers", "LoadBalancers")}
    arns = list(zones)
    found = []
    for start in range(0, len(arns), 20):  # describe_tags takes 20 at a time
        for described in aws.elbv2.describe_tags(
                ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            lab = api.tags_of(described).get(NAME, "")
            if in_class(spec, lab):
                found.append((lab, zones[described["ResourceArn"]]))
    return found


def counted(count: int, kinds: str) -> str:
    """"1 load balancer", "2 security groups": ``kinds`` as resources.Found names them."""
    kind = kinds.replace("_", " ")
    return f"{count} {kind[:-1] if count == 1 else kind}"


def tally(counts: dict[str, int]) -> str:
    """"2 instances, 1 load balancer" from Found.counts(); "nothing" when empty."""
    return ", ".join(counted(n, kind) for kind, n in counts.items()) or "nothing"


def _summary(instances: int, balancers: int, hourly: float, unpriced: list[str]) -> str:
    if not instances and not balancers:
        return "nothing"
    parts = tally({kind: n for kind, n in (("instances", instances),
                                           ("load_balancers", balancers)) if n})
    unknown = f" + {', '.join(unpriced)} (no price known)" if unpriced else ""
    return f"{parts} ~${hourly:.2f}/h{unknown}"


# destroy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleared:
    """What ``destroy`` removed from AWS: of which labs, how many of each kind."""

    region: str
    labs: list[str]
    removed: dict[str, int]


def destroy(classroom: Classroom, on_event: Listener = ignore) -> Cleared:
    """Everything tagged with one of the class's lab names (every seat's, and a lab of the
    class whose student left class.yml), found in one listing of the region and removed
    dependents first (lab.aws.resources). LeftBehind, naming what AWS still holds, when
    something would not go: it may still bill."""
    spec = classroom.spec
    aws = api.clients(region_of(spec))
    labs: set[str] = set()

    def of_class(tags: dict[str, str]) -> bool:
        if in_class(spec, tags.get(NAME, "")):
            labs.add(tags[NAME])
            return True
        return False

    with api.translated(aws.region):
        found = resources.find(aws, of_class)
        if not found.empty:
            on_event(Event("destroy", f"{aws.region}: removing {tally(found.counts())} of "
                                      f"{counted(len(labs), 'labs')} of the class"))
        left = resources.remove(aws, found, on_event)
    if not left.empty:
        raise LeftBehind(
            f"AWS still holds {left.describe()} of the class's labs in {aws.region} (a load "
            "balancer's network interfaces keep its security group for minutes): run `lab "
            f"class destroy {classroom.directory}` again in a few minutes, and `lab aws "
            f"sweep --region {aws.region}` at the end of the day", found.instances,
            left.describe())
    return Cleared(aws.region, sorted(labs), found.counts())
