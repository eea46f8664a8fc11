"""Releases: a new generation put in rotation slowly, and what is kept of it.

``cycle.py`` is ``lab release`` itself (the state machine, its gates, rollback, ``put_right``);
``journal.py`` the release's report as it is kept (typed: ``history`` reads a lab's releases
back) and the journal and lock that let a later command name and put right a release killed
outright; ``probe.py`` the traffic that measures what users see; ``timeline.py`` that
traffic and the balancer's moves on one clock; ``report.py`` a release drawn as one HTML page
(``lab report``); ``bake.py`` a verified server snapshotted into an image (``lab bake``).

The release's public names are cycle.py's, so ``from lab.release import release`` works. A
test that replaces a name the release looks up (``time``, ``Probe``) patches
:mod:`lab.release.cycle`.
"""

from __future__ import annotations

from lab.release.cycle import (
    CUT_SHORT,
    READY_PHASES,
    Checks,
    Gate,
    JournalEntry,
    ProbeFactory,
    ReleaseFailed,
    ReleaseReport,
    StepReport,
    Traffic,
    history,
    provision_gate,
    put_right,
    ready_seconds,
    release,
    verify_gate,
)
from lab.release.rollback import RollbackTarget, rollback_target

__all__ = [
    "CUT_SHORT",
    "READY_PHASES",
    "Checks",
    "Gate",
    "JournalEntry",
    "ProbeFactory",
    "ReleaseFailed",
    "ReleaseReport",
    "RollbackTarget",
    "StepReport",
    "Traffic",
    "history",
    "provision_gate",
    "put_right",
    "ready_seconds",
    "release",
    "rollback_target",
    "verify_gate",
]
