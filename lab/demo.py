"""``lab demo``: the whole story in one command, in a throwaway lab.

Up v1 behind the balancer, verify it; release v2 under load (no request may fail), paused at
50 % until the demo, as a person would, says `lab promote`; release a v3 that answers right
but slowly and watch the latency gate pull it back; release a broken v4 and watch it roll back
by itself; then print a summary and clean up.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.access.ports import free_local_port
from lab.errors import UsageError
from lab.events import Listener, ignore
from lab.fleet import Fleet
from lab.harness import provision, verify
from lab.release import ReleaseFailed, ReleaseReport, history, release
from lab.release.control import PROMOTE, send
from lab.release.journal import paused_since, running
from lab.release.report import write_page
from lab.scaffold import edit_lab_yml, init_lab
from lab.state import State
from lab.steps import OK, Outcome, Step, Steps


@dataclass
class DemoReport:
    directory: Path
    run: Steps = field(default_factory=Steps)
    releases: list[ReleaseReport] = field(default_factory=list)  # as each release saved it
    pages: list[Path] = field(default_factory=list)  # their pictures (`lab report`'s pages)

    @property
    def steps(self) -> list[Step]:
        return self.run.done

    @property
    def ok(self) -> bool:
        return self.run.ok


def run_demo(keep: bool = False, step_seconds: float = 3.0, directory: Path | None = None,
             on_event: Listener = ignore, pages: Path | None = None) -> DemoReport:
    """Run the story; unless ``keep``, the servers are destroyed and a temporary directory
    (with the lab's key and state) is removed, whatever happened. With ``pages``, the
    picture of each release (good and rolled back) is written there, outliving the lab."""
    temporary = directory is None
    directory = directory or Path(tempfile.mkdtemp(prefix="lab-demo-"))
    try:
        report = _tell(directory, keep, step_seconds, on_event)
        if pages is not None:
            for release in report.releases:
                name = f"lab-demo-{release.vars.get('version', '')}-{release.outcome}.html"
                report.pages.append(write_page([release], pages / name).path)
        return report
    finally:
        # Whatever happened (Ctrl-C included), a directory the demo made is not left behind.
        if temporary and not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _tell(directory: Path, keep: bool, step_seconds: float, on_event: Listener) -> DemoReport:
    init_lab(directory, name=f"demo-{directory.name[-6:].lower().replace('_', '-')}"
             .rstrip("-"), force=True)
    # A pause at 50 % (a person looks, then promotes), and a latency gate: the new version's
    # p99 at most 3x the old one's.
    config = edit_lab_yml(directory / "lab.yml", listen=free_local_port(),
                          step_seconds=step_seconds,
                          release={"steps": [10, 50, "pause", 100], "max_p99_ratio": 3})
    report = DemoReport(directory, Steps(on_event))
    with Fleet(config, on_event) as fleet:
        try:
            # Each step runs whatever happened before: the story is told to the end.
            report.run.run("up v1: create, provision, verify", lambda: _build_v1(fleet, on_event),
                           always=True)
            report.run.run("release v2, paused at 50%", lambda: _release(
                fleet, {"version": "v2"}, on_event, report.releases, promote_after=2.0),
                "promoted", always=True)
            report.run.run("release slow v3", lambda: _release(
                fleet, {"version": "v3", "slow": True}, on_event, report.releases),
                "rolled-back", always=True)
            report.run.run("release broken v4", lambda: _release(
                fleet, {"version": "v4", "broken": True}, on_event, report.releases),
                "rolled-back", always=True)
        finally:
            if not keep:
                fleet.destroy()
    return report


def _build_v1(fleet: Fleet, on_event: Listener) -> Outcome:
    fleet.up()
    result = provision(fleet, on_event=on_event)
    if not result.ok:
        return Outcome(f"failed: {result.problem}", result.problem)
    checked = verify(fleet, on_event=on_event)
    return Outcome(OK if checked.ok else "verify failed", checked.problem,
                   {"tests passed": checked.passed})


def _release(fleet: Fleet, overrides: dict[str, Any], on_event: Listener,
             kept: list[ReleaseReport], promote_after: float | None = None) -> Outcome:
    person, over = None, threading.Event()
    if promote_after is not None:
        person = threading.Thread(target=_promote_when_paused, daemon=True,
                                  args=(fleet.config.state_dir, promote_after, over))
        person.start()
    try:
        report = release(fleet, overrides, on_event=on_event)
    except ReleaseFailed:
        report = history(fleet.state)[-1]
    finally:
        over.set()  # a release that ended before its pause needs no one any more
        if person is not None:
            person.join()
    kept.append(report)
    traffic = report.traffic
    figures: dict[str, Any] = {"requests": traffic["requests"], "failed": traffic["errors"],
                               "p99 ms": traffic["p99_ms"]}
    held = [step for step in report.steps if step.resumed_by]
    if held:
        figures["paused s"] = held[0].paused
    return Outcome(report.outcome, "", figures | {"reason": report.reason})


def _promote_when_paused(state_dir: Path, after: float, over: threading.Event) -> None:
    """What a person does from another terminal: wait for the release to pause, look at it
    for ``after`` seconds, then `lab promote`."""
    while not over.wait(0.2):
        report = running(State(state_dir), state_dir)
        if report is not None and paused_since(report) is not None:
            if not over.wait(after):
                with contextlib.suppress(UsageError):  # it ended meanwhile
                    send(state_dir, PROMOTE)
            return
