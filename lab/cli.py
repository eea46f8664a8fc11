"""The ``lab`` command line: turns arguments into library calls and results into output.

Nothing here decides anything about servers; it parses, calls :mod:`lab` and renders.
Every :class:`~lab.errors.LabError` becomes one line on stderr and its exit status; anything
else is a bug: one line pointing at a log file with the traceback (or ``--traceback``).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lab.config import CONFIG_FILE, LabConfig, load_config
from lab.errors import CheckFailed, ExitStatus, LabError
from lab.events import Event

F = TypeVar("F", bound=Callable[..., Any])

# Wide enough for tables when output goes to a file or a pipe (rich assumes 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

app = typer.Typer(
    name="lab",
    add_completion=False,
    help=(
        "Disposable, immutable servers on your laptop: build a new server, test it, put it into "
        "rotation slowly, throw the old one away.\n\n"
        "Start with:  lab init demo && cd demo && lab up && lab status"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
image_app = typer.Typer(help="The base image servers start from.", no_args_is_help=True)
app.add_typer(image_app, name="image")


class Options:
    file: Path = Path(CONFIG_FILE)
    target: str | None = None
    show_traceback: bool = False


OPTIONS = Options()


def _clip(text: str, width: int) -> str:
    """One table cell: ``text`` cut to ``width`` characters, saying so when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


@app.callback()
def _global(
    file: Annotated[Path, typer.Option("--file", "-f", envvar="LAB_FILE",
                                       help="The lab's lab.yml.")] = Path(CONFIG_FILE),
    show_traceback: Annotated[bool, typer.Option("--traceback",
                                                 help="Show tracebacks of internal errors.")]
    = False,
) -> None:
    OPTIONS.file = file
    OPTIONS.show_traceback = show_traceback


def handled(command: F) -> F:
    """Map library errors to one line and an exit status; Ctrl-C to 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LabError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted; cleaned up what this command had started")
            raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception:
            if OPTIONS.show_traceback:
                raise
            log = Path(tempfile.gettempdir()) / f"lab-internal-error-{os.getpid()}.log"
            log.write_text(traceback.format_exc())
            err.print(f"[red]internal error[/red] (a bug in lab): "
                      f"{escape(repr(sys.exc_info()[1]))}; traceback written to {log}",
                      soft_wrap=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None
        finally:
            OPTIONS.target = None

    return wrapper  # type: ignore[return-value]


# progress ----------------------------------------------------------------------------------

MILESTONES = {"created", "ready", "destroyed", "image", "create", "destroy", "replace", "task",
              "role", "phase", "verified", "rollback", "bake", "warning"}
RESULT_COLORS = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red",
                 "skipped": "dim", "passed": "green", "error": "red"}


@contextmanager
def progress(title: str, verbose: bool = False) -> Iterator[Callable[[Event], None]]:
    """A spinner showing the latest event; milestones are kept on screen with their time."""
    started = time.monotonic()
    with err.status(title) as status:

        def listener(event: Event) -> None:
            elapsed = time.monotonic() - started
            if event.kind in MILESTONES:
                err.print(f"[dim]{elapsed:5.1f}s[/dim] {event.message}", soft_wrap=True)
            elif event.kind == "tick":
                status.update(f"{title}: {_tick_line(event.data)}")
                return
            elif event.kind == "task-result":
                color = RESULT_COLORS.get(event.data.get("status", ""), "white")
                err.print(f"[dim]{elapsed:5.1f}s[/dim]   {event.subject}: "
                          f"[{color}]{event.data.get('status')}[/{color}]")
            elif verbose or event.message.startswith("Step "):
                err.print(f"[dim]{elapsed:5.1f}s {event.message}[/dim]", soft_wrap=True)
            status.update(f"{title}: {event.message[:70]}")

        yield listener


def _tick_line(data: dict[str, Any]) -> str:
    """The live view of a canary step: weights, traffic, errors, latency, versions."""
    total = sum(data["versions"].values()) or 1
    versions = " ".join(f"{v} {100 * n / total:.0f}%" for v, n in sorted(data["versions"].items()))
    weights = " ".join(f"{n}={w}" for n, w in sorted(data["weights"].items()))
    canary = data.get("canary") or {}
    return (f"[bold]{data['percent']}%[/bold] new | weights {weights} | {data['rps']} req/s | "
            f"errors {data['errors']}/{data['requests']} (new servers "
            f"{canary.get('failed', 0)}/{canary.get('requests', 0)}) | p50 {data['p50_ms']} ms "
            f"p99 {data['p99_ms']} ms | {versions}")


def _config() -> LabConfig:
    """lab.yml; the target is `--target`'s, else the one the lab's servers run on (after
    `lab up --target vagrant`, every command follows), else lab.yml's."""
    config = load_config(OPTIONS.file, target=OPTIONS.target)
    if OPTIONS.target is None and config.state_dir.joinpath("state.db").is_file():
        from lab.state import State

        targets = {s.target for s in State(config.state_dir).servers()}
        if len(targets) == 1 and config.target not in targets:
            config = load_config(OPTIONS.file, target=targets.pop())
    return config


# commands ----------------------------------------------------------------------------------


@app.command()
@handled
def init(
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
    target: Annotated[str | None, typer.Option(help="Override lab.yml's target.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Only this role (repeatable).")] = None,
) -> None:
    """Create the lab's servers: only what is missing, replacing any that died.

    Waits until each server's systemd has booted and sshd accepts the lab's key.
    """
    from lab.fleet import Fleet

    OPTIONS.target = target
    config = _config()
    started = time.monotonic()
    with progress(f"lab up {config.name}") as listener, Fleet(config, listener) as fleet:
        servers = fleet.up(role)
    err.print(f"{len(servers)} server(s) ready in {time.monotonic() - started:.1f} s")
    _print_servers(servers)


@app.command()
@handled
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each server as the target sees it now: dead and missing ones included."""
    from lab.balancers.base import rotation
    from lab.fleet import Fleet

    with Fleet(_config()) as fleet:
        servers = fleet.status()
        pool = rotation(fleet.config, servers, fleet.key)
    if as_json:
        out.print_json(json.dumps([s.shown() | ({"balancer": pool[s.name]} if s.name in pool
                                                  else {}) for s in servers]))
    else:
        _print_servers(servers, pool)


@app.command()
@handled
def ssh(
    name: Annotated[str, typer.Argument(help="Server name, as `lab status` shows it.")],
    command: Annotated[list[str] | None, typer.Argument(help="Run this instead of a shell.")]
    = None,
) -> None:
    """Open a shell on a server with the lab's key, or run one command.

    Example:  lab ssh web-1 -- systemctl status nginx
    """
    from lab.fleet import Fleet
    from lab.ssh import ssh_argv

    with Fleet(_config()) as fleet:
        server = fleet.find(name)
        argv = ssh_argv(server, fleet.key, command or None, batch=bool(command))
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@app.command()
@handled
def destroy(
    images: Annotated[bool, typer.Option(help="Also remove the images `lab bake` made.")]
    = False,
) -> None:
    """Remove everything the lab made: servers and network, found by label.

    Works even after .lab/state.db is deleted or a `lab up` was killed half-way.
    """
    from lab.fleet import Fleet

    config = _config()
    started = time.monotonic()
    with progress(f"lab destroy {config.name}") as listener, Fleet(config, listener) as fleet:
        removed = fleet.destroy(images)
    err.print(f"destroyed {len(removed)} server(s) in {time.monotonic() - started:.1f} s")


Names = Annotated[list[str] | None, typer.Argument(help="Servers (default: all).")]
SetVars = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a lab.yml var: --set version=v2 (repeatable).")]


@app.command()
@handled
def provision(
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

    overrides = parse_overrides(set_vars or [])
    config = _config()
    with progress(f"lab provision {config.name}") as listener, Fleet(config, listener) as fleet:
        report = run(fleet, names, overrides, idempotence, listener)
    for result in report.runs:
        _print_run(result)
    if report.second:
        err.print("second run (idempotence):")
        for result in report.second:
            _print_run(result)
    if not report.ok:
        raise CheckFailed(report.problem)


@app.command()
@handled
def drift(names: Names = None, set_vars: SetVars = None) -> None:
    """Show what on the running servers differs from the code (check mode, with diff).

    The teaching moment: someone makes a "simple one-line change" over SSH; this finds it.
    Exit status 1 when anything drifted.
    """
    from lab.fleet import Fleet
    from lab.harness import drift as run
    from lab.provision import parse_overrides

    config = _config()
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

    config = _config()
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
            table.add_row(o.host, o.test, f"[{color}]{o.status}[/{color}]", o.message[:80])
        out.print(table)
    if not result.ok:
        raise CheckFailed(result.problem)


@app.command("test")
@handled
def test_command(
    destroy_policy: Annotated[str, typer.Option(
        "--destroy", help="always | passing (keep failed servers to debug) | never.")]
    = "always",
    set_vars: SetVars = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one line "
                                          "with each phase, its seconds and figures.")] = False,
) -> None:
    """The whole harness cycle on fresh servers: create, provision, idempotence, verify, destroy.

    Uses its own lab name (NAME-test), so the servers `lab up` made are never touched.
    """
    from lab.harness import run_test_cycle
    from lab.provision import parse_overrides

    if destroy_policy not in ("always", "passing", "never"):
        raise typer.BadParameter("must be always, passing or never", param_hint="--destroy")
    config = _config()
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
        table.add_row(phase.name, mark, f"{phase.seconds:.1f}", _clip(phase.detail, 100))
    out.print(table)
    if not report.ok:
        raise CheckFailed(f"lab test failed after {total:.1f} s: {report.problem}")
    out.print(f"[green]passed[/green] in {total:.1f} s")


@app.command()
@handled
def release(
    set_vars: SetVars = None,
    from_image: Annotated[str | None, typer.Option(
        help="Start the new servers from this baked image, without provisioning.")] = None,
) -> None:
    """Replace the balanced role with a new generation, canary by canary, under live traffic.

    New servers are built and verified out of rotation, then get lab.yml's release steps of
    traffic while a probe watches errors and latency. Any failed gate, or Ctrl-C, rolls back:
    the old servers were never touched and get all traffic again. Exit 1 after a rollback.

    Example:  lab release --set version=v2
    """
    from lab.fleet import Fleet
    from lab.provision import parse_overrides
    from lab.release import release as run

    config = _config()
    with progress(f"lab release {config.name}") as listener, Fleet(config, listener) as fleet:
        report = run(fleet, parse_overrides(set_vars or []), from_image, listener)
    _print_release(report.to_dict())


@app.command()
@handled
def rollback() -> None:
    """Release again what ran before the last promoted release (its baked image if any)."""
    from lab.fleet import Fleet
    from lab.release import release as run
    from lab.release import rollback_target

    config = _config()
    with progress(f"lab rollback {config.name}") as listener, Fleet(config, listener) as fleet:
        previous = rollback_target(fleet)
        report = run(fleet, previous["vars"], previous["image"], listener)
    _print_release(report.to_dict())


@app.command()
@handled
def history(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the lab's releases with their outcome and figures."""
    from lab.state import State

    releases = State(_config().state_dir).releases()
    if as_json:
        out.print_json(json.dumps(releases))
        return
    table = Table("release", "outcome", "version", "from image", "requests", "errors", "p99 ms",
                  "seconds", "reason", box=None)
    for r in releases:
        color = "green" if r["outcome"] == "promoted" else "red"
        traffic = r.get("traffic", {})
        took = (r.get("finished") or r["started"]) - r["started"]
        table.add_row(r["id"], f"[{color}]{r['outcome']}[/{color}]",
                      str(r["vars"].get("version", "")), r.get("image") or "-",
                      str(traffic.get("requests", "")), str(traffic.get("errors", "")),
                      str(traffic.get("p99_ms", "")), f"{took:.1f}", r.get("reason", "")[:60])
    out.print(table if releases else "no releases yet (run `lab release`)")


@app.command()
@handled
def bake(
    role: Annotated[str | None, typer.Argument(help="Role (default: the balanced one).")]
    = None,
    version: Annotated[str | None, typer.Option(help="Image version tag.")] = None,
) -> None:
    """Snapshot a provisioned, verified server into an image: lab/<lab>-<role>:<version>.

    Then:  lab release --from-image lab/<lab>-<role>:<version>
    """
    from lab.bake import bake as run
    from lab.fleet import Fleet

    config = _config()
    with progress(f"lab bake {config.name}") as listener, Fleet(config, listener) as fleet:
        tag = run(fleet, role, version, listener)
    out.print(tag)


@app.command()
@handled
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the demo lab running afterwards.")] = False,
    step_seconds: Annotated[float, typer.Option(help="Seconds per canary step.")] = 3.0,
) -> None:
    """The whole story in a throwaway lab: v1 up, v2 released under load, broken v3 rolled back.

    Takes about a minute once the base image exists (`make demo` builds it).
    """
    from lab.demo import run_demo

    started = time.monotonic()
    with progress("lab demo") as listener:
        report = run_demo(keep, step_seconds, on_event=listener)
    table = Table("step", "expected", "outcome", "seconds", "figures", box=None,
                  title="lab demo", title_justify="left")
    for step in report.steps:
        color = "green" if step.ok else "red"
        figures = _clip("  ".join(f"{k}: {v}" for k, v in step.figures.items() if v != ""), 160)
        table.add_row(step.name, step.expected, f"[{color}]{step.outcome}[/{color}]",
                      f"{step.seconds:.1f}", figures)
    out.print(table)
    out.print(f"total {time.monotonic() - started:.1f} s"
              + (f"; lab kept in {report.directory}" if keep else ""))
    if not report.ok:
        raise CheckFailed("the demo did not go as expected (see the table above)")


@app.command()
@handled
def doctor() -> None:
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


@image_app.command("build")
@handled
def image_build(
    rebuild: Annotated[bool, typer.Option(help="Build even if the image is current.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every build line.")]
    = False,
) -> None:
    """Build the base image (Debian, systemd, sshd, python3); quick when it is current.

    Without a registry, debian:bookworm is bootstrapped locally with debootstrap first.
    """
    from lab.targets.registry import get_target

    # The lab's target when there is a lab here, else the default's (`make setup` has none).
    config = _config() if OPTIONS.file.is_file() else None
    name = config.target if config is not None else LabConfig.model_fields["target"].default
    with progress("lab image build", verbose) as listener:
        tag = get_target(name).prepare_image(config, rebuild, listener)
    out.print(tag or f"nothing to build: the {name} target starts from what its provider "
                     "fetches")


# rendering ---------------------------------------------------------------------------------


def _print_release(report: dict[str, Any]) -> None:
    table = Table("step", "requests", "errors", "new failed", "rps", "p50 ms", "p99 ms",
                  "versions", "gate", box=None,
                  title=f"release {report['id']}: {report['outcome']}", title_justify="left")
    for step in report["steps"]:
        w = step["window"]
        versions = " ".join(f"{v}:{n}" for v, n in sorted(w.get("versions", {}).items()))
        canary = step.get("canary") or {}
        table.add_row(f"{step['percent']}%", str(w.get("requests", "")),
                      str(w.get("errors", "")),
                      f"{canary.get('failed', 0)}/{canary.get('requests', 0)}" if canary else "",
                      str(w.get("rps", "")), str(w.get("p50_ms", "")),
                      str(w.get("p99_ms", "")), versions, step["gate"])
    out.print(table)
    phases = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in report["phases"].items())
    traffic = report["traffic"]
    out.print(f"phases: {phases}")
    out.print(f"traffic during the release: {traffic.get('requests')} requests, "
              f"{traffic.get('errors')} failed, p99 {traffic.get('p99_ms')} ms")
    out.print(f"new: {', '.join(report['new'])}  old (destroyed): {', '.join(report['old'])}")


def _print_run(result: Any) -> None:
    table = Table("host", "ok", "changed", "failed", "unreachable", "skipped", box=None,
                  title=f"{result.playbook.name}  ({result.seconds:.1f} s, run {result.run_id})",
                  title_justify="left")
    for host, stats in sorted(result.hosts.items()):
        table.add_row(host, str(stats.ok), _nonzero(stats.changed, "yellow"),
                      _nonzero(stats.failed, "red"), _nonzero(stats.unreachable, "red"),
                      str(stats.skipped))
    out.print(table)


def _nonzero(count: int, color: str) -> str:
    return f"[{color}]{count}[/{color}]" if count else "0"


def _print_servers(servers: list[Any], pool: dict[str, dict[str, Any]] | None = None) -> None:
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


def _reflow(doc: str) -> str:
    """Docstrings wrap at the source's width; --help wraps at the terminal's. Each paragraph
    becomes one line so rich can wrap it cleanly (a short line would otherwise stay short)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


for _command in app.registered_commands + image_app.registered_commands:
    if _command.help is None and _command.callback is not None and _command.callback.__doc__:
        _command.help = _reflow(_command.callback.__doc__)


def main() -> None:
    app()
