"""Benchmark `lab up` and `lab destroy` against the issue's targets, with plain Docker as baseline.

What it measures, for N = 1, 2, 4, 8 servers (``--quick``: N = 2 and 8 only, one repeat):

* ``lab up``       wall time of the ``lab up`` process in a fresh temporary lab whose lab.yml
                   says ``count: N``: Python start-up, containers created and started, lab key
                   copied in, each server answering ``systemctl is-system-running`` over SSH.
* ``lab destroy``  wall time of the ``lab destroy`` process that removes those N servers and
                   the lab's network.
* ``docker run``   baseline: N ``docker run -d`` started at once, with the options lab uses
                   on this engine (its run mode, lab/docker/runmode.py; ``-p 127.0.0.1::22``,
                   label ``lab.bench=<pid>``), until ``docker exec NAME systemctl
                   is-system-running`` says ``running`` (or ``degraded``, as lab accepts) in
                   every one of them.
* ``docker rm -f`` baseline: one ``docker rm -f`` of those N containers.

Each N is repeated ``--repeat`` times (default 3); the table shows median, min and max in
seconds and compares the median with the issue's targets (up of 2 servers <= 6 s, up of 8
<= 12 s, destroy of 8 <= 3 s). One untimed ``lab up``/``lab destroy`` of one server runs
first, so one-time costs (the lab's key, cold caches) are not charged to the first N. The
lab is the one ``lab init`` writes; when it has a balancer, ``lab up`` makes N + 1 containers
(the table says so) and the balancer's fixed port is moved to a free one. If the run
stops early (a failure, Ctrl-C), the figures measured so far are printed, marked PARTIAL.

Run it from any directory, with the base image built (``lab image build``):

    /work/main/.venv/bin/python bench/bench_up.py            # full run, a few minutes
    /work/main/.venv/bin/python bench/bench_up.py --quick    # N = 2 and 8, once each

Everything it makes is removed on exit, also on Ctrl-C or failure: ``lab destroy`` of its lab,
then ``docker rm -f`` of every container (and network) labelled ``lab.bench=<pid>``; lab's own
servers carry that label too (through ``LAB_LABELS``). Exit status: 0 when it ran (whether or
not a target is met), 3 when a prerequisite is missing (the image, docker, the lab binary),
1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchlib import (
    BENCH_LABEL,
    IMAGE,
    TIMEOUT,
    BenchError,
    BenchLab,
    bench_main,
    cleanup,
    docker,
    load_note,
    remove_labelled,
    require_prerequisites,
    run_mode,
    stats_row,
)

from lab.access.ports import free_local_port

SIZES = (1, 2, 4, 8)
QUICK_SIZES = (2, 8)
# The targets, in seconds: (what, N) -> limit.
TARGETS = {("lab up", 2): 6.0, ("lab up", 8): 12.0, ("lab destroy", 8): 3.0}


# the plain-docker baseline ----------------------------------------------------------------


class Baseline:
    """N plain ``docker run -d`` systemd containers, timed until systemd says running."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        mode = run_mode()  # lab's own run mode on this engine
        self.flags, self.command = mode.cli_args(), mode.command

    def up(self, count: int) -> tuple[float, list[str]]:
        names = [f"{self.prefix}-base-{i}" for i in range(1, count + 1)]
        started = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        runs = {name: self._popen(["docker", "run", "-d", "--name", name, "--hostname", name,
                                   "--label", BENCH_LABEL, "-p", "127.0.0.1::22", *self.flags,
                                   IMAGE, *self.command]) for name in names}
        for name, process in runs.items():
            _, error = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if process.returncode != 0:
                raise BenchError(f"docker run {name} failed: {error.strip()}")
        self._wait_running(names, deadline)
        return time.perf_counter() - started, names

    def remove(self, names: list[str]) -> float:
        started = time.perf_counter()
        result = docker("rm", "-f", *names)
        took = time.perf_counter() - started
        if result.returncode != 0:
            raise BenchError(f"docker rm -f failed: {result.stderr.strip()}")
        return took

    @staticmethod
    def _popen(argv: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def _wait_running(self, names: list[str], deadline: float) -> None:
        """Ask every container at once; ask again (0.1 s later) those not booted yet."""

        def ask(name: str) -> subprocess.Popen[str]:
            return self._popen(["docker", "exec", name, "systemctl", "is-system-running",
                                "--wait"])

        asking = {name: ask(name) for name in names}
        last: dict[str, str] = {}
        try:
            while asking:
                if time.monotonic() > deadline:
                    raise BenchError(f"not running after {TIMEOUT:.0f} s: "
                                     + ", ".join(f"{n} ({last.get(n, '?')})" for n in asking))
                time.sleep(0.02)
                for name, process in list(asking.items()):
                    if process.poll() is None:
                        continue
                    out, error = process.communicate()
                    state = out.strip()
                    if state in ("running", "degraded"):
                        del asking[name]
                        continue
                    last[name] = state or error.strip() or f"exit {process.returncode}"
                    time.sleep(0.1)
                    asking[name] = ask(name)
        finally:
            for process in asking.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()


# report ------------------------------------------------------------------------------------


def containers(lab: str) -> int:
    """How many containers the lab has now (a balancer, say, would add one to N)."""
    listed = docker("container", "ls", "-aq", "--filter", f"label=lab.name={lab}", timeout=60)
    return len(listed.stdout.split())


Samples = dict[tuple[str, int], list[float]]


def report(samples: Samples, repeat: int, extra: dict[int, set[int]],
           load: list[float]) -> str:
    """The figures table; ``extra[N]`` are the container counts seen when not N."""
    order = ["lab up", "docker run (baseline)", "lab destroy", "docker rm -f (baseline)"]
    sizes = sorted({n for _, n in samples})
    lines = [f"seconds, wall clock, {repeat} run(s) each; verdict on the median",
             f"{'what':<24} {'N':>2} {'runs':>4} {'median':>7} {'min':>7} {'max':>7}  target"]
    for what in order:
        for n in sizes:
            values = samples.get((what, n))
            if not values:
                continue
            line = stats_row(what, values, TARGETS.get((what, n)), 24, f"{n:>2} ")
            if what == "lab up" and extra.get(n):
                line += f"  (lab made {'/'.join(map(str, sorted(extra[n])))} containers)"
            lines.append(line)
    lines.append("targets (issue): " + ", ".join(
        f"{what} of {n} <= {limit:g} s" for (what, n), limit in TARGETS.items()))
    return "\n".join(lines + load_note(load))


# main --------------------------------------------------------------------------------------


def bench(sizes: tuple[int, ...], repeat: int, samples: Samples,
          extra: dict[int, set[int]], load: list[float]) -> None:
    """Fill ``samples`` as it goes, so what was measured survives a failure or Ctrl-C."""
    lab = BenchLab()
    try:
        baseline = Baseline(lab.name)
        print(f"lab {lab.name} in {lab.dir}; image {IMAGE}", file=sys.stderr)
        # Another lab on this machine may hold the example balancer's 127.0.0.1:8080.
        lab.init(count=1, listen=free_local_port())
        lab.timed("up")  # warm-up, not counted: makes the lab's key, warms caches
        lab.timed("destroy")
        load.append(os.getloadavg()[0])
        for n in sizes:
            lab.edit(count=n)
            for i in range(1, repeat + 1):
                up = lab.timed("up")
                made = containers(lab.name)
                if made != n:
                    extra.setdefault(n, set()).add(made)
                down = lab.timed("destroy")
                base_up, names = baseline.up(n)
                base_down = baseline.remove(names)
                for what, value in (("lab up", up), ("lab destroy", down),
                                    ("docker run (baseline)", base_up),
                                    ("docker rm -f (baseline)", base_down)):
                    samples.setdefault((what, n), []).append(value)
                load.append(os.getloadavg()[0])
                print(f"N={n} run {i}/{repeat}: lab up {up:.2f} s, destroy {down:.2f} s; "
                      f"docker run {base_up:.2f} s, rm -f {base_down:.2f} s; "
                      f"load {load[-1]:.1f}", file=sys.stderr)
    finally:
        cleanup(lab.cleanup, remove_labelled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per N (default 3)")
    parser.add_argument("--quick", action="store_true", help="only N=2 and 8, one run each")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes, repeat = (QUICK_SIZES, 1) if args.quick else (SIZES, args.repeat)
    samples: Samples = {}
    extra: dict[int, set[int]] = {}
    load: list[float] = []

    def body() -> None:
        require_prerequisites()
        bench(sizes, repeat, samples, extra, load)

    return bench_main("bench_up", body,
                      lambda: report(samples, repeat, extra, load) if samples else None)


if __name__ == "__main__":
    sys.exit(main())
