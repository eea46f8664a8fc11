"""Exercise 09, graduating to AWS: the same lab, on EC2, and nothing left paying.

The goals read the workspace's logbook (``.lab/state.db``: which server was created on which
target, verified, released; each ``lab destroy`` and ``lab aws sweep``) and, for what is left
running, ask AWS itself through lab's own finder (every resource tagged with the lab's name).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from lab.aws import api, resources
from lab.course.grader import Attempt, Feedback
from lab.state import EventKind, Stage

SAME_FILES = ("playbooks/web.yml", "tests/test_web.py")
# Narrowest a trainee may need: one address (/32), or an office's /24; an IPv6 /64.
WIDEST = {4: 24, 6: 64}


def on_aws(attempt: Attempt) -> Feedback | None:
    config = attempt.config
    if config.target != "aws":
        return Feedback(
            found=f"lab.yml still says target: {config.target}",
            expected="target: aws, and an aws: section with your region and ssh_cidr",
            next="change that one line to `target: aws` and add the aws: section (README, step 2)")
    network = ipaddress.ip_network(str(config.settings("aws").ssh_cidr))  # type: ignore[union-attr]
    if network.prefixlen < WIDEST[network.version]:
        return Feedback(
            found=f"aws.ssh_cidr {network} lets {network.num_addresses:,} addresses try SSH on "
                  "your servers",
            expected="your own address and /32 (at most a /24: your office's); the next "
                     "`lab up` narrows the security group to it",
            next=f"narrow `aws.ssh_cidr` in lab.yml to your own address: "
                 f"{api.OWN_ADDRESS_HINT}")
    return None


def same_lab(attempt: Attempt) -> Feedback | None:
    for path in SAME_FILES:
        if attempt.read(path) != attempt.started_files(path):
            return Feedback(
                found=f"you changed {path}",
                expected="the same playbook and tests as on the laptop: that is the point",
                next="undo the edit (`lab exercise reset` keeps a copy in .lab/backups/)")
    mine, started = attempt.yaml("lab.yml"), yaml_of(attempt.started_files("lab.yml"))
    changed = sorted(k for k in set(mine) | set(started)
                     if k not in ("target", "aws") and mine.get(k) != started.get(k))
    if changed:
        return Feedback(
            found=f"lab.yml's {', '.join(changed)} differ from the lab you started with",
            expected="only `target:` changed, and `aws:` added",
            next=f"put {', '.join(changed)} back as they were")
    return None


def verified_on_aws(attempt: Attempt) -> Feedback | None:
    servers = aws_servers(attempt)
    if not servers:
        return Feedback(
            found="no server of this lab was ever created on AWS",
            expected="`lab up` on aws, then `lab provision` and `lab verify`",
            next="`lab up` (it shows what it will create and the cost, and asks)")
    verified = {e.server for e in attempt.events(Stage.VERIFIED)} & servers
    if not verified:
        return Feedback(
            found=f"{', '.join(sorted(servers))} ran on AWS but never passed `lab verify`",
            expected="your tests passing on the EC2 instance, as they did on the laptop",
            next="`lab verify`, on the servers you brought up and provisioned")
    return None


def released_on_aws(attempt: Attempt) -> Feedback | None:
    servers = aws_servers(attempt)
    releases = [r for r in attempt.releases() if set(r.new) & servers]
    if any(r.outcome == "promoted" for r in releases):
        return None
    if releases:
        last = releases[-1]
        return Feedback(
            found=f"the release on AWS was {last.outcome}: {last.reason or '?'}",
            expected="a release promoted behind the load balancer",
            next="`lab history` shows why it was not promoted")
    return Feedback(
        found="no release was promoted on AWS",
        expected="a new generation released behind the load balancer before the lab goes",
        next="`lab release --set version=v2`, with the lab up and provisioned on AWS")


def nothing_left(attempt: Attempt) -> Feedback | None:
    aws = api.clients(attempt.config.settings("aws").region)  # type: ignore[union-attr]
    with api.translated(aws.region):
        left = resources.find(aws, resources.of_lab(attempt.config.name))
    if not left.empty:
        refused = destroy_refused(attempt)
        return Feedback(
            found=f"still on AWS in {aws.region}, and paying: {left.describe()}"
                  + (f" (your last `lab destroy` could not delete {refused} yet)"
                     if refused else ""),
            expected=f"nothing tagged lab.name={attempt.config.name} left",
            next=("`lab destroy` again in a few minutes: AWS lets a security group go only "
                  "once the load balancer's network interfaces have" if refused else
                  "`lab destroy`" + (" --images (AMIs and their snapshots bill too)"
                                     if left.images or left.snapshots else "")))
    if last_destroy(attempt) is None:
        return Feedback(found="`lab destroy` was never run after the release",
                        expected="the lab destroyed once you are done",
                        next="`lab destroy`")
    return None


def swept(attempt: Attempt) -> Feedback | None:
    destroyed = last_destroy(attempt)
    assert destroyed is not None  # nothing_left passed
    sweeps = [e for e in attempt.events(EventKind.SWEPT) if e.id > destroyed]
    if not sweeps:
        return Feedback(found="no `lab aws sweep` since your `lab destroy`",
                        expected="a sweep of your region that finds nothing of this lab",
                        next="`lab aws sweep`, in this directory")
    found = json.loads(sweeps[-1].detail)
    region = api.clients(attempt.config.settings("aws").region).region  # type: ignore[union-attr]
    if found["region"] != region:
        return Feedback(found=f"the sweep looked in {found['region']}",
                        expected=f"a sweep of {region}, where this lab ran",
                        next="`lab aws sweep` in this directory (it sweeps the lab's region)")
    if attempt.config.name in found["labs"]:
        return Feedback(found="the sweep found this lab's resources: `lab destroy` left them",
                        expected="a sweep that finds nothing of this lab",
                        next="`lab destroy`: the sweep after it must find nothing")
    return None


# the logbook -------------------------------------------------------------------------------


def yaml_of(text: str | None) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text or "") or {}


def aws_servers(attempt: Attempt) -> set[str]:
    """Servers the logbook says were created on aws (names are never reused)."""
    return {e.server for e in attempt.events(EventKind.CREATED)
            if e.server is not None and e.detail.endswith(" on aws")}


def destroy_refused(attempt: Attempt) -> str:
    """What AWS still held at the last `lab destroy`, when that destroy was the last one and
    AWS refused part of it ("" otherwise)."""
    destroys = [e for e in attempt.events() if e.kind in (EventKind.DESTROY,
                                                           EventKind.DESTROY_INCOMPLETE)]
    if destroys and destroys[-1].kind == EventKind.DESTROY_INCOMPLETE:
        return destroys[-1].detail.removeprefix("aws: ")
    return ""


def last_destroy(attempt: Attempt) -> int | None:
    """The logbook id of the last whole-lab destroy on aws after the last promoted release
    and the last server created on aws; None when there is none."""
    done = [e.id for e in attempt.events() if e.kind == EventKind.RELEASE_PROMOTED or (
        e.kind == EventKind.CREATED and e.detail.endswith(" on aws"))]
    after = max(done, default=0)
    destroys = [e.id for e in attempt.events(EventKind.DESTROY) if e.detail == "aws"]
    return destroys[-1] if destroys and destroys[-1] > after else None
