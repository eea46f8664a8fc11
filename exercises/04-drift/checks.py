"""Exercise 04, the one-line change caught: drift finds it, the code wins."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback

PLAYBOOK = "playbooks/web.yml"


def code_unchanged(attempt: Attempt) -> Feedback | None:
    if attempt.read(PLAYBOOK) != attempt.started_files(PLAYBOOK):
        return Feedback(
            found=f"you changed {PLAYBOOK}: the code now follows the server",
            expected="the server brought back to the code, not the code to the server: "
                     "nobody reviewed that hand-made change",
            next="`lab exercise reset` brings back the playbook as given (your edit is kept in "
                 ".lab/backups/)")
    return None


def no_drift(attempt: Attempt) -> Feedback | None:
    report = attempt.drift()
    if report.problem:
        return Feedback(found=report.problem, next="read `lab drift`'s output")
    if report.drifted:
        first = report.drifted[0]
        return Feedback(
            found=f"{first.host}: the task '{first.task}' differs from the code "
                  f"({len(report.drifted)} task(s) in all)",
            expected="`lab drift` saying the servers match the code",
            next="`lab provision`: it puts back on the server what the code says")
    return None


def tests_pass(attempt: Attempt) -> Feedback | None:
    result = attempt.run_tests()
    if not result.ok:
        return Feedback(found=result.problem, expected="every test passing",
                        next="`lab verify` shows each failure")
    return None
