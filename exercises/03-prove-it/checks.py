"""Exercise 03, prove it: the attendee's tests, run on a good server, then on broken ones.

Each fault is planted on every server, the tests run, and the fault is taken out again,
whatever happened: the server is left as good as it was found.
"""

from __future__ import annotations

import ast

from lab.course.grader import Attempt, Feedback

TESTS = "tests/test_web.py"
SITE = "/etc/nginx/sites-available/default"

# what the fault is, how to plant it, how to take it out again
FAULTS = [
    ("the page is wrong",
     "cp /var/www/html/index.html /root/.page && echo 'Under maintenance' "
     "> /var/www/html/index.html",
     "mv /root/.page /var/www/html/index.html"),
    ("nginx is stopped", "systemctl stop nginx", "systemctl start nginx"),
    ("nginx is not enabled at boot", "systemctl disable nginx", "systemctl enable nginx"),
    ("nginx listens on port 8080 instead of 80",
     f"sed -i 's/listen 80 /listen 8080 /' {SITE} && systemctl restart nginx",
     f"sed -i 's/listen 8080 /listen 80 /' {SITE} && systemctl restart nginx"),
]


def pass_on_a_good_server(attempt: Attempt) -> Feedback | None:
    result = attempt.run_tests()
    if not result.outcomes or result.passed == 0:
        return Feedback(found=f"{TESTS} has no test that runs",
                        expected="test functions named test_..., taking `host`",
                        next="start from the one in the file, and `lab verify`")
    if not result.ok:
        failed = result.failures[0]
        return Feedback(
            found=f"your tests fail on a correct server: {failed.test}: {failed.message}",
            expected="every test passing on web-1 as the exercise made it",
            next="check what the server really has (`lab ssh web-1`) and fix the test's "
                 "expectation; `lab verify` shows each failure")
    return None


def catch_each_fault(attempt: Attempt) -> Feedback | None:
    missed = [what for what, plant, restore in FAULTS
              if not _caught(attempt, plant, restore)]
    if not missed:
        return None
    if len(missed) == len(FAULTS):
        why = (": they assert nothing, so they pass whatever the server does; each test "
               "needs an `assert`") if not _asserts(attempt.read(TESTS) or "") else ""
        return Feedback(
            found=f"your tests catch none of the planted faults{why}",
            expected=f"a failing test when {', when '.join(missed)}",
            next="`lab exercise hint`; break web-1 yourself and see your tests fail")
    return Feedback(
        found=f"your tests still pass when {' and when '.join(missed)}",
        expected="at least one failing test for each fault",
        next="add a test for it, break web-1 that way yourself (`lab ssh web-1`) and run "
             "`lab verify`; put it right again after")


def _asserts(source: str) -> bool:
    """Whether the test file has an assert statement anywhere (words in comments don't count)."""
    try:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))
    except SyntaxError:
        return True  # not ours to judge: pytest reports it


def _caught(attempt: Attempt, plant: str, restore: str) -> bool:
    """Whether some test fails while the fault is on every server."""
    names = attempt.server_names()
    try:
        for name in names:
            status, output = attempt.ssh(name, plant)
            if status != 0:
                raise RuntimeError(f"planting a fault on {name} failed: {output}")
        return not attempt.run_tests().ok
    finally:
        for name in names:
            attempt.ssh(name, restore)
