"""One inventory, generated from state, for Ansible, testinfra and people.

``.lab/inventory.yml`` has a group per role and, per host, how to reach it (the address and
SSH port its target reported, user, the lab key, the Python interpreter, strict host key
checking against ``.lab/known_hosts``). ``.lab/ssh_config`` says the same for ssh, so
``ssh -F .lab/ssh_config web-1`` and testinfra's ``ssh://web-1`` both work.
Both follow the servers: :class:`~lab.fleet.Fleet` rewrites them whenever servers come or go,
and removes them with the lab.
A user can run ``ansible-playbook -i .lab/inventory.yml site.yml`` by hand.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from lab.access.keys import KeyPair
from lab.access.knownhosts import trust_settings
from lab.access.ssh import SHARED_CONNECTION, common_args
from lab.state import ServerRecord

PYTHON = "/usr/bin/python3"


def build_inventory(servers: Iterable[ServerRecord], key: KeyPair,
                    group_vars: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The inventory as a dict: ``all.children.<role>.hosts.<name>`` with connection vars."""
    groups: dict[str, dict[str, Any]] = {}
    for server in servers:
        group = groups.setdefault(server.role, {"hosts": {}})
        if (group_vars or {}).get(server.role):
            group["vars"] = group_vars[server.role]  # type: ignore[index]
        hosts = group["hosts"]
        hosts[server.name] = {
            "ansible_host": server.ssh_host,
            "ansible_port": server.ssh_port,
            "ansible_user": server.ssh_user,
            "ansible_ssh_private_key_file": str(key.for_server(server.ssh_key).resolve()),
            "lab_address": server.address,
            "lab_generation": server.generation,
            "lab_image": server.image,
        }
    return {
        "all": {
            "vars": {
                "ansible_python_interpreter": PYTHON,
                # Strict host key checking against .lab/known_hosts, also for a run by hand.
                "ansible_ssh_common_args": common_args(key),
            },
            "children": groups,
        }
    }


def write_inventory(state_dir: Path, servers: list[ServerRecord], key: KeyPair,
                    group_vars: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``inventory.yml`` and ``ssh_config`` under ``state_dir``; returns the inventory."""
    path = state_dir / "inventory.yml"
    header = ("# Written by lab from .lab/state.db; rewritten whenever the lab's servers change"
              " (up, release, rollback, destroy) and on every provision and verify.\n")
    body = yaml.safe_dump(build_inventory(servers, key, group_vars), sort_keys=False)
    _replace(path, header + body)
    write_ssh_config(state_dir / "ssh_config", servers, key)
    return path


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one step: `lab test` writes the inventory for its
    idempotence run while its tests are starting, and ansible or ssh must never read half a
    file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_ssh_config(path: Path, servers: list[ServerRecord], key: KeyPair) -> Path:
    lines = ["# Written by lab: ssh -F .lab/ssh_config NAME"]
    for server in servers:
        lines += [
            f"Host {server.name}",
            f"  HostName {server.ssh_host}",
            f"  Port {server.ssh_port}",
            f"  User {server.ssh_user}",
            f"  IdentityFile {key.for_server(server.ssh_key).resolve()}",
            "  IdentitiesOnly yes",
            # Only the host key lab made (or met first) for this server is accepted.
            *(f"  {option} {value}" for option, value in trust_settings(key).items()),
            "  LogLevel ERROR",
            # The connection lab opened when the server became ready: testinfra runs a
            # command per assertion, each then costs no handshake.
            *(f"  {option} {value}" for option, value in SHARED_CONNECTION.items()),
        ]
    _replace(path, "\n".join(lines) + "\n")
    return path


def remove_inventory(state_dir: Path) -> None:
    """Remove what :func:`write_inventory` wrote: a destroyed lab has nothing to reach."""
    for name in ("inventory.yml", "ssh_config"):
        (state_dir / name).unlink(missing_ok=True)
