"""Molecule's testinfra verifier, as Molecule runs it: one pytest over the scenario's tests.

Molecule runs ``pytest --connection=ansible --ansible-inventory=... -p no:cacheprovider``
with the verifier's ``options``, in the scenario's folder, on every ``test_*.py`` below
``molecule/<scenario>/tests``; each test file says which hosts it proves (most read them
from MOLECULE_INVENTORY_FILE). lab does the same, adds a JUnit report and reads each test's
host from it, so the outcomes are lab's :class:`~lab.verify.TestOutcome` rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.molecule.inventory import inventory_file
from lab.molecule.scenario import Scenario
from lab.verify import TestOutcome, VerifyResult, no_report, read_junit

ALL_HOSTS = "all"  # a test that names no host (testinfra's local one, or a plain function)
_HOST = re.compile(r"\[(?:\w+://)?([^\]]+)\]")


def testinfra_tests(scenario: Scenario) -> list[Path]:
    """The files Molecule's testinfra verifier runs: ``test_*.py`` below its directory."""
    directory = scenario.directory / scenario.verifier.directory
    return sorted(directory.rglob("test_*.py")) if directory.is_dir() else []


def option_args(options: dict[str, Any]) -> list[str]:
    """Molecule's ``verifier.options`` as pytest's arguments: ``{p: x}`` is ``-p x``,
    ``{junit_prefix: x}`` ``--junit-prefix=x``, ``True`` a bare flag, ``False`` none."""
    args: list[str] = []
    for name, value in options.items():
        flag = f"-{name}" if len(name) == 1 else f"--{name.replace('_', '-')}"
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)] if len(name) == 1 else [f"{flag}={value}"]
    return args


def run_testinfra(scenario: Scenario, tests: list[Path], run_dir: Path) -> VerifyResult:
    """Run ``tests`` as Molecule's verifier does; every test's outcome with its host."""
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / "testinfra.xml"
    options = {"connection": "ansible", "ansible-inventory": str(inventory_file(scenario)),
               "p": "no:cacheprovider"} | dict(scenario.verifier.options)
    argv = [sys.executable, "-m", "pytest", *option_args(options), f"--junitxml={report}",
            "-o", "junit_family=xunit1", *map(str, tests)]
    env = os.environ | {key: str(value) for key, value in scenario.verifier.env.items()}
    # testinfra asks `ansible-inventory`, which comes with lab's Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=scenario.directory, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)
    outcomes = by_host(report, scenario.directory) if report.is_file() else []
    if not outcomes:
        outcomes = [no_report(ALL_HOSTS, proc, scenario.directory)]
    return VerifyResult(outcomes, {ALL_HOSTS: report}, time.monotonic() - started)


def by_host(report: Path, root: Path) -> list[TestOutcome]:
    """The report's outcomes, each with the host its test ran on (``test_x[ansible://a]``)."""
    cases = list(ET.parse(report).getroot().iter("testcase"))
    outcomes = read_junit(report, ALL_HOSTS, root)
    hosts = [_HOST.search(case.get("name", "")) for case in cases]
    return [replace(outcome, host=found[1]) if found else outcome
            for outcome, found in zip(outcomes, hosts, strict=True)]
