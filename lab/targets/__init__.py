"""Targets by name: ``docker`` and ``vagrant`` here, more through the ``lab.targets`` group."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from lab.errors import UsageError
from lab.targets.base import ServerSpec, Target, labels_for

__all__ = ["ServerSpec", "Target", "get_target", "labels_for"]

BUILT_IN = {
    "docker": "lab.targets.docker:DockerTarget",
    "vagrant": "lab.targets.vagrant:VagrantTarget",
}


def get_target(name: str) -> type[Target]:
    """The Target class for ``name``; imported only when asked for, like testinfra's backends."""
    known = dict(BUILT_IN)
    known |= {ep.name: ep.value for ep in entry_points(group="lab.targets")}
    if name not in known:
        raise UsageError(
            f"target {name!r} is not available (known: {', '.join(sorted(known))})"
        )
    module, _, attribute = known[name].partition(":")
    return getattr(import_module(module), attribute)
