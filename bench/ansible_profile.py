"""Where an Ansible run of lab's spent its time, from ansible-runner's own events.

Every `lab provision`, `lab test` and release keeps its run under ``.lab/runs/<id>/``; this
reads its ``job_events`` (not stdout) and prints, for each run: the time before the first task
(ansible-playbook starting, inventory, plugins), each task's wall time with the slowest host's
own duration and the hosts that changed, and the time after the last task.

    .venv/bin/python bench/ansible_profile.py LAB_DIR/.lab/runs/RUN_ID [...]
    .venv/bin/python bench/ansible_profile.py LAB_DIR        # every run of that lab

Reads files only; needs nothing running.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

DONE = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


def events(run_dir: Path) -> list[dict[str, Any]]:
    found = sorted(run_dir.glob("artifacts/*/job_events/*.json"),
                   key=lambda p: int(p.name.split("-")[0]))
    return [json.loads(p.read_text()) for p in found]


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def profile(run_dir: Path) -> list[str]:
    """Lines: before the first task, each task, after the last, and the total."""
    listed = [e for e in events(run_dir) if e.get("created")]
    if not listed:
        return [f"{run_dir}: no events"]
    command = next(run_dir.glob("artifacts/*/command"), None)
    began = command.stat().st_mtime if command else seconds(listed[0]["created"])
    tasks: list[dict[str, Any]] = []
    for event in listed:
        data = event.get("event_data") or {}
        if event["event"] in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            tasks.append({"name": data.get("task", "?"), "start": seconds(event["created"]),
                          "end": seconds(event["created"]), "slowest": 0.0, "changed": []})
        elif event["event"] in DONE and tasks:
            task = tasks[-1]
            task["end"] = max(task["end"], seconds(event["created"]))
            task["slowest"] = max(task["slowest"], float(data.get("duration") or 0.0))
            if (data.get("res") or {}).get("changed"):
                task["changed"].append(data.get("host", "?"))
    finished = seconds(listed[-1]["created"])
    first = tasks[0]["start"] if tasks else finished
    lines = [f"{run_dir.name}", f"  {'before the first task':<58} {first - began:6.2f} s"]
    for task in tasks:
        changed = f"  changed: {', '.join(task['changed'])}" if task["changed"] else ""
        lines.append(f"  {task['name'][:58]:<58} {task['end'] - task['start']:6.2f} s "
                     f"(slowest host {task['slowest']:.2f} s){changed}")
    after = finished - (tasks[-1]["end"] if tasks else began)
    lines.append(f"  {'after the last task':<58} {after:6.2f} s")
    lines.append(f"  {'total (first event to last)':<58} {finished - began:6.2f} s")
    return lines


def run_dirs(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if (path / ".lab" / "runs").is_dir():
            found += sorted(p for p in (path / ".lab" / "runs").iterdir() if p.is_dir())
        else:
            found.append(path)
    return found


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for run_dir in run_dirs([Path(a) for a in sys.argv[1:]]):
        print("\n".join(profile(run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
