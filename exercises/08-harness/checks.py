"""Exercise 08, test it like a harness: `lab test` passes, with no change hidden from it."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback

PLAYBOOK = "playbooks/web.yml"


def no_hidden_changes(attempt: Attempt) -> Feedback | None:
    for task in attempt.tasks(PLAYBOOK):
        if str(task.get("changed_when")).lower() in ("false", "no"):
            return Feedback(
                found=f"the task '{task.get('name', '?')}' says `changed_when: false`: it hides "
                      "the change from the idempotence check instead of not making it",
                expected="a task that changes nothing when the server is already right",
                next="remove `changed_when: false` and use a module that compares first "
                     "(ansible.builtin.copy with `content:`)")
    return None


def lab_test_passes(attempt: Attempt) -> Feedback | None:
    report = attempt.test_cycle()
    if report.ok:
        return None
    failed = next(p for p in report.phases if not p.ok)
    advice = {
        "idempotence": "a shell or command task reports a change on every run: make it a "
                       "module that compares (ansible.builtin.copy with `content:`)",
        "verify": "`lab test --destroy never` keeps the servers so you can look (`lab ssh`)",
        "provision": "read the failed task's message above; fix the playbook",
    }.get(failed.name, "run `lab test` and read its phases")
    return Feedback(found=f"lab test: {failed.name} failed: {failed.detail or failed.outcome}",
                    expected="every phase ok", next=advice)
