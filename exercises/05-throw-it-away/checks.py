"""Exercise 05, throw it away: v2 goes out as a release (a new server, canary steps, the old
one destroyed), read from the lab's release history, not as a change to a running server."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback
from lab.release import ReleaseReport
from lab.state import Stage

OLD_PAGE = "Welcome to the shop v1"
NEW_PAGE = "Welcome to the shop - now open on Sundays v2"
RELEASE = "`lab release --set version=v2`"
RESET = "`lab exercise reset` (your files are kept in .lab/backups/)"


def released(attempt: Attempt) -> Feedback | None:
    if attempt.releases():
        return None
    page = attempt.through_balancer()
    if page and page != OLD_PAGE:
        how = ("by `lab provision`, which changes the servers where they run"
               if _provisioned_again(attempt) else "by hand, on the server")
        return Feedback(
            found=f"the shop serves {page!r}, but no release was made: the servers were "
                  f"changed in place ({how})",
            expected="v2 on a new server built from the code, put into traffic step by step, "
                     "the old server thrown away",
            next=f"{RESET}: it starts again from v1, on a server nobody changed")
    return Feedback(
        found=f"no release yet: the shop serves {page or 'nothing'!r}",
        expected=f"v2 ({NEW_PAGE!r}) released with `lab release`",
        next=f"change the page's line in playbooks/web.yml, then {RELEASE}")


def promoted(attempt: Attempt) -> Feedback | None:
    last = _last(attempt)
    if last.outcome != "promoted":
        return Feedback(
            found=f"your last release ({last.id}) was {last.outcome}: {last.reason}",
            expected="a release that passes every gate and is promoted",
            next="`lab report --open` shows where and why it stopped")
    if last.untested:
        return Feedback(
            found=f"your last release ({last.id}) ran with --untested: no test had to pass "
                  "before v2 took customers' traffic",
            expected="a release your tests gate: the new server proven before it serves",
            next=f"put `tests: [tests/test_web.py]` back under web in lab.yml, then {RELEASE}")
    return None


def canary_steps(attempt: Attempt) -> Feedback | None:
    last = _last(attempt)
    steps = [step.percent for step in last.steps]
    if not any(percent < 100 for percent in steps):
        return Feedback(
            found=f"your last release went straight to 100 % (steps {steps}): every customer "
                  "got the new server at once",
            expected="canary steps: a share of the traffic first, watched, then all of it, so "
                     "a bad version is pulled back having hurt only a few",
            next=f"put the steps back in lab.yml (`release: steps: [50, 100]`), then {RELEASE}")
    return None


def no_failed_requests(attempt: Attempt) -> Feedback | None:
    traffic = _last(attempt).traffic
    if traffic.get("errors", 0):
        return Feedback(
            found=f"the probe saw {traffic['errors']} failed request(s) of "
                  f"{traffic.get('requests')} during your last release",
            expected="no customer request failing while servers are replaced",
            next="`lab report --open` shows when they failed")
    return None


def old_generation_gone(attempt: Attempt) -> Feedback | None:
    last = _last(attempt)
    left = [name for name in attempt.server_names("web") if name not in last.new]
    if left:
        return Feedback(
            found=f"{', '.join(left)} still run(s), but the last release made "
                  f"{', '.join(last.new)}",
            expected="only the servers of the last release: the old generation thrown away",
            next=f"{RESET}: it starts again from web-1 alone")
    return None


def serves_v2(attempt: Attempt) -> Feedback | None:
    page = attempt.through_balancer()
    if page == NEW_PAGE:
        return None
    if not page:
        return Feedback(
            found="nothing answers through the balancer (its port is lab.yml's `listen:`)",
            expected=f"{NEW_PAGE!r}", next="`lab status` shows whether lb-1, the balancer, runs")
    if "Sundays" not in page:
        return Feedback(
            found=f"the release ran, but the shop serves {page!r}: playbooks/web.yml still "
                  "makes the old page",
            expected=f"{NEW_PAGE!r}: a release builds new servers from the code, so the code "
                     "must say the new page",
            next=f"change the page's line in playbooks/web.yml, then {RELEASE}")
    return Feedback(
        found=f"the shop serves {page!r}: the new page, but not as version v2",
        expected=f"{NEW_PAGE!r}",
        next=f"release it as v2: {RELEASE}")


def _last(attempt: Attempt) -> ReleaseReport:
    return attempt.releases()[-1]  # `released` passed: there is one


def _provisioned_again(attempt: Attempt) -> bool:
    """A web server provisioned more than once: `lab provision` after the start's."""
    names = [e.server for e in attempt.events(Stage.PROVISIONED)]
    return any(names.count(name) > 1 for name in attempt.server_names("web"))
