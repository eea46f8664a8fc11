"""Exercise 07 without servers: the actions it needs (bake, release, call), the 'ready s'
figure of a release, a balancer's port in a workspace's lab.yml, and its checks on a lab's
history and logbook as a stand-in gives them. (With servers, each of its wrong answers and its
solution: tests/integration/test_exercises.py -k ex07.)"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.config import load_config
from lab.course.exercises import Action, find_exercise, load_exercise
from lab.course.grader import Feedback
from lab.course.workspace import solve, start
from lab.errors import ConfigError
from lab.release import ReleaseReport, ready_seconds
from lab.state import LogEntry
from lab.verify import VerifyResult

BAKE_IT = 7
HARNESS = 8


def test_the_release_actions_read_as_exercise_yml_writes_them() -> None:
    assert Action.model_validate("bake").do == "bake"
    assert Action.model_validate("verify").do == "verify"
    plain = Action.model_validate("release")
    assert (plain.do, plain.release, plain.from_image) == ("release", None, False)
    with_vars = Action.model_validate({"release": {"version": "v2"}})
    assert (with_vars.do, with_vars.release, with_vars.from_image) == (
        "release", {"version": "v2"}, False)
    assert Action.model_validate({"release": "baked"}).from_image
    assert Action.model_validate({"call": "write_answers"}).call == "write_answers"


@pytest.mark.parametrize(("change", "message"), [
    ({"solution": [{"call": "no_such"}]},
     "exercise.yml: solution[0].call: no function 'no_such' in checks.py"),
    ({"solution": [{"release": "newest"}]}, "solution[0].release"),
])
def test_a_bad_release_or_call_action_is_one_line(tmp_path: Path, change: dict,
                                                  message: str) -> None:
    folder = tmp_path / "course" / find_exercise(HARNESS).folder.name
    shutil.copytree(find_exercise(HARNESS).folder, folder)
    spec = yaml.safe_load((folder / "exercise.yml").read_text())
    (folder / "exercise.yml").write_text(yaml.safe_dump(spec | change))
    with pytest.raises(ConfigError) as caught:
        load_exercise(folder)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bake_it_names_its_call_functions() -> None:
    exercise = find_exercise(BAKE_IT)
    assert set(exercise.calls) == {"write_answers", "write_total_seconds"}


def with_phases(phases: dict[str, float] | None = None) -> ReleaseReport:
    """A saved release with these phases (none: a report from before lab kept phases)."""
    saved = {"id": "r1", "role": "web", "started": 0.0, "vars": {}, "image": None,
             "previous": {}, "outcome": "rolled-back"}
    return ReleaseReport.from_dict(saved | ({} if phases is None else {"phases": phases}))


def test_ready_seconds_counts_what_makes_the_servers_ready_not_the_canary_steps() -> None:
    scratch = with_phases({"create": 3.04, "provision": 14.5, "verify + join": 2.6,
                           "canary 50%": 2.1, "canary 100%": 2.1, "promote": 1.0})
    image = with_phases({"create": 3.0, "verify + join": 2.0, "canary 50%": 2.1})
    assert ready_seconds(scratch) == 20.1 and ready_seconds(image) == 5.0
    assert ready_seconds(with_phases({"create": 3.0, "provision": 1.0})) is None  # cut short
    assert ready_seconds(with_phases()) is None  # a report from before phases


def test_a_balancers_port_is_filled_in_and_kept_by_solve(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Two workspaces must not ask for one port; reset and solve keep the workspace's."""
    folder = tmp_path / "course" / find_exercise(HARNESS).folder.name
    shutil.copytree(find_exercise(HARNESS).folder, folder)
    lab_yml = folder / "start" / "lab.yml"
    lab_yml.write_text(lab_yml.read_text() + "balancer: {listen: __PORT__, routes_to: web}\n")
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    workspace = start(HARNESS, tmp_path / "ws", name="ex-unit")
    port = load_config(tmp_path / "ws" / "lab.yml").balancer.listen  # type: ignore[union-attr]
    assert 1024 <= port <= 65535
    other = start(HARNESS, tmp_path / "other", name="ex-unit2")
    assert other.config().balancer.listen != port  # type: ignore[union-attr]
    solve(workspace)
    assert workspace.config().balancer.listen == port  # type: ignore[union-attr]
    assert workspace.start_config().balancer.listen == port  # type: ignore[union-attr]


# exercise 07's checks on a stand-in attempt ------------------------------------------------


def release(image: str | None, outcome: str = "promoted", provision: float = 15.0,
            at: float = 100.0) -> ReleaseReport:
    phases = {"create": 3.0} | ({} if image else {"provision": provision}) | {
        "verify + join": 2.0, "canary 50%": 2.0, "canary 100%": 2.0, "promote": 1.0}
    return ReleaseReport(
        id=f"r{at:.0f}", role="web", started=at, vars={"version": "v2"}, image=image,
        previous={}, outcome=outcome, finished=at + sum(phases.values()), phases=phases,
        reason="" if outcome == "promoted" else "the new generation failed its tests")


class Seen:
    """What a check reads of a workspace: its history, logbook, files and servers."""

    def __init__(self, releases: list[ReleaseReport], events: list[LogEntry],
                 answers: str | None = None, running: tuple[str, ...] = (),
                 tests: VerifyResult | None = None) -> None:
        self._releases, self._events, self.answers = releases, events, answers
        self.running, self.tests = list(running), tests or VerifyResult()

    def releases(self) -> list[ReleaseReport]:
        return self._releases

    def events(self, kind: str | None = None) -> list[LogEntry]:
        return [e for e in self._events if kind is None or e.kind == kind]

    def read(self, path: str) -> str | None:
        return self.answers if path == "answers.md" else None

    def server_names(self, role: str | None = None) -> list[str]:
        return self.running

    def run_tests(self, names: list[str] | None = None) -> VerifyResult:
        return self.tests


def event(kind: str, server: str, at: float, detail: str = "") -> LogEntry:
    return LogEntry(id=int(at), at=at, server=server, kind=kind, detail=detail)


IMAGE = "lab/ex-web:v2"
BAKED = [event("verified", "web-2", 120), event("baked", "web-2", 130, IMAGE)]
ANSWERS = (find_exercise(BAKE_IT).start_dir / "answers.md").read_text()


def checked(goal: str, seen: Seen) -> str:
    found = find_exercise(BAKE_IT).checks[goal](seen)
    return "" if found is None else found.problem if isinstance(found, Feedback) else found


def answered(scratch: str, image: str, faster: str) -> str:
    return (ANSWERS.replace("scratch: ?", f"scratch: {scratch}")
            .replace("image: ?", f"image: {image}").replace("faster: ?", f"faster: {faster}"))


def test_the_start_has_no_release_and_a_rolled_back_one_says_why() -> None:
    assert "no release yet" in checked("released_from_scratch", Seen([], []))
    rolled = Seen([release(None, "rolled-back")], [])
    assert "was rolled back: the new generation failed" in checked("released_from_scratch",
                                                                   rolled)
    assert checked("released_from_scratch", Seen([release(None)], [])) == ""
    only_image = Seen([release(IMAGE)], BAKED)
    assert "every release so far started from an image" in checked("released_from_scratch",
                                                                    only_image)


def test_an_image_is_good_only_from_a_server_that_passed_its_tests() -> None:
    assert "no image baked yet" in checked("baked_verified", Seen([], []))
    assert checked("baked_verified", Seen([], BAKED)) == ""
    unverified = [event("verified", "web-2", 110), event("verify-failed", "web-2", 120),
                  event("baked", "web-2", 130, IMAGE)]
    assert "'verify-failed', not 'verified'" in checked("baked_verified", Seen([], unverified))
    failing = VerifyResult()
    failing.outcomes.append(type("Outcome", (), {"status": "failed", "host": "web-2",
                                                 "test": "test_health", "message": "down"})())
    changed = Seen([], BAKED, running=("web-2",), tests=failing)
    assert "web-2, the server lab/ex-web:v2 was baked from, fails its tests now" in checked(
        "baked_verified", changed)


def test_a_release_after_baking_must_start_from_the_image() -> None:
    again = Seen([release(None), release(None, at=140)], BAKED)
    assert "without --from-image" in checked("released_from_image", again)
    assert f"--from-image {IMAGE}" in checked("released_from_image", again)
    rolled = Seen([release(None), release(IMAGE, "rolled-back", at=140)], BAKED)
    assert "release from lab/ex-web:v2 was rolled back" in checked("released_from_image",
                                                                   rolled)
    assert "no release from lab/ex-web:v2 yet" in checked(
        "released_from_image", Seen([release(None)], BAKED))
    assert checked("released_from_image",
                   Seen([release(None), release(IMAGE, at=140)], BAKED)) == ""


def test_the_answers_are_the_ready_figures_the_history_records() -> None:
    history = [release(None), release(IMAGE, at=140)]  # ready 20.0 s and 5.0 s

    def said(text: str | None) -> str:
        return checked("answers_match_history", Seen(history, BAKED, text))

    assert said(answered("20.0", "5", "image")) == ""
    assert said(answered("19.95", "5.0", "`image`")) == ""  # as shown, to the tenth
    assert "'ready from scratch' has no figure yet" in said(ANSWERS)
    assert "the whole release ('seconds' column)" in said(answered("25", "5.0", "image"))
    assert "`lab history` records 20.0 s" in said(answered("18.0", "5.0", "image"))
    assert "'faster:' says scratch" in said(answered("20.0", "5.0", "scratch"))
    assert "answers.md is missing" in said(None)


def test_a_slower_image_release_is_graded_as_recorded_not_as_expected() -> None:
    """Whatever the machine did, the attendee's conclusion must follow the history."""
    history = [release(None, provision=1.0), release(IMAGE, at=140)]  # 6.0 s and 5.0 s
    history[1].phases["create"] = 5.0  # 7.0 s from the image: slower this time
    seen = Seen(history, BAKED, answered("6.0", "7.0", "scratch"))
    assert checked("answers_match_history", seen) == ""


def test_lab_history_shows_ready_seconds_beside_the_whole_release(
        make_cycle: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lab.cli.main import app

    cycle = make_cycle()
    cycle.release()
    saved = cycle.saved()
    shown = CliRunner(env={"LAB_FILE": None}).invoke(
        app, ["-f", str(tmp_path / "lab.yml"), "history"])
    assert shown.exit_code == 0, shown.output
    header, row = shown.stdout.splitlines()[:2]
    assert header.split()[-6:] == ["p99", "ms", "ready", "s", "seconds", "reason"]
    ready = ready_seconds(ReleaseReport.from_dict(saved))
    assert ready is not None and ready < saved["finished"] - saved["started"]
    assert f"{ready:.1f}" in row.split()
