"""The course's graders read the lab's records typed: a release as a ``ReleaseReport``, a
logbook line as a ``LogEntry``, by attribute. A check that read them by key (``r["outcome"]``,
``e.get("detail")``) would go on running after a field is renamed, and grade every attendee
wrong without a word; an attribute fails at once. So no checks.py may subscript, or ``.get``,
a key named like a field of those records."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from lab.release import JournalEntry, ReleaseReport, StepReport
from lab.state import LogEntry

EXERCISES = Path(__file__).resolve().parents[2] / "exercises"
RECORDS = (ReleaseReport, StepReport, JournalEntry, LogEntry)
FIELDS = frozenset(f.name for record in RECORDS for f in fields(record))


def read_by_key(source: str) -> list[tuple[int, str]]:
    """Where ``source`` reads a record's field by key: ``x["field"]`` or ``x.get("field")``,
    as (line, code)."""
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        key = None
        if isinstance(node, ast.Subscript):
            key = node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get" and node.args):
            key = node.args[0]
        if isinstance(key, ast.Constant) and key.value in FIELDS:
            found.append((node.lineno, node.col_offset, ast.unparse(node)))
    return [(line, code) for line, _column, code in sorted(found)]


def test_the_scan_finds_a_release_or_logbook_line_read_by_key() -> None:
    source = ('last = attempt.releases()[-1]\n'
              'ok = last["outcome"] == "promoted" and last.get("new")\n'
              "names = [e['server'] for e in attempt.events('provisioned')]\n"
              'errors = last.traffic["errors"] + len(last.vars.get("version", ""))\n')
    assert read_by_key(source) == [(2, "last['outcome']"), (2, "last.get('new')"),
                                   (3, "e['server']")]


def test_no_exercise_reads_a_release_or_a_logbook_line_by_key() -> None:
    checks = sorted(EXERCISES.glob("*/checks.py"))
    assert len(checks) >= 9
    found = [f"{path.relative_to(EXERCISES)}:{line}: {code}" for path in checks
             for line, code in read_by_key(path.read_text(encoding="utf-8"))]
    assert found == [], "read the record's attribute instead (release.outcome, entry.detail)"
