"""Exercise 01, a pet server: the one-line change, made by hand, unknown to the code."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback
from lab.state import EventKind

SUNDAYS = "now open on Sundays"


def page_changed(attempt: Attempt) -> Feedback | None:
    for name in attempt.server_names():
        page = attempt.page(name).strip()
        if SUNDAYS not in page:
            return Feedback(
                found=f'{name} still serves "{page}"' if page else f"{name} serves no page",
                expected='a page that says "Welcome to the shop - now open on Sundays"',
                next=f"change /var/www/html/index.html, the file nginx serves, over "
                     f"`lab ssh {name}`")
    return None


def changed_by_hand(attempt: Attempt) -> Feedback | None:
    if attempt.read("playbooks/web.yml") != attempt.started_files("playbooks/web.yml"):
        return Feedback(
            found="you changed playbooks/web.yml: the change went through the code",
            expected="this time, the change made by hand on the server, as a pet's owner would",
            next="`lab exercise reset` brings back playbooks/web.yml as it was (yours is kept "
                 "in .lab/backups/): exercise 2 is where the code takes over")
    return None


def drift_seen(attempt: Attempt) -> Feedback | None:
    seen = [e for e in attempt.events(EventKind.DRIFT) if "page" in e.detail.lower()]
    if not seen:
        return Feedback(
            found="`lab drift` has not been run since your change",
            expected="lab drift naming the page task on web-1: the server no longer matches "
                     "the code, and nothing else records it",
            next="run `lab drift` in the workspace and read what it says")
    return None
