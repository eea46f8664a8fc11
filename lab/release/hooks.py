"""A release's hooks: your own checks and actions at its phases, like Flagger's webhooks.

lab.yml's ``release: hooks:`` names, per phase, a shell command (``run``, in the lab's folder)
or a playbook (``playbook``, on the new generation's servers). Each gets the release's facts:
in its environment for a command, as the ``lab_release`` variable for a playbook. A hook
passes when it exits 0 (every task ok, for a playbook); otherwise its last line of output is
what the release says about it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.provision import run_playbook, runs_problem

if TYPE_CHECKING:
    from lab.config import Hook
    from lab.events import Listener
    from lab.fleet import Fleet

# The phases whose hook stops the release when it fails (post-rollout and rollback only warn).
BLOCKING = ("pre-rollout", "rollout", "confirm-promotion")


def facts(release_id: str, phase: str, generation: int, percent: int, url: str,
          new: list[str], old: list[str], reason: str = "") -> dict[str, str]:
    """What a hook is told of the release, as environment variables."""
    return {"LAB_RELEASE_ID": release_id, "LAB_HOOK": phase, "LAB_GENERATION": str(generation),
            "LAB_PERCENT": str(percent), "LAB_URL": url, "LAB_NEW_SERVERS": " ".join(new),
            "LAB_OLD_SERVERS": " ".join(old), "LAB_REASON": reason}


def run_hook(fleet: Fleet, hook: Hook, told: dict[str, str], on_event: Listener,
             overrides: dict[str, Any] | None = None) -> str:
    """Run one hook; "" when it passed, else one line saying why not."""
    if hook.run is not None:
        return _command(hook.run, fleet.config.directory, told, hook.timeout)
    assert hook.playbook is not None  # lab.yml's validation: one of the two
    new = told["LAB_NEW_SERVERS"].split()
    if not new:
        return "no new servers to run the playbook on"
    inventory = fleet.lab.write_inventory(fleet.live(), fleet.key)
    extravars = fleet.config.vars | (overrides or {}) | {
        "lab_release": {key.removeprefix("LAB_").lower(): value for key, value in told.items()}}
    result = run_playbook(fleet.config.directory / hook.playbook, inventory,
                          fleet.config.state_dir / "runs", new, extravars,
                          label=f"hook-{told['LAB_HOOK']}", on_event=on_event,
                          project=fleet.config.directory)
    return "" if result.ok else runs_problem([result])


def _command(command: str, directory: Path, told: dict[str, str], timeout: float) -> str:
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=directory, env=os.environ | told,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"`{command}` did not end within {timeout:g} s"
    except OSError as exc:
        return f"`{command}` could not run: {exc}"
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return f"`{command}` exited {done.returncode}" + (f": {lines[-1]}" if lines else "")
