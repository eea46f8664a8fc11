#!/usr/bin/env python3
"""`make mutation`: mutation testing of lab's safety modules, and a score per module.

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) changes the safety code one small
thing at a time (a ``<`` for a ``<=``, a ``True`` for a ``False``, a call dropped) and runs the
fast tests against each change. A mutant the tests do not notice *survived*: a breakage that
would ship. This prints, per module, how many were killed, and the goal it is held to.

Mutants that cannot be told apart from the original by any test (equivalent ones) are listed
with their reason in ``tests/mutation-equivalent.txt`` (``NAME  # why``) and left out of the
score. Survivors are written to ``mutants/survivors.txt``; ``mutmut show NAME`` shows one.

Usage: scripts/mutation.py [--no-run]   (``--no-run``: score the last run again)
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]
EQUIVALENT = ROOT / "tests" / "mutation-equivalent.txt"
# The goals of the issue that asked for this: release and the error paths are held higher.
GOALS = {"lab.release": 0.85, "lab.errors": 0.85, "lab.cli.base": 0.85}
DEFAULT_GOAL = 0.75
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = "not checked"
LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>.+)$")


def module_of(mutant: str) -> str:
    """``lab.release.xǁ_Runǁstep__mutmut_3`` -> ``lab.release``."""
    return re.split(r"\.xǁ|\.x_", mutant, maxsplit=1)[0]


def shown(score: float) -> str:
    """A score with one decimal, rounded down: 855 of 858 reads 99.6 %, never 100 %."""
    return f"{math.floor(score * 1000) / 10:.1f}%"


def equivalent() -> dict[str, str]:
    if not EQUIVALENT.is_file():
        return {}
    found: dict[str, str] = {}
    for line in EQUIVALENT.read_text().splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            found[name.strip()] = why.strip()
    return found


def results() -> dict[str, str]:
    output = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=ROOT, text=True,
                            capture_output=True, check=True).stdout
    return {m["name"]: m["status"].strip() for m in map(LINE.match, output.splitlines()) if m}


def tally(found: dict[str, str],
          known: dict[str, str]) -> tuple[dict[str, Counter[str]], list[str]]:
    """Each module's count per verdict (equivalent ones apart), and the survivors' lines."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for name, status in sorted(found.items()):
        module = module_of(name)
        if name in known:
            counts[module]["equivalent"] += 1
            continue
        counts[module]["killed" if status in KILLED else status] += 1
        if status not in KILLED and status != NOT_RUN:
            survivors.append(f"{name}: {status}")
    return counts, survivors


def row(module: str, count: Counter[str]) -> tuple[str, bool]:
    """The module's line of the table, and whether it meets its goal with every mutant run.

    A mutant not run yet (a run cut short, or one asked for by name) is no verdict: the score
    is over those that ran, and the line says how many did not, so a partial score reads as one.
    """
    scored = sum(count.values()) - count["equivalent"] - count[NOT_RUN]
    score = count["killed"] / scored if scored else 1.0
    goal = GOALS.get(module, DEFAULT_GOAL)
    line = (f"{module:<28} {scored:>7} {count['killed']:>7} {count['survived']:>8} "
            f"{count['no tests']:>7} {count[NOT_RUN]:>7} {count['equivalent']:>6} "
            f"{shown(score):>7} {goal:>5.0%}"
            + ("" if score >= goal else "  below goal")
            + (f"  partial: {count[NOT_RUN]} not run" if count[NOT_RUN] else ""))
    return line, score >= goal and not count[NOT_RUN]


def main() -> int:
    if "--no-run" not in sys.argv:
        children = str(os.cpu_count() or 2)
        status = subprocess.run([*MUTMUT, "run", "--max-children", children], cwd=ROOT).returncode
        if status not in (0, 1):  # mutmut exits 1 when mutants survive
            print(f"mutation: mutmut run failed (exit {status})", file=sys.stderr)
            return status
    counts, survivors = tally(results(), equivalent())
    (ROOT / "mutants").mkdir(exist_ok=True)
    (ROOT / "mutants" / "survivors.txt").write_text("".join(s + "\n" for s in survivors))
    print(f"{'module':<28} {'mutants':>7} {'killed':>7} {'survived':>8} {'no test':>7} "
          f"{'not run':>7} {'equiv.':>6} {'score':>7} {'goal':>5}")
    met = True
    for module, count in sorted(counts.items()):
        line, ok = row(module, count)
        print(line)
        met &= ok
    print(f"survivors: mutants/survivors.txt ({len(survivors)}); `mutmut show NAME` shows one")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
