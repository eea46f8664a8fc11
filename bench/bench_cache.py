"""Benchmark lab's package cache: `lab provision` of the example lab's two web servers, fresh
each time, with no cache, with an empty (cold) cache, and with a warm one.

Each round, in that order, on a new lab (`lab init`, 2 web servers, no balancer):
  no cache    the servers fetch from Debian's mirror, as without lab's cache
  cold cache  a cache just started, empty: it fetches from the mirror and keeps the files
  warm cache  the same cache, now holding what the example installs
`lab up` is timed too (with a cache running, it joins the lab's network and gives each server
its apt setting). With ``--demo``, `lab demo` end to end (its own throwaway lab: v1 up, v2
released under load, broken v3 rolled back) is timed after the no-cache and warm-cache runs.
The bench runs its own cache (``LAB_CACHE=bench-cache-<pid>``), never the user's, and
removes it (container and volume) at the end, also on failure or Ctrl-C.

    .venv/bin/python bench/bench_cache.py [--rounds 1] [--demo]

Needs a Docker engine and lab/base:bookworm (`make setup`), and Debian's mirror.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from benchlib import (
    BenchLab,
    bench_main,
    cleanup,
    load_note,
    remove_labelled,
    require_prerequisites,
)

from lab.docker.cache import PackageCache
from lab.docker.engine import docker_client

CACHE = f"bench-cache-{os.getpid()}"
KINDS = ("no cache", "cold cache", "warm cache")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--demo", action="store_true", help="time `lab demo` too")
    args = parser.parse_args()
    os.environ["LAB_CACHE"] = CACHE  # every lab command below, and PackageCache here
    figures: dict[str, dict[str, list[float]]] = {
        k: {"up": [], "provision": [], "demo": []} for k in KINDS}
    load: list[float] = []

    def body() -> None:
        require_prerequisites()
        for _ in range(args.rounds):
            for kind in KINDS:
                cache = PackageCache(client := docker_client(), CACHE)
                try:
                    if kind == "no cache":
                        cache.clear()
                    elif kind == "cold cache":
                        cache.clear()
                        cache.start()
                finally:
                    client.close()
                load.append(os.getloadavg()[0])
                up, provision = one_lab()
                figures[kind]["up"].append(up)
                figures[kind]["provision"].append(provision)
                print(f"{kind}: lab up {up:.1f} s, lab provision {provision:.1f} s",
                      file=sys.stderr)
                if args.demo and kind != "cold cache":
                    figures[kind]["demo"].append(demo := one_demo())
                    print(f"{kind}: lab demo {demo:.1f} s", file=sys.stderr)

    def report() -> str | None:
        if not figures["no cache"]["provision"]:
            return None
        lines = [f"{'two fresh example servers':<28} {'lab up':>8} {'provision':>10} "
                 f"{'lab demo':>9}  (median s)"]
        for kind in KINDS:
            if figures[kind]["provision"]:
                demo = (f"{statistics.median(figures[kind]['demo']):9.1f}"
                        if figures[kind]["demo"] else f"{'-':>9}")
                lines.append(f"{kind:<28} {statistics.median(figures[kind]['up']):8.1f} "
                             f"{statistics.median(figures[kind]['provision']):10.1f} {demo}")
        return "\n".join(lines + load_note(load))

    try:
        return bench_main("bench_cache", body, report)
    finally:
        cleanup(remove_labelled, clear_cache)


def one_lab() -> tuple[float, float]:
    lab = BenchLab("cache")
    try:
        lab.init(balancer=False, count=2)
        up = lab.timed("up")
        return up, lab.timed("provision")
    finally:
        lab.cleanup()


def one_demo() -> float:
    """`lab demo` end to end, in a directory of its own (its release pictures land there)."""
    lab = BenchLab("demo")
    try:
        lab.dir.mkdir(parents=True)
        return lab.timed("demo", "--reports", str(lab.dir))
    finally:
        lab.cleanup()


def clear_cache() -> None:
    client = docker_client()
    try:
        PackageCache(client, CACHE).clear()
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
