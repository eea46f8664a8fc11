"""What lab knows about a lab, in SQLite under ``.lab/state.db``.

State is a cache of the real world, not its master: targets are asked what exists (by label),
and :meth:`State.reconcile` brings these rows in line. The ``events`` table is append-only,
the lab's logbook: what each server has been through, read back as :class:`LogEntry` records
whose ``kind`` is an :class:`EventKind` (or the :class:`Stage` a server reached).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    target      TEXT NOT NULL,
    address     TEXT NOT NULL DEFAULT '',
    ssh_host    TEXT NOT NULL DEFAULT '127.0.0.1',
    ssh_port    INTEGER NOT NULL DEFAULT 0,
    ssh_user    TEXT NOT NULL DEFAULT 'root',
    ssh_key     TEXT NOT NULL DEFAULT '',
    image       TEXT NOT NULL DEFAULT '',
    generation  INTEGER NOT NULL DEFAULT 1,
    liveness    TEXT NOT NULL DEFAULT 'creating',
    stage       TEXT NOT NULL DEFAULT 'created',
    ports       TEXT NOT NULL DEFAULT '{}',
    ports_host  TEXT NOT NULL DEFAULT '127.0.0.1',
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    server   TEXT,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS releases (
    id        TEXT PRIMARY KEY,
    started   REAL NOT NULL,
    finished  REAL,
    role      TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    report    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS exercise_progress (
    exercise      TEXT PRIMARY KEY,
    started       REAL NOT NULL,
    active_since  REAL NOT NULL,
    last_at       REAL NOT NULL,
    checks        INTEGER NOT NULL DEFAULT 0,
    passes        INTEGER NOT NULL DEFAULT 0,
    hints         INTEGER NOT NULL DEFAULT 0,
    resets        INTEGER NOT NULL DEFAULT 0,
    passed_at     REAL,
    failing       TEXT,
    goal_hints    TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""


class Liveness(StrEnum):
    """Whether a server runs, as its target saw it last: the real world's half of a status."""

    CREATING = "creating"  # named in state, not yet made (or made but never seen)
    RUNNING = "running"
    RESTARTING = "restarting"  # the engine is restarting it; it may come back
    DEAD = "dead"  # exists but stopped: exited, killed, powered off
    MISSING = "missing"  # state remembers it, the target no longer has it


class Stage(StrEnum):
    """How far a server got through lab's pipeline: lab's half of a status, kept in state."""

    CREATED = "created"  # made, not yet seen ready
    READY = "ready"  # booted, takes the lab's key over SSH
    PROVISIONED = "provisioned"
    FAILED = "failed"  # its playbook failed
    VERIFIED = "verified"
    VERIFY_FAILED = "verify-failed"


class EventKind(StrEnum):
    """What a line of the lab's logbook records (its ``kind``), beside the :class:`Stage` a
    server reached (provisioned, verified, ...), which is logged under the stage's word.

    The words are stored as they are: renaming one orphans what older labs logged under it.
    """

    NAMED = "named"  # a server's name taken, before it is made (detail: its number)
    CREATED = "created"  # made on its target (detail: "<image> on <target>")
    ADOPTED = "adopted"  # found on the target by label, not in state
    DIED = "died"  # seen stopped
    MISSING = "missing"  # no longer on the target
    DESTROYED = "destroyed"  # one server removed
    DESTROY = "destroy"  # the whole lab taken down (no server; detail: the target's name)
    # A whole-lab destroy the backend refused in part (detail: "<target>: what it holds").
    DESTROY_INCOMPLETE = "destroy-incomplete"
    DRIFT = "drift"  # `lab drift` found a task that would change the server (detail: the task)
    BAKED = "baked"  # `lab bake` (detail: the image's tag, or AMI id)
    SWEPT = "swept"  # `lab aws sweep` (no server; detail: JSON of the region and what it found)
    # A release ended (no server; detail: its id): one word per outcome.
    RELEASE_PROMOTED = "release-promoted"
    RELEASE_ROLLED_BACK = "release-rolled-back"
    RELEASE_INTERRUPTED = "release-interrupted"  # put right after its lab was taken down
    RELEASE_RUNNING = "release-running"  # its own rollback failed before it could say so

    @classmethod
    def release_ended(cls, outcome: str) -> EventKind:
        """What the end of a release with this outcome is logged as: release-promoted, ..."""
        return cls(f"release-{outcome}")


def event_kind(word: str) -> EventKind | Stage:
    """The kind a logbook word names: an :class:`EventKind`, else a :class:`Stage`;
    ValueError for a word that is neither."""
    try:
        return EventKind(word)
    except ValueError:
        return Stage(word)


@dataclass(frozen=True)
class LogEntry:
    """One line of the lab's logbook (:meth:`State.events`): what happened, to which server."""

    id: int  # grows with each line: a later line has a greater id
    at: float  # time.time() when it was logged
    server: str | None  # None for the whole lab: destroy, swept, a release's end
    kind: str  # an EventKind or a Stage; a word this lab does not know stays a str
    detail: str = ""

    def __post_init__(self) -> None:
        with contextlib.suppress(ValueError):  # a word an older or newer lab logged
            object.__setattr__(self, "kind", event_kind(self.kind))


# Servers that no longer run: exited or killed, or no longer on the target at all.
GONE = frozenset({Liveness.DEAD, Liveness.MISSING})


def shown_status(liveness: Liveness, stage: Stage) -> str:
    """The one word `lab status` shows for a server: its liveness unless it runs, then how
    far it got (a running server never seen ready shows as running)."""
    if liveness is not Liveness.RUNNING or stage is Stage.CREATED:
        return liveness.value
    return stage.value


def is_loopback(host: str) -> bool:
    """An address on this machine: 127.0.0.0/8, ::1 or localhost."""
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass
class ServerRecord:
    """One server as lab last saw it, reached where its target says: SSH on ``ssh_host``:
    ``ssh_port``, and ``ports`` maps a server port to the port published on ``ports_host``.

    ``liveness`` is the target's word, refreshed on every reconcile; ``stage`` is lab's own,
    kept across reconciles and set by :meth:`State.set_stage`. ``status`` joins them.
    """

    name: str
    role: str
    target: str
    address: str = ""
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 0
    ssh_user: str = "root"
    ssh_key: str = ""  # a private key of the server's own (Vagrant's); empty: the lab key
    image: str = ""
    generation: int = 1
    liveness: Liveness = Liveness.CREATING
    stage: Stage = Stage.CREATED
    ports: dict[int, int] = field(default_factory=dict)
    ports_host: str = "127.0.0.1"  # where the target published ``ports``
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        # From SQLite, JSON or a caller's string: always the enums, so `is` and `in` work.
        self.liveness = Liveness(self.liveness)
        self.stage = Stage(self.stage)

    @property
    def status(self) -> str:
        """What `lab status` shows: see :func:`shown_status`."""
        return shown_status(self.liveness, self.stage)

    @property
    def gone(self) -> bool:
        return self.liveness in GONE

    @property
    def nearby(self) -> bool:
        """Reached over loopback: on this machine (docker, vagrant), not across a network."""
        return is_loopback(self.ssh_host)

    def to_dict(self) -> dict[str, Any]:
        """Every field, as stored (``ServerRecord(**record.to_dict())`` makes it again)."""
        return asdict(self)

    def shown(self) -> dict[str, Any]:
        """Every field plus the ``status`` word: what `lab status --json` prints."""
        return self.to_dict() | {"status": self.status}


_COLUMNS = [f.name for f in fields(ServerRecord)]


@dataclass
class ExerciseProgress:
    """What an attendee did in one exercise of this workspace: when they began, how many
    checks they ran and passed, how many hints they read, how often they reset; and the goal
    their last check failed first, which `lab exercise hint` gives hints for.

    ``hints`` counts every hint read; ``goal_hints`` those of each goal's own hints (by the
    goal's check), so the exercise's general hints read are ``hints`` less their sum.
    """

    exercise: str  # its folder name, 02-servers-as-code
    started: float
    active_since: float  # when this workspace last (re)started it: the latest is the current
    last_at: float  # the last thing done in it
    checks: int = 0
    passes: int = 0
    hints: int = 0
    resets: int = 0
    passed_at: float | None = None
    failing: str | None = None  # the first goal the last check failed (its check's name)
    goal_hints: dict[str, int] = field(default_factory=dict)

    @property
    def general_hints(self) -> int:
        """The exercise's own hints read (those not of a goal): where the next one is."""
        return self.hints - sum(self.goal_hints.values())

    @property
    def seconds(self) -> float:
        """Time spent: from the first start to the first pass, else to the last action."""
        return (self.passed_at or self.last_at) - self.started

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds, 1), "passed": bool(self.passes)}


# A state.db made before the course existed gains the table on open (CREATE IF NOT EXISTS);
# one made before a column was added gains the column (_migrate).
_PROGRESS_COLUMNS = [f.name for f in fields(ExerciseProgress)]
_PROGRESS_ADDED = {"failing": "TEXT", "goal_hints": "TEXT NOT NULL DEFAULT '{}'"}


class State:
    """A small repository over ``.lab/state.db``; one short-lived connection per call."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.db"
        state_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # two lab commands may open an old state.db at once
            _migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    # servers -------------------------------------------------------------------------------

    def servers(self, role: str | None = None) -> list[ServerRecord]:
        query, args = "SELECT * FROM servers", ()
        if role is not None:
            query, args = query + " WHERE role = ?", (role,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY role, generation, created, name", args)
            return [_record(row) for row in rows]

    def server(self, name: str) -> ServerRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM servers WHERE name = ?", (name,)).fetchone()
        return _record(row) if row else None

    def save(self, record: ServerRecord) -> None:
        values = record.to_dict()
        values["ports"] = json.dumps({str(k): v for k, v in record.ports.items()})
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO servers ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [values[c] for c in _COLUMNS],
            )

    def set_stage(self, name: str, stage: Stage) -> None:
        with self._connect() as db:
            db.execute("UPDATE servers SET stage = ? WHERE name = ?", (Stage(stage), name))

    def set_liveness(self, name: str, liveness: Liveness) -> None:
        with self._connect() as db:
            db.execute("UPDATE servers SET liveness = ? WHERE name = ?",
                       (Liveness(liveness), name))

    def forget(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM servers WHERE name = ?", (name,))

    def next_index(self, role: str) -> int:
        """The next free number for a role's server names; numbers are never reused."""
        # An exact prefix, not LIKE: '_' (allowed in role names) is a LIKE wildcard, so role
        # a_b would see axb's events and hand out a_b numbers already used.
        # Every name the log has seen counts, not only those lab named: a server adopted
        # (found by label) and later destroyed must not lend its name to a new one.
        with self._connect() as db:
            seen = [row["server"] for row in db.execute(
                "SELECT DISTINCT server FROM events WHERE substr(server, 1, ?) = ?",
                (len(role) + 1, f"{role}-"))]
        suffixes = [name[len(role) + 1:] for name in seen]
        used = [int(r.name.rsplit("-", 1)[1]) for r in self.servers(role)]
        used += [int(suffix) for suffix in suffixes if suffix.isdigit()]
        return max(used, default=0) + 1

    # releases -------------------------------------------------------------------------------

    def save_release(self, report: dict[str, Any]) -> None:
        """Store a release's report (``id``, ``started``, ``role``, ``outcome`` required)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO releases (id, started, finished, role, outcome, reason, "
                "report) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (report["id"], report["started"], report.get("finished"), report["role"],
                 report["outcome"], report.get("reason", ""), json.dumps(report)),
            )

    def releases(self) -> list[dict[str, Any]]:
        """Every release's report, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT report FROM releases ORDER BY started")
            return [json.loads(row["report"]) for row in rows]

    # exercise progress: the course, in this workspace (see lab.course.workspace) -----------

    def exercise_started(self, exercise: str) -> ExerciseProgress:
        """The exercise becomes this workspace's current one (its first start is kept; the
        goal its last check failed is forgotten: the start is laid down again)."""
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO exercise_progress (exercise, started, active_since, last_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(exercise) DO UPDATE SET "
                "active_since = excluded.active_since, last_at = excluded.last_at, "
                "failing = NULL",
                (exercise, now, now, now))
        return self.exercise_progress(exercise)  # type: ignore[return-value]

    def record_exercise(self, exercise: str, *, check: bool | None = None,
                        failing: str | None = None, hint: bool = False,
                        goal: str | None = None, reset: bool = False) -> ExerciseProgress:
        """Count a check (passed or not; ``failing``: the first goal it failed, kept for the
        hints), a hint read (``goal``: one of that goal's own), or a reset (which forgets
        the failing goal)."""
        now = time.time()
        passed = bool(check)
        checked = check is not None
        with self._connect() as db:
            db.execute(
                "UPDATE exercise_progress SET last_at = ?, checks = checks + ?, "
                "passes = passes + ?, hints = hints + ?, resets = resets + ?, "
                "passed_at = COALESCE(passed_at, CASE WHEN ? THEN ? END), "
                "failing = CASE WHEN ? THEN ? WHEN ? THEN NULL ELSE failing END, "
                "goal_hints = CASE WHEN ? IS NULL THEN goal_hints ELSE json_set(goal_hints, "
                "'$.' || json_quote(?), COALESCE(json_extract(goal_hints, '$.' || "
                "json_quote(?)), 0) + 1) END WHERE exercise = ?",
                (now, int(checked), int(passed), int(hint), int(reset), passed, now,
                 checked, failing, reset, goal if hint else None, goal, goal, exercise))
        return self.exercise_progress(exercise)  # type: ignore[return-value]

    def exercise_progress(self, exercise: str) -> ExerciseProgress | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM exercise_progress WHERE exercise = ?",
                             (exercise,)).fetchone()
        return _progress(row) if row else None

    def keep_progress(self, progress: ExerciseProgress) -> None:
        """Store a progress row as it is (carried into a fresh state.db on reset)."""
        values = progress.__dict__ | {"goal_hints": json.dumps(progress.goal_hints)}
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO exercise_progress ({', '.join(_PROGRESS_COLUMNS)})"
                       f" VALUES ({', '.join('?' for _ in _PROGRESS_COLUMNS)})",
                       [values[c] for c in _PROGRESS_COLUMNS])

    def all_progress(self) -> list[ExerciseProgress]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM exercise_progress ORDER BY exercise").fetchall()
        return [_progress(row) for row in rows]

    def current_exercise(self) -> ExerciseProgress | None:
        """The exercise this workspace was last started on."""
        every = self.all_progress()
        return max(every, key=lambda p: p.active_since) if every else None

    # events --------------------------------------------------------------------------------

    def log(self, kind: EventKind | Stage, server: str | None = None, detail: str = "") -> None:
        """Append a line to the logbook; a ``kind`` that is neither an :class:`EventKind`
        nor a :class:`Stage` (a typo) is a ValueError, before anything is written."""
        word = event_kind(kind).value
        with self._connect() as db:
            db.execute(
                "INSERT INTO events (at, server, kind, detail) VALUES (?, ?, ?, ?)",
                (time.time(), server, word, detail),
            )

    def events(self, server: str | None = None) -> list[LogEntry]:
        """The logbook, oldest first (one server's lines, given its name)."""
        query, args = "SELECT * FROM events", ()
        if server is not None:
            query, args = query + " WHERE server = ?", (server,)
        with self._connect() as db:
            return [LogEntry(**dict(row)) for row in db.execute(query + " ORDER BY id", args)]


# Before liveness and stage were two columns, one `status` held either: what each old word
# says about both. A word not listed here is read as a running server never seen ready.
OLD_STATUS: dict[str, tuple[Liveness, Stage]] = {
    **{live.value: (live, Stage.CREATED) for live in Liveness},
    **{stage.value: (Liveness.RUNNING, stage) for stage in Stage if stage is not Stage.CREATED},
}


def _migrate(db: sqlite3.Connection) -> None:
    """A state.db written by an older lab gains the columns added since (with defaults), and
    its single ``status`` column becomes ``liveness`` and ``stage``; its exercise progress
    gains the failing goal (none yet) and the hints read per goal (none: every hint it
    counted was one of the exercise's own)."""
    progress = {row["name"] for row in db.execute("PRAGMA table_info(exercise_progress)")}
    for column, kind in _PROGRESS_ADDED.items():
        if progress and column not in progress:
            db.execute(f"ALTER TABLE exercise_progress ADD COLUMN {column} {kind}")
    have = {row["name"] for row in db.execute("PRAGMA table_info(servers)")}
    defaults = {f.name: f.default for f in fields(ServerRecord)}
    for column in _COLUMNS:
        if column not in have:
            default = defaults[column]
            text = default.value if isinstance(default, StrEnum) else (
                default if isinstance(default, str) else "")
            db.execute(f"ALTER TABLE servers ADD COLUMN {column} TEXT NOT NULL DEFAULT "
                       f"'{text}'")
    if "status" in have and "liveness" not in have:  # once, when the two columns are new
        rows = db.execute("SELECT name, status FROM servers").fetchall()
        for row in rows:
            liveness, stage = OLD_STATUS.get(row["status"], (Liveness.RUNNING, Stage.CREATED))
            db.execute("UPDATE servers SET liveness = ?, stage = ? WHERE name = ?",
                       (liveness, stage, row["name"]))
        with contextlib.suppress(sqlite3.OperationalError):  # SQLite before 3.35: it stays,
            db.execute("ALTER TABLE servers DROP COLUMN status")  # unread, with its default


def _progress(row: sqlite3.Row) -> ExerciseProgress:
    values = {column: row[column] for column in _PROGRESS_COLUMNS}
    values["goal_hints"] = json.loads(values["goal_hints"] or "{}")
    return ExerciseProgress(**values)


def _record(row: sqlite3.Row) -> ServerRecord:
    values = {column: row[column] for column in _COLUMNS}
    values["ports"] = {int(k): v for k, v in json.loads(values["ports"]).items()}
    return ServerRecord(**values)
