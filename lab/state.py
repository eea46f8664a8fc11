"""What lab knows about a lab, in SQLite under ``.lab/state.db``.

State is a cache of the real world, not its master: targets are asked what exists (by label),
and :meth:`State.reconcile` brings these rows in line. The ``events`` table is append-only,
the lab's logbook: what each server has been through.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
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
    status      TEXT NOT NULL DEFAULT 'creating',
    ports       TEXT NOT NULL DEFAULT '{}',
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
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""


# Statuses of servers that no longer run: exited or killed, or no longer on the target at all.
GONE = ("dead", "missing")


@dataclass
class ServerRecord:
    """One server as lab last saw it. ``ports`` maps a server port to its 127.0.0.1 port."""

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
    status: str = "creating"
    ports: dict[int, int] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = [f.name for f in fields(ServerRecord)]


class State:
    """A small repository over ``.lab/state.db``; one short-lived connection per call."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.db"
        state_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            _add_missing_columns(db)

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

    def set_status(self, name: str, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE servers SET status = ? WHERE name = ?", (status, name))

    def forget(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM servers WHERE name = ?", (name,))

    def next_index(self, role: str) -> int:
        """The next free number for a role's server names; numbers are never reused."""
        # An exact prefix, not LIKE: '_' (allowed in role names) is a LIKE wildcard, so role
        # a_b would see axb's events and hand out a_b numbers already used.
        with self._connect() as db:
            row = db.execute(
                "SELECT MAX(CAST(detail AS INTEGER)) AS last FROM events "
                "WHERE kind = 'named' AND substr(server, 1, ?) = ?",
                (len(role) + 1, f"{role}-"),
            ).fetchone()
        used = [int(r.name.rsplit("-", 1)[1]) for r in self.servers(role)]
        if row and row["last"] is not None:
            used.append(int(row["last"]))
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

    # events --------------------------------------------------------------------------------

    def log(self, kind: str, server: str | None = None, detail: str = "") -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO events (at, server, kind, detail) VALUES (?, ?, ?, ?)",
                (time.time(), server, kind, detail),
            )

    def events(self, server: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM events", ()
        if server is not None:
            query, args = query + " WHERE server = ?", (server,)
        with self._connect() as db:
            return [dict(row) for row in db.execute(query + " ORDER BY id", args)]


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A state.db written by an older lab gains the columns added since (with defaults)."""
    have = {row["name"] for row in db.execute("PRAGMA table_info(servers)")}
    for column in _COLUMNS:
        if column not in have:
            db.execute(f"ALTER TABLE servers ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


def _record(row: sqlite3.Row) -> ServerRecord:
    values = dict(row)
    values["ports"] = {int(k): v for k, v in json.loads(values["ports"]).items()}
    return ServerRecord(**values)
