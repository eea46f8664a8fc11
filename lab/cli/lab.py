"""The lab's own commands: make it, bring its servers up, provision, verify, test, tear down."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lab.cli.base import Names, SetVars, current, handled, lab_config
from lab.cli.output import RESULT_COLORS, clip, err, nonzero, out, progress
from lab.errors import CheckFailed, ExitStatus

app = typer.Typer()


@app.command()
@handled
def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write the lab.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Lab name (default: from DIRECTORY).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing lab.yml.")] = False,
) -> None:
    """Write an example lab: two nginx web servers behind a balancer, a playbook, tests.

    Example:  lab init demo && cd demo && lab up
    """
    from lab.scaffold import init_lab

    if name is not None:
        from lab.config import LAB_NAME

        if not LAB_NAME.match(name):
            raise typer.BadParameter("must be lowercase letters, digits or '-'",
                                     param_hint="--name")
    for path in init_lab(directory, name, force):
        out.print(f"wrote {path}")
    out.print(f"next: cd {directory} && lab up")


@app.command()
@handled
def up(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(help="Override lab.yml's target.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Only this role (repeatable).")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Create what costs money (target aws) without asking.")] = False,
) -> None:
    """Create the lab's servers: only what is missing, replacing any that died.

    Waits until each server's systemd has booted and sshd accepts the lab's key. On a
    target that charges (aws), it first shows what it will create and an estimated hourly
    cost, and asks; --yes agrees in advance (needed without a terminal).
    """
    from lab.fleet import Fleet

    config = lab_config(ctx, target)
    with Fleet(config) as fleet:
        plan = fleet.plan(role)
    if plan is not None:
        err.print(f"lab up {config.name} will create on {config.target}:")
        for line in plan.describe():
            err.print(line, soft_wrap=True)
        if not yes and not typer.confirm("Create them?", default=False, err=True):
            err.print("nothing created")
            raise typer.Exit(int(ExitStatus.OK))
    started = time.monotonic()
    with progress(f"lab up {config.name}") as listener, Fleet(config, listener) as fleet:
        servers = fleet.up(role)
    err.print(f"{len(servers)} server(s) ready in {time.monotonic() - started:.1f} s")
    print_servers(servers)


@app.command()
@handled
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each server as the target sees it now: dead and missing ones included, and a
    release that was killed half-way (with where its traffic goes now)."""
    from lab.fleet import Fleet
    from lab.release.journal import (
        describe,
        describe_running,
        interrupted,
        running,
        split_traffic,
    )

    with Fleet(lab_config(ctx)) as fleet:
        servers = fleet.status()
        pool = fleet.lab.rotation(servers, fleet.key)
        stopped = interrupted(fleet.state, fleet.config.state_dir)
        under_way = running(fleet.state, fleet.config.state_dir)
    if as_json:
        out.print_json(json.dumps([s.shown() | ({"balancer": pool[s.name]} if s.name in pool
                                                  else {}) for s in servers]))
    else:
        print_servers(servers, pool)
    if under_way is not None:
        err.print(describe_running(under_way), soft_wrap=True)
    if stopped is not None:
        shares = {name: float(str(member["share"])) for name, member in pool.items()}
        now = split_traffic({s.name: s.generation for s in servers}, shares)
        err.print(f"[yellow]warning:[/yellow] {describe(stopped)}; traffic now: {now}. "
                  "`lab rollback` puts it right (`lab release` does too, first)",
                  soft_wrap=True)


@app.command()
@handled
def ssh(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Server name, as `lab status` shows it.")],
    command: Annotated[list[str] | None, typer.Argument(help="Run this instead of a shell.")]
    = None,
) -> None:
    """Open a shell on a server with the lab's key, or run one command.

    The server must show the host key lab made for it (kept in .lab/known_hosts); any other
    key is refused, as from someone in the middle.

    Example:  lab ssh web-1 -- systemctl status nginx
    """
    from lab.access.ssh import session_argv
    from lab.fleet import Fleet

    with Fleet(lab_config(ctx)) as fleet:
        server = fleet.find(name)
        argv = session_argv(server, fleet.key, command or None)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@app.command()
@handled
def destroy(
    ctx: typer.Context,
    images: Annotated[bool, typer.Option(help="Also remove the images `lab bake` made.")]
    = False,
) -> None:
    """Remove everything the lab made: servers and network (on aws also the load balancer,
    groups, key pair and template), found by label or tag.

    Works even after .lab/state.db is deleted or a `lab up` was killed half-way.
    """
    from lab.fleet import Fleet

    config = lab_config(ctx)
    started = time.monotonic()
    with progress(f"lab destroy {config.name}") as listener, Fleet(config, listener) as fleet:
        removed = fleet.destroy(images)
    err.print(f"destroyed {len(removed)} server(s) in {time.monotonic() - started:.1f} s")


@app.command()
@handled
def provision(
    ctx: typer.Context,
    names: Names = None,
    set_vars: SetVars = None,
    idempotence: Annotated[bool, typer.Option(
        help="Run twice; fail naming each task that changed on the second run.")] = False,
) -> None:
    """Configure servers with their role's playbook (Ansible, through ansible-runner).

    With a balancer, it returns once the balancer's health checks pass on the servers it
    sends traffic to, so the lab serves when the command ends (exit 1 if one never does).

    Example:  lab provision --set version=v2 web-1
    """
    from lab.fleet import Fleet
    from lab.harness import provision as run
    from lab.provision import parse_overrides
    from lab.release.journal import refuse_if_interrupted

    overrides = parse_overrides(set_vars or [])
    config = lab_config(ctx)
    with progress(f"lab provision {config.name}") as listener, Fleet(config, listener) as fleet:
        # Provisioning sets the balancer's members at full weight: never under a release.
        refuse_if_interrupted(fleet.state, config.state_dir, "provision")
        report = run(fleet, names, overrides, idempotence, listener)
    for result in report.runs:
        print_run(result)
    if report.second:
        err.print("second run (idempotence):")
        for result in report.second:
            print_run(result)
    if not report.ok:
        raise CheckFailed(report.problem)


@app.command()
@handled
def drift(ctx: typer.Context, names: Names = None, set_vars: SetVars = None) -> None:
    """Show what on the running servers differs from the code (check mode, with diff).

    The teaching moment: someone makes a "simple one-line change" over SSH; this finds it.
    Exit status 1 when anything drifted.
    """
    from lab.fleet import Fleet
    from lab.harness import drift as run
    from lab.provision import parse_overrides

    config = lab_config(ctx)
    with progress(f"lab drift {config.name}") as listener, Fleet(config, listener) as fleet:
        report = run(fleet, names, parse_overrides(set_vars or []), listener)
    if report.problem:
        raise CheckFailed(report.problem)
    for task in report.drifted:
        out.print(f"[yellow]drift[/yellow] {task.host}: {task.task}")
        if task.diff:
            out.print(task.diff, markup=False, highlight=False)
    if report.drifted:
        hosts = sorted({t.host for t in report.drifted})
        raise CheckFailed(f"{len(report.drifted)} task(s) differ from code on "
                          f"{', '.join(hosts)}; `lab provision` puts them back (or better: "
                          "replace the servers)")
    out.print("no drift: the servers match the code")


@app.command()
@handled
def verify(
    ctx: typer.Context,
    names: Names = None,
    set_vars: SetVars = None,
    junit: Annotated[Path | None, typer.Option(help="Also write a JUnit XML report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Prove servers with their role's testinfra tests, all servers at once.

    Example:  lab verify --junit report.xml
    """
    from lab.fleet import Fleet
    from lab.harness import verify as run
    from lab.provision import parse_overrides
    from lab.verify import merge_junit

    config = lab_config(ctx)
    with progress(f"lab verify {config.name}") as listener, Fleet(config, listener) as fleet:
        result = run(fleet, names, parse_overrides(set_vars or []), listener)
    if junit is not None:
        merge_junit(result, junit)
    if as_json:
        out.print_json(json.dumps([o.__dict__ for o in result.outcomes]))
    else:
        table = Table("host", "test", "result", "message", box=None)
        for o in result.outcomes:
            color = RESULT_COLORS.get(o.status, "white")
            table.add_row(o.host, o.test, f"[{color}]{o.status}[/{color}]",
                          clip(o.message, 100))
        out.print(table)
    if not result.ok:
        raise CheckFailed(result.problem)


@app.command("test")
@handled
def test_command(
    ctx: typer.Context,
    destroy_policy: Annotated[str, typer.Option(
        "--destroy", help="always | passing (keep failed servers to debug) | never.")]
    = "always",
    set_vars: SetVars = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one line "
                                          "with each phase, its seconds and figures.")] = False,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", help="In a role's folder (no lab.yml): its Molecule scenario "
        "molecule/NAME/molecule.yml (default: default).")] = None,
) -> None:
    """The whole harness cycle on fresh servers: create, provision, idempotence, verify, destroy.

    Uses its own lab name (NAME-test), so the servers `lab up` made are never touched.

    In a role's folder with no lab.yml, it runs the role's Molecule scenario as Molecule
    would (molecule/default/molecule.yml, or --scenario NAME): each platform a server, the
    scenario's playbooks and tests, its test_sequence.
    """
    from lab.harness import run_test_cycle
    from lab.molecule import find_scenario
    from lab.provision import parse_overrides

    if destroy_policy not in ("always", "passing", "never"):
        raise typer.BadParameter("must be always, passing or never", param_hint="--destroy")
    molecule = find_scenario(current(ctx).file, scenario)
    if molecule is not None:
        from lab.molecule.cycle import run_scenario

        overrides = parse_overrides(set_vars or [])
        started = time.monotonic()
        with progress(f"lab test {molecule.role.name} (Molecule scenario {molecule.name})"
                      ) as listener:
            report = run_scenario(molecule, destroy_policy,  # type: ignore[arg-type]
                                  overrides, listener)
    else:
        config = lab_config(ctx)
        started = time.monotonic()
        with progress(f"lab test {config.name}") as listener:
            report = run_test_cycle(config, destroy_policy,  # type: ignore[arg-type]
                                    parse_overrides(set_vars or []), listener)
    total = time.monotonic() - started
    if as_json:
        out.print(json.dumps(report.to_dict() | {"seconds": round(total, 2)}), soft_wrap=True)
        if not report.ok:
            raise typer.Exit(int(ExitStatus.CHECK_FAILED))
        return
    table = Table("phase", "result", "seconds", "detail", box=None)
    for phase in report.phases:
        mark = "[green]ok[/green]" if phase.ok else "[red]failed[/red]"
        table.add_row(phase.name, mark, f"{phase.seconds:.1f}", clip(phase.detail, 100))
    out.print(table)
    if not report.ok:
        raise CheckFailed(f"lab test failed after {total:.1f} s: {report.problem}")
    out.print(f"[green]passed[/green] in {total:.1f} s")


@app.command()
@handled
def demo(
    ctx: typer.Context,
    keep: Annotated[bool, typer.Option(help="Leave the demo lab running afterwards.")] = False,
    step_seconds: Annotated[float, typer.Option(help="Seconds per canary step.")] = 3.0,
    pages: Annotated[Path, typer.Option(
        "--reports", help="Where to write the picture of each release.")] = Path("."),
) -> None:
    """The whole story in a throwaway lab: v1 up, v2 released under load, broken v3 rolled back.

    Ends with a picture of each release (`lab report`'s page) in the current directory.
    Takes about a minute once the base image exists (`make demo` builds it).
    """
    from lab.demo import run_demo

    started = time.monotonic()
    with progress("lab demo") as listener:
        report = run_demo(keep, step_seconds, on_event=listener, pages=pages)
    table = Table("step", "expected", "outcome", "seconds", "figures", box=None,
                  title="lab demo", title_justify="left")
    for step in report.steps:
        color = "green" if step.ok else "red"
        figures = clip("  ".join(f"{k}: {v}" for k, v in step.figures.items() if v != ""), 160)
        table.add_row(step.name, step.expected, f"[{color}]{step.outcome}[/{color}]",
                      f"{step.seconds:.1f}", figures)
    out.print(table)
    out.print(f"total {time.monotonic() - started:.1f} s"
              + (f"; lab kept in {report.directory}" if keep else ""))
    for page in report.pages:
        out.print(f"report: {page}", soft_wrap=True)
    if not report.ok:
        raise CheckFailed("the demo did not go as expected (see the table above)")


@app.command()
@handled
def doctor(ctx: typer.Context) -> None:
    """Check each prerequisite and say how to fix what is missing (exit 3 if any)."""
    from lab.doctor import run_checks

    checks = run_checks()
    table = Table("check", "", "detail", "to fix", box=None)
    for check in checks:
        mark = "[green]ok[/green]" if check.ok else ("[red]missing[/red]" if check.required
                                                     else "[yellow]absent[/yellow]")
        table.add_row(check.name, mark, check.detail, "" if check.ok else check.fix)
    out.print(table)
    if any(c.required and not c.ok for c in checks):
        raise typer.Exit(int(ExitStatus.MISSING_PREREQUISITE))


# rendering -------------------------------------------------------------------------------------


def print_run(result: Any) -> None:
    table = Table("host", "ok", "changed", "failed", "unreachable", "skipped", box=None,
                  title=f"{result.playbook.name}  ({result.seconds:.1f} s, run {result.run_id})",
                  title_justify="left")
    for host, stats in sorted(result.hosts.items()):
        table.add_row(host, str(stats.ok), nonzero(stats.changed, "yellow"),
                      nonzero(stats.failed, "red"), nonzero(stats.unreachable, "red"),
                      str(stats.skipped))
    out.print(table)


def print_servers(servers: list[Any], pool: dict[str, dict[str, Any]] | None = None) -> None:
    """The server table; with a balancer, each backend's weight, health and traffic share."""
    if not servers:
        out.print("no servers (run `lab up`)")
        return
    columns = ["name", "role", "gen", "status", "ssh", "ports", "image"]
    if pool:
        columns += ["weight", "health", "share"]
    table = Table(*columns, box=None)
    for s in servers:
        color = {"ready": "green", "verified": "green", "dead": "red", "missing": "red",
                 "failed": "red", "verify-failed": "red"}.get(s.status, "yellow")
        ports = " ".join(f"{p}->{s.ports_host}:{h}" for p, h in sorted(s.ports.items()))
        row = [s.name, s.role, str(s.generation), f"[{color}]{s.status}[/{color}]",
               f"{s.ssh_host}:{s.ssh_port}" if s.ssh_port else "-", ports or "-", s.image]
        if pool:
            backend = pool.get(s.name)
            row += ([str(backend["weight"]), str(backend["health"]),
                     f"{100 * float(backend['share']):.0f}%"] if backend else ["", "", ""])
        table.add_row(*row)
    out.print(table)
