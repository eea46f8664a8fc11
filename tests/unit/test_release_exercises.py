"""Exercises 05 and 06 without servers: the `release` action of exercise.yml, what a check
reads through the balancer, and each goal's verdict on release histories as `lab history
--json` holds them. (With servers, every wrong answer and the solution: tests/integration/
test_exercises.py.)"""

from __future__ import annotations

import base64
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from lab.config import describe
from lab.course.exercises import Action, course, find_exercise
from lab.course.grader import Attempt, Feedback
from lab.release import ReleaseReport, StepReport
from lab.state import LogEntry
from lab.verify import TestOutcome, VerifyResult

THROW_IT_AWAY, PULL_IT_BACK = 5, 6


# the release action --------------------------------------------------------------------------


def test_a_release_action_is_a_word_or_carries_its_vars() -> None:
    assert Action.model_validate("release").do == "release"
    action = Action.model_validate({"release": {"version": "v2", "broken": True}})
    assert action.do == "release" and action.release == {"version": "v2", "broken": True}
    assert Action.model_validate({"release": None}).release == {}


@pytest.mark.parametrize(("written", "said"), [
    ({"release": {"version": "v2"}, "ssh": "web-1"}, "a release action is `release` or"),
    ({"release": ["v2"]},
     "release: must be a mapping of vars ({VAR: VALUE}) or `baked`, got a list"),
    ({"release": "bakd"},
     "release: must be a mapping of vars ({VAR: VALUE}) or `baked`, got 'bakd'"),
])
def test_a_bad_release_action_says_how_one_is_written(written: dict[str, Any],
                                                      said: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Action.model_validate(written)
    assert said in describe(raised.value)


# through the balancer ------------------------------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, b"Welcome to the shop v2\n") if self.path == "/" else (404, b"no")
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_balancer() -> Iterator[Attempt]:
    """An Attempt whose lab's balancer is a web server on 127.0.0.1 (the real one, HAProxy,
    is read by the exercises' integration tests)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Found:
        url = f"http://127.0.0.1:{server.server_address[1]}/"

    attempt = Attempt.__new__(Attempt)
    lab = SimpleNamespace(open_balancer=lambda *args: Found())
    attempt.__dict__.update(config=None, fleet=SimpleNamespace(key=None, lab=lab), _servers={})
    try:
        yield attempt
    finally:
        server.shutdown()


def test_through_the_balancer_is_the_page_a_customer_gets(local_balancer: Attempt) -> None:
    assert local_balancer.through_balancer() == "Welcome to the shop v2"
    assert local_balancer.through_balancer("/missing") == ""  # an error answers nothing


# the goals on release histories --------------------------------------------------------------


class History:
    """What a check asks an Attempt for, from a written-down history."""

    def __init__(self, releases: list[ReleaseReport], page: str = "",
                 servers: list[str] | None = None, events: list[LogEntry] | None = None,
                 files: dict[str, str] | None = None,
                 started: dict[str, str] | None = None) -> None:
        self._releases, self.page, self.servers = releases, page, servers or []
        self._events, self.files, self.started = events or [], files or {}, started or {}

    def releases(self) -> list[ReleaseReport]:
        return self._releases

    def through_balancer(self, path: str = "/") -> str:
        return self.page

    def server_names(self, role: str | None = None) -> list[str]:
        return self.servers

    def events(self, kind: str | None = None) -> list[LogEntry]:
        return [e for e in self._events if kind is None or e.kind == kind]

    def read(self, path: str) -> str | None:
        return self.files.get(path, self.started.get(path))

    def started_files(self, path: str) -> str | None:
        return self.started.get(path)


def release(version: str, outcome: str = "promoted", reason: str = "",
            steps: tuple[int, ...] = (50, 100), errors: int = 0) -> ReleaseReport:
    return ReleaseReport(
        id=f"r-{version}", role="web", started=0.0, vars={"version": version}, image=None,
        previous={}, outcome=outcome, reason=reason,
        steps=[StepReport(p, {"requests": 100}, "passed") for p in steps],
        traffic={"requests": 200, "errors": errors}, old=["web-1"], new=["web-2"])


def first_failure(number: int, attempt: History) -> str:
    exercise = find_exercise(number)
    for goal in exercise.spec.goals:
        found = exercise.checks[goal.check](attempt)
        if isinstance(found, Feedback):
            return found.problem
    return ""


SUNDAYS = "Welcome to the shop - now open on Sundays v2"
PROVISIONED = [LogEntry(id=1, at=1.0, server="web-1", kind="provisioned")]


@pytest.mark.parametrize(("history", "said"), [
    (History([], "Welcome to the shop v1", ["web-1"], PROVISIONED), "no release yet"),
    (History([], SUNDAYS, ["web-1"], PROVISIONED), "changed in place (by hand"),
    (History([], SUNDAYS, ["web-1"], PROVISIONED * 2), "changed in place (by `lab provision`"),
    (History([release("v2", "rolled-back", "at 50%: health check failing on web-2")]),
     "was rolled-back: at 50%: health check failing"),
    (History([release("v2", steps=(100,))]), "straight to 100 %"),
    (History([release("v2", errors=3)]), "the probe saw 3 failed request(s) of 200"),
    (History([release("v2")], servers=["web-1", "web-2"]), "web-1 still run(s)"),
    (History([release("v2")], "Welcome to the shop v2", ["web-2"]),
     "still makes the old page"),
    (History([release("v2")], "Welcome to the shop - now open on Sundays v1", ["web-2"]),
     "not as version v2"),
    (History([release("v2")], SUNDAYS, ["web-2"]), ""),
])
def test_throw_it_away_reads_the_release_history(history: History, said: str) -> None:
    found = first_failure(THROW_IT_AWAY, history)
    assert said in found if said else found == ""


TESTS = {"tests/test_web.py": "def test_answers(host): ..."}
MINE = {"tests/test_web.py": "def test_answers(host): ...\ndef test_hours(host): ..."}
BY_TESTS = "the new generation failed its tests: verify failed: web-2: test_web::test_hours: x"
PAGES = find_exercise(PULL_IT_BACK).start_dir / "pages"
STARTED_PAGES = {f"pages/{p.relative_to(PAGES)}": p.read_text() for p in PAGES.rglob("*.html")}
# A test of the attendee's, as the fake server judges it: its name, and its outcome on the
# pages the server has (passed, failed, skipped).
Judge = list[tuple[str, Callable[[dict[str, str]], str]]]
ANSWERS: Judge = [("test_web::test_answers", lambda pages: "passed")]


def hours_give(*words: str) -> Callable[[dict[str, str]], str]:
    return lambda pages: "passed" if all(w in pages["hours.html"] for w in words) else "failed"


SOLUTION = [*ANSWERS, ("test_web::test_hours", hours_give("Monday", "9:00 to 18:00"))]


class Shop(History):
    """A history, and a web server as exercise 06's last goal sees it through ssh: its pages
    (v3's, after the releases), and the attendee's tests as a judge of them."""

    def __init__(self, releases: list[ReleaseReport], files: dict[str, str],
                 judge: Judge) -> None:
        super().__init__(releases, servers=["web-3"], files=files,
                         started=TESTS | STARTED_PAGES)
        self.config = SimpleNamespace(balancer=SimpleNamespace(routes_to="web"))
        self.judge = judge
        self.pages = {"index.html": STARTED_PAGES["pages/v3/index.html"],
                      "hours.html": STARTED_PAGES["pages/v3/hours.html"]}
        self.kept: dict[str, str] | None = None
        self.tried: list[dict[str, str]] = []

    def ssh(self, name: str, command: str) -> tuple[int, str]:
        if "|| cp -a" in command:  # keep the server's own pages aside
            self.kept = self.kept or dict(self.pages)
        elif "base64 -d" in command:
            for text, path in re.findall(r"printf %s (\S+) \| base64 -d > (\S+)", command):
                self.pages[path.rsplit("/", 1)[1]] = base64.b64decode(text).decode()
        elif "rm -rf" in command and self.kept is not None:  # put them back
            self.pages, self.kept = self.kept, None
        return 0, ""

    def run_tests(self, names: list[str] | None = None) -> VerifyResult:
        self.tried.append(dict(self.pages))
        return VerifyResult([TestOutcome("web-3", test, outcome(self.pages))
                             for test, outcome in self.judge])


def pull_it_back(releases: list[ReleaseReport], files: dict[str, str] = MINE,
                 judge: Judge = SOLUTION) -> str:
    return first_failure(PULL_IT_BACK, Shop(releases, files, judge))


FIXED_AFTER_A_ROLLBACK = [release("v2", "rolled-back", BY_TESTS), release("v3")]


@pytest.mark.parametrize(("releases", "files", "said"), [
    ([], MINE, "v2 was never released"),
    ([release("v3")], MINE, "v2 was never released"),
    ([release("v2")], TESTS, "v2 was promoted"),
    ([release("v2", "rolled-back", "interrupted (Ctrl-C)")], MINE,
     "not by a test or health check of yours: interrupted"),
    ([release("v2", "rolled-back", BY_TESTS)], TESTS, "not by a test or health check of yours"),
    ([release("v2", "rolled-back", "the new generation failed its tests: no test passed on "
              "web-2 (7 ran, all skipped): add tests")], MINE,
     "but because none of your tests ran on it, not because one caught its bug: no test passed "
     "on web-2 (7 ran, all skipped); expected"),
    ([release("v2", "rolled-back", "the new generation failed its tests: verify failed: web-2: "
              "tests/test_web.py:3: ImportError: x (the file could not be loaded, so none of "
              "its tests ran)")], MINE, "but because none of your tests ran on it"),
    ([release("v2")], MINE | {"pages/v2/hours.html": "Opening hours: all week\n"},
     "pages/v2/hours.html was changed"),
    ([release("v3"), release("v2", "rolled-back", BY_TESTS)], MINE,
     "v3, the fixed version, has not been released since"),
    ([release("v2", "rolled-back", BY_TESTS), release("v3", "rolled-back", BY_TESTS)], MINE,
     "the fixed version, was rolled back too"),
    (FIXED_AFTER_A_ROLLBACK, MINE, ""),
])
def test_pull_it_back_wants_the_bug_stopped_by_the_attendees_test(
        releases: list[ReleaseReport], files: dict[str, str], said: str) -> None:
    found = pull_it_back(releases, files)
    assert said in found if said else found == ""


def skipped(pages: dict[str, str]) -> str:
    return "skipped"


@pytest.mark.parametrize(("judge", "said"), [
    (SOLUTION, ""),
    # loosened after v2's rollback: the page answers with its title
    ([*ANSWERS, ("test_web::test_hours", hours_give("Opening hours"))],
     "your tests, as they are now, pass on v2's empty hours page (a server as v3 makes it, "
     "with v2's /hours.html: 'Opening hours:' and nothing else): test_web::test_hours, which "
     "stopped v2's release, passes on its bug alone"),
    (ANSWERS, "test_web::test_hours, which stopped v2's release, is gone from"),
    ([*ANSWERS, ("test_web::test_hours", skipped)],
     "test_web::test_hours was skipped, and a skipped test does not fail"),
    # the bug caught by the version on the home page
    ([*ANSWERS, ("test_web::test_hours",
                 lambda pages: "failed" if "v2" in pages["index.html"] else "passed")],
     "pass on v2's empty hours page"),
    ([*ANSWERS, ("test_web::test_hours", hours_give("Sunday, 9:00 to 18:00"))],
     "your tests fail on v1, a good version (what web-1 ran before the releases): "
     "test_web::test_hours"),
])
def test_pull_it_back_tries_the_tests_as_they_are_now_on_the_bug_and_the_good_versions(
        judge: Judge, said: str) -> None:
    shop = Shop(FIXED_AFTER_A_ROLLBACK, MINE, judge)
    before = dict(shop.pages)
    found = first_failure(PULL_IT_BACK, shop)
    assert said in found if said else found == ""
    assert shop.pages == before and shop.kept is None  # the server's own pages are back
    v2_hours = STARTED_PAGES["pages/v2/hours.html"]
    assert shop.tried[1] == {"index.html": STARTED_PAGES["pages/v3/index.html"],
                             "hours.html": v2_hours}  # the bug alone, after the run as it is


def test_pull_it_back_tells_tests_that_pass_only_on_a_page_changed_by_hand() -> None:
    shop = Shop(FIXED_AFTER_A_ROLLBACK, MINE,
                [*ANSWERS, ("test_web::test_hours", hours_give("Saturday, 9:00 to 18:00"))])
    shop.pages["hours.html"] = STARTED_PAGES["pages/v1/hours.html"]  # by hand, on web-3
    found = first_failure(PULL_IT_BACK, shop)
    assert ("your tests fail on v3's pages as the exercise makes them: test_web::test_hours: "
            in found) and "changed by hand on the server?" in found
    assert shop.pages["hours.html"] == STARTED_PAGES["pages/v1/hours.html"]  # left as found


def test_pull_it_back_puts_the_servers_pages_back_when_the_tests_cannot_run() -> None:
    shop = Shop(FIXED_AFTER_A_ROLLBACK, MINE, SOLUTION)
    before = dict(shop.pages)
    calls = 0

    def run_tests(names: list[str] | None = None) -> VerifyResult:
        nonlocal calls
        calls += 1
        if calls > 1:  # the first run is on the server as it is
            raise RuntimeError("ssh: connection refused")
        return VerifyResult([TestOutcome("web-3", "test_web::test_answers", "passed")])

    shop.run_tests = run_tests  # type: ignore[method-assign]
    exercise = find_exercise(PULL_IT_BACK)
    with pytest.raises(RuntimeError):
        for goal in exercise.spec.goals:
            exercise.checks[goal.check](shop)
    assert shop.pages == before and shop.kept is None


def test_every_balanced_exercise_listens_on_a_port_chosen_at_start() -> None:
    """A fixed `listen:` would collide between two workspaces of one exercise (a class on one
    machine, or `lab exercise next` while another workspace runs): each balanced exercise
    says `listen: __PORT__`, and start fills in a port free on 127.0.0.1."""
    balanced = [e for e in course() if "balancer:" in (e.start_dir / "lab.yml").read_text()
                and not e.spec.targets]  # 09's balancer is an ALB on AWS: no local port
    assert {e.number for e in balanced} >= {THROW_IT_AWAY, PULL_IT_BACK}
    for exercise in balanced:
        for lab_yml in [exercise.start_dir / "lab.yml", *exercise.folder.glob("wrong/*/lab.yml")]:
            assert "listen: __PORT__" in lab_yml.read_text(), lab_yml
    assert Path(find_exercise(PULL_IT_BACK).start_dir / "pages" / "v2" / "hours.html") \
        .read_text().strip() == "Opening hours:"
