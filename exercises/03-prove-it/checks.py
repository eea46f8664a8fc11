"""Exercise 03, prove it: the attendee's tests, run on a good server, then on broken ones.

The server is looked at first (is it as the exercise's playbook makes it?): tests are judged
on a good server, never on one someone broke by hand. Then each fault is planted on every
server, the tests run, and the fault is taken out again, whatever happened: the server is
left as good as it was found. The faults leave no file of the grader's behind for a test to
spot, and the wrong page and port are drawn at random: a test catches them by looking at
what the server does, not by knowing what the grader plants.
"""

from __future__ import annotations

import ast
import base64
import random
import secrets
import shlex
from typing import NamedTuple

import yaml

from lab.course.grader import Attempt, Feedback
from lab.verify import VerifyResult

TESTS = "tests/test_web.py"
PLAYBOOK = "playbooks/web.yml"
SITE = "/etc/nginx/sites-available/default"
INDEX = "/var/www/html/index.html"
PAGE = "Welcome to the shop"  # what the exercise's playbook serves on port 80
PROVISION_FIRST = "`lab provision` first: it puts the server back as the code says"


class Fault(NamedTuple):
    """What the fault is, how to plant it, how to take it out again, and the test that
    catches it."""

    what: str
    plant: str
    restore: str
    test: str


def faults() -> list[Fault]:
    """The four faults, the wrong page and the port drawn afresh for each check."""
    page = secrets.token_hex(8)  # no word a test could have been written against
    port = random.randint(8100, 8999)
    return [
        Fault("the page is wrong", f"printf '%s\\n' {page} > {INDEX}",
              f"printf '%s\\n' {shlex.quote(PAGE)} > {INDEX}",
              f"a test that what port 80 serves is exactly {PAGE!r} (`host.check_output`)"),
        Fault("nginx is stopped", "systemctl stop nginx", "systemctl start nginx",
              "a test that nginx is running (`.is_running`)"),
        Fault("nginx is not enabled at boot", "systemctl disable nginx",
              "systemctl enable nginx", "a test that nginx starts at boot (`.is_enabled`)"),
        Fault(f"nginx listens on port {port} instead of 80",
              f"sed -i 's/listen 80 /listen {port} /' {SITE} && systemctl restart nginx",
              f"sed -i 's/listen {port} /listen 80 /' {SITE} && systemctl restart nginx",
              "a test that something listens on port 80 (`host.socket`)"),
    ]


# goals ---------------------------------------------------------------------------------------


def pass_on_a_good_server(attempt: Attempt) -> Feedback | None:
    if attempt.yaml(PLAYBOOK) != _parsed(attempt.started_files(PLAYBOOK)):
        return Feedback(
            found=f"{PLAYBOOK} was changed: your tests are graded against the server the "
                  "exercise's playbook makes, and yours makes another",
            expected=f"{PLAYBOOK} as the exercise gave it: only {TESTS} is yours to write",
            next=f"copy it back: `cp .lab/exercise/start/{PLAYBOOK} {PLAYBOOK}`")
    for name in attempt.server_names():
        off = server_off(*attempt.ssh(name, LOOK))
        if off:
            return Feedback(
                found=f"{name} is not as the playbook makes it: {off}; your tests would be "
                      "judged on a broken server",
                expected=f"a server as the code says (nginx running and started at boot, "
                         f"{PAGE!r} on port 80) to run your tests on",
                next=PROVISION_FIRST)
    result = attempt.run_tests()
    if not result.outcomes or result.passed == 0:
        skipped = _skipped(result)
        return Feedback(found=f"{TESTS} has no test that runs" + (
                            f": {skipped} skipped, and a skipped test proves nothing"
                            if skipped else ""),
                        expected="test functions named test_..., taking `host`",
                        next="write tests like the one in the file: `def test_...(host):` "
                             "with an `assert`")
    if not result.ok:
        failed = result.failures[0]
        return Feedback(
            found=f"your tests fail on a correct server: {failed.test}: {failed.message}",
            expected="every test passing on web-1 as the exercise made it",
            next=f"make {failed.test} expect what web-1 really has (`lab verify` shows "
                 "each failure)")
    return None


def catch_each_fault(attempt: Attempt) -> Feedback | None:
    planted = faults()
    missed: list[Fault] = []
    skipped: dict[str, str] = {}  # a test skipped while a fault it missed was on -> the fault
    for fault in planted:
        result = _with_fault(attempt, fault)
        if result.ok:
            missed.append(fault)
            for outcome in result.outcomes:
                if outcome.status == "skipped":
                    skipped.setdefault(outcome.test, fault.what)
    if not missed:
        return None
    found = ("your tests catch none of the planted faults" if len(missed) == len(planted)
             else f"your tests still pass when {' and when '.join(f.what for f in missed)}")
    why = _why_missed(attempt.read(TESTS) or "", skipped)
    if why is not None:
        reason, expected, next_ = why
        return Feedback(found=f"{found}: {reason}", expected=expected, next=next_)
    return Feedback(
        found=found,
        expected=f"a failing test when {', when '.join(f.what for f in missed)}",
        next=f"add {missed[0].test}")


def _why_missed(source: str, skipped: dict[str, str]) -> tuple[str, str, str] | None:
    """Why tests let a fault through, when their file says: (reason, expected, next)."""
    if not _asserts(source):
        return ("they assert nothing, so they pass whatever the server does; each test needs "
                "an `assert`", "an `assert` in each test, on what the server does",
                "put an `assert` in each test, e.g. `assert host.service(\"nginx\").is_running`")
    always = always_true(source)
    if always:
        code = always[0][1]
        lines = [str(n) for n, same in always if same == code]
        where = f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)}"
        return (f"`{code}` ({where}) is always true: it asserts that the object exists, "
                "whatever the server does",
                "an assert that asks the server something: is nginx running, enabled, "
                "listening, what the page says",
                "ask the object a question, e.g. `assert host.service(\"nginx\").is_running`")
    if skipped:
        test, what = next(iter(skipped.items()))
        return (f"{test} was skipped when {what}, and a skipped test does not fail",
                "a test that fails when the server is wrong: a skip hides the fault",
                f"in {test}, assert what you check instead of calling pytest.skip")
    if only_existence(source):
        return ("they only check that things exist (`.exists`, `.is_installed`), and they are "
                "there when nginx is stopped or serves another page",
                "tests of what the server does: nginx running and enabled, port 80 listening, "
                "the page it serves",
                "add a test that asks the running server, e.g. `host.check_output(\"curl -fsS "
                "http://127.0.0.1/\")`")
    return None


# the server as the code says -----------------------------------------------------------------

# One look at a server: whether nginx runs and starts at boot, and what port 80 serves (the
# page in base64, on the last line, so no output of its own can be taken for the others).
LOOK = ("a=$(systemctl is-active nginx 2>/dev/null); e=$(systemctl is-enabled nginx "
        "2>/dev/null); p=$(curl -fsS --max-time 5 http://127.0.0.1:80/ 2>/dev/null); c=$?; "
        "printf '%s\\n%s\\n%s\\n' \"$a\" \"$e\" \"$c\"; printf '%s' \"$p\" | base64 -w0; echo")


def server_off(status: int, output: str) -> str:
    """What is off on a server, in words, from LOOK's answer; "" when it is as the playbook
    makes it."""
    lines = output.splitlines()
    if status != 0 or len(lines) < 3:
        return f"it could not be looked at ({output[:120] or f'exit {status}'})"
    active, enabled, curl = lines[0].strip(), lines[1].strip(), lines[2].strip()
    try:
        page = base64.b64decode(lines[3] if len(lines) > 3 else "").decode("utf-8", "replace")
    except ValueError:
        page = "?"
    if active != "active":
        return f"nginx is not running ({active or 'unknown'}: stopped by hand?)"
    if curl != "0":
        return "nothing answers on port 80 (nginx moved to another port by hand?)"
    if page != PAGE:
        return (f"the page says {_short(page)!r}, the playbook makes it {PAGE!r} (changed by "
                "hand?)")
    if enabled != "enabled":
        return f"nginx is not enabled at boot ({enabled or 'unknown'}: disabled by hand?)"
    return ""


# reading the attendee's tests ----------------------------------------------------------------

# testinfra's factories: each returns an object, which is true whatever the server does.
OBJECTS = {"service", "socket", "file", "package", "run", "process", "user", "group",
           "interface", "addr", "mount_point", "sysctl", "pip"}
EXISTENCE = {"exists", "is_file", "is_directory", "is_symlink", "is_installed"}


def always_true(source: str) -> list[tuple[int, str]]:
    """Asserts that cannot fail, as (line, code): ``assert host.service("nginx")`` (an object
    is true), ``assert True``, ``assert (x, "message")`` (a tuple is true)."""
    found = []
    for node in _assert_nodes(source):
        test = node.test
        if ((isinstance(test, ast.Constant) and test.value)
                or (isinstance(test, ast.Tuple) and test.elts)
                or (isinstance(test, ast.Call) and _host_factory(test))):
            found.append((node.lineno, ast.get_source_segment(source, node) or "assert"))
    return found


def only_existence(source: str) -> bool:
    """Whether every assert only checks that something exists (``.exists``,
    ``.is_installed``...): none asks what the server does."""
    asserts = _assert_nodes(source)
    if not asserts:
        return False
    for node in asserts:
        asked = {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
        if not asked & EXISTENCE or asked - EXISTENCE - OBJECTS:
            return False
        if any(isinstance(n, ast.Compare) for n in ast.walk(node.test)):
            return False
    return True


def _host_factory(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr in OBJECTS
            and isinstance(func.value, ast.Name) and func.value.id == "host")


def _assert_nodes(source: str) -> list[ast.Assert]:
    try:
        return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assert)]
    except SyntaxError:
        return []


def _asserts(source: str) -> bool:
    """Whether the test file has an assert statement anywhere (words in comments don't count)."""
    try:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))
    except SyntaxError:
        return True  # not ours to judge: pytest reports it


# planting ------------------------------------------------------------------------------------


def _with_fault(attempt: Attempt, fault: Fault) -> VerifyResult:
    """The tests' result while the fault is on every server; it is taken out, whatever
    happens."""
    names = attempt.server_names()
    try:
        for name in names:
            status, output = attempt.ssh(name, fault.plant)
            if status != 0:
                raise RuntimeError(f"planting a fault on {name} failed: {output}")
        return attempt.run_tests()
    finally:
        for name in names:
            attempt.ssh(name, fault.restore)


def _skipped(result: VerifyResult) -> int:
    return sum(o.status == "skipped" for o in result.outcomes)


def _parsed(text: str | None) -> object:
    return None if text is None else yaml.safe_load(text)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."

