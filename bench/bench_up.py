"""Benchmark `lab up` and `lab destroy` against the issue's targets, with plain Docker as baseline.

What it measures, for N = 1, 2, 4, 8 servers (``--quick``: N = 2 and 8 only, one repeat):

* ``lab up``       wall time of the ``lab up`` process in a fresh temporary lab whose lab.yml
                   says ``count: N``: Python start-up, containers created and started, lab key
                   copied in, each server answering ``systemctl is-system-running`` over SSH.
* ``lab destroy``  wall time of the ``lab destroy`` process that removes those N servers and
                   the lab's network.
* ``docker run``   baseline: N ``docker run -d`` started at once, with the options lab uses
                   on this engine (its run mode, lab/targets/runmode.py; ``-p 127.0.0.1::22``,
                   label ``lab.bench=1``), until ``docker exec NAME systemctl
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
then ``docker rm -f`` of every container (and network) labelled ``lab.bench=1``; lab's own
servers carry that label too (through ``LAB_LABELS``). Exit status: 0 when it ran (whether or
not a target is met), 3 when a prerequisite is missing (the image, docker, the lab binary),
1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

IMAGE = "lab/base:bookworm"
BENCH_LABEL = "lab.bench=1"
SIZES = (1, 2, 4, 8)
QUICK_SIZES = (2, 8)
TIMEOUT = 300.0  # seconds any single measured step may take before the bench gives up
LAB = Path(sys.executable).parent / "lab"
# The targets, in seconds: (what, N) -> limit.
TARGETS = {("lab up", 2): 6.0, ("lab up", 8): 12.0, ("lab destroy", 8): 3.0}


class BenchError(Exception):
    """A step failed; the message is one line for the user."""


class Missing(BenchError):
    """A prerequisite is missing (exit 3)."""


# running commands --------------------------------------------------------------------------


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, output captured; a missing binary becomes :class:`Missing`."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise Missing(f"{argv[0]} not found") from None


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one command that must succeed; returns (seconds, its stderr)."""
    started = time.perf_counter()
    try:
        result = run(argv, cwd=cwd, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`lab {argv[-1]}` took over {TIMEOUT:.0f} s") from None
    took = time.perf_counter() - started
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
        raise BenchError(f"`lab {argv[-1]}` failed (exit {result.returncode}): {detail[0]}")
    return took, result.stderr


def docker(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], timeout=timeout)


# the lab -----------------------------------------------------------------------------------


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BenchLab:
    """A temporary lab with a unique name; ``lab up``/``lab destroy`` it with N servers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix="bench-"))
        self.dir = self.root / self.name
        labels = ",".join(filter(None, [os.environ.get("LAB_LABELS", ""), BENCH_LABEL]))
        self.env = os.environ | {"LAB_LABELS": labels, "NO_COLOR": "1", "TERM": "dumb"}
        self.initialized = False
        self.listen = free_port()

    @staticmethod
    def unique_name() -> str:
        return f"bench-{os.getpid()}-{secrets.token_hex(3)}"

    def init(self) -> None:
        result = run([str(LAB), "init", str(self.dir), "--name", self.name], env=self.env)
        if result.returncode != 0:
            raise BenchError(f"`lab init` failed: {result.stderr.strip()}")
        self.initialized = True

    def set_count(self, count: int) -> None:
        """``count: N`` for the lab's one role; a balancer's fixed port moved off 8080."""
        config = self.dir / "lab.yml"
        text, replaced = re.subn(r"(?m)^(\s+count:\s*)\d+", rf"\g<1>{count}",
                                 config.read_text())
        if replaced != 1:
            raise BenchError(f"expected one `count:` in {config}, found {replaced}")
        # Another lab on this machine may hold the example's 127.0.0.1:8080.
        text = re.sub(r"(?m)^(\s+listen:\s*)\d+", rf"\g<1>{self.listen}", text)
        config.write_text(text)

    def up(self) -> tuple[float, str]:
        return timed([str(LAB), "up"], self.dir, self.env)

    def destroy(self) -> tuple[float, str]:
        return timed([str(LAB), "destroy"], self.dir, self.env)

    def containers(self) -> int:
        """How many containers the lab has now (a balancer, say, would add one to N)."""
        listed = docker("container", "ls", "-aq", "--filter", f"label=lab.name={self.name}",
                        timeout=60)
        return len(listed.stdout.split())

    def cleanup(self) -> None:
        if self.initialized:
            try:
                result = run([str(LAB), "destroy"], cwd=self.dir, env=self.env, timeout=120)
                if result.returncode != 0:
                    print(f"warning: lab destroy during cleanup: exit {result.returncode}; "
                          "removing by label instead", file=sys.stderr)
            except (subprocess.TimeoutExpired, BenchError) as exc:
                print(f"warning: lab destroy during cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)


# the plain-docker baseline ----------------------------------------------------------------


def systemd_run_args() -> tuple[list[str], list[str]]:
    """The ``docker run`` flags and command lab uses on this engine (its run mode, from
    lab/targets/runmode.py): the baseline starts containers exactly as lab does."""
    try:
        from lab.engine import docker_client, engine_facts
        from lab.targets.runmode import choose
    except ImportError as exc:
        raise Missing(f"lab is not importable from {sys.executable} ({exc})") from None
    client = docker_client()
    try:
        mode = choose(engine_facts(client))
    finally:
        client.close()
    return mode.cli_args(), mode.command


class Baseline:
    """N plain ``docker run -d`` systemd containers, timed until systemd says running."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.flags, self.command = systemd_run_args()

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


def remove_labelled() -> None:
    """docker rm -f every container, and remove every network, labelled lab.bench=1."""
    for kind, remove in (("container", ["rm", "-f"]), ("network", ["rm"])):
        listed = docker(kind, "ls", "-aq" if kind == "container" else "-q",
                        "--filter", f"label={BENCH_LABEL}", timeout=60)
        ids = listed.stdout.split()
        if ids:
            result = docker(*([kind] if kind == "network" else []), *remove, *ids, timeout=120)
            if result.returncode != 0:
                print(f"warning: cleanup of {kind}s: {result.stderr.strip()}", file=sys.stderr)


# report ------------------------------------------------------------------------------------


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
            median = statistics.median(values)
            limit = TARGETS.get((what, n))
            verdict = "" if limit is None else (
                f"<= {limit:g} s  {'ok' if median <= limit else 'OVER'}")
            if what == "lab up" and extra.get(n):
                verdict += f"  (lab made {'/'.join(map(str, sorted(extra[n])))} containers)"
            lines.append(f"{what:<24} {n:>2} {len(values):>4} {median:7.2f} {min(values):7.2f} "
                         f"{max(values):7.2f}  {verdict}".rstrip())
    lines.append("targets (issue): " + ", ".join(
        f"{what} of {n} <= {limit:g} s" for (what, n), limit in TARGETS.items()))
    if load:
        lines.append(f"machine: {os.cpu_count()} CPUs; 1-min load average {load[0]:.1f} at start, "
                     f"{load[-1]:.1f} at end, {max(load):.1f} at most (other work skews figures)")
    return "\n".join(lines)


# main --------------------------------------------------------------------------------------


def require_prerequisites() -> None:
    if not LAB.exists():
        raise Missing(f"no lab binary next to {sys.executable} (pip install -e . in the venv)")
    try:
        result = docker("image", "inspect", "--format", "{{.Id}}", IMAGE, timeout=30)
    except subprocess.TimeoutExpired:
        raise Missing("the Docker engine does not answer") from None
    if result.returncode != 0:
        if "No such image" in result.stderr or "No such object" in result.stderr:
            raise Missing(f"image {IMAGE} not found: run `lab image build` first")
        line = (result.stderr.strip().splitlines() or ["no answer"])[0]
        raise Missing(f"docker cannot inspect {IMAGE}: {line}")


def bench(sizes: tuple[int, ...], repeat: int, samples: Samples,
          extra: dict[int, set[int]], load: list[float]) -> None:
    """Fill ``samples`` as it goes, so what was measured survives a failure or Ctrl-C."""
    name = BenchLab.unique_name()
    baseline = Baseline(name)  # before the lab: it may fail, and there is nothing to undo yet
    lab = BenchLab(name)
    try:
        print(f"lab {lab.name} in {lab.dir}; image {IMAGE}", file=sys.stderr)
        lab.init()
        lab.set_count(1)
        lab.up()  # warm-up, not counted: makes the lab's key, warms caches
        lab.destroy()
        load.append(os.getloadavg()[0])
        for n in sizes:
            lab.set_count(n)
            for i in range(1, repeat + 1):
                up, _ = lab.up()
                made = lab.containers()
                if made != n:
                    extra.setdefault(n, set()).add(made)
                down, _ = lab.destroy()
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


def cleanup(*steps: Callable[[], None]) -> None:
    """Run the clean-up steps with Ctrl-C held off: a second Ctrl-C must not leave containers."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        print("cleaning up", file=sys.stderr)
        for step in steps:
            step()
    finally:
        signal.signal(signal.SIGINT, previous)


def bench_main(name: str, body: Callable[[], None], figures: Callable[[], str | None]) -> int:
    """Run a bench's ``body`` and print its ``figures``, with the exit statuses the bench
    scripts share: 3 for a missing prerequisite, 1 for a failed step, 130 on Ctrl-C (SIGTERM
    too, so clean-up runs). Figures measured before a stop are printed, marked PARTIAL."""

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    status = 0
    try:
        body()
    except Missing as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 3
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; cleaned up", file=sys.stderr)
        status = 130
    text = figures()
    if text:
        if status:
            print("PARTIAL: the run stopped early; figures so far")
        print(text)
    return status


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
