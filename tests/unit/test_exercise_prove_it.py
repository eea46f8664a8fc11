"""Exercise 03's grader without servers: the look at the server before the attendee's tests
are judged (a server broken by hand is told as such, with `lab provision` first), the faults
it plants, and what it says about tests that let a fault through (asserting nothing, always
true, skipped, only checking that things exist). With servers, every wrong answer and the
solution: tests/integration/test_exercises.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.course.exercises import find_exercise
from lab.course.grader import Feedback
from lab.verify import TestOutcome, VerifyResult

PROVE_IT = find_exercise(3)
CHECKS: Any = PROVE_IT.checks["catch_each_fault"].__globals__  # checks.py's names
START, SOLUTION = PROVE_IT.start_dir, PROVE_IT.solution_dir
WRONG = PROVE_IT.folder / "wrong"


def read_tests(folder: Path) -> str:
    return (folder / "tests" / "test_web.py").read_text()


# the look at the server ----------------------------------------------------------------------


def test_the_page_looked_for_is_the_one_the_start_playbook_serves() -> None:
    plays = yaml.safe_load((START / "playbooks" / "web.yml").read_text())
    pages = [t["ansible.builtin.copy"]["content"] for t in plays[0]["tasks"]
             if t.get("ansible.builtin.copy", {}).get("dest") == CHECKS["INDEX"]]
    assert pages == [CHECKS["PAGE"] + "\n"]


def look(tmp_path: Path, active: str = "active", enabled: str = "enabled",
         page: str | None = "Welcome to the shop\n") -> str:
    """What the grader's one look at a server says, run by bash against stand-ins for
    systemctl and curl (what they would answer on such a server)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\n[ "$1" = is-active ] && echo {active} && exit 0\necho {enabled}\n')
    curl = "exit 7" if page is None else f"printf '%s' '{page}'"
    (bin_dir / "curl").write_text(f"#!/bin/sh\n{curl}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    done = subprocess.run(["bash", "-c", CHECKS["LOOK"]], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=False)
    return str(CHECKS["server_off"](done.returncode, (done.stdout + done.stderr).strip()))


def test_a_server_as_the_playbook_makes_it_is_not_off(tmp_path: Path) -> None:
    assert look(tmp_path) == ""


@pytest.mark.parametrize(("server", "said"), [
    ({"active": "inactive"}, "nginx is not running (inactive: stopped by hand?)"),
    ({"page": None}, "nothing answers on port 80"),
    ({"page": "Welcome to the Shop!\n"},
     "the page says 'Welcome to the Shop!', the playbook makes it 'Welcome to the shop'"),
    ({"page": "Welcome to the shop\nline two"}, "the page says 'Welcome to the shop line two'"),
    ({"enabled": "disabled"}, "nginx is not enabled at boot (disabled"),
])
def test_a_server_broken_by_hand_is_told_by_what_is_off(tmp_path: Path,
                                                        server: dict[str, Any],
                                                        said: str) -> None:
    assert said in look(tmp_path, **server)


def test_a_server_that_cannot_be_looked_at_says_so() -> None:
    assert "could not be looked at" in CHECKS["server_off"](255, "ssh: connection refused")


# the faults ----------------------------------------------------------------------------------


def test_the_faults_leave_nothing_behind_and_cannot_be_known_in_advance() -> None:
    first, second = CHECKS["faults"](), CHECKS["faults"]()
    assert [f.what for f in first][1:3] == ["nginx is stopped", "nginx is not enabled at boot"]
    assert first[0].plant != second[0].plant  # a page drawn at random each time
    page = first[0].plant.split()[2]
    assert not {"Welcome", "shop", "maintenance"} & set(page.split())
    port = first[3].what.split()[4]
    assert port not in ("80", "8080") and f"listen {port} /listen 80 /" in first[3].restore
    for fault in first:  # no copy of the grader's own on the server, for a test to spot
        assert "/root" not in fault.plant + fault.restore


# judging the attendee's tests ----------------------------------------------------------------


class Server:
    """What checks.py asks an Attempt for: the tests' files, one server, and the attendee's
    tests run against it as ``judge`` says (the fault planted last, or "" -> statuses)."""

    def __init__(self, tests: str, judge: Callable[[str], list[str]],
                 playbook: str | None = None, off: str = "") -> None:
        self.files = {"tests/test_web.py": tests,
                      "playbooks/web.yml": playbook or (START / "playbooks/web.yml").read_text()}
        self.judge, self.off, self.planted, self.runs = judge, off, "", 0

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def yaml(self, path: str) -> Any:
        return yaml.safe_load(self.files[path])

    def started_files(self, path: str) -> str | None:
        return (START / path).read_text()

    def server_names(self, role: str | None = None) -> list[str]:
        return ["web-1"]

    def ssh(self, name: str, command: str) -> tuple[int, str]:
        if command == CHECKS["LOOK"]:  # "Welcome to the shop", in base64
            return 0, self.off or "active\nenabled\n0\nV2VsY29tZSB0byB0aGUgc2hvcA=="
        planted = {"printf": "page", "systemctl stop": "stop", "systemctl disable": "disable",
                   "sed -i 's/listen 80 /": "port"}
        self.planted = next((fault for start, fault in planted.items()
                             if command.startswith(start) and "the shop" not in command), "")
        return 0, ""

    def run_tests(self) -> VerifyResult:
        self.runs += 1
        return VerifyResult([TestOutcome("web-1", f"test_web::test_{i}", status)
                             for i, status in enumerate(self.judge(self.planted))])


def first_failure(server: Server) -> str:
    for goal in PROVE_IT.spec.goals:
        found = PROVE_IT.checks[goal.check](server)
        if isinstance(found, Feedback):
            return found.problem
    return ""


def catches(*faults: str, skip: bool = False) -> Callable[[str], list[str]]:
    """Tests that fail on these faults (page, stop, disable, port), and pass (or are
    skipped) on the others."""
    return lambda fault: ["failed" if fault in faults else
                          "skipped" if skip and fault else "passed"]


def test_the_solution_passes_and_its_tests_are_not_taken_for_wrong_ones() -> None:
    server = Server(read_tests(SOLUTION), catches("page", "stop", "disable", "port"))
    assert first_failure(server) == ""
    assert server.runs == 5  # the good server, then once per fault
    source = read_tests(SOLUTION)
    assert not CHECKS["always_true"](source) and not CHECKS["only_existence"](source)


def test_a_server_broken_by_hand_says_provision_first_and_runs_no_test() -> None:
    server = Server(read_tests(SOLUTION), catches(), off="inactive\nenabled\n7\n")
    found = first_failure(server)
    assert found.startswith("web-1 is not as the playbook makes it: nginx is not running")
    assert "next: `lab provision` first" in found and "your tests fail" not in found
    assert server.runs == 0


def test_a_changed_playbook_is_told_before_the_server() -> None:
    playbook = (START / "playbooks/web.yml").read_text().replace("the shop\\n", "the Shop!\\n")
    found = first_failure(Server(read_tests(SOLUTION), catches(), playbook=playbook))
    assert found.startswith("playbooks/web.yml was changed")
    comments_only = "# mine\n" + (START / "playbooks/web.yml").read_text()
    assert first_failure(Server(read_tests(SOLUTION), catches("page", "stop", "disable", "port"),
                                playbook=comments_only)) == ""


@pytest.mark.parametrize(("tests", "judge", "said"), [
    (read_tests(START), catches(),
     "your tests catch none of the planted faults: they only check that things exist"),
    (read_tests(WRONG / "assert-nothing"), catches(), "they assert nothing"),
    (read_tests(WRONG / "always-true"), catches("page", "stop", "port"),
     "your tests still pass when nginx is not enabled at boot: `assert host.service(\"nginx\")` "
     "(lines 9, 13) is always true"),
    ("def test_x(host):\n    assert (host.service('nginx').is_running, 'nginx runs')\n",
     catches(), "`assert (host.service('nginx').is_running, 'nginx runs')` (line 2) is always"),
    (read_tests(WRONG / "skips-when-broken"), catches("page", "stop", "port", skip=True),
     "test_web::test_0 was skipped when nginx is not enabled at boot"),
    (read_tests(WRONG / "files-exist-only"), catches(), "they only check that things exist"),
    (read_tests(WRONG / "misses-boot"), catches("page", "stop", "port"),
     "your tests still pass when nginx is not enabled at boot; expected: a failing test when "
     "nginx is not enabled at boot; next: add a test that nginx starts at boot (`.is_enabled`)"),
    (read_tests(WRONG / "knows-the-faults"), catches("stop", "disable"),
     "your tests still pass when the page is wrong and when nginx listens on port 8"),
])
def test_tests_that_let_a_fault_through_are_told_why(tests: str,
                                                     judge: Callable[[str], list[str]],
                                                     said: str) -> None:
    assert said in first_failure(Server(tests, judge))
