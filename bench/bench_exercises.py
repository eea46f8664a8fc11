"""Benchmark the course: `lab exercise start`, `check` and `reset` per exercise, warm image.

For each exercise (all, or those given with ``--only 1 3``), in a fresh temporary workspace:

* ``start``          `lab exercise start N DIR`: the start files, and the servers made and
                     brought to the exercise's starting state (up, provision, hand changes).
* ``check (start)``  `lab exercise check` on the untouched start (it fails: exit 1 expected).
* ``check (solved)`` `lab exercise solve --yes`, then `lab exercise check` (it passes: the
                     slowest check, every goal runs).
* ``reset``          `lab exercise reset`: files backed up and laid down again, servers
                     destroyed and rebuilt to the starting state.

The issue's goals: check <= 15 s and reset <= 30 s for every exercise. The machine's load is
printed with the figures: other work on a 2-core machine skews them.

    .venv/bin/python bench/bench_exercises.py [--only N ...]

Everything it makes is labelled ``lab.bench=<pid>`` (through ``LAB_LABELS``) and removed on exit,
also on failure or Ctrl-C. Exit status: 0 when it ran (goals met or not), 3 when a prerequisite
is missing, 1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    BENCH_LABEL,
    LAB,
    TIMEOUT,
    BenchError,
    bench_main,
    cleanup,
    load_note,
    remove_labelled,
    require_prerequisites,
    run,
)

from lab.course.exercises import course

GOALS = {"check (start)": 15.0, "check (solved)": 15.0, "reset": 30.0}
COLUMNS = ["start", "check (start)", "check (solved)", "reset"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, nargs="*", help="exercise numbers (default: all)")
    args = parser.parse_args()
    numbers = args.only or [e.number for e in course()]
    figures: dict[int, dict[str, float]] = {}
    load: list[float] = []
    root = Path(tempfile.mkdtemp(prefix="bench-exercises-"))
    labels = ",".join(filter(None, [os.environ.get("LAB_LABELS", ""), BENCH_LABEL]))
    env = os.environ | {"LAB_LABELS": labels, "NO_COLOR": "1", "TERM": "dumb"}

    def timed(directory: Path, *argv: str, expect: tuple[int, ...] = (0,)) -> float:
        started = time.perf_counter()
        try:
            result = run([str(LAB), "exercise", *argv], cwd=directory, env=env,
                         timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`lab exercise {argv[0]}` took over {TIMEOUT:.0f} s") from None
        took = time.perf_counter() - started
        if result.returncode not in expect:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
            raise BenchError(f"`lab exercise {' '.join(argv)}` exited {result.returncode}: "
                             f"{detail[0]}")
        return took

    def body() -> None:
        require_prerequisites()
        try:
            for number in numbers:
                workspace = root / f"ex{number:02d}"
                row = figures.setdefault(number, {})
                name = f"bench-ex{number:02d}-{os.getpid()}"
                row["start"] = timed(root, "start", str(number), str(workspace), "--name", name)
                try:
                    row["check (start)"] = timed(workspace, "check", expect=(1,))
                    timed(workspace, "solve", "--yes")
                    row["check (solved)"] = timed(workspace, "check")
                    row["reset"] = timed(workspace, "reset")
                    load.append(os.getloadavg()[0])
                finally:
                    destroy(workspace)
        finally:
            cleanup(remove_labelled, lambda: shutil.rmtree(root, ignore_errors=True))

    def destroy(workspace: Path) -> None:
        """The workspace's servers, by the lab name its start files were given."""
        from lab.course.workspace import open_workspace
        from lab.fleet import Fleet

        with Fleet(open_workspace(workspace).start_config()) as fleet:
            fleet.destroy(images=True)  # 07 bakes images

    def report() -> str | None:
        if not figures:
            return None
        lines = [f"{'exercise':<22}" + "".join(f"{c:>16}" for c in COLUMNS)]
        titles = {e.number: e.id for e in course()}
        for number, row in figures.items():
            cells = []
            for column in COLUMNS:
                value = row.get(column)
                over = value is not None and value > GOALS.get(column, float("inf"))
                cells.append("-" if value is None else f"{value:.1f} s{' OVER' if over else ''}")
            lines.append(f"{titles[number]:<22}" + "".join(f"{c:>16}" for c in cells))
        lines.append("goals: check <= 15 s, reset <= 30 s")
        return "\n".join(lines + load_note(load))

    return bench_main("bench_exercises", body, report)


if __name__ == "__main__":
    sys.exit(main())
