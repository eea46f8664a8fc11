"""What the bench scripts share: running and timing commands, a throwaway lab made by
`lab init` and varied through lab's own ``edit_lab_yml``, clean-up by label, exit statuses.

The scripts run with the lab venv's python (this folder is on sys.path as the script's own);
tests/ is added here for ``loadgen``, the independent load client the release test uses too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
try:
    from lab.config import DEFAULT_IMAGE as IMAGE
    from lab.config import LabConfig
    from lab.scaffold import edit_lab_yml
except ImportError as exc:
    print(f"lab is not importable from {sys.executable} ({exc})", file=sys.stderr)
    sys.exit(3)  # the benches' exit status for a missing prerequisite

# One value per bench process: several engineers bench on one engine, and a clean-up by
# label must remove this run's containers only, never another bench's while it runs.
BENCH_LABEL = f"lab.bench={os.getpid()}"
TIMEOUT = 300.0  # seconds any single measured step may take before the bench gives up
LAB = Path(sys.executable).parent / "lab"


class BenchError(Exception):
    """A step failed; the message is one line for the user."""


class Missing(BenchError):
    """A prerequisite is missing (exit 3)."""


# running commands --------------------------------------------------------------------------


def run(argv: list[str], timeout: float | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, output captured; a missing binary becomes :class:`Missing`."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False, timeout=timeout, **kwargs)
    except FileNotFoundError:
        raise Missing(f"{argv[0]} not found") from None


def docker(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], timeout=timeout)


def run_mode() -> Any:
    """Lab's run mode on this engine (lab/docker/runmode.py), so that the baselines start
    containers exactly as lab does."""
    from lab.docker.engine import docker_client, engine_facts
    from lab.docker.runmode import choose

    client = docker_client()
    try:
        return choose(engine_facts(client))
    finally:
        client.close()


# the lab -----------------------------------------------------------------------------------


class BenchLab:
    """A lab from `lab init` in a temporary directory, with a unique name; its servers carry
    ``lab.bench=<pid>`` (through ``LAB_LABELS``) so that clean-up finds them whatever happens."""

    def __init__(self, prefix: str = "bench", **env: str) -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.root = Path(tempfile.mkdtemp(prefix="bench-"))
        self.dir = self.root / self.name
        labels = ",".join(filter(None, [os.environ.get("LAB_LABELS", ""), BENCH_LABEL]))
        self.env = os.environ | {"LAB_LABELS": labels, "NO_COLOR": "1", "TERM": "dumb", **env}
        self.initialized = False

    def init(self, **changes: Any) -> LabConfig:
        """`lab init`, then lab.yml changed as ``edit_lab_yml`` takes them."""
        result = run([str(LAB), "init", str(self.dir), "--name", self.name], env=self.env)
        if result.returncode != 0:
            raise BenchError(f"`lab init` failed: {result.stderr.strip()}")
        self.initialized = True
        return self.edit(**changes)

    def edit(self, **changes: Any) -> LabConfig:
        return edit_lab_yml(self.dir / "lab.yml", **changes)

    def timed(self, *args: str) -> float:
        """Wall time of one `lab` command that must succeed."""
        started = time.perf_counter()
        try:
            result = run([str(LAB), *args], cwd=self.dir, env=self.env, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`lab {args[-1]}` took over {TIMEOUT:.0f} s") from None
        took = time.perf_counter() - started
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
            raise BenchError(f"`lab {args[-1]}` failed (exit {result.returncode}): {detail[0]}")
        return took

    def cleanup(self, targets: tuple[str, ...] = ()) -> None:
        """`lab destroy` (on each of ``targets`` in turn, if given), then the directory."""
        for target in targets or (None,):
            if not self.initialized:
                break
            try:
                if target:
                    self.edit(target=target)
                result = run([str(LAB), "destroy"], cwd=self.dir, env=self.env, timeout=180)
                if result.returncode != 0:
                    print(f"warning: lab destroy during cleanup: exit {result.returncode}; "
                          "removing by label instead", file=sys.stderr)
            except (subprocess.TimeoutExpired, BenchError) as exc:
                print(f"warning: lab destroy during cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)


def remove_labelled() -> None:
    """docker rm -f every container, and remove every network, labelled with this run's
    :data:`BENCH_LABEL`."""
    for kind, remove in (("container", ["rm", "-f"]), ("network", ["rm"])):
        listed = docker(kind, "ls", "-aq" if kind == "container" else "-q",
                        "--filter", f"label={BENCH_LABEL}", timeout=60)
        ids = listed.stdout.split()
        if ids:
            result = docker(*([kind] if kind == "network" else []), *remove, *ids, timeout=120)
            if result.returncode != 0:
                print(f"warning: cleanup of {kind}s: {result.stderr.strip()}", file=sys.stderr)


def require_prerequisites() -> None:
    """The lab binary, an engine that answers, the base image."""
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


# report and exit ---------------------------------------------------------------------------


def stats_row(what: str, values: list[float], limit: float | None, width: int,
              n: str = "") -> str:
    """One table line: runs, median, min, max, and the verdict of the median on ``limit``."""
    median = statistics.median(values)
    verdict = "" if limit is None else f"<= {limit:g} s  {'ok' if median <= limit else 'OVER'}"
    return (f"{what:<{width}} {n}{len(values):>4} {median:7.2f} {min(values):7.2f} "
            f"{max(values):7.2f}  {verdict}").rstrip()


def load_note(load: list[float]) -> list[str]:
    """The machine's load while the bench ran: other work skews the figures."""
    if not load:
        return []
    return [f"machine: {os.cpu_count()} CPUs; 1-min load average {load[0]:.1f} at start, "
            f"{load[-1]:.1f} at end, {max(load):.1f} at most (other work skews figures)"]


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
