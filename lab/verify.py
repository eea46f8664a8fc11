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
    def failed_tests(self) -> str:
        """The first failed tests with their hosts, in one line ("" when all passed), for a
        caller that names the step itself (`lab test`'s "verify failed: ...").

        A failure seen alike on several hosts (a test file that does not load) is told once.
        """
        hosts: dict[tuple[str, str], list[str]] = {}
        for f in self.failures:
            hosts.setdefault((f.test, f.message or f.status), []).append(f.host)
        shown = [f"{', '.join(names)}: {test}: {why}" for (test, why), names in hosts.items()]
        more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
        return "; ".join(shown[:3]) + more

    @property
    def problem(self) -> str:
        """One line naming the first failed tests with their hosts; "" when all passed."""
        return f"verify failed: {self.failed_tests}" if self.failures else ""


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
    outcomes = read_junit(report, server.name, config.directory) if report.is_file() else []
    return outcomes or [no_report(server.name, proc, config.directory)]


def no_report(host: str, proc: subprocess.CompletedProcess[str], root: Path) -> TestOutcome:
    """pytest stopped before it wrote a report: most often a conftest.py that does not load,
    told by where it broke; otherwise (a bad option, no test collected) by pytest's last
    line. Also Molecule's verifier's (lab.molecule.verifier)."""
    output = (proc.stdout + proc.stderr).strip()
    crash = crash_site(output, root)
    if crash is not None:
        where, exception = crash
        return TestOutcome(host, where or "(pytest)", "error",
                           f"{exception} (pytest could not start, so no test ran)")
    tail = output.splitlines()[-1:] or ["no output"]
    return TestOutcome(host, "(pytest)", "error", f"pytest exited {proc.returncode}: {tail[0]}")


def read_junit(path: Path, host: str, root: Path | None = None) -> list[TestOutcome]:
    """Test outcomes from a JUnit XML file; the ``[ssh://host]`` parameter is dropped.

    ``root`` is the directory pytest ran in: a test file that could not be loaded is told
    by the line of the lab's own files where it broke, named relative to it.
    """
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        error = case.find("error")
        if error is not None and error.get("message") == COLLECTION_FAILURE:
            outcomes.append(_not_loaded(case, error.text or "", host, root))
            continue
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


COLLECTION_FAILURE = "collection failure"  # pytest's message for a file it could not load
# A traceback entry: "tests/test_web.py:7: in <module>" (pytest's short and long styles), or
# "File "/lab/tests/helper.py", line 4" (Python's, and a SyntaxError's own location).
_ENTRY = re.compile(r'^([^\s:][^:\n]*):(\d+): |File "([^"]+)", line (\d+)', re.M)
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(: .*)?")
_INSTALLED = {"site-packages", "dist-packages"}


def _not_loaded(case: ET.Element, report: str, host: str, root: Path | None) -> TestOutcome:
    """A test file pytest could not import (an error at module level): none of its tests
    ran, and pytest's report says only "collection failure"; told instead by the exception
    and the line where it arose, as `verify failed: web-2: tests/test_web.py:7: KeyError:
    'MOLECULE_INVENTORY_FILE' (the file could not be loaded, so none of its tests ran)`."""
    file = case.get("file") or case.get("name", "?").replace(".", "/") + ".py"
    where, exception = crash_site(report, root) or ("", readable(report) or COLLECTION_FAILURE)
    where = where or file
    loaded = "the file" if where.rsplit(":", 1)[0] == file else file
    return TestOutcome(host, where, "error",
                       f"{exception} ({loaded} could not be loaded, so none of its tests ran)",
                       float(case.get("time") or 0))


def crash_site(traceback: str, root: Path | None = None) -> tuple[str, str] | None:
    """From a traceback as pytest prints it, the deepest ``file:line`` in the lab's own files
    ("" if none is) and the exception's line; None when the text holds no exception."""
    exception = _last_exception(traceback)
    if exception is None:
        return None
    places = [_own(found[0] or found[2], found[1] or found[3], root)
              for found in _ENTRY.findall(traceback)]
    return next((p for p in reversed(places) if p), ""), readable(exception)


def _last_exception(traceback: str) -> str | None:
    """The exception's line in the last block of pytest's ``E`` lines (the block of the
    final exception when one was raised while handling another): its first line that reads
    ``Name: message``, so a SyntaxError's quoted source and caret are passed over."""
    blocks: list[list[str]] = []
    previous_was_e = False
    for line in traceback.splitlines():
        is_e = line == "E" or line.startswith("E ")
        if is_e and not previous_was_e:
            blocks.append([])
        if is_e:
            blocks[-1].append(line[1:].strip())
        previous_was_e = is_e
    for block in reversed(blocks):
        found = next((text for text in block if _EXCEPTION.fullmatch(text)), None)
        if found is not None:
            return found
    return None


def _own(path: str, line: str, root: Path | None) -> str:
    """``path:line`` relative to ``root`` when the file is the lab's own, else "".

    pytest names a file relative to where it ran when that is shorter, so a virtualenv
    inside the lab's directory is relative too: installed packages are told by their
    directory, Python's own by ``<frozen ...>`` or a path outside ``root``."""
    found = Path(path)
    if found.is_absolute():
        roots = [root, root.resolve()] if root is not None else []
        within = next((r for r in roots if found.is_relative_to(r)), None)
        if within is None:
            return ""
        found = found.relative_to(within)
    if path.startswith("<") or ".." in found.parts or _INSTALLED & set(found.parts):
        return ""
    return f"{found}:{line}"


_BARE_ASSERT = re.compile(r"(AssertionError: )?assert (not )?(False|True|None)")
_COMMAND_FAILED = re.compile(
    r"Unexpected exit code (\d+) for CommandResult\(.*?command=b'(.*?)'.*?_stderr=b'(.*?)'", re.S)


def readable(message: str) -> str:
    """A failure message on one short line; testinfra's CommandResult repr becomes
    "`cmd` exited N: first line of stderr", and a bare "assert False" keeps pytest's next
    line, which says what was False ("where False = <file /etc/app.conf>.exists")."""
    found = _COMMAND_FAILED.search(message)
    if found:
        code, command, stderr = found.groups()
        first = stderr.encode().decode("unicode_escape").strip().splitlines()[:1]
        message = f"`{command}` exited {code}" + (f": {first[0]}" if first else "")
    lines = message.strip().splitlines()
    if not lines:
        return ""
    line = lines[0]
    if _BARE_ASSERT.fullmatch(line.strip()) and len(lines) > 1 and lines[1].strip()[:1] == "+":
        line += f" ({lines[1].strip(' +')})"
    return " ".join(line.split())[:160]


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
