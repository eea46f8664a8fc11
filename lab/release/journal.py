"""A release's journal: what it is about to do, written down before it does it.

A release rolls itself back on a failed gate, on Ctrl-C and on SIGTERM; a release killed
outright (SIGKILL, a closed laptop, a power cut, the OOM killer) cannot, and would leave
traffic split between two generations for the next release to hide. So a release keeps its
report in state as it goes, with an entry written *before* each step it takes (the new
generation made, joined, each shift of traffic, promote or rollback begun), and holds a lock
on ``.lab/release.lock`` while it runs. The kernel drops the lock when the process ends, however
it ends. Any later command can then tell a release that is running (its report says
``running`` and the lock is held) from one that was interrupted (``running``, lock free), name
it, and put it right (:func:`lab.release.put_right`).

The report is kept typed (:class:`ReleaseReport`, with its :class:`StepReport` and
:class:`JournalEntry` lines) and stored as JSON; :func:`history` reads a lab's releases back as
reports: lab and the course's graders read their fields as attributes, not as a dict's keys.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from lab.errors import UsageError
from lab.state import State

RUNNING = "running"  # what a release's saved outcome says until it ends
INTERRUPTED = "interrupted"  # what lab shows for a release that says running and is not


PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"  # a verdict's outcomes


@dataclass
class Verdict:
    """One rule of a canary step's analysis, judged, with the numbers it was judged on: a
    verdict without its data is the complaint users of canary tools make first."""

    rule: str  # error rate, new servers' errors, p99, p99 vs old, requests
    value: float  # what was measured
    limit: float  # what the rule allows (the least, for ``requests``)
    requests: int  # requests the measurement rests on
    outcome: str  # passed | failed | inconclusive
    unit: str = ""  # %, ms or "" (a count)
    note: str = ""  # how the limit was reached, when it is not lab.yml's number as written

    def line(self, with_note: bool = True) -> str:
        """``p99 812.0 ms > 500.0 ms (46 requests)``: the rule, the value, the limit, the data
        (and how the limit was reached, ``with_note``)."""
        shown = (lambda x: f"{x:.1%}") if self.unit == "%" else (
            (lambda x: f"{x:.1f} ms") if self.unit == "ms" else (lambda x: f"{x:g}"))
        if self.rule == "requests":
            sign = ">=" if self.outcome == PASSED else "<"
            told = f" ({self.note})" if self.note and with_note else ""
            return f"requests {self.value:g} {sign} {self.limit:g} needed{told}"
        sign = {PASSED: "<=", FAILED: ">"}.get(self.outcome, "vs")
        note = f", {self.note}" if self.note and with_note else ""
        if self.outcome == INCONCLUSIVE and not self.requests:
            return f"{self.rule}: no data (0 requests{note})"
        return (f"{self.rule} {shown(self.value)} {sign} {shown(self.limit)}"
                f" ({self.requests} requests{note})")


@dataclass
class StepReport:
    percent: int
    window: dict[str, Any]
    gate: str = "watching"  # then "passed", the gate that refused it, or cycle.CUT_SHORT
    canary: dict[str, int] = field(default_factory=dict)  # requests, failed: the balancer's count
    verdicts: list[Verdict] = field(default_factory=list)  # each rule judged, with its numbers
    paused: float = 0.0  # seconds held after the step, waiting for a person or a pause step
    resumed_by: str = ""  # what ended the pause: "lab promote", "30 s passed"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        values = dict(data)
        values["verdicts"] = [Verdict(**v) for v in data.get("verdicts", [])]
        return cls(**values)


@dataclass
class JournalEntry:
    """One line of a release's journal: a step ``begun`` (written before it acts) or ``done``."""

    at: float
    step: str  # create, provision, verify + join, canary N%, promote, rollback
    state: str  # begun | done


@dataclass
class ReleaseReport:
    """One release, as it is saved (in state and ``.lab/releases/<id>.json``, as JSON) before
    each step acts and when it ends, and as :func:`history` reads it back."""

    id: str
    role: str
    started: float
    vars: dict[str, Any]
    image: str | None
    previous: dict[str, Any]
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    steps: list[StepReport] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    outcome: str = RUNNING  # then promoted | rolled-back (or interrupted: see releases())
    reason: str = ""
    finished: float | None = None
    traffic: dict[str, Any] = field(default_factory=dict)
    timeline: dict[str, Any] = field(default_factory=dict)  # per second, see lab.release.timeline
    journal: list[JournalEntry] = field(default_factory=list)  # saved before each step acts
    rollback_of: str | None = None  # made by `lab rollback`: the id of the release it rolled back
    untested: bool = False  # `lab release --untested`: no test had to pass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseReport:
        """A saved report, typed again (fields a newer lab added take their defaults)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["steps"] = [StepReport.from_dict(s) for s in data.get("steps", [])]
        values["journal"] = [JournalEntry(**e) for e in data.get("journal", [])]
        return cls(**values)


class ReleaseLock:
    """Held by the one release (or recovery) running on a lab; a second one is refused.

    ``flock`` on a file under ``.lab``: the kernel releases it when its holder dies, so a
    lock is never left behind, and it is not inherited by the programs a release runs.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "release.lock"
        self._file: IO[str] | None = None

    def __enter__(self) -> ReleaseLock:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(f"a release is running on this lab (process {holder}): wait for "
                             "it to end, or stop it with Ctrl-C (it rolls back)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *_: object) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the lock
            self._file = None


def running_now(state_dir: Path) -> bool:
    """A process holds the lab's release lock: a release is under way this moment."""
    path = state_dir / "release.lock"
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def history(state: State, state_dir: Path | None = None) -> list[ReleaseReport]:
    """Every release of the lab as its report, oldest first. Given the lab's ``state_dir``,
    as `lab history` shows them: one whose process died says interrupted (:func:`releases`)."""
    saved = state.releases() if state_dir is None else releases(state, state_dir)
    return [ReleaseReport.from_dict(report) for report in saved]


def unfinished(state: State) -> list[ReleaseReport]:
    """Saved releases that never ended (oldest first): interrupted ones, unless a release
    runs now; the caller holding :class:`ReleaseLock` knows no other one does."""
    return [r for r in history(state) if r.outcome == RUNNING]


def interrupted(state: State, state_dir: Path) -> ReleaseReport | None:
    """The newest release whose process ended before the release did, if any."""
    left = unfinished(state)
    if not left or running_now(state_dir):
        return None
    return left[-1]


def running(state: State, state_dir: Path) -> ReleaseReport | None:
    """The release under way this moment, if any (as its journal last saved it)."""
    left = unfinished(state)
    return left[-1] if left and running_now(state_dir) else None


def paused_since(report: ReleaseReport) -> float | None:
    """When the release began to wait for a person (`lab promote` or `lab abort`), or None
    when it is not paused."""
    last = report.journal[-1] if report.journal else None
    if last is not None and last.step.startswith("pause") and last.state == "begun":
        return last.at
    return None


def releases(state: State, state_dir: Path) -> list[dict[str, Any]]:
    """Every release as saved, as `lab history --json` prints it: one whose process died says
    interrupted. :func:`history` gives them as reports."""
    shown = state.releases()
    if not running_now(state_dir):
        for report in shown:
            if report["outcome"] == RUNNING:
                report["outcome"] = INTERRUPTED
    return shown


def last_step(report: ReleaseReport) -> str:
    """The step an interrupted release had begun last ("canary 50%", "promote", ...)."""
    return report.journal[-1].step if report.journal else "start"


def describe(report: ReleaseReport) -> str:
    """One line naming an interrupted release: which one, where it stopped, what it made."""
    new = ", ".join(report.new) or "none recorded"
    return f"release {report.id} was interrupted at {last_step(report)} (new servers: {new})"


def describe_running(report: ReleaseReport) -> str:
    """One line for `lab status` on the release under way: where it is, and, paused, what a
    person can do about it."""
    since = paused_since(report)
    if since is not None:
        return (f"release {report.id} is paused at {last_step(report).removeprefix('pause ')} "
                f"for {time.time() - since:.0f} s: `lab promote` goes on, `lab abort` rolls back")
    return f"release {report.id} is running ({last_step(report)}): `lab abort` rolls it back"


def refuse_if_interrupted(state: State, state_dir: Path, command: str) -> None:
    """Refuse a command that would build on a release still running or left half-done."""
    if running_now(state_dir):
        raise UsageError(f"a release is running on this lab: `lab {command}` must wait "
                         "until it ends")
    left = unfinished(state)  # and no release runs: each is interrupted
    if left:
        raise UsageError(f"{describe(left[-1])}: `lab rollback` puts it right, then run "
                         f"`lab {command}` again")


def split_traffic(generations: dict[str, int], shares: dict[str, float]) -> str:
    """Where traffic goes now, by generation (``generations`` and ``shares`` by server):
    "generation 1 50%, generation 2 50%"; what `lab status` says of an interrupted release."""
    by_generation: dict[int, float] = {}
    for name, share in shares.items():
        if name in generations:
            generation = generations[name]
            by_generation[generation] = by_generation.get(generation, 0.0) + share
    return ", ".join(f"generation {g} {round(100 * share)}%"
                     for g, share in sorted(by_generation.items()) if share) or "none"
