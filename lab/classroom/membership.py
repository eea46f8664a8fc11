"""Which class a workspace reports to: written once by ``lab class join`` (an attendee's
laptop) or by ``lab class up`` (a workspace the instructor made), read by every
``lab exercise check`` and ``hint`` to send its result.

A workspace's own ``.lab/class.json`` wins over the user's ``~/.config/lab/class.json``
(``$XDG_CONFIG_HOME``): one machine may hold many students' workspaces.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "class.json"


@dataclass(frozen=True)
class Membership:
    url: str  # the class's page, e.g. http://127.0.0.1:8760
    code: str  # the join code
    name: str  # the student's name as the page shows it
    token: str | None = None  # what the server gave at join, when it gives one


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lab" / FILE


def workspace_file(workspace: Path) -> Path:
    return workspace / ".lab" / FILE


def save(membership: Membership, file: Path) -> None:
    """Write the membership, readable by its owner only (it holds the join code)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(asdict(membership), indent=2) + "\n", encoding="utf-8")
    file.chmod(0o600)


def find(workspace: Path) -> Membership | None:
    """The class this workspace reports to, or None (a malformed file counts as none: a
    report is best effort and must never fail a check)."""
    for file in (workspace_file(workspace), user_file()):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            return Membership(**data)
        except (OSError, ValueError, TypeError):
            continue
    return None
