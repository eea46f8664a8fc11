"""Exercise 06, pull it back: v2 has a bug the tests and the health check miss (its opening
hours page answers, empty). The attendee's new test must stop v2's release by itself (a
rollback in the history, caused by that test), then v3, the fix, must be promoted."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback
from lab.release import ReleaseReport

BUGGY, FIXED = "v2", "v3"
TESTS = "tests/test_web.py"
ADD_A_TEST = (f"add a test to {TESTS} that fails when /hours.html does not give the hours "
              "(`lab verify` shows it passing on a good version)")


def buggy_release_rolled_back(attempt: Attempt) -> Feedback | None:
    ours = _of(attempt, BUGGY)
    if not ours:
        return Feedback(
            found=f"{BUGGY} was never released: nothing shows your test would stop it",
            expected=f"`lab release --set version={BUGGY}` rolling back by itself, stopped by "
                     "your test",
            next=f"{ADD_A_TEST}, then `lab release --set version={BUGGY}` (it must exit 1, "
                 "rolled back)")
    last = ours[-1]
    if last.outcome == "promoted":
        return Feedback(
            found=f"{BUGGY} was promoted ({last.id}): its empty opening hours page reached "
                  "every customer; your tests and the health check let it through",
            expected=f"a test that fails on {BUGGY}, so its release rolls back by itself",
            next=f"{ADD_A_TEST}, then release {BUGGY} again: it must roll back")
    if not _stopped_by_the_attendee(attempt, last.reason):
        return Feedback(
            found=f"{BUGGY} was rolled back, but not by a test or health check of yours: "
                  f"{last.reason}",
            expected=f"your new test (in {TESTS}) stopping it at the tests gate",
            next=f"{ADD_A_TEST}, then `lab release --set version={BUGGY}` again")
    return None


def fixed_release_promoted(attempt: Attempt) -> Feedback | None:
    releases = attempt.releases()
    after = releases.index(_of(attempt, BUGGY)[-1]) + 1
    ours = [r for r in releases[after:] if _version(r) == FIXED]
    if not ours:
        return Feedback(
            found=f"{FIXED}, the fixed version, has not been released since {BUGGY} was "
                  "rolled back",
            expected=f"{FIXED} released and promoted, with your test in the gates",
            next=f"`lab release --set version={FIXED}`")
    last = ours[-1]
    if last.outcome != "promoted":
        return Feedback(
            found=f"{FIXED}, the fixed version, was rolled back too: {last.reason}",
            expected="a test that fails on the bug and passes on a good version: one that "
                     "fails on every version stops every release",
            next="make your test check what matters (that the page gives days and times), not "
                 f"one version's exact words; `cat pages/{FIXED}/hours.html`, then release "
                 f"{FIXED} again")
    return None


def tests_pass_now(attempt: Attempt) -> Feedback | None:
    result = attempt.run_tests()
    if not result.ok:
        return Feedback(found=result.problem,
                        expected=f"every test passing on the servers {FIXED} runs on",
                        next="`lab verify` shows each failure; `lab history` what runs now")
    return None


def _of(attempt: Attempt, version: str) -> list[ReleaseReport]:
    return [r for r in attempt.releases() if _version(r) == version]


def _version(release: ReleaseReport) -> str:
    return str(release.vars.get("version", ""))


def _stopped_by_the_attendee(attempt: Attempt, reason: str) -> bool:
    """The rollback came from the tests gate with the attendee's tests changed, or from a
    health check they changed (the start's tests and health check pass on v2)."""
    if "failed its tests" in reason:
        return attempt.read(TESTS) != attempt.started_files(TESTS)
    if "health check" in reason:
        started = attempt.started_files("lab.yml")
        return attempt.read("lab.yml") != started
    return False
