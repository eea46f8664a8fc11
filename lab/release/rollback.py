"""What `lab rollback` goes back to: never a revision the user already rolled back from.

A deployment is what served the balanced role after a promoted release (its vars and image),
or, before the first one, lab.yml as first provisioned (the first promoted release's
``previous``). A rolled-back or interrupted release never served alone: it is no deployment.
A release made by `lab rollback` is marked with the id of the release it rolled back
(:attr:`~lab.release.journal.ReleaseReport.rollback_of`), and so the revision that release ran
is known to be bad up to that rollback.

`lab rollback` goes back to the latest deployment before the one serving now that does not
run what serves now and whose revision no later rollback rolled back from. So after v1, v2
and `lab rollback` (to v1), a second `lab rollback` goes further back than v1, never to v2;
when nothing is left it refuses (cf. argoproj/argo-rollouts#3039). Releases saved before the
marker existed read as never rolled back from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.errors import UsageError
from lab.release.journal import ReleaseReport, history
from lab.state import State

PROMOTED = "promoted"
FIRST = "lab.yml as first provisioned"


@dataclass(frozen=True)
class RollbackTarget:
    """What `lab rollback` releases, and what it rolls back."""

    vars: dict[str, Any]
    image: str | None
    release_id: str | None  # the release that deployed it; None: lab.yml as first provisioned
    rolls_back: ReleaseReport  # the promoted release serving now

    @property
    def description(self) -> str:
        """What it goes back to: release <id> (version v1, image -), or lab.yml."""
        where = FIRST if self.release_id is None else f"release {self.release_id}"
        return f"{where} ({revision(self.vars, self.image)})"

    def announce(self) -> str:
        """The line `lab rollback` prints before it starts."""
        now = self.rolls_back
        return (f"rolling back release {now.id} ({revision(now.vars, now.image)}) "
                f"to {self.description}")


def revision(vars: dict[str, Any], image: str | None) -> str:
    """A deployment in a few words: "version v1, image -"."""
    return f"version {vars.get('version', '-')}, image {image or '-'}"


@dataclass(frozen=True)
class _Deployment:
    """What served the role for a while: after a promoted release, or before the first."""

    release_id: str | None  # None: lab.yml as first provisioned
    vars: dict[str, Any]
    image: str | None


def _same(one: _Deployment | ReleaseReport, other: _Deployment | ReleaseReport) -> bool:
    """Both run the same revision: the same vars on the same image."""
    return (one.vars, one.image) == (other.vars, other.image)


def rollback_target(state: State) -> RollbackTarget:
    """The latest deployment before the one serving now that runs something else and whose
    revision no later `lab rollback` left; :class:`UsageError` when there is none."""
    releases = history(state)
    promoted = [r for r in releases if r.outcome == PROMOTED]
    if not promoted:
        raise UsageError("no promoted release to roll back (see `lab history`)")
    first = promoted[0].previous
    deployments = [_Deployment(None, first["vars"], first["image"])] + [
        _Deployment(r.id, r.vars, r.image) for r in promoted]
    current = deployments[-1]
    by_id = {r.id: r for r in releases}
    # The release each rollback left, with the rollback's position among the deployments.
    left = [(at, by_id[r.rollback_of]) for at, r in enumerate(promoted, start=1)
            if r.rollback_of in by_id]
    for position in range(len(deployments) - 2, -1, -1):
        candidate = deployments[position]
        if _same(candidate, current) or any(
                position < at and _same(candidate, bad) for at, bad in left):
            continue
        return RollbackTarget(candidate.vars, candidate.image, candidate.release_id,
                              promoted[-1])
    raise UsageError(
        f"nothing safe to roll back to: every deployment before release {current.release_id} "
        "runs what serves now or was rolled back from (see `lab history`); release a version "
        "you trust instead (`lab release --set version=...` or `--from-image`)")
