"""Exercise 06, pull it back: v2 has a bug the tests and the health check miss (its opening
hours page answers, empty). The attendee's new test must stop v2's release by itself (a
rollback in the history, caused by that test), then v3, the fix, must be promoted.

The history only shows what the tests were when each release ran. So the tests as they are
now are tried too, on the shop's pages as the exercise makes them: they must fail on v2's
empty hours page (on a server otherwise as v3 makes it: the bug alone), and pass on v3's
pages and on v1's. The pages are put on the running web servers for the few seconds that
takes and the servers' own are put back after, whatever happens.
"""

from __future__ import annotations

import base64
import re
import shlex

from lab.access.ssh import run_as_root
from lab.course.grader import Attempt, Feedback
from lab.fleet import Fleet
from lab.release import ReleaseReport
from lab.verify import VerifyResult

GOOD, BUGGY, FIXED = "v1", "v2", "v3"
TESTS = "tests/test_web.py"
PAGES = ("index.html", "hours.html")  # what pages/<version>/ holds
HOURS = "hours.html"
WEB_ROOT = "/var/www/html"
KEPT = "/root/.lab-check-pages"  # the server's own pages, while the exercise's are on it
RELEASE_WITH_A_TEST = (f"a test in {TESTS} that fails when /hours.html does not give the hours, "
                       f"then `lab release --set version={BUGGY}` again")
# A rollback whose tests gate ran nothing: no test caught anything.
NOTHING_RAN = ("no test passed", "no tests ran", "none of its tests ran", "could not start")


def buggy_release_rolled_back(attempt: Attempt) -> Feedback | None:
    changed = _pages_changed(attempt)
    if changed:
        return Feedback(
            found=f"{changed} was changed: the versions are the developers', and this "
                  f"exercise is about a test that catches {BUGGY}'s bug, not about fixing "
                  "the page",
            expected="pages/ as the exercise gave them, and the bug caught by your test",
            next=f"copy it back: `cp .lab/exercise/start/{changed} {changed}`")
    ours = _of(attempt, BUGGY)
    if not ours:
        return Feedback(
            found=f"{BUGGY} was never released: nothing shows your test would stop it",
            expected=f"`lab release --set version={BUGGY}` rolling back by itself, stopped by "
                     "your test",
            next=f"`lab release --set version={BUGGY}` with your new test in {TESTS} (it must "
                 "exit 1, rolled back)")
    last = ours[-1]
    if last.outcome == "promoted":
        return Feedback(
            found=f"{BUGGY} was promoted ({last.id}): its empty opening hours page reached "
                  "every customer; your tests and the health check let it through",
            expected=f"a test that fails on {BUGGY}, so its release rolls back by itself",
            next=RELEASE_WITH_A_TEST)
    if "failed its tests" in last.reason and any(w in last.reason for w in NOTHING_RAN):
        gate = last.reason.split("failed its tests: ", 1)[-1].split(": add tests", 1)[0]
        return Feedback(
            found=f"{BUGGY} was rolled back, but because none of your tests ran on it, not "
                  f"because one caught its bug: {gate}",
            expected=f"your tests running on {BUGGY}'s new server, and your new test failing "
                     "on its hours page",
            next="make your tests run: no skip (`lab verify` shows them passing on web-1)")
    if not _stopped_by_the_attendee(attempt, last.reason):
        return Feedback(
            found=f"{BUGGY} was rolled back, but not by a test or health check of yours: "
                  f"{last.reason}",
            expected=f"your new test (in {TESTS}) stopping it at the tests gate",
            next=RELEASE_WITH_A_TEST)
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
            next="make your test check the days and the times, not one version's exact "
                 f"words (`cat pages/{FIXED}/hours.html`)")
    return None


def tests_pass_now(attempt: Attempt) -> Feedback | None:
    result = attempt.run_tests()
    if not result.ok:
        return Feedback(found=result.problem,
                        expected=f"every test passing on the servers {FIXED} runs on",
                        next=f"make {result.failures[0].test} pass on {FIXED} (`lab verify` "
                             "shows each failure)")
    if not result.passed:
        ran = (f"{len(result.outcomes)} skipped" if result.outcomes
               else "none ran: lab.yml's `tests:` names no test file?")
        return Feedback(found=f"none of your tests passed on the servers running now ({ran})",
                        expected=f"your tests running, and passing, on {FIXED}",
                        next=f"take the skips out of {TESTS} (and keep it in lab.yml's "
                             "`tests:`)")
    return None


def tests_catch_the_bug(attempt: Attempt) -> Feedback | None:
    """The tests as they are now: failing on v2's bug alone, passing on v3 and on v1."""
    names = attempt.server_names(_role(attempt))
    fixed = _pages(attempt, FIXED)
    bug = fixed | {HOURS: _pages(attempt, BUGGY)[HOURS]}
    try:
        _keep(attempt, names)
        on_bug = _tried(attempt, names, bug)
        if on_bug.ok:
            return _passes_on_the_bug(attempt, on_bug, bug[HOURS])
        for version in (FIXED, GOOD):
            on_good = _tried(attempt, names, _pages(attempt, version))
            if not on_good.ok:
                return _fails_on_a_good_version(version, on_good, names)
    finally:
        _put_back(attempt, names)
    return None


def _passes_on_the_bug(attempt: Attempt, result: VerifyResult, page: str) -> Feedback:
    shown = " ".join(page.split())
    found = (f"your tests, as they are now, pass on {BUGGY}'s empty hours page (a server as "
             f"{FIXED} makes it, with {BUGGY}'s /hours.html: {shown!r} and nothing else)")
    skipped = sorted({o.test for o in result.outcomes if o.status == "skipped"})
    if skipped:
        return Feedback(
            found=f"{found}: {skipped[0]} was skipped, and a skipped test does not fail",
            expected="a test that fails when /hours.html lost the hours: the gate the next "
                     "release with this bug meets",
            next=f"take the skip out of {skipped[0]}")
    stoppers = _stoppers(attempt)
    ran = {o.test for o in result.outcomes}
    if stoppers and stoppers[0] in ran:
        why = (f": {stoppers[0]}, which stopped {BUGGY}'s release, passes on its bug alone "
               "(loosened since, or it caught something other than the bug: a version string?)")
    elif stoppers:
        why = f": {stoppers[0]}, which stopped {BUGGY}'s release, is gone from {TESTS}"
    else:
        why = ""
    return Feedback(
        found=found + why,
        expected="a test that fails when /hours.html lost the hours, and passes on every good "
                 "version: the gate the next release with this bug meets",
        next="make your hours test assert what customers need, the days and the times "
             f"(`cat pages/{GOOD}/{HOURS} pages/{FIXED}/{HOURS}`)")


def _fails_on_a_good_version(version: str, result: VerifyResult,
                             names: list[str]) -> Feedback:
    failed = result.failures[0]
    if version == FIXED:
        return Feedback(
            found=f"your tests fail on {FIXED}'s pages as the exercise makes them: "
                  f"{failed.test}: {failed.message}; they pass on {', '.join(names)} only "
                  "because its pages are not v3's (changed by hand on the server?)",
            expected=f"tests that pass on {FIXED}, the version customers get, as its release "
                     "made it",
            next=f"make {failed.test} pass on pages/{FIXED}/ as they are (`cat "
                 f"pages/{FIXED}/{HOURS}`), not on a page changed on the server")
    return Feedback(
        found=f"your tests fail on {version}, a good version (what web-1 ran before the "
              f"releases): {failed.test}: {failed.message}",
        expected=f"a test that fails on the bug alone: every good version ({GOOD}, {FIXED}) "
                 "passes it",
        next="test what every good version has (the days and the times), not one version's "
             f"words nor its version string: `cat pages/{version}/{HOURS}`")


# the exercise's pages, on the running servers ------------------------------------------------


def _pages(attempt: Attempt, version: str) -> dict[str, str]:
    """pages/<version>/ as the exercise gave it (the start's copy: not the attendee's)."""
    found = {}
    for page in PAGES:
        text = attempt.started_files(f"pages/{version}/{page}")
        if text is None:
            raise RuntimeError(f"pages/{version}/{page} is missing from the exercise's start")
        found[page] = text
    return found


def _keep(attempt: Attempt, names: list[str]) -> None:
    """The servers' own pages, kept aside; a copy an interrupted check left is the one kept."""
    for name in names:
        _run(attempt, name, f"[ -d {KEPT} ] || cp -a {WEB_ROOT} {KEPT}")


def _tried(attempt: Attempt, names: list[str], pages: dict[str, str]) -> VerifyResult:
    """The attendee's tests on the servers with ``pages`` put in place."""
    for name in names:
        _run(attempt, name, write_pages(pages))
    return attempt.run_tests(names)


def _put_back(attempt: Attempt, names: list[str]) -> None:
    for name in names:
        attempt.ssh(name, f"[ -d {KEPT} ] && rm -rf {WEB_ROOT} && cp -a {KEPT} {WEB_ROOT} && "
                          f"rm -rf {KEPT}")


def write_pages(pages: dict[str, str]) -> str:
    """A shell command writing each page into the web root (through base64: any text)."""
    return " && ".join(
        f"printf %s {base64.b64encode(text.encode()).decode()} | base64 -d > "
        f"{shlex.quote(f'{WEB_ROOT}/{page}')}" for page, text in pages.items())


def _run(attempt: Attempt, name: str, command: str) -> None:
    status, output = attempt.ssh(name, command)
    if status != 0:
        raise RuntimeError(f"putting the exercise's pages on {name} failed: {output[:200]}")


# reading the history and the files -----------------------------------------------------------


def _of(attempt: Attempt, version: str) -> list[ReleaseReport]:
    return [r for r in attempt.releases() if _version(r) == version]


def _version(release: ReleaseReport) -> str:
    return str(release.vars.get("version", ""))


def _role(attempt: Attempt) -> str:
    balancer = attempt.config.balancer
    return balancer.routes_to if balancer is not None else "web"


def _stoppers(attempt: Attempt) -> list[str]:
    """The tests named in the last rollback of v2 (``test_web::test_hours...``)."""
    ours = _of(attempt, BUGGY)
    return re.findall(r"\b\w+::test\w*", ours[-1].reason) if ours else []


def _pages_changed(attempt: Attempt) -> str | None:
    """The first page of pages/ that differs from the exercise's, as a path."""
    for version in (GOOD, BUGGY, FIXED):
        for page in PAGES:
            path = f"pages/{version}/{page}"
            if attempt.read(path) != attempt.started_files(path):
                return path
    return None


def _stopped_by_the_attendee(attempt: Attempt, reason: str) -> bool:
    """The rollback came from the tests gate with the attendee's tests changed, or from a
    health check they changed (the start's tests and health check pass on v2)."""
    if "failed its tests" in reason:
        return attempt.read(TESTS) != attempt.started_files(TESTS)
    if "health check" in reason:
        started = attempt.started_files("lab.yml")
        return attempt.read("lab.yml") != started
    return False


# `call:` actions of the wrong answers (CI): a test changed between two releases, a page
# changed by hand on the server ----------------------------------------------------------------

STRICT = 'assert "9:00 to 19:00" in page'  # wrong/loosened-after-the-rollback: a slip
LOOSE = 'assert "Opening hours" in page'


def loosen_the_hours_test(fleet: Fleet) -> None:
    """The test that stopped v2 (it fails on every version) loosened until v3 passes it."""
    path = fleet.config.directory / TESTS
    text = path.read_text(encoding="utf-8")
    if STRICT not in text:
        raise RuntimeError(f"{TESTS}: no `{STRICT}` to loosen")
    path.write_text(text.replace(STRICT, LOOSE), encoding="utf-8")


def edit_the_hours_page_by_hand(fleet: Fleet) -> None:
    """v1's hours page written by hand on the running web servers (v3's, after a release)."""
    page = (fleet.config.directory / ".lab" / "exercise" / "start" / "pages" / GOOD / HOURS)
    command = write_pages({HOURS: page.read_text(encoding="utf-8")})
    role = fleet.config.balancer.routes_to if fleet.config.balancer else "web"
    for server in fleet.live():
        if server.role == role:
            result = run_as_root(server, fleet.key, command)
            if result.returncode != 0:
                raise RuntimeError(f"{server.name}: {result.stderr.strip()[:200]}")

