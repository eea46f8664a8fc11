"""The cloud-init user data each instance boots with.

Two things lab hands an instance at creation: a deadline (the instance powers itself off at
``lab.expires``, and instances are launched to terminate on shutdown, so a lab nobody swept
still stops billing for compute), and, when given, its SSH host keys, so the first
connection can already check them (``host_keys``: what issue 12's point 6 fills in).

Today the launch template carries the deadline-only document (one version per image). Host
keys are per server: pass that server's document as ``UserData`` to ``run_instances``
(``AwsTarget._run``), which overrides the template's for that one instance.
"""

from __future__ import annotations

import math
from datetime import timedelta

import yaml


def user_data(lifetime: timedelta, host_keys: dict[str, str] | None = None) -> str:
    """A ``#cloud-config`` document: power off after ``lifetime``; install ``host_keys``
    (cloud-init's ``ssh_keys`` names, e.g. ``ed25519_private``/``ed25519_public``) if any."""
    minutes = max(1, math.ceil(lifetime.total_seconds() / 60))
    config: dict[str, object] = {
        "runcmd": [["shutdown", "-P", f"+{minutes}", "lab lifetime over"]],
    }
    if host_keys:
        config["ssh_deletekeys"] = True
        config["ssh_keys"] = dict(host_keys)
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)
