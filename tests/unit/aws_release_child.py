"""A `lab release` of a lab on target aws, in a process of its own, for
test_aws_release_killed.py to `kill -9`: ``python aws_release_child.py LAB_YML VERSION``.

AWS is moto's server (the caller's ``AWS_ENDPOINT_URL``). SSH readiness, the one boundary
moto cannot do, is left out as the unit tests leave it out (``AwsTarget.wait_ready``), and
the probe and the new generation's checks are stand-ins: nothing can reach a moto instance
or its ALB. Everything else is lab's own release, with its journal and its lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

from awslab import QuietProbe, passing

from lab.config import load_config
from lab.events import Event
from lab.fleet import Fleet
from lab.release import Checks, release
from lab.targets.aws import AwsTarget


def say(event: Event) -> None:
    """What the release reports (its ticks aside), on stderr: the test shows it when the
    child ends early."""
    if event.kind != "tick":
        print(f"{event.kind}: {event.message}", file=sys.stderr, flush=True)


def main(lab_yml: str, version: str) -> None:
    AwsTarget.wait_ready = lambda *args, **kwargs: None  # type: ignore[method-assign]
    with Fleet(load_config(Path(lab_yml))) as fleet:
        report = release(fleet, {"version": version}, on_event=say, probe=QuietProbe,
                         checks=Checks(passing, passing))
    print(f"release {report.id}: {report.outcome}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
