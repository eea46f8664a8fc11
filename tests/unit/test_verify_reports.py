"""Reading testinfra's JUnit output into outcomes, and failure messages into one line."""

from __future__ import annotations

from pathlib import Path

from lab.verify import TestOutcome, VerifyResult, merge_junit, read_junit, readable

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="test_web" name="test_ok[ssh://web-1]" file="tests/test_web.py" time="0.5"/>
<testcase classname="test_web" name="test_bad[ssh://web-1]" file="tests/test_web.py" time="0.2">
<failure message="AssertionError: assert 1 == 2&#10;more">trace</failure></testcase>
<testcase classname="test_web" name="test_skip[ssh://web-1]" file="tests/test_web.py">
<skipped message="not here"/></testcase></testsuite></testsuites>"""


def test_read_junit_names_tests_without_the_host_parameter(tmp_path: Path) -> None:
    report = tmp_path / "web-1.xml"
    report.write_text(JUNIT)
    outcomes = read_junit(report, "web-1")
    assert [(o.test, o.status) for o in outcomes] == [
        ("test_web::test_ok", "passed"), ("test_web::test_bad", "failed"),
        ("test_web::test_skip", "skipped"),
    ]
    assert outcomes[1].message == "AssertionError: assert 1 == 2"


def test_merge_junit_makes_a_suite_per_host(tmp_path: Path) -> None:
    for host in ("web-1", "web-2"):
        (tmp_path / f"{host}.xml").write_text(JUNIT)
    result = VerifyResult(reports={h: tmp_path / f"{h}.xml" for h in ("web-2", "web-1")})
    merged = merge_junit(result, tmp_path / "out" / "all.xml").read_text()
    assert merged.index('name="web-1"') < merged.index('name="web-2"')


def test_testinfra_command_failure_reads_as_a_sentence() -> None:
    message = ("AssertionError: Unexpected exit code 22 for CommandResult(backend=<x>, "
               "exit_status=22, command=b'curl -fsS http://127.0.0.1/health', _stdout=b'', "
               "_stderr=b'curl: (22) The requested URL returned error: 404\\n')\nassert 22 == 0")
    assert readable(message) == ("`curl -fsS http://127.0.0.1/health` exited 22: "
                                 "curl: (22) The requested URL returned error: 404")


def test_no_tests_is_not_a_failure_and_a_failure_is() -> None:
    assert VerifyResult().ok
    failing = VerifyResult(outcomes=[TestOutcome("web-1", "t", "failed")])
    assert not failing.ok and failing.failures[0].host == "web-1"
