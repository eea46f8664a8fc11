"""The cloud-init user data each instance boots with.

Two things lab hands an instance at creation: a deadline (the instance powers itself off at
``lab.expires``, and instances are launched to terminate on shutdown, so a lab nobody swept
still stops billing for compute), and its SSH host key, made by lab and recorded in
``.lab/known_hosts``, so the first connection already checks it.

The launch template carries the deadline-only document (one version per image). Host keys
are per server: ``AwsTarget._run`` passes each server's own document as ``UserData`` to
``run_instances``, which overrides the template's for that one instance. User data can be
read from inside the instance through the metadata service, which is why the template
requires IMDSv2 tokens (no unauthenticated, SSRF-reachable reads).
"""

from __future__ import annotations

import math
from datetime import timedelta

import yaml


def user_data(lifetime: timedelta, host_keys: dict[str, str] | None = None) -> str:
    """A ``#cloud-config`` document: power off after ``lifetime``; install ``host_keys``
    (cloud-init's ``ssh_keys`` names, e.g. ``ed25519_private``/``ed25519_public``) if any,
    as the only host keys: the image's are deleted and cloud-init generates none."""
    minutes = max(1, math.ceil(lifetime.total_seconds() / 60))
    config: dict[str, object] = {
        "runcmd": [["shutdown", "-P", f"+{minutes}", "lab lifetime over"]],
    }
    if host_keys:
        config["ssh_deletekeys"] = True
        config["ssh_genkeytypes"] = []
        config["ssh_keys"] = dict(host_keys)
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)
