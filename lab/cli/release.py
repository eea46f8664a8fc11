"""Releases: a new generation under live traffic, rollback, history, and baked images."""

from __future__ import annotations

import json
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from lab.cli.base import SetVars, handled, lab_config
from lab.cli.output import err, out, progress

if TYPE_CHECKING:
    from lab.release import ReleaseReport

app = typer.Typer()


@app.command()
@handled
def release(
    ctx: typer.Context,
    set_vars: SetVars = None,
    from_image: Annotated[str | None, typer.Option(
        help="Start the new servers from this baked image, without provisioning.")] = None,
    step_by_step: Annotated[bool, typer.Option(
        "--step-by-step", help="Pause after every step until `lab promote`.")] = False,
    untested: Annotated[bool, typer.Option(
        "--untested", help="Release even when no test would gate it (recorded in history).")]
    = False,
) -> None:
    """Replace the balanced role with a new generation, canary by canary, under live traffic.

    New servers are built and verified out of rotation, then get lab.yml's release steps of
    traffic while a probe watches errors and latency; each step ends judged on every rule of
    `release:` (error rate, p99, requests), each verdict shown with its numbers. Any failed
    gate, `lab abort`, Ctrl-C or SIGTERM rolls back: the old servers were never touched and
    get all traffic again. Exit 1 after a rollback. A `pause` step (or --step-by-step) waits,
    still watched, for `lab promote` from another terminal. A release killed outright
    (SIGKILL, power cut) is put right by the next one first, from the journal it keeps in
    .lab/state.db. A release that no test gates (the role has no `tests:`, or none passed)
    is refused: --untested forces it, and `lab history` says so.

    Example:  lab release --set version=v2
    """
    from lab.fleet import Fleet
    from lab.provision import parse_overrides
    from lab.release import ReleaseFailed
    from lab.release import release as run

    config = lab_config(ctx)
    try:
        with (progress(f"lab release {config.name}") as listener,
              Fleet(config, listener) as fleet, said_where(fleet)):
            report = run(fleet, parse_overrides(set_vars or []), from_image, listener,
                         step_by_step=step_by_step, untested=untested)
    except ReleaseFailed as failed:  # the steps' figures say why, before the one-line error
        if failed.report is not None:
            print_release(failed.report)
        raise
    print_release(report)


@app.command()
@handled
def promote(ctx: typer.Context) -> None:
    """Let a paused release go on to its next step (run it in another terminal, in the lab's
    folder, while `lab release` waits at a `pause` step or with --step-by-step).

    Refused when no release runs, or when the running one is not paused. `lab status` says
    whether a release is paused.

    Example:  lab promote
    """
    from lab.release.control import PROMOTE, send

    err.print(send(lab_config(ctx).state_dir, PROMOTE), soft_wrap=True)


@app.command()
@handled
def abort(ctx: typer.Context) -> None:
    """Roll back the running release, as a failed gate would: its new servers leave the
    balancer and are destroyed, the old ones take all traffic (run it in another terminal).

    It acts at the release's next look during canary steps and pauses (every half second
    behind HAProxy, every 4 s behind an ALB), else once the running phase (create,
    provision, tests) ends. The release exits 1 with "aborted by `lab abort`".

    Example:  lab abort
    """
    from lab.release.control import ABORT, send

    err.print(send(lab_config(ctx).state_dir, ABORT), soft_wrap=True)


@app.command()
@handled
def rollback(ctx: typer.Context) -> None:
    """Release again the latest earlier deployment you have not rolled back from.

    That is the newest promoted release before the one serving now (else lab.yml as first
    provisioned) that runs other vars or another image than now, and whose vars and image no
    later `lab rollback` has left: a second rollback goes further back, never to the version
    the first one left. Rolled-back and interrupted releases never count. It names both releases
    before it starts, and refuses (exit 2) when nothing safe is left.

    After a release that was killed half-way (`lab status` names it), this puts that one
    right instead, and stops there: rolled back, or its promote finished if it had begun.
    """
    from lab.fleet import Fleet
    from lab.release import put_right
    from lab.release import release as run
    from lab.release.rollback import rollback_target

    config = lab_config(ctx)
    with progress(f"lab rollback {config.name}") as listener, Fleet(config, listener) as fleet:
        ended = put_right(fleet, listener)
        if ended:  # an interrupted release put right is this rollback: nothing more to undo
            for report in ended:
                out.print(f"release {report.id}: {report.outcome} ({report.reason})",
                          soft_wrap=True)
            return
        target = rollback_target(fleet.state)
        err.print(target.announce(), soft_wrap=True)
        with said_where(fleet):
            report = run(fleet, target.vars, target.image, listener,
                         rollback_of=target.rolls_back.id)
    print_release(report)


@app.command()
@handled
def history(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the lab's releases with their outcome and figures.

    "ready s" is how long the new servers took to be ready for traffic (create, provision,
    tests and health checks); "seconds" the whole release, canary steps included. A release
    from a baked image skips provisioning: compare the two.

    Example:  lab history
    """
    from lab.release import history, ready_seconds
    from lab.release.journal import releases as shown
    from lab.state import State

    state_dir = lab_config(ctx).state_dir
    state = State(state_dir)
    if as_json:  # each report key for key as it was saved (an interrupted one says so)
        out.print_json(json.dumps(shown(state, state_dir)))
        return
    releases = history(state, state_dir)
    table = Table("release", "outcome", "version", "from image", "requests", "errors", "p99 ms",
                  "ready s", "seconds", "reason", box=None)
    for r in releases:
        color = "green" if r.outcome == "promoted" else "red"
        took = (r.finished or r.started) - r.started
        ready = ready_seconds(r)
        table.add_row(r.id, f"[{color}]{r.outcome}[/{color}]",
                      str(r.vars.get("version", "")), r.image or "-",
                      str(r.traffic.get("requests", "")), str(r.traffic.get("errors", "")),
                      str(r.traffic.get("p99_ms", "")), "-" if ready is None else f"{ready:.1f}",
                      f"{took:.1f}", ("untested; " if r.untested else "") + r.reason[:60])
    out.print(table if releases else "no releases yet (run `lab release`)")


@app.command()
@handled
def report(
    ctx: typer.Context,
    release: Annotated[str | None, typer.Argument(
        help="Release id, or its start (default: the newest); `lab history` lists them.")]
    = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open it in the browser.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here (default: .lab/releases/<id>.html); a .svg "
        "name writes the chart alone.")] = None,
    compare: Annotated[tuple[str, str] | None, typer.Option(
        help="Draw two releases on one time axis: --compare A B.")] = None,
) -> None:
    """Draw a release as one HTML page: traffic per version each second, the new
    generation's share step by step, errors and latency, the phases, each gate's decision,
    and where and why a rollback happened. The page needs no network: mail it, open it
    from disk.

    Example:  lab report --open;  lab report --compare 20261127-1012 20261127-1020
    """
    from lab.release.report import write_report

    wanted: list[str | None] = list(compare) if compare and all(compare) else [release]
    written = write_report(lab_config(ctx).state_dir, wanted, output)
    for notice in written.notices:
        err.print(notice, soft_wrap=True)
    out.print(str(written.path), soft_wrap=True)
    if open_page:
        webbrowser.open(written.path.resolve().as_uri())


@contextmanager
def said_where(fleet: Any) -> Iterator[None]:
    """Say where the release's report is, whatever its outcome (once there is one: a
    release refused before it began has none)."""
    before = len(fleet.state.releases())
    try:
        yield
    finally:
        done = fleet.state.releases()
        if len(done) > before:
            where = fleet.config.state_dir / "releases" / f"{done[-1]['id']}.json"
            err.print(f"report: {where} (draw it: lab report {done[-1]['id']} --open)",
                      soft_wrap=True)


@app.command()
@handled
def bake(
    ctx: typer.Context,
    role: Annotated[str | None, typer.Argument(help="Role (default: the balanced one).")]
    = None,
    version: Annotated[str | None, typer.Option(help="Image version tag.")] = None,
) -> None:
    """Snapshot a provisioned, verified server into an image: lab/<lab>-<role>:<version>
    (on aws an AMI of that name); prints what --from-image takes.

    Then:  lab release --from-image lab/<lab>-<role>:<version>   (on aws: ami-...)
    """
    from lab.fleet import Fleet
    from lab.release.bake import bake as run

    config = lab_config(ctx)
    with progress(f"lab bake {config.name}") as listener, Fleet(config, listener) as fleet:
        image = run(fleet, role, version, listener)
    out.print(image)


def print_release(report: ReleaseReport) -> None:
    table = Table("step", "requests", "errors", "new failed", "rps", "p50 ms", "p99 ms",
                  "versions", "gate", "analysis", box=None,
                  title=f"release {report.id}: {report.outcome}", title_justify="left")
    for step in report.steps:
        w = step.window
        versions = " ".join(f"{v}:{n}" for v, n in sorted(w.get("versions", {}).items()))
        canary = step.canary
        table.add_row(f"{step.percent}%", str(w.get("requests", "")),
                      str(w.get("errors", "")),
                      f"{canary.get('failed', 0)}/{canary.get('requests', 0)}" if canary else "",
                      str(w.get("rps", "")), str(w.get("p50_ms", "")),
                      str(w.get("p99_ms", "")), versions,
                      step.gate + (f"\npaused {step.paused:g}s ({step.resumed_by})"
                                   if step.resumed_by else ""),
                      "\n".join(v.line(with_note=False) for v in step.verdicts))
    out.print(table)
    phases = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in report.phases.items())
    traffic = report.traffic
    out.print(f"phases: {phases}")
    out.print(f"traffic during the release: {traffic.get('requests')} requests, "
              f"{traffic.get('errors')} failed, p99 {traffic.get('p99_ms')} ms")
    if report.outcome == "promoted":
        out.print(f"new: {', '.join(report.new)}  old (destroyed): {', '.join(report.old)}")
    else:
        out.print(f"new (destroyed): {', '.join(report.new) or '-'}  "
                  f"old (serving): {', '.join(report.old)}")
