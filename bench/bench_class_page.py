"""The class's progress page: what a report costs a check, and what a big class costs the page.

Prints, on this machine:
- a report sent to a running class (``reporter.send`` to `lab class serve` in this process),
  median of many;
- the same when nobody listens (connection refused) and when a server takes the connection
  but never answers: the most a check can ever wait on its class (the timeout);
- the grid of a large class (200 students x 10 exercises, 20 reports each): computed from
  class.db, and served as ``GET /api/grid``;
- the memory of a real `lab class serve` process, idle.

    .venv/bin/python bench/bench_class_page.py

Needs no Docker: everything is on 127.0.0.1.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from lab.classroom.config import load_class
from lab.classroom.reporter import TIMEOUT, send
from lab.classroom.store import Report, class_grid, open_store
from lab.classroom.web import running

CODE = "k7f3-q9x2"


def timed(action: Callable[[], object], rounds: int) -> float:
    """Median seconds of ``rounds`` calls."""
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def write_class(where: Path, students: int, exercises: int, port: int = 8760) -> None:
    numbers = ", ".join(str(n) for n in range(1, exercises + 1))
    (where / "class.yml").write_text(f"name: bench\ncode: {CODE}\nstudents: {students}\n"
                                     f"exercises: [{numbers}]\nserve: {{port: {port}}}\n")


def payload(student: str, exercise: int = 1) -> dict[str, object]:
    return {"code": CODE, "student": student, "exercise": exercise,
            "exercise_id": f"{exercise:02d}-bench", "kind": "check", "passed": False,
            "failing": "goal", "feedback": "found x; expected y; next: z", "seconds": 60}


def reports(where: Path) -> list[str]:
    write_class(where, 3, 1)
    with running(load_class(where)) as url:
        sent = timed(lambda: send(url, payload("student-01")), 200)
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{refused.getsockname()[1]}"
        down = timed(lambda: send(nobody, payload("x")), 50)
    with socket.create_server(("127.0.0.1", 0)) as mute:  # takes connections, never answers
        silent = f"http://127.0.0.1:{mute.getsockname()[1]}"
        hung = timed(lambda: send(silent, payload("x")), 3)
    return [f"report to a running class:        {sent * 1000:7.1f} ms (median of 200)",
            f"report when nobody listens:       {down * 1000:7.1f} ms (median of 50)",
            f"report to a server that hangs:    {hung * 1000:7.1f} ms (the {TIMEOUT:.0f} s "
            "timeout: the most a check waits)"]


def big_class(where: Path) -> list[str]:
    write_class(where, 200, 10)
    classroom = load_class(where)
    store = open_store(classroom)
    started = time.perf_counter()
    for student in classroom.spec.students:
        for n in range(20):
            store.add(Report(student, 1 + n // 2, f"{1 + n // 2:02d}-bench", "check",
                             passed=n % 2 == 1, failing="" if n % 2 else "goal",
                             feedback="found x", seconds=60.0 * n))
    stored = time.perf_counter() - started
    computed = timed(lambda: class_grid(classroom), 5)
    with running(classroom) as url:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        served = timed(lambda: opener.open(f"{url}/api/grid", timeout=30).read(), 5)
    size = (where / "class.db").stat().st_size
    return [f"4000 reports stored one by one:   {stored:7.1f} s ({stored / 4 :.2f} ms each)",
            f"grid of 200 x 10 from class.db:   {computed * 1000:7.0f} ms (median of 5)",
            f"GET /api/grid of that class:      {served * 1000:7.0f} ms (median of 5; "
            "class.db read again only when it grew)",
            f"class.db with 4000 reports:       {size / 1e6:7.2f} MB"]


def server_memory(where: Path) -> list[str]:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    write_class(where, 30, 5, port)
    process = subprocess.Popen([sys.executable, "-m", "lab", "class", "serve", str(where)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "class bench: http://..." once it listens
        time.sleep(0.5)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
    finally:
        process.terminate()
        process.wait(10)
    return [f"lab class serve, idle:            {int(rss) / 1024:7.1f} MB resident"]


def main() -> int:
    with tempfile.TemporaryDirectory() as temp:
        for part, body in (("reports", reports), ("big", big_class), ("serve", server_memory)):
            where = Path(temp) / part
            where.mkdir()
            for line in body(where):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
