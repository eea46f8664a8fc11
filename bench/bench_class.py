"""Benchmark a class on one machine: `lab class up` of 10 students at exercise 1, then
`lab class reset` of one student, warm image.

For each ``--parallel`` value (default: 3, and 1 for sequential with ``--parallel 1 3``), a
fresh class of ``--students`` (default 10) is made with `lab class init`, brought up with
`lab class up --parallel P`, and, in the last one, one student is reset. While `up` runs,
memory is sampled every second:

* ``servers``  the class's containers, summed, from their memory cgroups (``rss``: anonymous
               memory; ``usage``: the cgroup's whole charge, page cache included);
* ``engine``   dockerd's resident memory (from /var/run/docker.pid);
* ``lab``      the `lab class up` process and its children (ansible-playbook, ssh), resident.

Each figure is the peak over the run. The machine's load is printed with them.

    nice .venv/bin/python bench/bench_class.py [--students 10] [--parallel 1 3]

Everything it makes is labelled ``lab.bench-class=<pid>`` (through ``LAB_LABELS``) and
removed on exit, also on failure or Ctrl-C. Exit status: 0 when it ran, 3 when a
prerequisite is missing, 1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import LAB, BenchError, bench_main, cleanup, load_note, require_prerequisites, run

# Its own label (not benchlib's lab.bench=1): another bench running on the machine at the same
# time is neither sampled nor removed by this one.
LABEL = f"lab.bench-class={os.getpid()}"
UP_TIMEOUT = 1800.0  # seconds for one `lab class up` of the whole class
MB = 1024 * 1024


@dataclass
class Peaks:
    """The highest memory figures seen while sampling, in bytes."""

    servers_rss: int = 0
    servers_usage: int = 0
    engine: int = 0
    lab: int = 0
    containers: int = 0

    def line(self) -> str:
        return (f"peak memory: servers {self.servers_rss / MB:.0f} MB rss "
                f"({self.servers_usage / MB:.0f} MB with page cache, {self.containers} "
                f"containers), engine {self.engine / MB:.0f} MB, lab and ansible "
                f"{self.lab / MB:.0f} MB")


@dataclass
class Run:
    parallel: int
    up: float = 0.0
    ready: int = 0
    peaks: Peaks = field(default_factory=Peaks)


# memory ------------------------------------------------------------------------------------


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _memory_cgroup(pid: int, container: str) -> Path | None:
    """The memory cgroup folder of a container, from its first process (cgroup v1's memory
    controller, or v2's). systemd in the container moves itself into a child group
    (init.scope), and its services into others: the container's own group is the one named
    for its id, above them all."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            found = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            break
        if controllers == "" and found is None:
            found = Path("/sys/fs/cgroup") / path.lstrip("/")
    if found is None:
        return None
    for folder in (found, *found.parents):
        if container in folder.name:
            return folder
    return found


def _cgroup_memory(folder: Path) -> tuple[int, int]:
    """(rss, usage) of a memory cgroup, v1 or v2."""
    stat = {}
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            stat[key] = int(value)
    except (OSError, ValueError):
        return 0, 0
    if (folder / "memory.usage_in_bytes").exists():
        return stat.get("total_rss", stat.get("rss", 0)), _read_int(
            folder / "memory.usage_in_bytes")
    return stat.get("anon", 0), _read_int(folder / "memory.current")


def _rss(pid: int) -> int:
    for line in _lines(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            for line in _lines(f"/proc/{entry.name}/status"):
                if line.startswith("PPid:"):
                    children.setdefault(int(line.split()[1]), []).append(int(entry.name))
                    break
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _containers() -> list[tuple[str, int]]:
    """(id, first process) of each running container this run made."""
    listed = run(["docker", "ps", "-q", "--filter", f"label={LABEL}"], timeout=60)
    ids = listed.stdout.split()
    if not ids:
        return []
    inspected = run(["docker", "inspect", "--format", "{{.Id}} {{.State.Pid}}", *ids],
                    timeout=60)
    pairs = [line.split() for line in inspected.stdout.splitlines()]
    return [(one[0], int(one[1])) for one in pairs if len(one) == 2 and one[1] != "0"]


class Sampler(threading.Thread):
    """Samples memory every second until stopped; keeps the peaks."""

    def __init__(self, lab_pid: int) -> None:
        super().__init__(daemon=True)
        self.lab_pid = lab_pid
        self.peaks = Peaks()
        self.done = threading.Event()
        self.engine_pid = _read_int(Path("/var/run/docker.pid"))

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.sample()

    def sample(self) -> None:
        peaks = self.peaks
        rss = usage = 0
        containers = _containers()
        for container, pid in containers:
            folder = _memory_cgroup(pid, container)
            if folder is not None:
                one_rss, one_usage = _cgroup_memory(folder)
                rss, usage = rss + one_rss, usage + one_usage
        peaks.servers_rss = max(peaks.servers_rss, rss)
        peaks.servers_usage = max(peaks.servers_usage, usage)
        peaks.containers = max(peaks.containers, len(containers))
        if self.engine_pid:
            peaks.engine = max(peaks.engine, _rss(self.engine_pid))
        peaks.lab = max(peaks.lab, sum(_rss(pid) for pid in _tree(self.lab_pid)))


def remove_labelled() -> None:
    """docker rm -f every container, and remove every network, this run labelled."""
    for kind in ("container", "network"):
        listed = run(["docker", kind, "ls", "-q", *(["-a"] if kind == "container" else []),
                      "--filter", f"label={LABEL}"], timeout=60)
        ids = listed.stdout.split()
        if ids:
            run(["docker", kind, "rm", *(["-f"] if kind == "container" else []), *ids],
                timeout=120)


# the bench ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--parallel", type=int, nargs="+", default=[3])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-class-"))
    labels = ",".join(filter(None, [os.environ.get("LAB_LABELS", ""), LABEL]))
    env = os.environ | {"LAB_LABELS": labels, "NO_COLOR": "1", "TERM": "dumb"}
    runs: list[Run] = []
    reset: dict[str, float] = {}
    load: list[float] = []

    def lab(*argv: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        result = run([str(LAB), "class", *argv], env=env, timeout=timeout)
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
            raise BenchError(f"`lab class {' '.join(argv)}` exited {result.returncode}: "
                             f"{detail[0]}")
        return result

    def up(directory: Path, parallel: int) -> Run:
        measured = Run(parallel)
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(LAB), "class", "up", str(directory), "--exercise", "1", "--parallel",
             str(parallel), "--json"], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = Sampler(process.pid)
        sampler.start()
        try:
            stdout, stderr = process.communicate(timeout=UP_TIMEOUT)
        finally:
            sampler.done.set()
            sampler.join()
            if process.poll() is None:
                process.kill()
        measured.up = time.perf_counter() - started
        measured.peaks = sampler.peaks
        measured.ready = stdout.count('"status": "ready"')
        if process.returncode != 0:
            raise BenchError(f"`lab class up --parallel {parallel}` exited "
                             f"{process.returncode}: {stderr.strip().splitlines()[-1:]}")
        return measured

    def body() -> None:
        require_prerequisites()
        try:
            for index, parallel in enumerate(args.parallel):
                directory = root / f"class-p{parallel}"
                lab("init", str(directory), "--count", str(args.students), "--exercises", "1",
                    "--name", f"bench-p{parallel}")
                try:
                    load.append(os.getloadavg()[0])
                    runs.append(up(directory, parallel))
                    load.append(os.getloadavg()[0])
                    if index == len(args.parallel) - 1:
                        (directory / "student-01" / "notes.txt").write_text("mine\n")
                        started = time.perf_counter()
                        lab("reset", "student-01", str(directory), timeout=300)
                        reset["reset"] = time.perf_counter() - started
                        started = time.perf_counter()
                        lab("reset", "student-02", str(directory), "--solved-through", "1",
                            timeout=300)
                        reset["reset --solved-through 1"] = time.perf_counter() - started
                        load.append(os.getloadavg()[0])
                finally:
                    lab("destroy", str(directory), "--files", timeout=300)
        finally:
            cleanup(remove_labelled, lambda: shutil.rmtree(root, ignore_errors=True))

    def report() -> str | None:
        if not runs:
            return None
        lines = [f"lab class up, {args.students} students at exercise 1:"]
        for one in runs:
            lines.append(f"  --parallel {one.parallel}: {one.up:.1f} s "
                         f"({one.up / args.students:.1f} s a student, {one.ready} ready); "
                         f"{one.peaks.line()}")
        for what, seconds in reset.items():
            lines.append(f"lab class {what} of one student: {seconds:.1f} s"
                         f"{' OVER 30 s' if what == 'reset' and seconds > 30 else ''}")
        return "\n".join(lines + load_note(load))

    return bench_main("bench_class", body, report)


if __name__ == "__main__":
    sys.exit(main())
