"""Targets by name: ``docker``, ``vagrant`` and ``aws``, more through the ``lab.targets`` group.

Names, as ``module:attribute`` strings: this module imports no target (and of lab only its
errors), so lab.yml's validation (config.py) can list the known targets without importing
them. :func:`load` imports a target only when a lab uses it (or names its settings section),
like testinfra's backends; :func:`lab.targets.base.get_target` is the same, typed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from lab.errors import UsageError

GROUP = "lab.targets"
BUILT_IN = {
    "docker": "lab.targets.docker:DockerTarget",
    "vagrant": "lab.targets.vagrant:VagrantTarget",
    "aws": "lab.targets.aws:AwsTarget",
}
# Accepted by lab.yml's `target:` before they exist, so a lab written for them validates;
# choosing one stops with "not available" until its module is here.
PLANNED: tuple[str, ...] = ()


def known() -> dict[str, str]:
    """Every target there is, with where its class lives (``module:attribute``)."""
    from importlib.metadata import entry_points  # not at import: config.py imports this file

    return dict(BUILT_IN) | {ep.name: ep.value for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """The names lab.yml's ``target:`` accepts: built-in, planned, then installed ones."""
    available = known()
    return list(dict.fromkeys([*BUILT_IN, *PLANNED, *available]))


def load(name: str) -> Any:
    """The class registered as ``name``, its module imported now; UsageError naming the known
    ones when there is none."""
    available = known()
    if name not in available:
        raise UsageError(
            f"target {name!r} is not available (known: {', '.join(sorted(available))})"
        )
    module, _, attribute = available[name].partition(":")
    return getattr(import_module(module), attribute)
