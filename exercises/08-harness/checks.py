"""Exercise 08, test it like a harness: `lab test` passes, with no change hidden from it.

The goals look at fresh servers made from the attendee's code by `lab test`'s own cycle
(``attempt.rebuild()``), run with the tests the exercise gave: the build stamp must be made by
the playbook there, said changed when it is made, and not on the second run. Silencing the
stamp task, or taking it away with its test, gets `lab test` to pass; neither gets past here.
"""

from __future__ import annotations

import ast

from lab.course.grader import Attempt, Feedback, hidden_changes

PLAYBOOK = "playbooks/web.yml"
TESTS = "tests/test_web.py"
STAMP = "/var/www/html/build.txt"
STAMPED = "built from code"
FRESH = f"a fresh server built from {PLAYBOOK}"


def no_hidden_changes(attempt: Attempt) -> Feedback | None:
    return hidden_changes(attempt, PLAYBOOK)


def lab_test_passes(attempt: Attempt) -> Feedback | None:
    less = _tests_given(attempt)
    if less:
        return less
    rebuild = attempt.rebuild()
    report = rebuild.report
    if report.ok:
        skipped = sorted({o.test for o in (rebuild.verified.outcomes if rebuild.verified else [])
                          if o.status == "skipped"})
        if not skipped:
            return None
        return Feedback(
            found=f"lab test passes, but verify skipped {', '.join(skipped)}: a skipped test "
                  "proves nothing",
            expected="every test of tests/ run, and passing",
            next=f"remove what skips {skipped[0]} (a `pytest.skip`, a mark, a conftest.py), "
                 "then `lab test`")
    failed = next(p for p in report.phases if not p.ok)
    advice = {
        "idempotence": "a task that runs a command reports a change on every run: make it a "
                       "module that compares (ansible.builtin.copy with `content:`)",
        "verify": "`lab test --destroy never` keeps the fresh servers for you to look at",
        "provision": "fix the playbook's failed task: its message is above",
    }.get(failed.name, "run `lab test` and read its phases")
    return Feedback(found=f"lab test: {failed.name} failed: {failed.detail or failed.outcome}",
                    expected="every phase ok", next=advice)


def stamp_from_code(attempt: Attempt) -> Feedback | None:
    rebuild = attempt.rebuild()
    for name in rebuild.server_names():
        status, text = rebuild.ssh(name, f"cat {STAMP}")
        if status != 0:
            return Feedback(
                found=f"{FRESH} has no {STAMP}: the playbook no longer makes the build stamp, "
                      "it was taken away rather than made idempotent",
                expected=f"the playbook writing {STAMP} ({STAMPED!r}), once",
                next="put back the task 'The build stamp' as the ansible.builtin.copy of the "
                     "README's step 2, then `lab test`")
        if text.strip() != STAMPED:
            return Feedback(
                found=f'on {FRESH}, {STAMP} says "{text.strip()[:60]}"',
                expected=f"the build stamp saying {STAMPED!r}",
                next=f"`content: \"{STAMPED}\\n\"` on the task 'The build stamp', then "
                     "`lab test`")
    return None


def _tests_given(attempt: Attempt) -> Feedback | None:
    """The tests the exercise gave, still run and unchanged: taking one away, or making it
    prove less, is a way for `lab test` to pass without the server being right."""
    roles = attempt.config.servers
    if TESTS not in {str(t) for role in roles.values() for t in role.tests}:
        return Feedback(
            found=f"lab.yml no longer runs {TESTS}: `lab test` passes with no test to fail",
            expected=f"the role web with `tests: [{TESTS}]`, as lab.yml started",
            next=f"put back `tests: [{TESTS}]` under `web:` in lab.yml, then `lab test`")
    given, now = _tests(attempt.started_files(TESTS)), _tests(attempt.read(TESTS))
    removed = sorted(set(given) - set(now))
    changed = sorted(name for name in given if name in now and now[name] != given[name])
    if removed or changed:
        what = (f"no longer has {', '.join(removed)}" if removed else
                f"changed {', '.join(changed)}")
        return Feedback(
            found=f"{TESTS} {what}: a test taken away or made to prove less makes `lab test` "
                  "pass without the server being right",
            expected=f"the tests {TESTS} started with, unchanged (add your own beside them)",
            next=f"put back {(removed or changed)[0]} as .lab/exercise/start/{TESTS} has it, "
                 "then `lab test`")
    return None


def _tests(source: str | None) -> dict[str, str]:
    """The test functions a test file defines, each with its code (as Python reads it:
    comments and layout aside); none when the file is missing or does not parse."""
    try:
        tree = ast.parse(source or "")
    except SyntaxError:
        return {}
    return {node.name: ast.dump(node) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test")}
