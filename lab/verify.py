"""Prove servers with testinfra: each role's test files against each of its servers.

Every host gets its own pytest process (in parallel), reaching the server over SSH through
``.lab/ssh_config``. Results come back as JUnit XML, which lab reads into
:class:`TestOutcome` rows and can merge into one report for CI (``--junit``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab.access.keys import KeyPair
from lab.access.knownhosts import refusal_note
from lab.errors import ConfigError
from lab.events import Event, Listener, ignore
from lab.loaded import Lab
from lab.state import ServerRecord


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class

    host: str
    test: str
    status: str  # passed | failed | error | skipped
    message: str = ""
    seconds: float = 0.0


@dataclass
class VerifyResult:
    outcomes: list[TestOutcome] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)  # host -> its JUnit XML
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No test failed (a role without tests has nothing to fail)."""
        return all(o.status in ("passed", "skipped") for o in self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.status == "passed" for o in self.outcomes)

    @property
    def failures(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "error")]

    @property
    def problem(self) -> str:
        """One line naming the first failed tests with their hosts; "" when all passed."""
        if self.ok:
            return ""
        failures = self.failures
        shown = "; ".join(f"{f.host}: {f.test}: {f.message or f.status}" for f in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        return f"verify failed: {shown}{more}" if failures else "verify ran no tests"


def check_test_files(lab: Lab, roles: list[str]) -> None:
    """A test file that does not compile is the user's input error, named with its line."""
    for role in roles:
        for relative in lab.roles[role].tests:
            path = lab.config.directory / relative
            try:
                compile(path.read_bytes(), str(relative), "exec")
            except SyntaxError as exc:
                raise ConfigError(
                    f"{relative}:{exc.lineno}: syntax error: {exc.msg} (fix the test file)"
                ) from None


def verify_lab(
    lab: Lab,
    servers: list[ServerRecord],
    key: KeyPair,
    on_event: Listener = ignore,
    extra_vars: dict[str, object] | None = None,
    everyone: list[ServerRecord] | None = None,
) -> VerifyResult:
    """Run each server's role tests against it, all hosts at once; returns every outcome."""
    roles = sorted({s.role for s in servers})
    config = lab.config
    check_test_files(lab, roles)
    lab.write_inventory(everyone or servers, key)
    run_dir = config.state_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-verify-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    todo = [s for s in servers if lab.roles[s.role].tests]
    variables = config.vars | (extra_vars or {})

    def one(server: ServerRecord) -> tuple[str, Path, list[TestOutcome]]:
        report = run_dir / f"{server.name}.xml"
        outcomes = _run_pytest(lab, server, report, variables)
        failed = sum(o.status in ("failed", "error") for o in outcomes)
        on_event(Event("verified", f"{server.name}: {len(outcomes) - failed} passed, "
                                   f"{failed} failed", subject=server.name))
        return server.name, report, outcomes

    result = VerifyResult()
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            for name, report, outcomes in pool.map(one, todo):
                result.reports[name] = report
                result.outcomes.extend(outcomes)
    result.seconds = time.monotonic() - started
    return result


def _run_pytest(lab: Lab, server: ServerRecord, report: Path,
                variables: dict[str, object]) -> list[TestOutcome]:
    config = lab.config
    tests = [str(config.directory / t) for t in lab.roles[server.role].tests]
    argv = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        f"--rootdir={config.directory}", f"--hosts=ssh://{server.name}",
        f"--ssh-config={config.state_dir / 'ssh_config'}", f"--junitxml={report}",
        "-o", "junit_family=xunit1", *tests,
    ]
    if server.ssh_user != "root":
        argv.insert(4, "--sudo")
    env = os.environ | {
        "LAB_SERVER": server.name, "LAB_ROLE": server.role,
        "LAB_VARS": json.dumps(variables, default=str),
    }
    proc = subprocess.run(argv, cwd=config.directory, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    outcomes = read_junit(report, server.name) if report.is_file() else []
    if not outcomes:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        outcomes = [TestOutcome(server.name, "(pytest)", "error",
                                f"pytest exited {proc.returncode}: {tail[0]}")]
    return outcomes


def read_junit(path: Path, host: str) -> list[TestOutcome]:
    """Test outcomes from a JUnit XML file; the ``[ssh://host]`` parameter is dropped."""
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?").split("[", 1)[0]
        file = Path(case.get("file") or case.get("classname", "").replace(".", "/")).stem
        status, message = "passed", ""
        for child, label in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            node = case.find(child)
            if node is not None:
                status = label
                # The message attribute may be cut short of ssh's last line: look at both.
                message = (refusal_note(f"{node.get('message')} {node.text}")
                           or readable(node.get("message") or node.text or ""))
                break
        outcomes.append(TestOutcome(host, f"{file}::{name}" if file else name, status, message,
                                    float(case.get("time") or 0)))
    return outcomes


_COMMAND_FAILED = re.compile(
    r"Unexpected exit code (\d+) for CommandResult\(.*?command=b'(.*?)'.*?_stderr=b'(.*?)'", re.S)


def readable(message: str) -> str:
    """A failure message on one short line; testinfra's CommandResult repr becomes
    "`cmd` exited N: first line of stderr"."""
    found = _COMMAND_FAILED.search(message)
    if found:
        code, command, stderr = found.groups()
        first = stderr.encode().decode("unicode_escape").strip().splitlines()[:1]
        message = f"`{command}` exited {code}" + (f": {first[0]}" if first else "")
    lines = message.strip().splitlines()
    return " ".join(lines[0].split())[:160] if lines else ""


def merge_junit(result: VerifyResult, destination: Path) -> Path:
    """One JUnit file with a test suite per host, for CI systems to read."""
    root = ET.Element("testsuites", name="lab verify")
    for host, report in sorted(result.reports.items()):
        if not report.is_file():
            continue
        source = ET.parse(report).getroot()
        for suite in source.iter("testsuite"):
            suite.set("name", host)
            root.append(suite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(destination, encoding="utf-8", xml_declaration=True)
    return destination
