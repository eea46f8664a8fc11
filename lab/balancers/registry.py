"""Balancers by name: ``haproxy`` and ``alb`` here, more through the ``lab.balancers`` group.

Names only, as ``module:attribute`` strings: this module imports no balancer, so lab.yml's
validation (config.py) can list the known kinds without importing what it validates, and a
balancer is imported only when a lab uses it, like testinfra's backends.
"""

from __future__ import annotations

GROUP = "lab.balancers"
BUILT_IN = {
    "haproxy": "lab.balancers.haproxy:HAProxy",
    "alb": "lab.balancers.alb:ALB",
}


def known() -> dict[str, str]:
    """Every balancer kind there is, with where its class lives (``module:attribute``)."""
    from importlib.metadata import entry_points  # not at import: config.py imports this file

    return dict(BUILT_IN) | {ep.name: ep.value for ep in entry_points(group=GROUP)}


def kinds() -> list[str]:
    """The names lab.yml's ``balancer.kind`` accepts."""
    return sorted(known())
