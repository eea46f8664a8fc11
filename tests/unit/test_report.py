"""`lab report` from release files: the picture's data, the page, and files it cannot draw.

Real releases are drawn (and the page opened in a real browser) by the release integration
tests; these cover what needs no servers: reading, the data behind the picture, bad files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.release import ReleaseReport
from lab.release.report import chart, render, write_page

runner = CliRunner(env={"LAB_FILE": None})


def release(timeline: bool = True) -> dict:
    """A rolled-back release as lab saves it: four seconds, refused at 10 % at t = 2.4."""
    data = {
        "id": "20261127-101500-abcdef", "role": "web", "started": 1.0, "vars": {"version": "v2"},
        "image": None, "previous": {}, "old": ["web-1"], "new": ["web-2"],
        "steps": [{"percent": 10, "window": {"requests": 40}, "gate": "canary errors",
                   "canary": {"requests": 4, "failed": 2}}],
        "phases": {"create": 1.0, "canary 10%": 1.4}, "outcome": "rolled-back",
        "reason": "at 10%: the new generation failed 2 of 4 requests", "finished": 5.0,
        "traffic": {"requests": 160, "errors": 1, "p50_ms": 2.0, "p99_ms": 9.0},
    }
    if timeline:
        seconds = [{"t": t, "requests": {"v1": 40 - share, "v2": share}, "errors": t == 3,
                    "p50_ms": 2.0, "p99_ms": 9.0, "share_new": share / 40, "share_old": 1.0,
                    "canary_requests": share, "canary_failed": 2 * (t == 2)}
                   for t, share in enumerate([0, 0, 4, 0])]
        events = [{"t": 0.0, "kind": "phase", "label": "create", "ok": True, "end": 1.0},
                  {"t": 1.0, "kind": "phase", "label": "canary 10%", "ok": False, "end": 2.4},
                  {"t": 1.0, "kind": "step", "label": "10%", "percent": 10},
                  {"t": 2.4, "kind": "gate", "label": "10%", "ok": False,
                   "detail": "at 10%: the new generation failed 2 of 4 requests"},
                  {"t": 2.5, "kind": "rollback", "label": "rollback", "detail": "at 10%: ..."}]
        data["timeline"] = {"format": 1, "seconds": seconds, "events": events}
    return data


def report(timeline: bool = True) -> ReleaseReport:
    """That release as lab reads it back."""
    return ReleaseReport.from_dict(release(timeline))


def test_the_picture_shows_what_the_timeline_holds() -> None:
    data = chart(report())

    assert data is not None
    assert data.requests == {"v1": [40, 40, 36, 40], "v2": [0, 0, 4, 0]}
    assert data.share_new == [0.0, 0.0, 10.0, 0.0]
    assert data.errors == [0, 0, 0, 1] and data.canary_failed == [0, 0, 2, 0]
    assert data.phases == [("create", 0.0, 1.0), ("canary 10%", 1.0, 2.4)]
    # The marker stands where the gate said no, not where the clean-up began.
    assert data.rollback == (2.4, "at 10%: the new generation failed 2 of 4 requests")


def test_the_page_is_one_file_that_asks_nothing_of_the_network() -> None:
    page, notices = render([report()])

    assert notices == []
    assert page.count("<svg") == 1 and "rolled back: at 10%: the new generation" in page
    assert "<script" not in page
    for attribute in ("src=", "href=\"http", "url(http", "@import"):
        assert attribute not in page


def test_a_release_recorded_before_timelines_shows_its_figures_and_says_so() -> None:
    page, notices = render([report(timeline=False)])

    assert notices == ["release 20261127-101500-abcdef: recorded before lab kept timelines: "
                       "no chart, its figures only"]
    assert "<svg" not in page and "canary errors" in page and "no chart" in page


@pytest.mark.parametrize(("content", "expected"), [
    ("{\"id\": \"x\", \"outc", "not a readable release report"),
    ("[1, 2]", "not a release report (expected a JSON object)"),
    ("{\"id\": \"x\"}", "not a release report: `outcome` is missing or malformed"),
    (b"\xff\xfe\x00junk", "not a readable release report"),
])
def test_a_corrupted_report_file_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes,
        expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text("name: demo\nservers: {web: {}}\n")
    releases = tmp_path / ".lab" / "releases"
    releases.mkdir(parents=True)
    path = releases / "20261127-101500-abcdef.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())

    result = runner.invoke(app, ["report"])

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: ") and expected in line


def test_report_of_a_release_that_is_not_there_names_the_ones_that_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text("name: demo\nservers: {web: {}}\n")
    releases = tmp_path / ".lab" / "releases"
    releases.mkdir(parents=True)
    (releases / "20261127-101500-abcdef.json").write_text(json.dumps(release()))

    result = runner.invoke(app, ["report", "20250101"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: release '20250101': not found (recent: 20261127-101500-abcdef; `lab history` "
        "lists them all)"]
    written = runner.invoke(app, ["report", "20261127"])
    assert written.exit_code == 0, written.output
    assert written.stdout.strip().endswith("20261127-101500-abcdef.html")


def test_two_releases_share_one_time_axis_and_a_svg_is_the_chart_alone(tmp_path: Path) -> None:
    good = ReleaseReport.from_dict(
        release() | {"id": "20261127-101000-aaaaaa", "outcome": "promoted"})
    page, _ = render([good, report()])
    assert page.count("<svg") == 1  # one figure: both releases on one time axis
    assert "20261127-101000-aaaaaa: v2, promoted" in page
    assert "20261127-101500-abcdef: v2, rolled-back" in page

    svg = write_page([report()], tmp_path / "chart.svg").path.read_text()
    assert svg.startswith("<svg") and "<html" not in svg and "rolled back: at 10%" in svg


def test_lab_report_on_a_release_from_before_timelines_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text("name: demo\nservers: {web: {}}\n")
    releases = tmp_path / ".lab" / "releases"
    releases.mkdir(parents=True)
    (releases / "20261127-101500-abcdef.json").write_text(json.dumps(release(timeline=False)))

    result = runner.invoke(app, ["report"])

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "release 20261127-101500-abcdef: recorded before lab kept timelines: no chart, its "
        "figures only"]
    page = releases / "20261127-101500-abcdef.html"
    assert result.stdout.strip() == str(page) and "canary errors" in page.read_text()
