"""Benchmark `lab test` against `molecule test` doing the same work.

The same work on both sides, taken from a fresh ``lab init`` each round:

* the same playbook: Molecule's ``converge.yml`` imports a copy of the example's
  ``playbooks/web.yml`` (apt install nginx, a page, a health file, nginx started), run
  against a ``web`` group, as lab runs it;
* the same image, ``lab/base:bookworm``, started as lab starts it on this engine (its run
  mode, lab/docker/runmode.py: tmpfs /run, /run/lock, /tmp; CAP_SYS_ADMIN; a private cgroup
  namespace made writable; stop signal SIGRTMIN+3; a terminal; not privileged), never pulled
  (Molecule: ``pre_build_image: true``, ``pull: false``);
* the same two servers: the example's role ``web`` with ``count: 2``; Molecule gets two
  platforms. The example's ``balancer:`` section is taken out of the bench's lab.yml, because
  Molecule would have no balancer to build (and its fixed 127.0.0.1 port collides with other
  labs on this machine);
* the same tests: a copy of ``tests/test_web.py`` is the scenario's testinfra verifier.

Each tool works its normal way: lab over SSH with its own key, ansible-runner and testinfra's
SSH backend; Molecule with the docker driver of molecule-plugins, ``ansible_connection:
community.docker.docker`` and testinfra's ansible backend. ``molecule test`` runs its default
sequence (dependency, cleanup, destroy, syntax, create, prepare, converge, idempotence,
side_effect, verify, cleanup, destroy); its dependency step is disabled and its prerun is off,
so it never asks Ansible Galaxy for anything (the driver's collections come from the ``ansible``
package from PyPI, which bundles community.docker and ansible.posix), and
``ANSIBLE_GALAXY_SERVER`` points at a closed 127.0.0.1 port so that any attempt fails loudly.

Molecule lives in its own virtualenv, ``bench/.venv-molecule`` (git-ignored), made on the first
run with the pinned versions in ``MOLECULE_REQUIREMENTS``; lab is the one of the venv running
this script.

Rounds alternate: ``lab test`` with a cold package cache, ``lab test`` with a warm one (each in
a fresh lab directory), then ``molecule test`` in a fresh scenario directory; each is timed
wall-clock as a whole process. lab uses the bench's own package cache
(``LAB_CACHE=mb-<run id>-cache``, see lab/docker/cache.py): cleared and started empty before the
cold run, so its servers fetch through it from the mirror; holding what the cold run fetched for the
warm run. Molecule runs with no cache, as its users run it. Every run must exit 0 and run all
the tests (5 tests x 2 servers) in every round, or the bench stops and exits 1. It prints each
run with the load average, each median, lab's per-phase medians (from `lab test --json`),
Molecule's per-action medians (from when each action starts in its output), and the ratio of
the medians, lab over Molecule, cold and warm, against the target (<= 0.33, issue 13).

    /work/main/.venv/bin/python bench/bench_molecule.py              # 3 rounds
    /work/main/.venv/bin/python bench/bench_molecule.py --rounds 5

Everything it makes carries the label ``lab.bench.molecule=<run id>`` (lab's servers through
``LAB_LABELS``) and a name starting with ``mb-<run id>``. On exit, also on failure or Ctrl-C, it
runs ``molecule destroy`` in every scenario and ``lab destroy`` for every lab (and its ``-test``
lab), then removes any container or network left with that label or name, and the bench's
package cache (container and volume). Exit status: 0 when every run passed every round
(whether or not the target is met), 1 when a run failed, 3 when a prerequisite is missing,
130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchlib import (
    IMAGE,
    LAB,
    BenchError,
    Missing,
    bench_main,
    docker,
    edit_lab_yml,
    require_prerequisites,
    run,
    run_mode,
)

from lab.config import load_config
from lab.docker.cache import PackageCache
from lab.docker.engine import docker_client
from lab.errors import LabError
from lab.harness import test_lab_name

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-molecule"
VENV_BIN = VENV / "bin"
VENV_MARKER = VENV / "bench-requirements.txt"
# Versions that work together on Python 3.11 (checked): molecule 26 still ships the testinfra
# verifier; ansible 12 bundles community.docker 4.x and ansible.posix 2.x and needs
# ansible-core 2.19, the newest that supports Python 3.11 (2.20 needs 3.12).
MOLECULE_REQUIREMENTS = (
    "molecule==26.10.0",
    "molecule-plugins[docker]==26.10.12",
    "ansible-core>=2.19,<2.20",
    "ansible==12.3.0",
    "pytest-testinfra==10.2.2",
)
LABEL = "lab.bench.molecule"
TARGET_RATIO = 0.33  # issue 13: lab test <= 0.33 x molecule test, cold and warm cache
CACHE_KINDS = ("cold", "warm")  # lab's package cache before each lab run of a round
TIMEOUT = 900.0  # seconds one `lab test` or `molecule test` may take
CLEANUP_TIMEOUT = 300.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
LAB_ANSIBLE = ("provision", "idempotence")  # lab's phases that are ansible-playbook runs
MOLECULE_ANSIBLE = ("converge", "idempotence")
CLOSED_PORT_URL = "http://127.0.0.1:9/"  # where a stray ansible-galaxy call goes to fail


# running commands --------------------------------------------------------------------------


@dataclass
class Timed:
    """One command run to completion: exit status, wall time, its output lines with times."""

    returncode: int
    seconds: float
    lines: list[tuple[float, str]]  # (seconds since start, line without colour codes)
    log: Path
    timed_out: bool = False

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def tail(self, count: int = 30) -> str:
        return "\n".join(f"    {line}" for _, line in self.lines[-count:])


def run_timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path,
              timeout: float | None = None) -> Timed:
    """Run a command in its own process group, streaming its output (stdout and stderr) to
    ``log`` and remembering when each line came; killed (its group only) after ``timeout``."""
    timeout = TIMEOUT if timeout is None else timeout
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
    except FileNotFoundError:
        raise Missing(f"{argv[0]} not found") from None

    def pump() -> None:
        assert proc.stdout is not None
        with log.open("w") as out:
            for raw in proc.stdout:
                out.write(raw)
                lines.append((time.perf_counter() - started, ANSI.sub("", raw.rstrip("\n"))))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc)
    except BaseException:  # Ctrl-C or SIGTERM: do not leave the tool running
        kill_group(proc)
        raise
    seconds = time.perf_counter() - started
    reader.join(timeout=10)
    return Timed(proc.returncode, seconds, lines, log, timed_out)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """Stop the process group this script started for ``proc`` (and nothing else)."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


# Molecule's virtualenv ---------------------------------------------------------------------


def ensure_molecule_venv() -> None:
    """Make bench/.venv-molecule with MOLECULE_REQUIREMENTS unless it is there already."""
    wanted = "\n".join(MOLECULE_REQUIREMENTS) + "\n"
    if ((VENV_BIN / "molecule").exists() and VENV_MARKER.exists()
            and VENV_MARKER.read_text() == wanted):
        return
    print(f"making {VENV.relative_to(BENCH_DIR.parent)} (once): "
          f"pip install {' '.join(MOLECULE_REQUIREMENTS)}", flush=True)
    if not (VENV_BIN / "python").exists():
        made = run([sys.executable, "-m", "venv", str(VENV)], timeout=300)
        if made.returncode != 0:
            raise Missing(f"python -m venv {VENV} failed: {made.stderr.strip()[-400:]}")
    pip = run([str(VENV_BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check",
               "-q", *MOLECULE_REQUIREMENTS], timeout=1800)
    if pip.returncode != 0:
        tail = "\n".join((pip.stderr or pip.stdout).strip().splitlines()[-15:])
        raise Missing(f"pip install into {VENV} failed:\n{tail}")
    VENV_MARKER.write_text(wanted)


def molecule_versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, pathlib, sys\n"
        "out = {}\n"
        "for name in ('molecule', 'molecule-plugins', 'ansible-core', 'ansible',"
        " 'ansible-compat', 'pytest-testinfra', 'pytest'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: out[name] = '-'\n"
        "import ansible_collections\n"
        "for coll in ('community/docker', 'ansible/posix'):\n"
        "    for base in ansible_collections.__path__:\n"
        "        manifest = pathlib.Path(base, coll, 'MANIFEST.json')\n"
        "        if manifest.exists():\n"
        "            info = json.loads(manifest.read_text())['collection_info']\n"
        "            out[coll.replace('/', '.')] = info['version']\n"
        "print(json.dumps(out))\n"
    )
    result = run([str(VENV_BIN / "python"), "-c", code])
    try:
        return dict(json.loads(result.stdout))
    except json.JSONDecodeError:
        return {"molecule venv": f"unreadable ({result.stderr.strip()[-200:]})"}


def lab_versions() -> dict[str, str]:
    out = {}
    for name in ("lab", "ansible-core", "ansible-runner", "pytest-testinfra", "pytest"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


# the work, from `lab init` -----------------------------------------------------------------


@dataclass
class Work:
    """What a `lab init` example asks for, read from its files."""

    group: str  # the role's name, which is its inventory group
    count: int
    playbook: Path
    tests: list[Path]
    tests_per_server: int

    @property
    def expected_passed(self) -> int:
        return self.tests_per_server * self.count


def lab_init(directory: Path, name: str, env: dict[str, str]) -> Work:
    """`lab init` a fresh lab, drop its balancer, and say what work it describes."""
    result = run([str(LAB), "init", str(directory), "--name", name], env=env, timeout=120)
    if result.returncode != 0:
        raise BenchError(f"`lab init` failed: {(result.stderr or result.stdout).strip()}")
    config = edit_lab_yml(directory / "lab.yml", balancer=False)
    if len(config.servers) != 1:
        raise BenchError(f"expected one role under servers: in {directory / 'lab.yml'}, "
                         f"found {list(config.servers)}")
    (group, role), = config.servers.items()
    if role.playbook is None:
        raise BenchError(f"the role {group} in {directory / 'lab.yml'} has no playbook")
    test_files = [directory / t for t in role.tests]
    per_server = sum(len(re.findall(r"(?m)^def test_", f.read_text())) for f in test_files)
    return Work(group, role.count, directory / role.playbook, test_files, per_server)


def molecule_run_mode() -> str:
    """Lab's run mode on this engine as molecule-plugins' docker platform keys."""
    mode = run_mode()
    # Molecule's schema wants the command as one string (community.docker splits it as a
    # shell would) and expands $NAME in molecule.yml unless written $$NAME.
    command = shlex.join(mode.command).replace("$", "$$")
    keys = {"command": json.dumps(command), "tty": "true", "capabilities": '["SYS_ADMIN"]'}
    if mode.cgroupns:
        keys["cgroupns_mode"] = mode.cgroupns
    if mode.security_opt:
        keys["security_opts"] = json.dumps(list(mode.security_opt))
    if mode.cgroup_bind:
        keys["volumes"] = json.dumps([f"/sys/fs/cgroup:/sys/fs/cgroup:{mode.cgroup_bind}"])
    return "".join(f"    {key}: {value}\n" for key, value in keys.items())


def molecule_scenario(project: Path, work: Work, prefix: str, run_id: str) -> Path:
    """Write molecule/default in ``project``: the lab example's playbook and tests, with
    ``work.count`` docker platforms in group ``work.group``; returns the project dir."""
    scenario = project / "molecule" / "default"
    (scenario / "tests").mkdir(parents=True)
    shutil.copyfile(work.playbook, scenario / work.playbook.name)
    for test in work.tests:
        shutil.copyfile(test, scenario / "tests" / test.name)
    (scenario / "converge.yml").write_text(
        "# The lab example's playbook, unchanged (it targets the group "
        f"{work.group!r}).\n"
        "- name: Converge\n"
        f"  ansible.builtin.import_playbook: {work.playbook.name}\n"
    )
    run_mode = molecule_run_mode()
    platforms = "".join(
        f"""  - name: {prefix}-{work.group}-{n}
    image: {IMAGE}
    pre_build_image: true
    pull: false
    privileged: false
{run_mode}    tmpfs: [/run, /run/lock, /tmp]
    stop_signal: "SIGRTMIN+3"
    groups: [{work.group}]
    labels: {{{LABEL}: "{run_id}"}}
"""
        for n in range(1, work.count + 1)
    )
    (scenario / "molecule.yml").write_text(
        "# Generated by bench/bench_molecule.py from a `lab init` example.\n"
        "prerun: false\n"
        "dependency:\n"
        "  name: galaxy\n"
        "  enabled: false\n"
        "driver:\n"
        "  name: docker\n"
        "platforms:\n"
        f"{platforms}"
        "provisioner:\n"
        "  name: ansible\n"
        "verifier:\n"
        "  name: testinfra\n"
    )
    return project


# measuring ---------------------------------------------------------------------------------


@dataclass
class Result:
    tool: str
    round: int
    seconds: float
    parts: dict[str, float] = field(default_factory=dict)


def check_passed(tool: str, timed: Timed, passed: int, expected: int) -> None:
    if timed.timed_out:
        raise BenchError(f"{tool} took over {TIMEOUT:.0f} s and was stopped; log: {timed.log}"
                         f"\n{timed.tail()}")
    if timed.returncode != 0:
        raise BenchError(f"{tool} failed (exit {timed.returncode}); log: {timed.log}\n"
                         f"{timed.tail()}")
    if passed != expected:
        raise BenchError(f"{tool} exited 0 but {passed} tests passed, not {expected}; "
                         f"log: {timed.log}\n{timed.tail()}")


def lab_report(timed: Timed) -> dict[str, Any]:
    """What `lab test --json` said: its one line of JSON, at the end of the output."""
    for _, line in reversed(timed.lines):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise BenchError(f"lab test --json printed no report; log: {timed.log}\n{timed.tail()}")


def lab_phases(timed: Timed) -> dict[str, float]:
    """Seconds per phase of `lab test`; the rest (Python start-up, reading lab.yml, the key)
    is ``(outside phases)``."""
    phases = {p["name"]: float(p["seconds"]) for p in lab_report(timed)["phases"]}
    if phases:
        phases["(outside phases)"] = max(0.0, timed.seconds - sum(phases.values()))
    return phases


def lab_passed(timed: Timed) -> int:
    return sum(int(p["figures"].get("passed", 0)) for p in lab_report(timed)["phases"])


def molecule_actions(timed: Timed) -> dict[str, float]:
    """Seconds per action of `molecule test`, from when each starts in its output; an action
    that runs twice (cleanup, destroy) is counted as ``destroy#1``, ``destroy#2``."""
    # `INFO default ➜ converge: Executing`, or without colour `[default > converge] Executing`
    starts = [(m.group(1) or m.group(2), at) for at, line in timed.lines
              if (m := re.search(r"(?:➜\s+(\w+):|\[[\w/.-]+ > (\w+)\])\s+Executing\s*$", line))]
    total, seen = Counter(name for name, _ in starts), Counter[str]()
    actions: dict[str, float] = {}
    if starts:
        actions["(start-up)"] = starts[0][1]
        ends = [at for _, at in starts[1:]] + [timed.seconds]
        for (name, at), end in zip(starts, ends, strict=True):
            seen[name] += 1
            actions[f"{name}#{seen[name]}" if total[name] > 1 else name] = end - at
    return actions


def molecule_passed(timed: Timed) -> int:
    """Tests passed in the verify step: pytest's closing line, ``N passed in S s``."""
    return sum(int(m.group(1)) for _, line in timed.lines
               if (m := re.search(r"=+ (\d+) passed\b", line)))


# cleanup -----------------------------------------------------------------------------------


def remove_leftovers(run_id: str, prefix: str) -> list[str]:
    """docker rm -f every container, and remove every network, that this run made: by label
    ``lab.bench.molecule=<run id>`` or by a name starting with ``mb-<run id>``."""
    removed: list[str] = []
    listed = docker("container", "ls", "-a", "--format",
                    f'{{{{.ID}}}} {{{{.Names}}}} {{{{.Label "{LABEL}"}}}}')
    network_format = f'{{{{.ID}}}} {{{{.Name}}}} {{{{.Label "{LABEL}"}}}}'
    ours = [fields[0:2] for fields in (line.split() for line in listed.stdout.splitlines())
            if len(fields) >= 2 and (fields[1].startswith(prefix) or fields[2:] == [run_id])]
    if ours:
        docker("rm", "-f", "-v", *[cid for cid, _ in ours], timeout=CLEANUP_TIMEOUT)
        removed += [name for _, name in ours]
    nets = docker("network", "ls", "--format", network_format)
    for fields in (line.split() for line in nets.stdout.splitlines()):
        if (len(fields) >= 2 and (prefix in fields[1] or fields[2:] == [run_id])
                and docker("network", "rm", fields[0]).returncode == 0):
            removed.append(f"network {fields[1]}")
    return removed


class LoadSampler:
    """The 1-minute load average every few seconds while the bench runs: a noise indicator."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def other_containers(prefix: str) -> int:
    """Running containers on this machine that are not this run's: a noise indicator."""
    listed = docker("container", "ls", "--format", "{{.Names}}")
    return sum(1 for name in listed.stdout.split() if not name.startswith(prefix))


# report ------------------------------------------------------------------------------------


def median_parts(results: list[Result]) -> dict[str, float]:
    names: list[str] = []
    for result in results:
        names += [n for n in result.parts if n not in names]
    return {n: statistics.median([r.parts.get(n, 0.0) for r in results]) for n in names}


def report(labs: dict[str, list[Result]], mols: list[Result],
           versions: dict[str, dict[str, str]], noise: list[str]) -> str:
    out = ["", "results (wall-clock seconds of the whole command)", ""]
    heads = [f"lab test ({kind})" for kind in labs] + ["molecule test"]
    heads += [f"ratio ({kind})" for kind in labs]
    out.append(f"  {'round':<6}" + "".join(f"{h:>18}" for h in heads))
    for n, mol in enumerate(mols):
        row = [labs[kind][n].seconds for kind in labs] + [mol.seconds]
        out.append(f"  {mol.round:<6}" + "".join(f"{v:>18.1f}" for v in row)
                   + "".join(f"{labs[k][n].seconds / mol.seconds:>18.2f}" for k in labs))
    mol_median = statistics.median(r.seconds for r in mols)
    medians = {kind: statistics.median(r.seconds for r in results)
               for kind, results in labs.items()}
    out.append(f"  {'median':<6}" + "".join(f"{medians[k]:>18.1f}" for k in labs)
               + f"{mol_median:>18.1f}"
               + "".join(f"{medians[k] / mol_median:>18.2f}" for k in labs))
    out.append("")
    for kind, median in medians.items():
        ratio = median / mol_median
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        out.append(f"{kind} cache: ratio of medians lab/molecule = {ratio:.2f}; target <= "
                   f"{TARGET_RATIO}: {verdict} (lab would need <= "
                   f"{TARGET_RATIO * mol_median:.1f} s)")
    out.append("")
    out.append("where the time goes, medians (Ansible = the two playbook runs: lab's provision +")
    out.append("idempotence, Molecule's converge + idempotence; the rest = everything else):")
    sides = [(f"lab test ({kind})", results, LAB_ANSIBLE) for kind, results in labs.items()]
    for label, results, keys in [*sides, ("molecule test", mols, MOLECULE_ANSIBLE)]:
        ansible = [sum(r.parts.get(k, 0.0) for k in keys) for r in results]
        rest = [r.seconds - a for r, a in zip(results, ansible, strict=True)]
        out.append(f"  {label:<18} Ansible {statistics.median(ansible):6.1f} s   "
                   f"the rest {statistics.median(rest):6.1f} s")
    out.append("")
    out.append("lab test, median seconds per phase (from `lab test --json`; each a median of its "
               "own,")
    out.append("so they need not add up to the median total), cold and warm cache:")
    parts = {kind: median_parts(results) for kind, results in labs.items()}
    names = list(dict.fromkeys(name for found in parts.values() for name in found))
    out.append(f"  {'':<18}" + "".join(f"{kind:>8}" for kind in labs))
    out += [f"  {name:<18}" + "".join(f"{parts[k].get(name, 0.0):8.1f}" for k in labs)
            for name in names]
    out.append("")
    out.append("molecule test, median seconds per action (from when each starts in its "
               "output):")
    out += [f"  {name:<18} {secs:6.1f}" for name, secs in median_parts(mols).items()]
    out.append("")
    for side, pkgs in versions.items():
        out.append(f"{side}: " + ", ".join(f"{k} {v}" for k, v in pkgs.items()))
    out.append("")
    out += noise
    return "\n".join(out)


def prepare_cache(name: str, kind: str) -> None:
    """The bench's package cache before a lab run: ``cold`` clears it and starts it empty;
    ``warm`` keeps what the cold run put in it (started again, if it stopped)."""
    client = docker_client()
    try:
        cache = PackageCache(client, name)
        if kind == "cold":
            cache.clear()
        cache.start()
    finally:
        client.close()


def clear_cache(name: str) -> None:
    """Remove the bench's package cache, container and volume."""
    client = docker_client()
    try:
        PackageCache(client, name).clear()
    finally:
        client.close()


# main --------------------------------------------------------------------------------------


def bench(rounds: int, root: Path, run_id: str, prefix: str, keep: bool) -> str:
    """Every round, both tools; the report, once all rounds passed."""
    # Same environment for both tools; LAB_LABELS is replaced, not extended, so that no
    # other benchmark's sweep label (lab.bench=<pid>) gets onto this run's containers.
    base_env = os.environ | {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200",
                             "ANSIBLE_NOCOLOR": "1", "PY_COLORS": "0"}
    cache = f"{prefix}-cache"
    lab_env = base_env | {"LAB_LABELS": f"{LABEL}={run_id}", "LAB_CACHE": cache}
    mol_env = {k: v for k, v in base_env.items() if not k.startswith("LAB_")} | {
        "PATH": f"{VENV_BIN}{os.pathsep}{base_env.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV),
        "ANSIBLE_GALAXY_SERVER": CLOSED_PORT_URL,
    }
    labs: dict[str, list[Result]] = {kind: [] for kind in CACHE_KINDS}
    mols: list[Result] = []
    lab_dirs: list[Path] = []
    projects: list[Path] = []
    noise = [f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
             f"other running containers at start: {other_containers(prefix)}"]
    versions = {"lab side": lab_versions(), "molecule side": molecule_versions()}
    docker_version = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    versions["docker"] = {"engine": docker_version, "image": IMAGE}
    failed = False
    sampler = LoadSampler()
    try:
        sampler.start()
        for n in range(1, rounds + 1):
            here = root / f"round-{n}"
            here.mkdir()
            for kind in CACHE_KINDS:
                lab_dir = here / f"lab-{kind}"
                work = lab_init(lab_dir, f"{prefix}-r{n}{kind[0]}", lab_env)
                lab_dirs.append(lab_dir)
                prepare_cache(cache, kind)
                timed = run_timed([str(LAB), "test", "--json"], lab_dir, lab_env,
                                  here / f"lab-test-{kind}.log")
                check_passed(f"lab test ({kind} cache)", timed, lab_passed(timed),
                             work.expected_passed)
                labs[kind].append(Result("lab", n, timed.seconds, lab_phases(timed)))
                print(f"round {n}: lab test ({kind} cache)  {timed.seconds:6.1f} s  ok "
                      f"({work.expected_passed} tests passed; load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)

            project = molecule_scenario(here / "molecule-project", work, f"{prefix}-m{n}", run_id)
            projects.append(project)
            env = mol_env | {"MOLECULE_EPHEMERAL_DIRECTORY": str(here / "molecule-ephemeral")}

            timed = run_timed([str(VENV_BIN / "molecule"), "test"], project, env,
                              here / "molecule-test.log")
            check_passed("molecule test", timed, molecule_passed(timed), work.expected_passed)
            mols.append(Result("molecule", n, timed.seconds, molecule_actions(timed)))
            print(f"round {n}: molecule test          {timed.seconds:6.1f} s  ok "
                  f"({work.expected_passed} tests passed; load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    except BaseException:
        failed = True
        raise
    finally:
        sampler.stop()
        noise.append(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
                     f"other running containers at end: {other_containers(prefix)}")
        if sampler.samples:
            noise.append(f"1-minute load average during the runs ({len(sampler.samples)} samples,"
                         f" {os.cpu_count()} cores): min {min(sampler.samples):.1f}, median "
                         f"{statistics.median(sampler.samples):.1f}, max "
                         f"{max(sampler.samples):.1f}")
        cleanup(projects, lab_dirs, mol_env, lab_env, run_id, prefix)
        try:
            clear_cache(cache)
        except Exception as exc:  # clean-up goes on; the cache is named in the warning
            print(f"warning: removing the package cache {cache}: {exc}", file=sys.stderr)
        if failed or keep:
            print(f"logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = report(labs, mols, versions, noise)
    cores = os.cpu_count() or 1
    if sampler.samples and statistics.median(sampler.samples) > cores:
        text += (f"\nnote: the load average stayed above the {cores} cores most of the time: "
                 "other work was running on this machine, so the timings are noisy")
    return text


def cleanup(projects: list[Path], lab_dirs: list[Path], mol_env: dict[str, str],
            lab_env: dict[str, str], run_id: str, prefix: str) -> None:
    """molecule destroy, lab destroy, then docker rm of anything of this run still there."""
    for project in projects:
        ephemeral = project.parent / "molecule-ephemeral"
        env = mol_env | {"MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral)}
        try:
            result = run([str(VENV_BIN / "molecule"), "destroy"], cwd=project, env=env,
                         timeout=CLEANUP_TIMEOUT)
            if result.returncode != 0:
                print(f"warning: molecule destroy in {project} exited {result.returncode}",
                      file=sys.stderr)
        except (subprocess.TimeoutExpired, BenchError) as exc:
            print(f"warning: molecule destroy in {project}: {exc}", file=sys.stderr)
    for lab_dir in lab_dirs:
        config = lab_dir / "lab.yml"
        if not config.exists():
            continue
        # `lab test` works on the lab NAME-test; `lab destroy` of a copy named so removes it.
        for file in (config, lab_dir / "lab-bench-test.yml"):
            try:
                if file != config:
                    edit_lab_yml(config, to=file, name=test_lab_name(load_config(config)))
                result = run([str(LAB), "-f", str(file), "destroy"], cwd=lab_dir, env=lab_env,
                             timeout=CLEANUP_TIMEOUT)
                if result.returncode != 0:
                    print(f"warning: lab destroy of {file} exited {result.returncode}: "
                          f"{(result.stderr or result.stdout).strip()[-300:]}", file=sys.stderr)
            except (subprocess.TimeoutExpired, BenchError, LabError) as exc:
                print(f"warning: lab destroy of {file}: {exc}", file=sys.stderr)
    # Molecule's docker create/destroy playbooks leave async job files in ~/.ansible_async;
    # remove those that name this run's containers.
    for job in (Path.home() / ".ansible_async").glob("j*"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if prefix in job.read_text():
                job.unlink()
    try:
        removed = remove_leftovers(run_id, prefix)
    except (subprocess.TimeoutExpired, BenchError) as exc:
        print(f"warning: removing leftovers of {prefix}: {exc}", file=sys.stderr)
        return
    if removed:
        print(f"cleanup removed leftovers: {', '.join(removed)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of `lab test` then `molecule test` (default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory with the logs")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    run_id = secrets.token_hex(3)
    figures: list[str] = []

    def body() -> None:
        require_prerequisites()
        ensure_molecule_venv()
        root = Path(tempfile.mkdtemp(prefix=f"bench-molecule-{run_id}-"))
        print(f"run {run_id}: {args.rounds} round(s) of `lab test` then `molecule test`, "
              f"in {root}", flush=True)
        figures.append(bench(args.rounds, root, run_id, f"mb-{run_id}", args.keep))

    return bench_main("bench_molecule", body, lambda: "\n".join(figures))


if __name__ == "__main__":
    sys.exit(main())
