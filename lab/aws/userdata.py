"""The cloud-init user data each instance boots with.

Two things lab hands an instance at creation: a deadline (the instance powers itself off at
``lab.expires``, and instances are launched to terminate on shutdown, so a lab nobody swept
still stops billing for compute), and its SSH host key, made by lab and recorded in
``.lab/known_hosts``, so the first connection already checks it.

The deadline is set again at every boot (cloud-init's ``bootcmd`` runs each time, from the
instance's own user data): a reboot forgets a scheduled power-off, which lives in /run, and
an instance rebooted by its owner or by AWS would otherwise bill until someone sweeps. It is
a transient systemd timer, so an AMI baked from the instance carries none of it.

The launch template carries the deadline-only document (one version per image). Host keys
are per server: ``AwsTarget._run`` passes each server's own document as ``UserData`` to
``run_instances``, which overrides the template's for that one instance. User data can be
read from inside the instance through the metadata service, which is why the template
requires IMDSv2 tokens (no unauthenticated, SSRF-reachable reads).
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import yaml

# At each boot: power off now if the deadline (seconds since the epoch) has passed, else
# a timer for the seconds left. sh, since cloud-init runs bootcmd before anything else.
EXPIRY = ('deadline={deadline}; left=$((deadline - $(date +%s))); '
          'if [ "$left" -le 0 ]; then systemctl poweroff --no-block; '
          'else systemd-run --unit=lab-expiry --description="lab lifetime over" '
          '--on-active="${{left}}s" systemctl poweroff; fi')


def user_data(lifetime: timedelta, host_keys: dict[str, str] | None = None,
              now: float | None = None) -> str:
    """A ``#cloud-config`` document: power off ``lifetime`` after ``now`` (at every boot, a
    reboot included); install ``host_keys`` (cloud-init's ``ssh_keys`` names, e.g.
    ``ed25519_private``/``ed25519_public``) if any, as the only host keys: the image's are
    deleted and cloud-init generates none."""
    deadline = math.ceil((time.time() if now is None else now) + lifetime.total_seconds())
    config: dict[str, object] = {
        "bootcmd": [["sh", "-c", EXPIRY.format(deadline=deadline)]],
    }
    if host_keys:
        config["ssh_deletekeys"] = True
        config["ssh_genkeytypes"] = []
        config["ssh_keys"] = dict(host_keys)
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)
