"""class.db: a class's one SQLite file, the students and every report they sent.

The progress page (``lab class serve``) writes it; ``lab class status`` reads it, with or
without the server running. Reports are kept as they came (append-only, like state.db's
events): the grid is computed from them, so what the page shows can always be explained by
the rows behind it. Every value goes in through a bound parameter and comes out as data: a
student's name or feedback is never SQL, and never markup (the page escapes it too).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lab.classroom.config import Classroom
from lab.course.exercises import course

Kind = Literal["check", "hint", "start"]
NOT_STARTED, WORKING, PASSED = "not started", "working", "passed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS students (
    name    TEXT PRIMARY KEY,
    origin  TEXT NOT NULL CHECK (origin IN ('class', 'join')),
    token   TEXT,
    joined  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    student      TEXT NOT NULL REFERENCES students(name),
    exercise     INTEGER NOT NULL,
    exercise_id  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('check', 'hint', 'start')),
    passed       INTEGER,
    goals        TEXT NOT NULL DEFAULT '[]',
    failing      TEXT NOT NULL DEFAULT '',
    feedback     TEXT NOT NULL DEFAULT '',
    hints        INTEGER NOT NULL DEFAULT 0,
    seconds      REAL NOT NULL DEFAULT 0,
    at           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_student ON reports (student, id);
CREATE TRIGGER IF NOT EXISTS reports_append_only_update BEFORE UPDATE ON reports
BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reports_append_only_delete BEFORE DELETE ON reports
BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END;
"""


@dataclass(frozen=True)
class Report:
    """One result a student's workspace sent: a check (passed or not), a hint, a start."""

    student: str
    exercise: int  # its number, as class.yml lists it
    exercise_id: str  # its folder name, 02-servers-as-code
    kind: Kind
    passed: bool | None = None  # checks only
    goals: list[dict[str, str]] = field(default_factory=list)  # [{check, status}]
    failing: str = ""  # the first failing goal's check (or "workspace")
    feedback: str = ""  # what the grader said about it
    hints: int = 0  # hints read in this exercise so far
    seconds: float = 0.0  # time on the exercise, as the workspace counts it
    at: float = 0.0  # when the class received it (the server's clock)


@dataclass(frozen=True)
class Student:
    name: str
    origin: str  # 'class' (class.yml) or 'join' (`lab class join`)
    token: str | None


@dataclass
class Cell:
    """One student in one exercise."""

    state: str = NOT_STARTED
    checks: int = 0
    hints: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds)}


@dataclass
class Stuck:
    """A student whose latest checks all failed at the same goal."""

    student: str
    exercise: int
    check: str
    since: float  # the first failure of this streak
    failures: int

    def to_dict(self, now: float) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(now - self.since)}


@dataclass
class Row:
    """A student's line of the grid."""

    student: str
    cells: dict[int, Cell]
    current: int | None = None  # the exercise of their latest report
    seconds: float = 0.0  # time on the current exercise, up to now while working on it
    feedback: str = ""  # their latest check's first failure, "" after a pass
    last_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "current": self.current,
                "seconds": round(self.seconds), "feedback": self.feedback,
                "last_at": self.last_at,
                "cells": {str(n): c.to_dict() for n, c in self.cells.items()}}


@dataclass
class Grid:
    """Students x exercises, and who has been stuck longest: what the page and status show."""

    name: str
    exercises: list[dict[str, Any]]  # [{number, id, title}] in the class's order
    rows: list[Row]
    stuck: list[Stuck]  # longest first
    version: int  # grows with every report or join: the page redraws when it changes
    now: float

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.name, "exercises": self.exercises, "version": self.version,
                "now": self.now, "students": [r.to_dict() for r in self.rows],
                "stuck": [s.to_dict(self.now) for s in self.stuck]}


class ClassStore:
    """A small repository over class.db; one short-lived connection per call, so the
    server's threads and a `lab class status` next to it never share one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # Readers (the page, `lab class status`) do not wait for the writer; a power cut
            # may lose the last reports, never the file.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")
        try:
            with db:
                yield db
        finally:
            db.close()

    # students ------------------------------------------------------------------------------

    def enrol(self, names: list[str]) -> None:
        """class.yml's students (kept when class.yml later drops one: their reports stay)."""
        now = time.time()
        with self._connect() as db:
            db.executemany("INSERT OR IGNORE INTO students (name, origin, joined) "
                           "VALUES (?, 'class', ?)", [(n, now) for n in names])

    def join(self, name: str, token: str) -> None:
        """A student who joined with `lab class join` (their name, their token)."""
        with self._connect() as db:
            db.execute("INSERT INTO students (name, origin, token, joined) "
                       "VALUES (?, 'join', ?, ?)", (name, token, time.time()))

    def student(self, name: str) -> Student | None:
        with self._connect() as db:
            row = db.execute("SELECT name, origin, token FROM students WHERE name = ?",
                             (name,)).fetchone()
        return Student(row["name"], row["origin"], row["token"]) if row else None

    def students(self) -> list[Student]:
        with self._connect() as db:
            rows = db.execute("SELECT name, origin, token FROM students "
                              "ORDER BY origin = 'join', joined, rowid").fetchall()
        return [Student(r["name"], r["origin"], r["token"]) for r in rows]

    # reports -------------------------------------------------------------------------------

    def add(self, report: Report) -> Report:
        """Store a report, stamped with the time it arrived."""
        stamped = Report(**(asdict(report) | {"at": time.time()}))
        with self._connect() as db:
            db.execute(
                "INSERT INTO reports (student, exercise, exercise_id, kind, passed, goals, "
                "failing, feedback, hints, seconds, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stamped.student, stamped.exercise, stamped.exercise_id, stamped.kind,
                 None if stamped.passed is None else int(stamped.passed),
                 json.dumps(stamped.goals), stamped.failing, stamped.feedback, stamped.hints,
                 stamped.seconds, stamped.at))
        return stamped

    def reports(self) -> list[Report]:
        """Every report, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM reports ORDER BY id").fetchall()
        return [_report(r) for r in rows]

    def version(self) -> int:
        with self._connect() as db:
            row = db.execute("SELECT (SELECT COUNT(*) FROM reports) + "
                             "(SELECT COUNT(*) FROM students)").fetchone()
        return int(row[0])


def _report(row: sqlite3.Row) -> Report:
    return Report(student=row["student"], exercise=row["exercise"],
                  exercise_id=row["exercise_id"], kind=row["kind"],
                  passed=None if row["passed"] is None else bool(row["passed"]),
                  goals=json.loads(row["goals"]), failing=row["failing"],
                  feedback=row["feedback"], hints=row["hints"], seconds=row["seconds"],
                  at=row["at"])


def open_store(classroom: Classroom) -> ClassStore:
    """The class's class.db, with class.yml's students in it."""
    store = ClassStore(classroom.database)
    store.enrol(classroom.spec.students)
    return store


# the grid ------------------------------------------------------------------------------------


def class_grid(classroom: Classroom, store: ClassStore | None = None,
               now: float | None = None) -> Grid:
    """The class's grid as class.db has it now (``store``: the one already open)."""
    store = store or open_store(classroom)
    return grid(classroom.spec.name, classroom.spec.exercises, store.students(),
                store.reports(), store.version(), time.time() if now is None else now)


class LiveGrid:
    """The grid of a page that asks every second: class.db is read again only when it has
    grown (students and reports are only ever added, so their count says whether anything
    changed); only the clocks are recomputed in between."""

    def __init__(self, classroom: Classroom, store: ClassStore) -> None:
        self.classroom, self.store = classroom, store
        self._lock = threading.Lock()
        self._read: tuple[int, list[Student], list[Report]] = (-1, [], [])

    def __call__(self, now: float | None = None) -> Grid:
        with self._lock:
            version = self.store.version()
            if version != self._read[0]:
                self._read = (version, self.store.students(), self.store.reports())
            version, students, reports = self._read
        spec = self.classroom.spec
        return grid(spec.name, spec.exercises, students, reports, version,
                    time.time() if now is None else now)


def grid(name: str, numbers: list[int], students: list[Student], reports: list[Report],
         version: int, now: float) -> Grid:
    """Students x exercises from the reports (oldest first)."""
    by_student: dict[str, list[Report]] = {s.name: [] for s in students}
    for report in reports:
        if report.exercise in numbers and report.student in by_student:
            by_student[report.student].append(report)
    rows = [_row(student, numbers, found, now) for student, found in by_student.items()]
    stuck = [s for s in (_stuck(student, found) for student, found in by_student.items())
             if s is not None]
    return Grid(name, _columns(numbers), rows, sorted(stuck, key=lambda s: s.since),
                version, now)


def _columns(numbers: list[int]) -> list[dict[str, Any]]:
    known = _course_titles()
    return [{"number": n, "id": known.get(n, (f"{n:02d}", ""))[0],
             "title": known.get(n, ("", ""))[1]} for n in numbers]


@functools.cache
def _course_titles() -> dict[int, tuple[str, str]]:
    """Each exercise's folder name and title (read once: the page asks every second)."""
    return {e.number: (e.id, e.title) for e in course()}


def _row(student: str, numbers: list[int], reports: list[Report], now: float) -> Row:
    cells = {n: Cell() for n in numbers}
    for report in reports:
        cell = cells[report.exercise]
        if cell.state == NOT_STARTED:
            cell.state = WORKING
        if report.kind == "check":
            cell.checks += 1
            if report.passed:
                cell.state = PASSED
        cell.hints = max(cell.hints, report.hints)
        cell.seconds = report.seconds
    row = Row(student, cells)
    if not reports:
        return row
    latest = reports[-1]
    row.current, row.last_at = latest.exercise, latest.at
    current = cells[latest.exercise]
    if current.state == WORKING:  # the clock runs on while they work
        current.seconds = latest.seconds + max(0.0, now - latest.at)
    row.seconds = current.seconds
    checks = [r for r in reports if r.kind == "check"]
    row.feedback = checks[-1].feedback if checks and not checks[-1].passed else ""
    return row


def _stuck(student: str, reports: list[Report]) -> Stuck | None:
    """The run of failed checks at one goal that ends with the student's latest check on
    their current exercise (hints in between do not break it)."""
    if not reports:
        return None
    exercise = reports[-1].exercise
    checks = [r for r in reports if r.kind == "check" and r.exercise == exercise]
    if not checks or checks[-1].passed:
        return None
    goal = checks[-1].failing
    streak = []
    for report in reversed(checks):
        if report.passed or report.failing != goal:
            break
        streak.append(report)
    return Stuck(student, exercise, goal, streak[-1].at, len(streak))
