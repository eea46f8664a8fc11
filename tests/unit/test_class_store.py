"""class.db and the grid made from it: states, hints, time, who is stuck longest, feedback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lab.classroom.config import load_class
from lab.classroom.store import (
    NOT_STARTED,
    PASSED,
    WORKING,
    ClassStore,
    LiveGrid,
    Report,
    Student,
    class_grid,
    grid,
    open_store,
)

CLASS_YML = """\
name: autumn-workshop
code: k7f3-q9x2
students: [alice, bob, carol]
exercises: [1, 2]
"""


def check(student: str, exercise: int, passed: bool, failing: str = "", at: float = 0.0,
          hints: int = 0, seconds: float = 0.0, feedback: str = "") -> Report:
    return Report(student, exercise, f"{exercise:02d}-x", "check", passed, failing=failing,
                  feedback=feedback, hints=hints, seconds=seconds, at=at)


def hint(student: str, exercise: int, hints: int, at: float) -> Report:
    return Report(student, exercise, f"{exercise:02d}-x", "hint", hints=hints, at=at)


STUDENTS = [Student(n, "class", None) for n in ("alice", "bob", "carol", "dave")]


def test_each_cell_is_not_started_working_or_passed() -> None:
    reports = [check("alice", 1, True, at=10, seconds=300),
               check("alice", 2, False, "provisioned", at=20, seconds=30, hints=1),
               hint("bob", 1, 2, at=30),
               check("carol", 1, False, "page_changed", at=40, seconds=60),
               check("carol", 1, True, at=50, seconds=90)]
    found = grid("c", [1, 2], STUDENTS, reports, 5, now=100)
    states = {r.student: {n: c.state for n, c in r.cells.items()} for r in found.rows}
    assert states == {"alice": {1: PASSED, 2: WORKING}, "bob": {1: WORKING, 2: NOT_STARTED},
                      "carol": {1: PASSED, 2: NOT_STARTED},
                      "dave": {1: NOT_STARTED, 2: NOT_STARTED}}
    rows = {r.student: r for r in found.rows}
    assert rows["bob"].cells[1].hints == 2 and rows["bob"].cells[1].checks == 0
    assert rows["carol"].cells[1].checks == 2
    assert rows["dave"].current is None


def test_time_on_the_current_exercise_runs_on_while_working_and_stops_at_a_pass() -> None:
    reports = [check("alice", 1, True, at=10, seconds=300),
               check("alice", 2, False, "provisioned", at=20, seconds=30)]
    found = grid("c", [1, 2], STUDENTS[:1], reports, 2, now=80)
    [alice] = found.rows
    assert alice.current == 2
    assert alice.seconds == 30 + 60  # reported, then the minute since
    assert alice.cells[1].seconds == 300  # passed: as reported, no more


def test_last_feedback_is_the_latest_failed_checks_and_gone_after_a_pass() -> None:
    reports = [check("alice", 1, False, "a", at=1, feedback="first"),
               check("alice", 1, False, "a", at=2, feedback="second")]
    [alice] = grid("c", [1], STUDENTS[:1], reports, 2, now=3).rows
    assert alice.feedback == "second"
    [alice] = grid("c", [1], STUDENTS[:1], [*reports, check("alice", 1, True, at=4)],
                   3, now=5).rows
    assert alice.feedback == ""


def test_stuck_is_the_run_of_failures_at_one_goal_longest_first() -> None:
    reports = [
        check("alice", 1, False, "page_changed", at=10),
        check("alice", 1, False, "drift_seen", at=20),  # moved on to the next goal
        hint("alice", 1, 1, at=25),  # a hint does not end the run
        check("alice", 1, False, "drift_seen", at=30),
        check("bob", 1, False, "page_changed", at=15),
        check("bob", 1, False, "page_changed", at=40),
        check("carol", 1, False, "page_changed", at=5),
        check("carol", 1, True, at=50),  # passed: not stuck
    ]
    found = grid("c", [1], STUDENTS, reports, 8, now=100)
    assert [(s.student, s.check, s.since, s.failures) for s in found.stuck] == [
        ("bob", "page_changed", 15, 2), ("alice", "drift_seen", 20, 2)]
    assert found.to_dict()["stuck"][0]["seconds"] == 85


def test_reports_of_other_exercises_or_strangers_stay_out_of_the_grid() -> None:
    reports = [check("alice", 7, False, "x", at=1), check("mallory", 1, False, "x", at=2)]
    found = grid("c", [1], STUDENTS[:1], reports, 2, now=3)
    assert [r.student for r in found.rows] == ["alice"]
    assert found.rows[0].cells[1].state == NOT_STARTED and found.stuck == []


def test_the_store_keeps_students_and_reports_across_opens(tmp_path: Path) -> None:
    (tmp_path / "class.yml").write_text(CLASS_YML)
    classroom = load_class(tmp_path)
    store = open_store(classroom)
    store.join("<b>dave</b>", "token-1")
    stored = store.add(check("alice", 1, False, "page_changed", feedback="x'); DROP TABLE "
                             "reports; --"))
    assert stored.at > 0  # stamped by the store, not the sender
    again = open_store(classroom)  # as a restarted server or `lab class status` opens it
    assert [s.name for s in again.students()] == ["alice", "bob", "carol", "<b>dave</b>"]
    assert again.student("<b>dave</b>") == Student("<b>dave</b>", "join", "token-1")
    [report] = again.reports()
    assert report.feedback == "x'); DROP TABLE reports; --" and report.passed is False
    shown = class_grid(classroom).to_dict()
    assert shown["version"] == 5
    assert shown["students"][0]["feedback"] == "x'); DROP TABLE reports; --"
    assert [e["id"] for e in shown["exercises"]] == ["01-pet-server", "02-servers-as-code"]


def test_reports_are_append_only(tmp_path: Path) -> None:
    store = ClassStore(tmp_path / "class.db")
    store.enrol(["alice"])
    store.add(check("alice", 1, True))
    with sqlite3.connect(tmp_path / "class.db") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM reports")


def test_a_report_needs_a_known_student(tmp_path: Path) -> None:
    store = ClassStore(tmp_path / "class.db")
    with pytest.raises(sqlite3.IntegrityError):
        store.add(check("nobody", 1, True))


def test_the_live_grid_reads_class_db_again_only_when_it_grew(tmp_path: Path) -> None:
    (tmp_path / "class.yml").write_text(CLASS_YML)
    classroom = load_class(tmp_path)
    store = open_store(classroom)
    live = LiveGrid(classroom, store)
    store.add(check("alice", 1, False, "page_changed", seconds=60))
    first = live(now=store.reports()[0].at + 30)
    assert first.rows[0].seconds == 90 and first.version == 4
    later = live(now=store.reports()[0].at + 90)  # nothing new: the clock alone moves
    assert later.rows[0].seconds == 150 and later.version == 4
    store.add(check("alice", 1, True, seconds=200))
    assert live().rows[0].cells[1].state == PASSED
    store.join("dave", "t")
    assert [r.student for r in live().rows][-1] == "dave"
