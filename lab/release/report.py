"""``lab report``: a release drawn as one self-contained HTML page.

The picture is the release's timeline (:mod:`lab.release.timeline`): requests per second stacked by
the version that answered, the share the balancer gave the new generation as a step line,
errors and p99 latency on their own axis, the phases as bands, each gate's decision as a
marker and, for a rollback, the reason where it happened. Below it, the release's figures.
matplotlib draws it as SVG, inlined with the styles: the file needs nothing else, no network,
and opens from disk in any browser. :func:`chart` is the data behind the picture, kept apart
so it can be checked against what the release measured.
"""

from __future__ import annotations

import html
import io
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, UsageError
from lab.release.journal import ReleaseReport

REQUIRED = {"id": str, "outcome": str, "started": (int, float), "phases": dict,
            "steps": list, "traffic": dict}
NO_TIMELINE = "recorded before lab kept timelines: no chart, its figures only"
PHASE_COLORS = ["#eef2f7", "#f7f3ea"]
VERSION_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#72b7b2"]


@dataclass
class Chart:
    """What the picture of one release shows, on the release's clock (seconds)."""

    seconds: list[float] = field(default_factory=list)
    requests: dict[str, list[int]] = field(default_factory=dict)  # answered, per version
    errors: list[int] = field(default_factory=list)  # failed, as users saw them
    canary_failed: list[int] = field(default_factory=list)  # new servers' own failures
    p99_ms: list[float] = field(default_factory=list)
    share_new: list[float] = field(default_factory=list)  # percent, each second
    share_line: list[tuple[float, float]] = field(default_factory=list)  # t, percent: changes
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # name, start, end
    gates: list[tuple[float, str, bool, str]] = field(default_factory=list)  # t, label, ok, why
    rollback: tuple[float, str] | None = None  # where the release was pulled back, and why


@dataclass
class Written:
    path: Path
    notices: list[str]  # one line per release drawn without a chart


# reading ---------------------------------------------------------------------------------


def find_release(state_dir: Path, wanted: str | None = None) -> Path:
    """The report file of a release: by id (or its unique start), a path, or the newest."""
    if wanted and wanted.endswith(".json") and Path(wanted).is_file():
        return Path(wanted)
    files = sorted((state_dir / "releases").glob("*.json"))
    if not files:
        raise UsageError("no releases yet in this lab (run `lab release`; `lab history` "
                         "lists them)")
    if wanted is None:
        return files[-1]
    matching = [f for f in files if f.stem == wanted] or [
        f for f in files if f.stem.startswith(wanted)]
    if len(matching) != 1:
        known = ", ".join(f.stem for f in files[-5:])
        raise UsageError(f"release {wanted!r}: {'ambiguous' if matching else 'not found'} "
                         f"(recent: {known}; `lab history` lists them all)")
    return matching[0]


def load_release(path: Path) -> ReleaseReport:
    """A release report file, checked enough to draw: a bad one is one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable release report ({_first_line(exc)})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a release report (expected a JSON object)")
    for name, kind in REQUIRED.items():
        if not isinstance(data.get(name), kind):
            raise ConfigError(f"{path}: not a release report: `{name}` is missing or malformed")
    timeline = data.get("timeline")
    if timeline and not (isinstance(timeline, dict) and isinstance(timeline.get("seconds"), list)
                         and isinstance(timeline.get("events"), list)):
        raise ConfigError(f"{path}: `timeline` is malformed (expected seconds and events)")
    try:
        return ReleaseReport.from_dict(data)
    except TypeError as exc:  # a field missing, a step or journal line not as lab writes them
        raise ConfigError(f"{path}: not a release report ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# the data behind the picture ----------------------------------------------------------------


def chart(release: ReleaseReport) -> Chart | None:
    """The picture's data from a release's timeline; None when it was recorded without one."""
    timeline = release.timeline or {}
    rows = timeline.get("seconds") or []
    if not rows:
        return None
    try:
        return _chart(rows, timeline.get("events") or [], timeline.get("shares") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"release {release.id}: its timeline is malformed "
                          f"({type(exc).__name__}: {exc})") from None


def _chart(rows: list[dict[str, Any]], events: list[dict[str, Any]],
           shares: list[list[float]]) -> Chart:
    versions = sorted({v for row in rows for v in row["requests"]})
    data = Chart(
        seconds=[float(row["t"]) for row in rows],
        requests={v: [int(row["requests"].get(v, 0)) for row in rows] for v in versions},
        errors=[int(row["errors"]) for row in rows],
        canary_failed=[int(row.get("canary_failed", 0)) for row in rows],
        p99_ms=[float(row["p99_ms"]) for row in rows],
        share_new=[100 * float(row["share_new"]) for row in rows],
        share_line=[(float(t), 100 * float(new)) for t, new, _old in shares],
    )
    if not data.share_line:  # drawn from the seconds when the changes were not kept
        data.share_line = list(zip(data.seconds, data.share_new, strict=True))
    for event in events:
        if event["kind"] == "phase":
            data.phases.append((event["label"], float(event["t"]),
                                float(event.get("end", event["t"]))))
        elif event["kind"] == "gate":
            data.gates.append((float(event["t"]), event["label"], bool(event.get("ok")),
                               event.get("detail", "")))
    refused = [g for g in data.gates if not g[2]]
    rollback = [e for e in events if e["kind"] == "rollback"]
    if refused:  # the gate that said no: that is when the release was pulled back
        data.rollback = (refused[0][0], refused[0][3])
    elif rollback:  # no gate failed: Ctrl-C, or an error
        data.rollback = (float(rollback[0]["t"]), rollback[0].get("detail", ""))
    return data


# drawing -----------------------------------------------------------------------------------


def draw(charts: list[tuple[str, Chart]]) -> str:
    """The charts, one panel pair per release on one shared time axis, as inline SVG."""
    import matplotlib
    from matplotlib.figure import Figure

    rows = len(charts)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lab",
                                "font.size": 9, "axes.spines.top": False}):
        figure = Figure(figsize=(11, 5.2 * rows), layout="constrained")
        axes = figure.subplots(2 * rows, 1, sharex=True,
                               gridspec_kw={"height_ratios": [3, 1.3] * rows})
        # One colour per version across every chart: v2 looks the same in both releases.
        versions = sorted({v for _title, data in charts for v in data.requests})
        palette = {v: VERSION_COLORS[i % len(VERSION_COLORS)] for i, v in enumerate(versions)}
        for index, (title, data) in enumerate(charts):
            _draw_one(axes[2 * index], axes[2 * index + 1], title, data, palette)
        axes[-1].set_xlabel("seconds since the release began")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _inline(buffer.getvalue())


def _draw_one(top: Any, bottom: Any, title: str, data: Chart, palette: dict[str, str]) -> None:
    # A second's value holds until the next: steps drawn "post" need the last one's end.
    x = [*data.seconds, (data.seconds[-1] + 1) if data.seconds else 1.0]

    def held(values: list[Any]) -> list[Any]:
        return [*values, values[-1]] if values else [0]

    for axis in (top, bottom):
        for number, (_name, start, end) in enumerate(data.phases):
            axis.axvspan(start, max(end, start + 0.2), color=PHASE_COLORS[number % 2], lw=0)
    top.set_title(title, loc="left", fontsize=11)
    if data.requests:
        top.stackplot(x, *(held(v) for v in data.requests.values()),
                      labels=[f"{v} answered" for v in data.requests],
                      colors=[palette[v] for v in data.requests], step="post", alpha=0.85)
    top.set_ylabel("requests per second")
    top.set_ylim(0, max([sum(c) for c in zip(*data.requests.values(), strict=True)] + [1]) * 1.35)
    for name, start, _end in data.phases:
        top.text(start, 0.99, f" {name}", transform=top.get_xaxis_transform(), rotation=90,
                 va="top", ha="left", fontsize=7, color="#555")
    share = top.twinx()
    line = [*data.share_line, (x[-1], data.share_line[-1][1])] if data.share_line else [(0, 0)]
    share.step([t for t, _ in line], [p for _, p in line], where="post", color="black", lw=1.6,
               label="new generation's share")
    share.set_ylim(0, 135)
    share.set_ylabel("share of the new generation (%)")
    for number, (t, label, ok, _why) in enumerate(data.gates):
        share.plot([t], [118 if ok else 125], marker="^" if ok else "X", ms=7, ls="none",
                   color="#2e7d32" if ok else "#c62828")
        # Gates close together (tests and health checks) get their labels on three rows.
        share.annotate(label, (t, 118 if ok else 125), xytext=(0, 6 + 8 * (number % 3)),
                       textcoords="offset points", ha="center", fontsize=6.5)
    handles = [h for axis in (top, share) for h in axis.get_legend_handles_labels()[0]]
    top.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.9, ncols=4)
    bottom.bar(data.seconds, data.errors, width=0.9, align="edge", color="#c62828",
               label="failed requests")
    bottom.bar(data.seconds, data.canary_failed, width=0.9, align="edge", bottom=data.errors,
               color="#ef9a9a", label="new servers' own failures")
    bottom.set_ylabel("failures per second")
    bottom.set_ylim(0, max(e + c for e, c in zip(data.errors, data.canary_failed,
                                                  strict=True)) * 1.3 + 1)
    latency = bottom.twinx()
    latency.plot([t + 0.5 for t in data.seconds], data.p99_ms, color="#6a1b9a", lw=1.2,
                 label="p99 latency")
    latency.set_ylabel("p99 latency (ms)")
    latency.set_ylim(0, max([*data.p99_ms, 1.0]) * 1.3)
    handles = [h for axis in (bottom, latency) for h in axis.get_legend_handles_labels()[0]]
    bottom.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.9, ncols=3)
    if data.rollback is not None:
        t, reason = data.rollback
        for axis in (top, bottom):
            axis.axvline(t, color="#c62828", ls="--", lw=1.4)
        share.annotate("\n".join(textwrap.wrap(f"rolled back: {reason}", 60)[:4]), (t, 100),
                       xytext=(-8, -4), textcoords="offset points", ha="right", va="top",
                       fontsize=7.5, color="#c62828",
                       bbox={"boxstyle": "round", "fc": "white", "ec": "#c62828"})


def _inline(svg: str) -> str:
    """SVG fit to sit inside HTML: no XML prologue, doctype or metadata block."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    return svg.strip()


# the page ----------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 20px; margin: 0 0 4px; } .promoted { color: #2e7d32; }
.rolled-back, .running { color: #c62828; } .notice { color: #8a5a00; }
.chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; margin: 8px 24px 16px 0; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
th { background: #f4f4f4; }
.figures { display: flex; flex-wrap: wrap; align-items: flex-start; }
"""


def render(releases: list[ReleaseReport]) -> tuple[str, list[str]]:
    """The HTML page for one release, or two drawn on one time axis; and the notices for
    releases recorded without a timeline."""
    charts, notices = [], []
    for release in releases:
        data = chart(release)
        if data is None:
            notices.append(f"release {release.id}: {NO_TIMELINE}")
        else:
            charts.append((_title(release), data))
    picture = f'<div class="chart">{draw(charts)}</div>' if charts else ""
    title = " vs ".join(r.id for r in releases)
    body = "".join(_figures(r) for r in releases)
    notes = "".join(f'<p class="notice">{html.escape(n)}</p>' for n in notices)
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>lab release {html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>lab release {html.escape(title)}</h1>{notes}{picture}{body}"
            f"</body></html>\n")
    return page, notices


def _title(release: ReleaseReport) -> str:
    version = release.vars.get("version", "")
    image = f" from {release.image}" if release.image else ""
    return f"{release.id}: {version}{image}, {release.outcome}"


def _figures(release: ReleaseReport) -> str:
    """The release's figures as tables: what, outcome, traffic, phases, steps."""
    traffic = release.traffic
    summary = [("outcome", f'<b class="{html.escape(release.outcome)}">'
                           f'{html.escape(release.outcome)}</b>'),
               ("version", _cell(release.vars.get("version", ""))),
               ("from image", _cell(release.image or "-")),
               ("reason", _cell(release.reason or "-")),
               ("requests", _cell(traffic.get("requests", ""))),
               ("failed", _cell(traffic.get("errors", ""))),
               ("p50 / p99 ms", _cell(f"{traffic.get('p50_ms', '')} / "
                                      f"{traffic.get('p99_ms', '')}")),
               ("new", _cell(", ".join(release.new))),
               ("old", _cell(", ".join(release.old)))]
    phases = [(_cell(name), _cell(f"{seconds:.1f} s"))
              for name, seconds in release.phases.items()]
    steps = []
    for step in release.steps:
        window, canary = step.window or {}, step.canary or {}
        steps.append([_cell(f"{step.percent}%"), _cell(window.get("requests", "")),
                      _cell(window.get("errors", "")),
                      _cell(f"{canary.get('failed', 0)}/{canary.get('requests', 0)}"
                            if canary else "-"),
                      _cell(window.get("p99_ms", "")), _cell(step.gate),
                      "<br>".join(_cell(v.line()) for v in step.verdicts)])
    return (f"<h2>{html.escape(release.id)}</h2><div class=\"figures\">"
            + _table(["", ""], [list(row) for row in summary])
            + _table(["phase", "seconds"], [list(row) for row in phases])
            + _table(["step", "requests", "failed", "new servers failed", "p99 ms", "gate",
                      "analysis: each rule, its value, its limit"], steps)
            + "</div>")


def _cell(value: object) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def write_report(state_dir: Path, wanted: list[str | None], output: Path | None = None) -> Written:
    """Draw one release (``[id]``; ``[None]``: the newest) or two on one time axis, and write
    the page to ``output`` (default: beside the reports, ``.lab/releases/<id>.html``)."""
    paths = [find_release(state_dir, w) for w in wanted]
    releases = [load_release(p) for p in paths]
    target = output or paths[0].with_name("-vs-".join(p.stem for p in paths) + ".html")
    return write_page(releases, target)


def write_page(releases: list[ReleaseReport], target: Path) -> Written:
    """Render releases already read (``lab demo`` has its own in hand) to ``target``: the
    HTML page, or only the chart when ``target`` ends in ``.svg`` (for a README)."""
    page, notices = render(releases)
    if target.suffix == ".svg":
        charts = [(_title(r), c) for r in releases if (c := chart(r)) is not None]
        if not charts:
            raise UsageError(f"{target}: nothing to draw ({notices[0]})")
        page = draw(charts) + "\n"
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{target}: cannot write the report ({exc.strerror})") from None
    return Written(target, notices)
