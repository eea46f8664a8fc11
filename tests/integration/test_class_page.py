"""The class's progress page in a real browser (Debian's chromium, driven by selenium through
chromium-driver): it renders the grid, takes a new report without a reload, and shows a
hostile name as text. With LAB_SCREENSHOTS=docs it also makes docs/class-page.png, the
picture README shows.

No lab servers are needed: the class's server runs in this process on 127.0.0.1 and the
reports are fed to it over HTTP, as workspaces send them.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labhelpers import chromium_driver, class_grid_shown
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lab.classroom.config import load_class
from lab.classroom.web import running

CODE = "k7f3-q9x2"
HOSTILE = "<script>alert(1)</script>"
WAIT = 20  # seconds the browser may take to show something (not a measurement)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("class")
    (where / "class.yml").write_text(
        f"name: autumn-workshop\ncode: {CODE}\nstudents: [alice, bob, carol, dan]\n"
        "exercises: [1, 2, 3, 4]\n")
    with running(load_class(where)) as found:
        yield found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium_driver(tmp_path_factory.mktemp("profile")) as found:
        yield found


def post(url: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return json.loads(answer.read())


EXERCISES = {1: "01-pet-server", 2: "02-servers-as-code", 3: "03-prove-it", 4: "04-drift"}


def report(url: str, student: str, exercise: int, kind: str = "check", passed: bool = False,
           failing: str = "", feedback: str = "", hints: int = 0, seconds: float = 0,
           token: str | None = None) -> None:
    post(url, "/api/report", {
        "code": CODE, "student": student, "token": token, "exercise": exercise,
        "exercise_id": EXERCISES[exercise], "kind": kind,
        "passed": passed if kind == "check" else None, "failing": failing,
        "feedback": feedback, "hints": hints, "seconds": seconds})


def a_class_in_varied_states(url: str) -> str:
    """Four students at different points, one stuck, and a hostile joiner: its token."""
    report(url, "alice", 1, passed=True, seconds=540)
    report(url, "alice", 2, passed=True, hints=1, seconds=1260)
    report(url, "alice", 3, "start")
    report(url, "bob", 1, passed=True, hints=2, seconds=780)
    for _ in range(3):
        report(url, "bob", 2, failing="idempotent", hints=4, seconds=1500,
               feedback="not idempotent: a second run changed 1 task: Install nginx "
                        "(shell: apt-get install -y nginx); expected: no change on the second "
                        "run; next: use ansible.builtin.apt")
    report(url, "carol", 1, failing="page_changed", hints=1, seconds=300,
           feedback='web-1 still serves "Welcome to the shop"; expected: "Welcome to the '
                    'shop - now open on Sundays"; next: `lab ssh web-1`')
    report(url, "carol", 1, "hint", hints=2, seconds=360)
    token = post(url, "/api/join", {"code": CODE, "name": HOSTILE})["token"]
    report(url, HOSTILE, 1, failing="changed_by_hand", token=token, seconds=120,
           feedback="<img src=x onerror=alert(2)> playbooks/web.yml changed")
    return token


def cell(browser: webdriver.Chrome, student: str, exercise: int) -> str:
    return class_grid_shown(browser)[student][str(exercise)]


def students_shown(browser: webdriver.Chrome) -> list[str]:
    return list(class_grid_shown(browser))


def test_the_page_shows_the_grid_updates_live_and_names_as_text(
        url: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    token = a_class_in_varied_states(url)
    browser.get(url)
    wait = WebDriverWait(browser, WAIT)
    wait.until(lambda b: len(students_shown(b)) == 5)

    # The grid as reported.
    assert students_shown(browser) == ["alice", "bob", "carol", "dan", HOSTILE]
    assert cell(browser, "alice", 2).startswith("passed")
    assert cell(browser, "bob", 2).startswith("working")
    assert cell(browser, "dan", 1) == "not started"
    stuck = browser.find_element(By.ID, "stuck").text
    assert "bob on 02: idempotent" in stuck and "(3 checks)" in stuck
    assert "not idempotent" in browser.find_element(By.ID, "grid").text

    # The hostile name and feedback are text: no alert, no element made from them.
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - selenium raises on reading it
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # page.js only
    assert browser.find_elements(By.CSS_SELECTOR, "#grid img") == []
    assert "<img src=x onerror=alert(2)>" in browser.find_element(By.ID, "grid").text

    # The picture README shows: written to docs/ only when asked (LAB_SCREENSHOTS=docs), so a
    # test run leaves the checkout as it found it.
    shots = Path(os.environ.get("LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(shots / "class-page.png"))
    assert (shots / "class-page.png").stat().st_size > 10_000

    # A new report arrives: the grid changes, and the page was not reloaded.
    browser.execute_script("window.stillTheSamePage = true;")
    report(url, HOSTILE, 1, passed=True, token=token, seconds=200)
    wait.until(lambda b: cell(b, HOSTILE, 1).startswith("passed"))
    assert browser.execute_script("return window.stillTheSamePage === true;")
