"""Benchmark a release: provisioned vs. from a baked image, under a steady load.

For each lab, in a throwaway copy (2 servers behind HAProxy), each round does:
  1. `lab release --set version=vN`      new servers provisioned by Ansible
  2. `lab bake`                          snapshot of a verified new server
  3. `lab release --from-image TAG`      new servers started from that image, no provisioning
While each release runs, an independent client (not lab's probe) sends about --rate requests/s to
the balancer and counts failed requests and latency.

Two labs, because what baking saves is the role's provisioning time:
  example   `lab init`'s role: nginx and two files (about 9 s to provision two servers)
  app       bench/labs/app: a Flask app under gunicorn and systemd behind nginx, facts gathered
            (about 20 s): closer to what a team's role does, and still small

Prints each release's wall time, failed requests, p99 latency and phases; per lab the medians and
the ratio baked / provisioned (target: at most 1/3), with and without the canary holds. The holds
(steps x --step-seconds) are policy, the same wait in both kinds of release.

    .venv/bin/python bench/bench_release.py [--lab example|app ...] [--rounds 2] [--rate 100]
                                            [--step-seconds 1]

Needs a Docker engine and lab/base:bookworm (`make setup`). Cleans up on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import edit_lab_yml, run
from loadgen import Load  # the independent client tests/integration/test_release.py uses

from lab.access.ports import free_local_port

LAB = [sys.executable, "-m", "lab"]
APP_LAB = Path(__file__).parent / "labs" / "app"


def lab(directory: Path, *args: str, check: bool = True) -> str:
    result = run([*LAB, *args], cwd=directory)
    if check and result.returncode != 0:
        sys.exit(f"lab {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def timed_release(directory: Path, port: int, rate: float, *args: str) -> dict[str, float]:
    with Load(port, rate) as load:
        started = time.monotonic()
        lab(directory, "release", *args)
        seconds = time.monotonic() - started
    history = json.loads(lab(directory, "history", "--json"))
    return {"seconds": seconds, **load.figures(), "phases": history[-1]["phases"]}


def make_lab(kind: str, workdir: Path, step_seconds: float) -> tuple[Path, int, int]:
    """A throwaway copy of the lab; returns its directory, balancer port and canary steps."""
    directory = workdir / kind
    name = f"bench-{kind}-{int(time.time()) % 100000}"
    if kind == "example":
        lab(workdir, "init", str(directory), "--name", name)
    else:
        shutil.copytree(APP_LAB, directory)
    port = free_local_port()
    config = edit_lab_yml(directory / "lab.yml", name=name, listen=port,
                          step_seconds=step_seconds)
    return directory, port, len(config.release.steps)


def bench_lab(kind: str, workdir: Path, options: argparse.Namespace) -> list[tuple[str, dict]]:
    directory, port, steps = make_lab(kind, workdir, options.step_seconds)
    rows: list[tuple[str, dict]] = []
    try:
        print(f"{kind}: up and provision v1 ...", flush=True)
        lab(directory, "up")
        lab(directory, "provision")
        for round_ in range(options.rounds):
            version = f"v{round_ + 2}"
            provisioned = timed_release(directory, port, options.rate, "--set",
                                        f"version={version}")
            rows.append(("provisioned", provisioned | {"hold": steps * options.step_seconds}))
            print(f"  provisioned {version}: {provisioned['seconds']:.1f} s", flush=True)
            lab(directory, "verify")
            tag = lab(directory, "bake").strip()
            baked = timed_release(directory, port, options.rate, "--from-image", tag)
            rows.append(("baked", baked | {"hold": steps * options.step_seconds}))
            print(f"  from {tag}: {baked['seconds']:.1f} s", flush=True)
    finally:
        lab(directory, "destroy", "--images", check=False)
    return rows


def report(kind: str, rows: list[tuple[str, dict]]) -> bool:
    """Print one lab's table and ratios; True when the ratio meets the target."""
    print(f"\n{kind:<8} {'release':<12} {'seconds':>8} {'requests':>9} {'failed':>7} "
          f"{'p99 ms':>7}  phases")
    for release, row in rows:
        phases = " ".join(f"{k}={v:.1f}" for k, v in row["phases"].items())
        print(f"{kind:<8} {release:<12} {row['seconds']:>8.1f} {row['requests']:>9} "
              f"{row['failed']:>7} {row['p99_ms']:>7.1f}  {phases}")
    provisioned = statistics.median(r["seconds"] for k, r in rows if k == "provisioned")
    baked = statistics.median(r["seconds"] for k, r in rows if k == "baked")
    hold = rows[0][1]["hold"]
    ratio, work_ratio = baked / provisioned, (baked - hold) / (provisioned - hold)
    print(f"{kind}: median provisioned {provisioned:.1f} s, baked {baked:.1f} s, ratio "
          f"{ratio:.2f} (target <= 0.33: {'ok' if ratio <= 1 / 3 else 'over'}); without the "
          f"{hold:.0f} s of canary holds: {provisioned - hold:.1f} s vs {baked - hold:.1f} s, "
          f"ratio {work_ratio:.2f}")
    print(f"{kind}: failed requests in all releases: {sum(r['failed'] for _, r in rows)} "
          f"of {sum(r['requests'] for _, r in rows)}")
    return ratio <= 1 / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", choices=["example", "app"],
                        help="which lab (repeatable; default: both)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-release-"))
    try:
        results = {kind: bench_lab(kind, workdir, options)
                   for kind in options.lab or ["example", "app"]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for kind, rows in results.items():
        report(kind, rows)


if __name__ == "__main__":
    main()
