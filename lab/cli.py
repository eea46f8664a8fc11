"""The ``lab`` command line: turns arguments into library calls and results into output.

Nothing here decides anything about servers; it parses, calls :mod:`lab` and renders.
Every :class:`~lab.errors.LabError` becomes one line on stderr and its exit status; anything
else is a bug: one line pointing at a log file with the traceback (or ``--traceback``).
"""

from __future__ import annotations

import functools
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
from rich.table import Table

from lab.config import CONFIG_FILE, LabConfig, load_config
from lab.errors import ExitStatus, LabError
from lab.events import Event

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="lab",
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
            err.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted; cleaned up what this command had started")
            raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
        except typer.Exit:
            raise
        except Exception:
            if OPTIONS.show_traceback:
                raise
            log = Path(tempfile.gettempdir()) / f"lab-internal-error-{os.getpid()}.log"
            log.write_text(traceback.format_exc())
            err.print(f"[red]internal error[/red] (a bug in lab): {sys.exc_info()[1]!r}; "
                      f"traceback written to {log}", soft_wrap=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


# progress ----------------------------------------------------------------------------------

MILESTONES = {"created", "ready", "destroyed", "image", "create", "destroy", "replace"}


@contextmanager
def progress(title: str, verbose: bool = False) -> Iterator[Callable[[Event], None]]:
    """A spinner showing the latest event; milestones are kept on screen with their time."""
    started = time.monotonic()
    with err.status(title) as status:

        def listener(event: Event) -> None:
            elapsed = time.monotonic() - started
            if event.kind in MILESTONES:
                err.print(f"[dim]{elapsed:5.1f}s[/dim] {event.message}", soft_wrap=True)
            elif verbose or event.message.startswith("Step "):
                err.print(f"[dim]{elapsed:5.1f}s {event.message}[/dim]", soft_wrap=True)
            status.update(f"{title}: {event.message[:70]}")

        yield listener


def _config() -> LabConfig:
    return load_config(OPTIONS.file, target=OPTIONS.target)


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
    from lab.fleet import Fleet

    with Fleet(_config()) as fleet:
        servers = fleet.status()
    if as_json:
        out.print_json(json.dumps([s.to_dict() for s in servers]))
    else:
        _print_servers(servers)


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
def destroy() -> None:
    """Remove everything the lab made: servers and network, found by label.

    Works even after .lab/state.db is deleted or a `lab up` was killed half-way.
    """
    from lab.fleet import Fleet

    config = _config()
    started = time.monotonic()
    with progress(f"lab destroy {config.name}") as listener, Fleet(config, listener) as fleet:
        removed = fleet.destroy()
    err.print(f"destroyed {len(removed)} server(s) in {time.monotonic() - started:.1f} s")


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
    from lab.engine import docker_client
    from lab.image import build_base_image

    with progress("lab image build", verbose) as listener:
        tag = build_base_image(docker_client(), rebuild=rebuild, on_event=listener)
    out.print(tag)


# rendering ---------------------------------------------------------------------------------


def _print_servers(servers: list[Any]) -> None:
    if not servers:
        out.print("no servers (run `lab up`)")
        return
    table = Table("name", "role", "gen", "status", "ssh", "ports", "image", box=None)
    for s in servers:
        color = {"ready": "green", "dead": "red", "missing": "red"}.get(s.status, "yellow")
        ports = " ".join(f"{p}->127.0.0.1:{h}" for p, h in sorted(s.ports.items()))
        table.add_row(s.name, s.role, str(s.generation), f"[{color}]{s.status}[/{color}]",
                      f"{s.ssh_host}:{s.ssh_port}" if s.ssh_port else "-", ports or "-", s.image)
    out.print(table)


def main() -> None:
    app()
