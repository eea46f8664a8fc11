"""Verify explains itself: a test file that does not load is told by its exception and line,
and "verify failed" is said once (issue 31, item 3).

The collection failures come from a real pytest, run by verify's own runner on a lab that
`lab init` wrote; no server is needed, as pytest stops before it connects to one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import lab.harness
from lab.config import load_config
from lab.loaded import Lab
from lab.scaffold import init_lab
from lab.state import ServerRecord
from lab.steps import Steps
from lab.verify import TestOutcome, VerifyResult, _run_pytest, crash_site, read_junit

MOLECULE_FORM = '''"""Molecule's usual form of a testinfra file."""
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed
'''
NOT_LOADED = "(the file could not be loaded, so none of its tests ran)"
MOLECULE_KEYERROR = f"KeyError: 'MOLECULE_INVENTORY_FILE' {NOT_LOADED}"


def verify_one(directory: Path, tests: dict[str, str], host: str = "web-2",
               ) -> list[TestOutcome]:
    """The outcomes verify's runner reads for ``host`` of a lab that `lab init` wrote in
    ``directory``, its files in ``tests`` replaced."""
    init_lab(directory, "explains", False)
    for relative, text in tests.items():
        (directory / relative).write_text(text)
    lab = Lab.resolve(load_config(directory / "lab.yml"))
    (directory / ".lab").mkdir(exist_ok=True)
    server = ServerRecord(host, "web", "docker")
    return _run_pytest(lab, server, directory / ".lab" / f"{host}.xml", {})


@pytest.fixture(autouse=True)
def _no_molecule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOLECULE_INVENTORY_FILE", raising=False)


def test_a_module_level_keyerror_names_the_line_and_the_exception(tmp_path: Path) -> None:
    outcomes = verify_one(tmp_path, {"tests/test_web.py": MOLECULE_FORM})

    assert [(o.host, o.test, o.status, o.message) for o in outcomes] == [
        ("web-2", "tests/test_web.py:7", "error", MOLECULE_KEYERROR)]


def test_the_same_failure_on_every_host_is_told_once_after_one_verify_failed(
        tmp_path: Path) -> None:
    outcome, = verify_one(tmp_path, {"tests/test_web.py": MOLECULE_FORM})
    result = VerifyResult([dataclasses.replace(outcome, host="web-1"), outcome])

    assert result.problem == f"verify failed: web-1, web-2: tests/test_web.py:7: " \
                             f"{MOLECULE_KEYERROR}"


def test_an_import_error_and_a_name_error_are_told_alike(tmp_path: Path) -> None:
    outcome, = verify_one(tmp_path / "import", {"tests/test_web.py": "import nosuchmodule\n"})
    assert (outcome.test, outcome.message) == (
        "tests/test_web.py:1", f"ModuleNotFoundError: No module named 'nosuchmodule' {NOT_LOADED}")

    outcome, = verify_one(tmp_path / "name", {"tests/test_web.py": "\n\nport = PORT\n"})
    assert (outcome.test, outcome.message) == (
        "tests/test_web.py:3", f"NameError: name 'PORT' is not defined {NOT_LOADED}")


def test_a_syntax_error_in_a_helper_names_the_helper_and_the_test_file(tmp_path: Path) -> None:
    """lab checks the role's test files compile before it runs pytest; a module they import
    is seen only by pytest."""
    outcome, = verify_one(tmp_path, {"tests/test_web.py": "import helper\n",
                                     "tests/helper.py": "import os\n\n\ndef port(:\n"})

    assert (outcome.test, outcome.message) == (
        "tests/helper.py:4", "SyntaxError: invalid syntax "
                             "(tests/test_web.py could not be loaded, so none of its tests ran)")


def test_an_error_raised_in_a_library_is_placed_on_the_test_files_line(tmp_path: Path) -> None:
    """The exception arose in PyYAML (site-packages); the line to fix is the user's."""
    loads = 'import yaml\n\nPORTS = yaml.safe_load("ports: [80")\n'
    outcome, = verify_one(tmp_path, {"tests/test_web.py": loads})

    assert (outcome.test, outcome.message) == (
        "tests/test_web.py:3", f"yaml.parser.ParserError: while parsing a flow sequence "
                               f"{NOT_LOADED}")


def test_a_conftest_that_does_not_load_is_told_by_its_line(tmp_path: Path) -> None:
    """pytest writes no report then: what it printed is read instead of its last line."""
    outcome, = verify_one(tmp_path, {"tests/conftest.py": 'import os\nX = os.environ["NOPE"]\n'})

    assert (outcome.test, outcome.message) == (
        "tests/conftest.py:2", "KeyError: 'NOPE' (pytest could not start, so no test ran)")


def test_frames_of_a_virtualenv_inside_the_lab_are_not_the_users_line(tmp_path: Path) -> None:
    """pytest names a file relative to where it ran when that is shorter: a .venv in the
    lab's directory reads like the lab's own files."""
    traceback = ("tests/test_web.py:7: in <module>\n    AnsibleRunner(path)\n"
                 ".venv/lib/python3.11/site-packages/testinfra/utils/ansible_runner.py:88: "
                 "in __init__\n    raise\nE   RuntimeError: no inventory")

    assert crash_site(traceback, tmp_path) == ("tests/test_web.py:7", "RuntimeError: no inventory")


def test_verify_failed_is_said_once_by_lab_test() -> None:
    """`lab test` names its step "verify"; the step's detail must not say it again."""
    failing = VerifyResult([TestOutcome("web-2", "tests/test_web.py:7", "error",
                                        MOLECULE_KEYERROR)])
    steps = Steps()

    steps.run("verify", lambda: lab.harness.verify_outcome(failing))

    assert steps.problem == f"verify failed: web-2: tests/test_web.py:7: {MOLECULE_KEYERROR}"


def test_a_bare_assert_false_says_what_was_false(tmp_path: Path) -> None:
    """testinfra's `assert host.file(...).exists` fails as "assert False": pytest's next line
    names the file (the message attribute is a real one, from a run on a container)."""
    message = ("AssertionError: assert False&#10; +  where False = &lt;file /etc/nothere&gt;"
               ".exists&#10; +    where &lt;file /etc/nothere&gt; = &lt;class "
               "'testinfra.modules.base.GNUFile'&gt;('/etc/nothere')")
    report = tmp_path / "web-2.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="test_web" file="tests/test_web.py" '
        f'name="test_missing_file[ssh://web-2]"><failure message="{message}">trace</failure>'
        "</testcase></testsuite></testsuites>")

    outcome, = read_junit(report, "web-2")

    assert outcome.message == ("AssertionError: assert False "
                               "(where False = <file /etc/nothere>.exists)")
