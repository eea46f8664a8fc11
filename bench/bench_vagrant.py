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

Everything it makes is labelled ``lab.bench=<pid>`` (through ``LAB_LABELS``) and removed on exit,
also on failure or Ctrl-C: ``lab destroy``, then ``docker rm -f`` of whatever still carries the
label. Exit status: 0 when it ran (whether or not the target is met), 3 when a prerequisite is
missing (vagrant, docker, the image, the lab binary), 1 when a command failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from benchlib import (
    IMAGE,
    BenchLab,
    Missing,
    bench_main,
    cleanup,
    load_note,
    remove_labelled,
    stats_row,
)
from benchlib import require_prerequisites as require_lab_and_image

TARGET = ("lab up (vagrant)", 30.0)
ORDER = ["lab up (vagrant)", "lab destroy (vagrant)", "lab up (docker)", "lab destroy (docker)"]
TARGETS = ("vagrant", "docker")


def cycle(lab: BenchLab, target: str) -> tuple[float, float]:
    """(lab up, lab destroy) seconds on ``target``: lab.yml's ``target:``, which every
    command reads (``--target`` is `lab up`'s only)."""
    lab.edit(target=target)
    return lab.timed("up"), lab.timed("destroy")


def require_prerequisites() -> None:
    require_lab_and_image()
    if shutil.which("vagrant") is None:
        raise Missing("vagrant not found (Debian: apt-get install --no-install-recommends "
                      "vagrant)")


Samples = dict[str, list[float]]


def report(samples: Samples, load: list[float]) -> str:
    lines = ["seconds, wall clock; verdict on the median",
             f"{'what':<22} {'runs':>4} {'median':>7} {'min':>7} {'max':>7}  target"]
    lines += [stats_row(what, samples[what], TARGET[1] if what == TARGET[0] else None, 22)
              for what in ORDER if samples.get(what)]
    return "\n".join(lines + load_note(load))


def bench(repeat: int, samples: Samples, load: list[float]) -> None:
    lab = BenchLab("bench-v", VAGRANT_CHECKPOINT_DISABLE="1")
    try:
        print(f"lab {lab.name} in {lab.dir}; image {IMAGE}", file=sys.stderr)
        # Two web servers and nothing else: the balancer would be a third machine.
        lab.init(count=2, balancer=False)
        load.append(os.getloadavg()[0])
        for target in TARGETS:  # warm-up, not counted
            cycle(lab, target)
        for i in range(1, repeat + 1):
            for target in TARGETS:
                up, down = cycle(lab, target)
                samples.setdefault(f"lab up ({target})", []).append(up)
                samples.setdefault(f"lab destroy ({target})", []).append(down)
                load.append(os.getloadavg()[0])
                print(f"run {i}/{repeat} {target}: lab up {up:.2f} s, destroy {down:.2f} s; "
                      f"load {load[-1]:.1f}", file=sys.stderr)
    finally:
        cleanup(lambda: lab.cleanup(TARGETS), remove_labelled)


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
