"""How commands show things: the two consoles, live progress from events, help text.

Results go to stdout (``out``), progress and errors to stderr (``err``), so
``lab status --json | jq`` sees only the result.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from lab.events import Event
from lab.steps import OK, Step

# Wide enough for tables when output goes to a file or a pipe (rich assumes 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

MILESTONES = {"created", "ready", "destroyed", "image", "create", "destroy", "replace", "task",
              "role", "phase", "verified", "rollback", "bake", "warning", "cache", "pause"}
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
                status.update(f"{title}: {tick_line(event.data)}")
                return
            elif event.kind == "task-result":
                color = RESULT_COLORS.get(event.data.get("status", ""), "white")
                err.print(f"[dim]{elapsed:5.1f}s[/dim]   {event.subject}: "
                          f"[{color}]{event.data.get('status')}[/{color}]")
            elif verbose or event.message.startswith("Step "):
                err.print(f"[dim]{elapsed:5.1f}s {event.message}[/dim]", soft_wrap=True)
            status.update(f"{title}: {event.message[:70]}")

        yield listener


FEEDBACK = ("found", "expected", "next")  # a failed goal's figures (lab.course.grader.Feedback)


def print_step(step: Step, label: str | None = None) -> None:
    """One step of lab's runner as `lab exercise check` and `hint` show it. A pass-or-fail
    step (expected ``ok``: a goal) is ``pass`` or ``FAIL`` and its label, then, when it
    failed, what was found, expected and what to try next; a step expecting another outcome
    (a hint is ``shown``) is its label, then its detail."""
    label = escape(label or step.name)
    if step.expected == OK:
        mark = "[green]pass[/green]" if step.ok else "[red]FAIL[/red]"
        out.print(f"{mark} {label}", soft_wrap=True)
    else:
        color = "green" if step.ok else "yellow"
        out.print(f"[{color}]{label}[/{color}]", soft_wrap=True)
    lines = [(f"{key}: ", step.figures[key]) for key in FEEDBACK if step.figures.get(key)]
    if not lines and step.detail and (step.expected != OK or not step.ok):
        lines = [("", step.detail)]
    for key, text in lines:
        out.print(f"     {key}{escape(str(text))}", soft_wrap=True)


def tick_line(data: dict[str, Any]) -> str:
    """The live view of a canary step: weights, traffic, errors, latency, versions."""
    total = sum(data["versions"].values()) or 1
    versions = " ".join(f"{v} {100 * n / total:.0f}%" for v, n in sorted(data["versions"].items()))
    weights = " ".join(f"{n}={w}" for n, w in sorted(data["weights"].items()))
    canary = data.get("canary") or {}
    return (f"[bold]{data['percent']}%[/bold] new | weights {weights} | {data['rps']} req/s | "
            f"errors {data['errors']}/{data['requests']} (new servers "
            f"{canary.get('failed', 0)}/{canary.get('requests', 0)}) | p50 {data['p50_ms']} ms "
            f"p99 {data['p99_ms']} ms | {versions}")


def clip(text: str, width: int) -> str:
    """One table cell: ``text`` cut to ``width`` characters, saying so when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def nonzero(count: int, color: str) -> str:
    """A count that catches the eye only when it is not zero."""
    return f"[{color}]{count}[/{color}]" if count else "0"


def reflow(doc: str) -> str:
    """Docstrings wrap at the source's width; --help wraps at the terminal's. Each paragraph
    becomes one line so rich can wrap it cleanly (a short line would otherwise stay short)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
