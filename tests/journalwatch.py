"""A release's journal read from outside, as any other program may read it while lab writes:
state.db opened read-only. The kill tests (tests/integration/test_release_killed.py,
tests/unit/test_aws_release_killed.py) and bench/bench_journal.py time their `kill -9` by it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path


def last_entry(state_db: Path) -> tuple[str, str] | None:
    """The last journal entry (step, begun or done) of the release saved as running; None
    before there is one (no state.db yet, its tables being made, no release running)."""
    if not state_db.exists():
        return None
    uri = f"{state_db.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        try:
            rows = db.execute("SELECT report FROM releases WHERE outcome = 'running'").fetchall()
        except sqlite3.OperationalError:  # the table is being made
            return None
    entries = json.loads(rows[-1][0]).get("journal", []) if rows else []
    return (entries[-1]["step"], entries[-1]["state"]) if entries else None


def running_step(state_db: Path) -> str | None:
    """The step the running release has begun last (each step's `done` follows its own
    `begun`, so the last entry names it)."""
    entry = last_entry(state_db)
    return entry[0] if entry else None
