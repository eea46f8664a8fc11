"""``lab bake``: snapshot a provisioned, verified server into an image, the immutable artifact.

What Packer does for a cloud: the image carries everything the playbook did, so a release
from it (``lab release --from-image``) starts servers that need no provisioning. The image is
tagged ``lab/<lab>-<role>:<version>`` and labelled with lab, role and version; on AWS it is
an AMI (its id is what a release starts from), named and tagged the same way.
"""

from __future__ import annotations

import json

from lab.access.knownhosts import raise_if_refused
from lab.access.ssh import as_root, ssh_argv
from lab.errors import TargetError, UsageError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.release.journal import refuse_if_interrupted
from lab.state import EventKind, Stage

# Host keys and machine identity belong to one server, never to an image (and each server
# started from it is handed its own host key anyway, or makes one at first boot).
# `sync`: a cloud snapshot is taken without a reboot (lab/targets/aws.py), from the disk.
SCRUB = "rm -f /etc/ssh/ssh_host_* && truncate -s 0 /etc/machine-id && sync"


def bake(fleet: Fleet, role: str | None = None, version: str | None = None,
         on_event: Listener = ignore) -> str:
    """Commit a verified server of ``role`` to an image; returns what `lab release
    --from-image` takes: the image tag on Docker, the AMI id on AWS."""
    import subprocess

    config = fleet.config
    refuse_if_interrupted(fleet.state, config.state_dir, "bake")
    role = role or (config.balancer.routes_to if config.balancer else next(iter(config.servers)))
    if role not in config.servers:
        raise UsageError(f"no role {role!r} in lab.yml (roles: {', '.join(config.servers)})")
    verified = [s for s in fleet.live() if s.role == role and s.stage is Stage.VERIFIED]
    if not verified:
        raise UsageError(f"no verified server of role {role}: run `lab provision && lab verify`")
    server = max(verified, key=lambda s: (s.generation, s.created))
    version = version or _deployed_version(fleet, server.name) or "latest"
    tag = f"lab/{config.name}-{role}:{version}"
    on_event(Event("bake", f"baking {server.name} into {tag}", subject=server.name))
    scrub = subprocess.run(ssh_argv(server, fleet.key, as_root(server, ["sh", "-c", SCRUB])),
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    raise_if_refused(server, fleet.key, scrub.stderr)
    if scrub.returncode != 0:
        raise TargetError(f"{server.name}: could not scrub it before baking: "
                          f"{scrub.stderr.strip() or f'exit {scrub.returncode}'}")
    image = fleet.target.bake(server, tag, {"lab.name": config.name, "lab.role": role,
                                            "lab.version": version,
                                            "lab.baked-from": server.name})
    fleet.state.log(EventKind.BAKED, server.name, image)
    on_event(Event("bake", f"baked {tag}" + (f" as {image}" if image != tag else ""),
                   subject=image))
    return image


def _deployed_version(fleet: Fleet, server: str) -> str | None:
    """The ``version`` var the server was last provisioned with, from state's events."""
    for event in reversed(fleet.state.events(server)):
        if event.kind == Stage.PROVISIONED and event.detail.startswith("{"):
            version = json.loads(event.detail).get("vars", {}).get("version")
            return str(version) if version is not None else None
    return None
