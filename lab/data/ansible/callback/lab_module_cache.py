"""lab's Ansible callback: keep the module payloads Ansible builds from one run to the next.

Before the first task that uses a module, Ansible builds that module's payload (AnsiballZ):
it parses the module and every ``module_utils`` file it imports, then zips them. That takes
0.15-0.25 s per module, and Ansible keeps the result only for the run (in its own temporary
directory), so every `lab provision` built apt, stat, copy, file and systemd again: about a
second of every run, on the path of every task that first uses one.

This callback copies the payloads of ansible-core's own modules (``ansible.modules.*``, which
change only when ansible-core does) into that directory before the first task, from a store
kept per ansible-core installation, and copies the new ones back after the last task. Modules
from collections, roles and ``library/`` are never kept: those are the ones users edit.

The store holds pickles that Ansible loads, so it is used only when it is this user's own and
no one else may write to it (like Ansible's own ``~/.ansible/tmp``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import ansible
from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ANSIBLE_VERSION

DOCUMENTATION = """
    name: lab_module_cache
    type: aggregate
    short_description: keeps ansible-core's module payloads between runs
    description:
      - Copies the AnsiballZ payloads of ansible.modules.* from a store (the directory named by
        the environment variable LAB_MODULE_STORE) into this run's payload cache before the
        first task, and new ones back after the last.
    requirements:
      - enabled in callbacks_enabled
"""

STORE_ENV = "LAB_MODULE_STORE"
KEPT = "ansible.modules."


def _private(path: Path) -> bool:
    """Ours, and writable by no one else: a store anyone could write to would run their code."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def store() -> Path | None:
    """This installation's store: a new ansible-core or Python starts an empty one."""
    root = os.environ.get(STORE_ENV)
    if not root:
        return None
    install = hashlib.sha256(f"{ansible.__file__}\0{sys.version}".encode()).hexdigest()[:12]
    kept = Path(root) / f"{ANSIBLE_VERSION}-{install}"
    try:
        # Both 0700 whatever the umask (parents=True makes the parents above as it says).
        Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
        kept.mkdir(mode=0o700, exist_ok=True)
        return kept if _private(Path(root)) and _private(kept) else None
    except OSError:
        return None


def payloads(directory: Path) -> dict[str, Path]:
    """The kept payloads in ``directory`` by name (not Ansible's ``.lock`` files, not partials)."""
    if not directory.is_dir():
        return {}
    return {p.name: p for p in directory.iterdir()
            if p.name.startswith(KEPT) and not p.name.endswith(".lock")}


def copy_new(source: Path, target: Path) -> None:
    """Copy what ``target`` lacks, each file whole or not at all (a run may read it meanwhile)."""
    have = payloads(target)
    for name, path in payloads(source).items():
        if name in have:
            continue
        partial = target / f".{name}.{os.getpid()}"
        try:
            shutil.copyfile(path, partial)
            os.replace(partial, target / name)
        except OSError:
            partial.unlink(missing_ok=True)


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_module_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store = store()
        # Where Ansible's module_common looks for this run's payloads.
        self._run_cache = Path(C.DEFAULT_LOCAL_TMP) / "ansiballz_cache"

    def v2_playbook_on_start(self, playbook: Any) -> None:
        if self._store:
            self._run_cache.mkdir(parents=True, exist_ok=True)
            copy_new(self._store, self._run_cache)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._store:
            copy_new(self._run_cache, self._store)
