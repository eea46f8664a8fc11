"""Exercise 07, bake it: a verified server baked into an image, a release started from it,
and the two releases compared as `lab history` records them.

Everything here is read from the lab's own records (its logbook and release history), never
from clocks at check time: the comparison is the one the attendee saw in `lab history`.
"""

from __future__ import annotations

import re
from typing import Any

from lab.course.grader import Attempt, Feedback
from lab.fleet import Fleet
from lab.release import ReleaseReport, history, ready_seconds
from lab.state import EventKind, Stage

ANSWERS = "answers.md"
# What `lab provision` and `lab verify` log per server.
STAGES = (Stage.PROVISIONED, Stage.FAILED, Stage.VERIFIED, Stage.VERIFY_FAILED)
FIGURE = r"\s*([0-9]+(?:\.[0-9]+)?)"
TOLERANCE = 0.11  # `lab history` shows tenths


def released_from_scratch(attempt: Attempt) -> Feedback | None:
    scratch = [r for r in attempt.releases() if not r.image]
    if any(r.outcome == "promoted" for r in scratch):
        return None
    if scratch:
        return Feedback(
            found=f"your release {scratch[-1].id} was rolled back: {scratch[-1].reason}",
            expected="one promoted release whose new server was provisioned from scratch",
            next="`lab history` shows why it was rolled back")
    if attempt.releases():
        return Feedback(
            found="every release so far started from an image: none shows what provisioning "
                  "from scratch costs",
            expected="a promoted release that provisions its new server from scratch too",
            next="`lab release --set version=v2`, without --from-image")
    return Feedback(
        found="no release yet: web-1 is still the server the exercise started",
        expected="a promoted release that provisions its new server from scratch (the figure "
                 "to beat)",
        next="`lab release --set version=v2`: its new server is provisioned from scratch")


def baked_verified(attempt: Attempt) -> Feedback | None:
    baked = attempt.events(EventKind.BAKED)
    if not baked:
        return Feedback(
            found="no image baked yet",
            expected="an image baked from a server that passed its tests",
            next="`lab bake`: it takes the server your release made (its tests passed) and "
                 "prints the image's name")
    newest = baked[-1]
    server, image = newest.server, newest.detail
    stage = _stage_before(attempt, server, newest.at)
    if stage != Stage.VERIFIED:
        return Feedback(
            found=f"{image} was baked from {server}, whose last result before the bake was "
                  f"'{stage or 'none'}', not 'verified'",
            expected="an image baked only from a server that passed `lab verify`",
            next="`lab bake` again, from a server that passed its tests (a release's new one "
                 "has)")
    if server is not None and server in attempt.server_names():
        result = attempt.run_tests([server])
        if not result.ok:
            return Feedback(
                found=f"{server}, the server {image} was baked from, fails its tests now: "
                      f"{result.problem}",
                expected="an image of a server that passes its tests: the image carries "
                         "whatever the server had, a change made by hand after `lab verify` "
                         "included",
                next="`lab release --set version=v2`: a fresh server, nobody's hands on it, "
                     "to bake")
    return None


def released_from_image(attempt: Attempt) -> Feedback | None:
    baked = {e.detail for e in attempt.events(EventKind.BAKED)}
    images = [r for r in attempt.releases() if r.image in baked]
    if any(r.outcome == "promoted" for r in images):
        return None
    newest = attempt.events(EventKind.BAKED)[-1]
    if images:
        return Feedback(
            found=f"your release from {images[-1].image} was rolled back: "
                  f"{images[-1].reason}",
            expected="a promoted release started from a baked image",
            next="`lab history` shows why it was rolled back")
    after = [r for r in attempt.releases() if r.started > newest.at]
    if after:
        return Feedback(
            found=f"you released after baking, but without --from-image: release "
                  f"{after[-1].id} provisioned its server from scratch again",
            expected="a release started from the image you baked: its servers need no "
                     "provisioning",
            next=f"`lab release --from-image {newest.detail}`")
    return Feedback(
        found=f"no release from {newest.detail} yet",
        expected="a promoted release started from the image you baked",
        next=f"`lab release --from-image {newest.detail}`")


def answers_match_history(attempt: Attempt) -> Feedback | None:
    text = attempt.read(ANSWERS)
    if text is None:
        return Feedback(found=f"{ANSWERS} is missing",
                        next="`lab exercise reset` brings back the start's (yours are kept)")
    promoted = [r for r in attempt.releases() if r.outcome == "promoted"]
    written: list[float] = []  # from scratch, then from the image
    for from_image, label in ((False, "ready from scratch"), (True, "ready from the image")):
        releases = [r for r in promoted if bool(r.image) == from_image]
        found = _figure(text, label)
        problem = _compare(found, label, releases)
        if problem is not None:
            return problem
        assert found is not None
        written.append(found)
    return _faster(text, *written)


def _compare(found: float | None, label: str,
             releases: list[ReleaseReport]) -> Feedback | None:
    """The attendee's figure against the 'ready s' figures `lab history` shows."""
    ready = [r for r in (ready_seconds(r) for r in releases) if r is not None]
    shown = " or ".join(f"{r:.1f} s" for r in ready[-3:])
    if found is None:
        return Feedback(found=f"{ANSWERS}: '{label}' has no figure yet",
                        expected=f"the 'ready s' figure `lab history` shows ({shown})",
                        next="write the 'ready s' figure of `lab history` in place of the `?`")
    if any(abs(found - r) <= TOLERANCE for r in ready):
        return None
    totals = [_seconds(r) for r in releases]
    if any(abs(found - t) <= TOLERANCE for t in totals):
        return Feedback(
            found=f"{ANSWERS}: '{label}: {found:g} s' is the whole release ('seconds' column), "
                  "canary steps included",
            expected=f"the time to get the new server ready, the 'ready s' column ({shown})",
            next="every release holds its canary steps for the same time: compare 'ready s'")
    return Feedback(found=f"{ANSWERS}: '{label}: {found:g} s', but `lab history` records "
                          f"{shown}",
                    expected="the figure `lab history` shows in its 'ready s' column",
                    next="copy it from `lab history`")


def _faster(text: str, scratch: float, image: float) -> Feedback | None:
    truth = "image" if image < scratch else "scratch"
    said = re.search(r"^faster:\s*(\S+)", text, re.MULTILINE)
    if said is None or said.group(1).strip("`'\"").lower() != truth:
        return Feedback(
            found=f"{ANSWERS}: 'faster:' says {said.group(1) if said else 'nothing'}",
            expected=f"`{truth}`: your figures say {scratch:g} s from scratch and "
                     f"{image:g} s from the image",
            next="after `faster:`, write `image` if its figure is the smaller, else "
                 "`scratch`")
    return None


def _figure(text: str, label: str) -> float | None:
    match = re.search(re.escape(label) + ":" + FIGURE, text)
    return float(match.group(1)) if match else None


def _stage_before(attempt: Attempt, server: str | None, when: float) -> str | None:
    """What lab last recorded of the server (provisioned, verified...) before ``when``."""
    stages = [e.kind for e in attempt.events()
              if e.server == server and e.kind in STAGES and e.at <= when]
    return stages[-1] if stages else None


def _seconds(release: ReleaseReport) -> float:
    """The whole release, canary steps included: `lab history`'s 'seconds' column."""
    return round((release.finished or release.started) - release.started, 1)


# `call:` actions: what the solution (and one wrong answer) write from this run's history ----


def write_answers(fleet: Fleet) -> None:
    """answers.md with the 'ready s' figures of the newest release of each kind."""
    _write(fleet, ready_seconds)


def write_total_seconds(fleet: Fleet) -> None:
    """The newcomer's mistake: the 'seconds' column (the whole release) instead."""
    _write(fleet, _seconds)


def _write(fleet: Fleet, figure: Any) -> None:
    promoted = [r for r in history(fleet.state) if r.outcome == "promoted"]
    scratch = figure([r for r in promoted if not r.image][-1])
    image = figure([r for r in promoted if r.image][-1])
    path = fleet.config.directory / ANSWERS
    text = path.read_text(encoding="utf-8")
    text = text.replace("ready from scratch: ?", f"ready from scratch: {scratch:.1f}")
    text = text.replace("ready from the image: ?", f"ready from the image: {image:.1f}")
    faster = "image" if round(image, 1) < round(scratch, 1) else "scratch"
    path.write_text(text.replace("faster: ?", f"faster: {faster}"), encoding="utf-8")
