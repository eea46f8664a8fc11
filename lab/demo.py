"""``lab demo``: the whole story in one command, in a throwaway lab.

Up v1 behind the balancer, verify it, release v2 under load (no request may fail), release a
broken v3 and watch it roll back by itself, then print a summary and clean up.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import provision, verify
from lab.probe import free_local_port
from lab.release import ReleaseFailed, release
from lab.scaffold import edit_lab_yml, init_lab


@dataclass
class DemoStep:
    name: str
    expected: str
    outcome: str
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == self.expected


@dataclass
class DemoReport:
    directory: Path
    steps: list[DemoStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)


def run_demo(keep: bool = False, step_seconds: float = 3.0, directory: Path | None = None,
             on_event: Listener = ignore) -> DemoReport:
    """Run the story; unless ``keep``, the servers are destroyed and a temporary directory
    (with the lab's key and state) is removed, whatever happened."""
    temporary = directory is None
    directory = directory or Path(tempfile.mkdtemp(prefix="lab-demo-"))
    init_lab(directory, name=f"demo-{directory.name[-6:].lower().replace('_', '-')}"
             .rstrip("-"), force=True)
    config = edit_lab_yml(directory / "lab.yml", listen=free_local_port(),
                          step_seconds=step_seconds)
    report = DemoReport(directory)
    with Fleet(config, on_event) as fleet:
        try:
            _step(report, "up v1: create, provision, verify", "ok", on_event,
                  lambda: _build_v1(fleet, on_event))
            _step(report, "release v2 under load", "promoted", on_event,
                  lambda: _release(fleet, {"version": "v2"}, on_event))
            _step(report, "release broken v3", "rolled-back", on_event,
                  lambda: _release(fleet, {"version": "v3", "broken": True}, on_event))
        finally:
            if not keep:
                fleet.destroy()
    if temporary and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return report


def _build_v1(fleet: Fleet, on_event: Listener) -> tuple[str, dict[str, Any]]:
    fleet.up()
    result = provision(fleet, on_event=on_event)
    if not result.ok:
        return f"failed: {result.problem}", {}
    checked = verify(fleet, on_event=on_event)
    passed = sum(o.status == "passed" for o in checked.outcomes)
    return ("ok" if checked.ok else "verify failed"), {"tests passed": passed}


def _release(fleet: Fleet, overrides: dict[str, Any],
             on_event: Listener) -> tuple[str, dict[str, Any]]:
    try:
        report = release(fleet, overrides, on_event=on_event)
    except ReleaseFailed:
        report_data = fleet.state.releases()[-1]
    else:
        report_data = report.to_dict()
    traffic = report_data["traffic"]
    figures = {"requests": traffic["requests"], "failed": traffic["errors"],
               "p99 ms": traffic["p99_ms"], "reason": report_data["reason"]}
    return report_data["outcome"], figures


def _step(report: DemoReport, name: str, expected: str, on_event: Listener, body: Any) -> None:
    on_event(Event("phase", f"== {name}"))
    started = time.monotonic()
    try:
        outcome, figures = body()
    except LabError as exc:
        outcome, figures = f"error: {exc}", {}
    report.steps.append(DemoStep(name, expected, outcome, time.monotonic() - started, figures))
