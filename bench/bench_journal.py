"""Benchmark a release's journal: what writing it costs per step, and how long a lab takes to be
whole again after a `lab release` is killed with SIGKILL.

1. journal   (no Docker) the write a release makes before and after each step: its report
             saved to a real .lab/state.db (SQLite, one short transaction), with a report the
             size of a three-step release's; median and 95th percentile over --writes writes,
             and what the 16 writes of such a release add up to.
2. kill      (Docker) a lab of two web servers behind HAProxy, `lab up` and `lab provision`;
             then --rounds times: `lab release --set version=vN`, SIGKILL the moment its
             journal says canary 50% has begun and both versions answer, then `lab rollback`.
             Prints the rollback's wall time (the kill's next command: it finds the release,
             puts the weights back, drains and destroys the new generation) and the time from
             the kill until HAProxy serves the old version alone (40 requests in a row).

    .venv/bin/python bench/bench_journal.py [--writes 200] [--rounds 3] [--no-kill]

Cleans up on exit, also on Ctrl-C (the kill part's lab is destroyed, then anything labelled).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchlib import LAB, BenchError, BenchLab, bench_main, cleanup, remove_labelled
from journalwatch import running_step
from loadgen import get

from lab.access.ports import free_local_port
from lab.release import JournalEntry, ReleaseReport, StepReport
from lab.state import State

WINDOW = {"seconds": 3.0, "requests": 120, "errors": 0, "error_rate": 0.0, "rps": 40.0,
          "p50_ms": 2.5, "p99_ms": 9.1, "versions": {"v1": 80, "v2": 40}}
WRITES_PER_RELEASE = 16  # begun and done for 7 phases of a 3-step release, and promote's
figures: list[str] = []


def journal_cost(writes: int) -> None:
    with tempfile.TemporaryDirectory() as where:
        state = State(Path(where))
        report = ReleaseReport(id="bench", role="web", started=time.time(),
                               vars={"version": "v2"}, image=None,
                               previous={"vars": {"version": "v1"}, "image": None},
                               old=["web-1", "web-2"], new=["web-3", "web-4"],
                               steps=[StepReport(p, dict(WINDOW), "passed",
                                                 {"requests": 40, "failed": 0})
                                      for p in (10, 50, 100)])
        took = []
        for n in range(writes):
            report.journal.append(JournalEntry(time.time(), f"step {n % 8}", "begun"))
            del report.journal[:-WRITES_PER_RELEASE]  # a release's journal, not an ever-longer one
            started = time.perf_counter()
            state.save_release(report.to_dict())
            took.append((time.perf_counter() - started) * 1000)
    took.sort()
    median, p95 = statistics.median(took), took[int(len(took) * 0.95) - 1]
    figures.append(f"journal write: median {median:.2f} ms, p95 {p95:.2f} ms over {writes} "
                   f"writes; a 3-step release's {WRITES_PER_RELEASE} writes: about "
                   f"{median * WRITES_PER_RELEASE:.0f} ms in all")


def answering(port: int, requests: int = 40) -> set[str]:
    seen = set()
    for _ in range(requests):
        status, page = get(port)
        seen.add(page.split()[-1] if status == 200 and page else "failed")
    return seen


def kill_and_mend(rounds: int) -> None:
    lab = BenchLab("journal")
    try:
        port = free_local_port()
        lab.init(count=2, balancer=True, listen=port, step_seconds=3)
        lab.timed("up")
        lab.timed("provision")
        mended, whole = [], []
        for n in range(2, rounds + 2):
            release = subprocess.Popen([str(LAB), "release", "--set", f"version=v{n}"],
                                       cwd=lab.dir, env=lab.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 300
            state_db = lab.dir / ".lab" / "state.db"
            while running_step(state_db) != "canary 50%" or answering(port, 10) != {"v1", f"v{n}"}:
                if release.poll() is not None or time.monotonic() > deadline:
                    release.kill()
                    raise BenchError("the release ended before it could be killed at 50%")
                time.sleep(0.02)
            killed = time.perf_counter()
            os.kill(release.pid, signal.SIGKILL)
            release.wait()
            mended.append(lab.timed("rollback"))
            while answering(port) != {"v1"}:
                if time.perf_counter() - killed > 120:
                    raise BenchError("HAProxy still served more than v1 two minutes after")
            whole.append(time.perf_counter() - killed)
        figures.append(f"kill -9 at canary 50%, then `lab rollback`: "
                       f"{statistics.median(mended):.1f} s median "
                       f"({min(mended):.1f}-{max(mended):.1f}); from the kill to v1 "
                       f"alone through HAProxy: {statistics.median(whole):.1f} s median "
                       f"({min(whole):.1f}-{max(whole):.1f}), {len(whole)} rounds")
    finally:
        cleanup(lab.cleanup, remove_labelled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-kill", action="store_true", help="the journal's cost only")
    options = parser.parse_args()

    def body() -> None:
        journal_cost(options.writes)
        if not options.no_kill:
            kill_and_mend(options.rounds)

    return bench_main("bench_journal", body, lambda: "\n".join(figures) or None)


if __name__ == "__main__":
    sys.exit(main())
