"""The table of promises (docs/testing.md, linked from README) stays true to the suite: every
row names a test, and every test it names exists where it says. README stays a door: short,
and every page it links to is there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## What lab promises, and the test that proves it"
TIERS = {"u": ROOT / "tests" / "unit", "i": ROOT / "tests" / "integration"}
# `u/test_x.py::test_a` names a file and a test; a following `::test_b` is in the same file.
NAMED = re.compile(r"`(?:(?P<tier>[ui])/(?P<file>[\w/]+\.py))?(?:::(?P<test>\w+))?`")


def promises() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [row.strip().strip("|").split(" | ") for row in rows[2:]]  # after the header
    return [(promise.strip(), tests.strip()) for promise, tests in cells]


def test_the_table_is_there_and_every_row_names_a_test() -> None:
    rows = promises()
    assert len(rows) >= 30, "the table of promises is missing or cut short"
    for promise, tests in rows:
        assert "::test_" in tests, f"no test backs: {promise}"


def test_every_named_test_exists() -> None:
    missing = []
    for _, tests in promises():
        current: Path | None = None
        for found in NAMED.finditer(tests):
            if found["file"]:
                current = TIERS[found["tier"]] / found["file"]
                assert current.is_file(), current
            if found["test"]:
                assert current is not None, tests
                if not re.search(rf"^def {found['test']}\(", current.read_text(), re.M):
                    missing.append(f"{current.relative_to(ROOT)}::{found['test']}")
    assert missing == []


def test_readme_is_a_door_whose_links_lead_somewhere() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 300, "README.md is a door: move detail to a page in docs/"
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert "docs/testing.md" in links and "docs/architecture.md" in links
    assert [link for link in links if not (ROOT / link).exists()] == []
    for page in (ROOT / "docs").glob("*.md"):
        pointing = re.findall(r"\]\(([^)#:]+)\)", page.read_text())
        assert [link for link in pointing if not (page.parent / link).exists()] == [], page
