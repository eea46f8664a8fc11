"""Progress reporting without a UI: the library calls a listener, the CLI draws.

A listener is any callable taking an :class:`Event`. Library functions accept
``on_event: Listener = ignore`` so they can be called from Python silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Something happened. ``kind`` is a short verb ("create", "ready", "build-log", ...)."""

    kind: str
    message: str
    subject: str | None = None  # a server name, an image tag: what the event is about
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default listener: progress goes nowhere."""
