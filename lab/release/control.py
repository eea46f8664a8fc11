"""Acting on a running release from another terminal: `lab promote` and `lab abort`.

A release may wait for a person (a ``pause`` step, ``--step-by-step``, or a step the analysis
could not judge with ``inconclusive: pause``). The person answers from any terminal in the
lab's folder: `lab promote` lets the paused release go on, `lab abort` rolls it back as a
failed gate would. The command is a small file, ``.lab/release.control``, that the release
reads twice a second and removes; a command is refused at once when no release runs (the
release lock is free), or, for `lab promote`, when the running release is not paused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lab.errors import UsageError
from lab.release.journal import last_step, paused_since, running, running_now
from lab.state import State

PROMOTE, ABORT = "promote", "abort"
PAUSE = "pause"  # the journal's steps a paused release is in begin with it


def _path(state_dir: Path) -> Path:
    return state_dir / "release.control"


def send(state_dir: Path, command: str) -> str:
    """Leave ``command`` (promote or abort) for the running release; returns a line saying
    what was asked of which release. UsageError when nothing would read it."""
    if not running_now(state_dir):
        raise UsageError(f"no release is running on this lab: nothing to {command} "
                         "(`lab history` lists past releases)")
    report = running(State(state_dir), state_dir)
    where = last_step(report) if report is not None else "start"
    name = f"release {report.id}" if report is not None else "the running release"
    if command == PROMOTE and (report is None or paused_since(report) is None):
        raise UsageError(f"{name} is at {where}, not paused: `lab promote` lets a paused "
                         "release go on (a `pause` step, or `lab release --step-by-step`); "
                         "`lab abort` rolls it back")
    temporary = _path(state_dir).with_suffix(".tmp")
    temporary.write_text(json.dumps({"command": command, "at": time.time(),
                                     "pid": os.getpid()}))
    temporary.replace(_path(state_dir))  # whole, or not there: never read half-written
    return f"{name} ({where}): {command} asked; it acts at the release's next look"


def take(state_dir: Path, since: float, wanted: tuple[str, ...] = (PROMOTE, ABORT)
         ) -> str | None:
    """The command left for this release, if it is one of ``wanted``: then it is removed. A
    promote sent before ``since`` (a ``time.time()``: when the pause began) is void and
    removed too, so an old command never acts on a later pause; anything else is left for
    the one who wants it (a canary step takes only `lab abort`, a pause both)."""
    path = _path(state_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    at = data.get("at", 0) if isinstance(data, dict) else 0
    void = command not in (PROMOTE, ABORT) or (
        command == PROMOTE and (not isinstance(at, int | float) or at < since))
    if void or command in wanted:
        path.unlink(missing_ok=True)
    return None if void or command not in wanted else str(command)


def clear(state_dir: Path) -> None:
    """Forget a command left for a release that ended before reading it."""
    _path(state_dir).unlink(missing_ok=True)
