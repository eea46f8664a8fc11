"""Benchmark a release: provisioned vs. from a baked image, under a steady load.

For each round, in a throwaway lab (2 web servers behind HAProxy, `lab init`'s example):
  1. `lab release --set version=vN`      new servers provisioned by Ansible
  2. `lab bake`                          snapshot of a verified new server
  3. `lab release --from-image TAG`      new servers started from that image, no provisioning
While each release runs, an independent client (not lab's probe) sends about --rate requests/s to
the balancer and counts failed requests and latency.

Prints each release's wall time, failed requests and p99 latency, the medians and the ratio
baked / provisioned (the target is at most 1/3).

    .venv/bin/python bench/bench_release.py [--rounds 2] [--rate 100] [--step-seconds 1]

Needs a Docker engine and lab/base:bookworm (`make setup`). Cleans up on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LAB = [sys.executable, "-m", "lab"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Load:
    """``rate`` requests/s to 127.0.0.1:port from threads; records status and latency."""

    def __init__(self, port: int, rate: float, threads: int = 8) -> None:
        self.port, self.interval = port, threads / rate
        self.samples: list[tuple[int, float]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def run(self) -> None:
        deadline = time.monotonic() + 900
        while not self.stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/", headers={"Connection": "close"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0
            finally:
                connection.close()
            took = time.monotonic() - started
            with self.lock:
                self.samples.append((status, took))
            self.stop.wait(max(0.0, self.interval - took))

    def figures(self) -> dict[str, float]:
        latencies = sorted(t for _, t in self.samples)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
        return {"requests": len(self.samples),
                "failed": sum(s != 200 for s, _ in self.samples), "p99_ms": 1000 * p99}


def lab(directory: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run([*LAB, *args], cwd=directory, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, check=False)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-release-"))
    directory = workdir / "lab"
    name = f"bench-rel-{int(time.time()) % 100000}"
    lab(workdir, "init", str(directory), "--name", name)
    port = free_port()
    text = (directory / "lab.yml").read_text()
    text = text.replace("listen: 8080", f"listen: {port}")
    text = text.replace("step_seconds: 5 ", f"step_seconds: {options.step_seconds} ")
    (directory / "lab.yml").write_text(text)
    rows: list[tuple[str, dict]] = []
    try:
        print(f"lab {name}: up and provision v1 ...", flush=True)
        lab(directory, "up")
        lab(directory, "provision")
        for round_ in range(options.rounds):
            version = f"v{round_ + 2}"
            provisioned = timed_release(directory, port, options.rate, "--set",
                                        f"version={version}")
            rows.append(("provisioned", provisioned))
            print(f"  provisioned {version}: {provisioned['seconds']:.1f} s", flush=True)
            lab(directory, "verify")
            tag = lab(directory, "bake").strip()
            baked = timed_release(directory, port, options.rate, "--from-image", tag)
            rows.append(("baked", baked))
            print(f"  from {tag}: {baked['seconds']:.1f} s", flush=True)
    finally:
        lab(directory, "destroy", "--images", check=False)

    print(f"\n{'release':<12} {'seconds':>8} {'requests':>9} {'failed':>7} {'p99 ms':>7}  phases")
    for kind, row in rows:
        phases = " ".join(f"{k}={v:.1f}" for k, v in row["phases"].items())
        print(f"{kind:<12} {row['seconds']:>8.1f} {row['requests']:>9} {row['failed']:>7} "
              f"{row['p99_ms']:>7.1f}  {phases}")
    provisioned_median = statistics.median(r["seconds"] for k, r in rows if k == "provisioned")
    baked_median = statistics.median(r["seconds"] for k, r in rows if k == "baked")
    ratio = baked_median / provisioned_median
    print(f"\nmedian provisioned {provisioned_median:.1f} s, baked {baked_median:.1f} s, "
          f"ratio {ratio:.2f} (target <= 0.33: {'ok' if ratio <= 1 / 3 else 'over'})")
    print(f"failed requests in all releases: {sum(r['failed'] for _, r in rows)} "
          f"of {sum(r['requests'] for _, r in rows)}")


if __name__ == "__main__":
    main()
