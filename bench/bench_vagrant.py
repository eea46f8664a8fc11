"""Benchmark `lab up` of two Vagrant machines (docker provider) on a warm image.

What it measures, ``--repeat`` times (default 3), in a fresh temporary lab from ``lab init``
with two web servers and no balancer:

* ``lab up (vagrant)``    wall time of ``lab up`` with ``target: vagrant``: Python start-up,
                          machines.json written, one ``vagrant up`` of both machines (Vagrant's
                          docker provider: ``docker run``, waiting for SSH, replacing Vagrant's
                          insecure key), ``vagrant ssh-config``, then each server answering
                          ``systemctl is-system-running`` over SSH as user vagrant.
* ``lab destroy (vagrant)`` wall time of ``lab destroy`` of those machines (``vagrant destroy``
                          and the lab's network).
* ``lab up (docker)``     the same lab with the docker target, for comparison.

The image is warm: ``lab/base:bookworm`` must exist (``lab image build``), and one untimed
``lab up``/``lab destroy`` of each target runs first (the lab's key, Vagrant's first run in a
directory). The issue's target: ``lab up`` of two Vagrant machines <= 30 s (median).

    /work/main/.venv/bin/python bench/bench_vagrant.py [--repeat N]

Everything it makes is labelled ``lab.bench=1`` (through ``LAB_LABELS``) and removed on exit,
also on failure or Ctrl-C: ``lab destroy``, then ``docker rm -f`` of whatever still carries the
label. Exit status: 0 when it ran (whether or not the target is met), 3 when a prerequisite is
missing (vagrant, docker, the image, the lab binary), 1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Shared with bench_up.py (this folder is on sys.path when a bench script runs).
from bench_up import (
    BENCH_LABEL,
    IMAGE,
    LAB,
    BenchError,
    Missing,
    bench_main,
    cleanup,
    remove_labelled,
    run,
    timed,
)
from bench_up import require_prerequisites as require_lab_and_image

TARGET = ("lab up (vagrant)", 30.0)
ORDER = ["lab up (vagrant)", "lab destroy (vagrant)", "lab up (docker)", "lab destroy (docker)"]


class BenchLab:
    """A temporary lab of two web servers; ``lab up``/``lab destroy`` on a given target."""

    def __init__(self) -> None:
        self.name = f"bench-v{os.getpid()}-{secrets.token_hex(2)}"
        self.root = Path(tempfile.mkdtemp(prefix="bench-vagrant-"))
        self.dir = self.root / self.name
        labels = ",".join(filter(None, [os.environ.get("LAB_LABELS", ""), BENCH_LABEL]))
        self.env = os.environ | {"LAB_LABELS": labels, "NO_COLOR": "1", "TERM": "dumb",
                                 "VAGRANT_CHECKPOINT_DISABLE": "1"}
        self.initialized = False

    def init(self) -> None:
        result = run([str(LAB), "init", str(self.dir), "--name", self.name], env=self.env)
        if result.returncode != 0:
            raise BenchError(f"`lab init` failed: {result.stderr.strip()}")
        self.initialized = True
        config = self.dir / "lab.yml"
        text = config.read_text()
        # Two web servers and nothing else: the balancer would be a third machine.
        text = re.sub(r"(?ms)^balancer:\n(?:[ \t]+.*\n)+", "", text)
        text, counted = re.subn(r"(?m)^(\s+count:\s*)\d+", r"\g<1>2", text)
        if counted != 1 or "balancer:" in text:
            raise BenchError(f"unexpected example lab.yml in {config}")
        config.write_text(text)

    def timed(self, *args: str) -> float:
        return timed([str(LAB), *args], self.dir, self.env)[0]

    def set_target(self, target: str) -> None:
        """lab.yml's ``target:``, which every command reads (``--target`` is `lab up`'s only)."""
        config = self.dir / "lab.yml"
        text, changed = re.subn(r"(?m)^target:\s*\w+", f"target: {target}", config.read_text())
        if changed != 1:
            raise BenchError(f"expected one `target:` in {config}, found {changed}")
        config.write_text(text)

    def cycle(self, target: str) -> tuple[float, float]:
        """(lab up, lab destroy) seconds on ``target``."""
        self.set_target(target)
        return self.timed("up"), self.timed("destroy")

    def cleanup(self) -> None:
        if self.initialized:
            for target in ("vagrant", "docker"):
                try:
                    self.set_target(target)
                    run([str(LAB), "destroy"], cwd=self.dir, env=self.env, timeout=180)
                except (subprocess.TimeoutExpired, BenchError) as exc:
                    print(f"warning: lab destroy during cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)


def require_prerequisites() -> None:
    require_lab_and_image()
    if shutil.which("vagrant") is None:
        raise Missing("vagrant not found (Debian: apt-get install --no-install-recommends "
                      "vagrant)")


Samples = dict[str, list[float]]


def report(samples: Samples, load: list[float]) -> str:
    lines = ["seconds, wall clock; verdict on the median",
             f"{'what':<22} {'runs':>4} {'median':>7} {'min':>7} {'max':>7}  target"]
    for what in ORDER:
        values = samples.get(what)
        if not values:
            continue
        median = statistics.median(values)
        verdict = ""
        if what == TARGET[0]:
            verdict = f"<= {TARGET[1]:g} s  {'ok' if median <= TARGET[1] else 'OVER'}"
        lines.append(f"{what:<22} {len(values):>4} {median:7.2f} {min(values):7.2f} "
                     f"{max(values):7.2f}  {verdict}".rstrip())
    if load:
        lines.append(f"machine: {os.cpu_count()} CPUs; 1-min load average {load[0]:.1f} at "
                     f"start, {max(load):.1f} at most (other work skews figures)")
    return "\n".join(lines)


def bench(repeat: int, samples: Samples, load: list[float]) -> None:
    lab = BenchLab()
    try:
        print(f"lab {lab.name} in {lab.dir}; image {IMAGE}", file=sys.stderr)
        lab.init()
        load.append(os.getloadavg()[0])
        for target in ("vagrant", "docker"):  # warm-up, not counted
            lab.cycle(target)
        for i in range(1, repeat + 1):
            for target in ("vagrant", "docker"):
                up, down = lab.cycle(target)
                samples.setdefault(f"lab up ({target})", []).append(up)
                samples.setdefault(f"lab destroy ({target})", []).append(down)
                load.append(os.getloadavg()[0])
                print(f"run {i}/{repeat} {target}: lab up {up:.2f} s, destroy {down:.2f} s; "
                      f"load {load[-1]:.1f}", file=sys.stderr)
    finally:
        cleanup(lab.cleanup, remove_labelled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    samples: Samples = {}
    load: list[float] = []

    def body() -> None:
        require_prerequisites()
        bench(args.repeat, samples, load)

    return bench_main("bench_vagrant", body, lambda: report(samples, load) if samples else None)


if __name__ == "__main__":
    sys.exit(main())
