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

When the servers are on this machine (``LAB_MODULE_BYTECODE`` set), the payloads are kept with
their bytecode (:func:`with_bytecode`): each task then spends ~60 ms less on the server, which
would otherwise compile the module and its ~60 ``module_utils`` files on every task. The
payload is three times larger, which costs nothing over loopback and more than it saves over
the Internet (lab's aws target), so that store is a separate one, used only there.

The store holds pickles that Ansible loads, so it is used only when it is this user's own and
no one else may write to it (like Ansible's own ``~/.ansible/tmp``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import io
import marshal
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable
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
        first task, and new ones back after the last; with LAB_MODULE_BYTECODE set, kept
        with their bytecode, in a store of their own.
    requirements:
      - enabled in callbacks_enabled
"""

STORE_ENV = "LAB_MODULE_STORE"
BYTECODE_ENV = "LAB_MODULE_BYTECODE"
KEPT = "ansible.modules."


def _private(path: Path) -> bool:
    """Ours, and writable by no one else: a store anyone could write to would run their code."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def store(bytecode: bool = False) -> Path | None:
    """This installation's store: a new ansible-core or Python starts an empty one."""
    root = os.environ.get(STORE_ENV)
    if not root:
        return None
    install = hashlib.sha256(f"{ansible.__file__}\0{sys.version}".encode()).hexdigest()[:12]
    kept = Path(root) / f"{ANSIBLE_VERSION}-{install}{'-bytecode' if bytecode else ''}"
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


def copy_new(source: Path, target: Path, change: Callable[[Path], bytes] | None = None) -> None:
    """Copy what ``target`` lacks, each file whole or not at all (a run may read it meanwhile);
    ``change``: what to write instead of a file's own bytes."""
    have = payloads(target)
    for name, path in payloads(source).items():
        if name in have:
            continue
        partial = target / f".{name}.{os.getpid()}"
        try:
            if change is None:
                shutil.copyfile(path, partial)
            else:
                partial.write_bytes(change(path))
            os.replace(partial, target / name)
        except OSError:
            partial.unlink(missing_ok=True)


def with_bytecode(zip_data: bytes) -> bytes:
    """A payload's zip (base64, as Ansible keeps it) with a ``.pyc`` beside each ``.py``.

    Python's zipimport takes a module's ``.pyc`` before its ``.py``. These are hash-based and
    checked (PEP 552): a server uses one only when its Python reads this bytecode version
    (compiled by the Python running Ansible) and the source beside it is the one it was made
    from; another Python ignores them and compiles the source, as without them. A traceback
    keeps its lines and names, and shows a file by its path inside the payload
    (``ansible/module_utils/basic.py`` rather than ``/tmp/ansible_..._payload.zip/...``).
    """
    source = zipfile.ZipFile(io.BytesIO(base64.b64decode(zip_data)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as payload:
        for info in source.infolist():
            data = source.read(info)
            payload.writestr(info, data)
            if info.filename.endswith(".py"):
                compiled = zipfile.ZipInfo(info.filename + "c", info.date_time)
                compiled.compress_type = zipfile.ZIP_DEFLATED
                payload.writestr(compiled, _checked_pyc(data, info.filename))
    return base64.b64encode(out.getvalue())


def _checked_pyc(source: bytes, filename: str) -> bytes:
    """PEP 552's checked hash-based .pyc: magic, flags (hash-based | check source), the
    source's hash, the code; compiled as zipimport compiles source (line endings made \\n)."""
    text = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    code = compile(text, filename, "exec", dont_inherit=True)
    return (importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little")
            + importlib.util.source_hash(source) + marshal.dumps(code))


def compiled_payload(path: Path) -> bytes:
    """The payload Ansible kept at ``path`` (a pickled ``_CachedModule``), with bytecode; as
    Ansible made it when that cannot be done (ansible-core keeping payloads another way one
    day, a file that does not compile): it then works as it always did."""
    kept = path.read_bytes()
    try:
        cached = pickle.loads(kept)  # Ansible's own file, from this run's private directory
        return pickle.dumps(dataclasses.replace(cached, zip_data=with_bytecode(cached.zip_data)))
    except Exception:
        return kept


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_module_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bytecode = bool(os.environ.get(BYTECODE_ENV))
        self._store = store(self._bytecode)
        # Where Ansible's module_common looks for this run's payloads.
        self._run_cache = Path(C.DEFAULT_LOCAL_TMP) / "ansiballz_cache"

    def v2_playbook_on_start(self, playbook: Any) -> None:
        if self._store:
            self._run_cache.mkdir(parents=True, exist_ok=True)
            copy_new(self._store, self._run_cache)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._store:
            copy_new(self._run_cache, self._store,
                     compiled_payload if self._bytecode else None)
