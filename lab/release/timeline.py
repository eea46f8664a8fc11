"""A release as a time series: what users saw each second, what the balancer was told, and
what happened, all on one clock.

The clock is the probe's: ``t`` is seconds since the release's probe started sending
requests, so a gate's decision, the share the balancer gave the new generation and the
requests each version answered line up exactly. :class:`Recorder` collects during a release
(cheaply: the release already asks the balancer twice a second while a step is held);
:meth:`Recorder.to_dict` joins it with the probe's per-second windows into what is kept with
the release report and drawn by :mod:`lab.release.report`. A few minutes of release is a few tens of
kilobytes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from lab.balancers.base import Member, Tally
from lab.release.probe import Window

FORMAT = 1  # the shape of ``timeline`` in a release report; absent in older reports


@dataclass(frozen=True)
class Moment:
    """Something that happened during a release, at ``t`` seconds on the release's clock.

    ``kind`` is one of: phase (a phase began; ``end`` when it ended), step (the balancer was
    given ``percent``), gate (a check decided, ``ok`` or not, ``detail`` saying why not),
    rollback, promote, created, destroyed (``detail`` names the servers).
    """

    t: float
    kind: str
    label: str
    ok: bool | None = None
    detail: str = ""
    end: float | None = None
    percent: int | None = None


@dataclass(frozen=True)
class Reading:
    """One look at the balancer: each generation's share of new requests and the new
    servers' own counts since their step began (None where the balancer cannot tell)."""

    t: float
    share_new: float
    share_old: float
    step: int  # which step the canary counts belong to (-1 outside steps)
    canary: Tally | None = None


class Recorder:
    """Collects a release's moments and balancer readings against one monotonic origin."""

    def __init__(self, origin: float | None = None) -> None:
        self.origin = time.monotonic() if origin is None else origin
        self.started = time.time() - (time.monotonic() - self.origin)
        self.moments: list[Moment] = []
        self.readings: list[Reading] = []

    def now(self) -> float:
        return round(time.monotonic() - self.origin, 3)

    def moment(self, kind: str, label: str, **fields: Any) -> Moment:
        moment = Moment(self.now(), kind, label, **fields)
        self.moments.append(moment)
        return moment

    def phase_ended(self, name: str, ok: bool) -> None:
        """Close the phase ``name`` began: its band on the picture runs until now."""
        for index in range(len(self.moments) - 1, -1, -1):
            began = self.moments[index]
            if began.kind == "phase" and began.label == name and began.end is None:
                self.moments[index] = Moment(began.t, "phase", name, ok=ok, end=self.now())
                return

    def reading(self, members: dict[str, Member], new: list[str], old: list[str],
                step: int = -1, canary: Tally | None = None) -> None:
        self.readings.append(Reading(
            self.now(), round(sum(m.share for n, m in members.items() if n in new), 4),
            round(sum(m.share for n, m in members.items() if n in old), 4), step, canary))

    def to_dict(self, traffic: list[Window]) -> dict[str, Any]:
        """The timeline kept in the release report: one row per second of ``traffic`` (the
        probe's per-second windows from the same origin) and every moment."""
        shares = _per_second(self.readings, len(traffic))
        canary = _canary_per_second(self.readings, len(traffic))
        seconds = []
        for second, window in enumerate(traffic):
            share_new, share_old = shares[second]
            seconds.append({
                "t": second, "requests": window.versions, "errors": window.errors,
                "p50_ms": round(window.p50_ms, 1), "p99_ms": round(window.p99_ms, 1),
                "share_new": share_new, "share_old": share_old,
                "canary_requests": canary[second].requests,
                "canary_failed": canary[second].failed,
            })
        moments = [{k: v for k, v in asdict(m).items() if v is not None and v != ""}
                   for m in self.moments]
        return {"format": FORMAT, "clock": "seconds since the release's probe started",
                "started": round(self.started, 3), "seconds": seconds, "events": moments,
                "shares": _changes(self.readings)}


def _changes(readings: list[Reading]) -> list[list[float]]:
    """``[t, share_new, share_old]`` at each reading that differs from the one before: the
    exact step line, even for a step held less than a second."""
    changes: list[list[float]] = []
    for reading in readings:
        if not changes or changes[-1][1:] != [reading.share_new, reading.share_old]:
            changes.append([reading.t, reading.share_new, reading.share_old])
    return changes


def _per_second(readings: list[Reading], count: int) -> list[tuple[float, float]]:
    """Each second's shares: the last reading within it, else the one before (a share holds
    until the balancer is told otherwise)."""
    shares, current, index = [], (0.0, 1.0), 0
    for second in range(count):
        while index < len(readings) and readings[index].t < second + 1:
            current = (readings[index].share_new, readings[index].share_old)
            index += 1
        shares.append(current)
    return shares


def _canary_per_second(readings: list[Reading], count: int) -> list[Tally]:
    """What the new servers took and failed in each second, from readings that count since
    their step began."""
    totals = [Tally() for _ in range(count)]
    previous: Reading | None = None
    for reading in readings:
        if reading.canary is None or reading.step < 0:
            continue
        since = (reading.canary.since(previous.canary) if previous is not None
                 and previous.step == reading.step and previous.canary is not None
                 else reading.canary)
        second = min(int(reading.t), count - 1)
        if second >= 0:
            totals[second] = Tally(totals[second].requests + since.requests,
                                   totals[second].failed + since.failed)
        previous = reading
    return totals
