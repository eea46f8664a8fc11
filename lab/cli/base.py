"""What every command shares: the global options, the error mapping, and the lab it acts on.

The global options live on the invocation's context (``ctx.obj``, set by the ``lab``
callback), not in a module-level object, so two invocations in one process (tests, a Python
caller) never see each other's options. Every command takes ``ctx: typer.Context`` first.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from lab.cli.output import err
from lab.config import CONFIG_FILE, LabConfig
from lab.errors import ExitStatus, LabError, Terminated

F = TypeVar("F", bound=Callable[..., Any])

# Arguments several command groups take.
Names = Annotated[list[str] | None, typer.Argument(help="Servers (default: all).")]
SetVars = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a lab.yml var: --set version=v2 (repeatable).")]


@dataclass(frozen=True)
class Globals:
    """The options given before the command: ``lab -f other/lab.yml --traceback up``."""

    file: Path = Path(CONFIG_FILE)
    show_traceback: bool = False


def current(ctx: typer.Context | None) -> Globals:
    """This invocation's global options (the defaults when a command runs on its own)."""
    found = ctx.find_object(Globals) if ctx is not None else None
    return found or Globals()


def lab_config(ctx: typer.Context, target: str | None = None) -> LabConfig:
    """The lab this command acts on: ``--file``'s lab.yml, on the target its servers run on."""
    from lab.fleet import load_lab

    return load_lab(current(ctx).file, target)


def handled(command: F) -> F:
    """Map library errors to one line and an exit status; Ctrl-C to 130; bugs to a log."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LabError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt as exc:
            why = f" ({exc.signal_name})" if isinstance(exc, Terminated) else ""
            err.print(f"interrupted{why}; cleaned up what this command had started")
            raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception:
            if current(kwargs.get("ctx")).show_traceback:
                raise
            log = Path(tempfile.gettempdir()) / f"lab-internal-error-{os.getpid()}.log"
            log.write_text(traceback.format_exc())
            err.print(f"[red]internal error[/red] (a bug in lab): "
                      f"{escape(repr(sys.exc_info()[1]))}; traceback written to {log}",
                      soft_wrap=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def stop_on_signals() -> None:
    """SIGTERM (`kill`, a supervisor) and SIGHUP (a closed terminal) end lab as Ctrl-C does:
    what the command started is cleaned up (a release rolls back), then exit 130. A second
    one is ignored, so it cannot cut the clean-up short; SIGKILL still ends lab at once (a
    release's journal lets the next command put that right)."""

    def stop(number: int, _frame: object) -> None:
        signal.signal(number, signal.SIG_IGN)
        raise Terminated(signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop)
