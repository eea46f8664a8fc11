"""``.lab/known_hosts``: the host key of every server lab reaches, checked strictly by ssh.

Every connection (lab's, Ansible's through the inventory, testinfra's and users' through
``.lab/ssh_config``) takes :func:`trust_settings`; one that ssh refuses becomes
:class:`~lab.errors.HostKeyRefused`, naming the server and what to do (:func:`host_key_refused`).

One line per server, in OpenSSH's format with the server's name as the comment::

    [127.0.0.1]:32768 ssh-ed25519 AAAAC3Nza... web-1

lab writes a server's line when it creates it: the public half of the host key it made for
it, or, where a target cannot take a key (a Vagrant box), the key seen at first contact. The
forwarded ports servers are reached on are reused by later servers, so creating a server
replaces whatever line its address had, and destroying one removes its line: a replaced
server never trips "host key changed", while a stranger on a known address does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from lab.access.keys import KeyPair
from lab.errors import HostKeyRefused, TargetError
from lab.state import ServerRecord

REFUSED = "Host key verification failed"  # what ssh says, whether the key changed or is unknown


def trust_settings(key: KeyPair) -> dict[str, str]:
    """ssh settings that accept a server only with the host key lab recorded for its address.

    Only lab's file counts (not the user's or the system's known_hosts), only ed25519 keys
    are offered (the kind lab makes), and an unknown key is refused, never added.
    """
    return {
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": f'"{key.known_hosts}"',  # quoted: a path may hold spaces
        "GlobalKnownHostsFile": "/dev/null",
        "HostKeyAlgorithms": "ssh-ed25519",
    }


def trust_options(key: KeyPair) -> list[str]:
    """:func:`trust_settings` as ssh's ``-o`` arguments."""
    return [arg for name, value in trust_settings(key).items() for arg in ("-o", f"{name}={value}")]


HEADER = ("# Written by lab: the SSH host key of each server it made "
          "(lab up, release, destroy rewrite it)")


def host_pattern(host: str, port: int) -> str:
    """How OpenSSH names an address in known_hosts: ``[host]:port``, or the bare host on 22."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class Entry:
    """One line: the address (as :func:`host_pattern` writes it), the key, the server."""

    pattern: str
    key: str  # "ssh-ed25519 AAAA...": type and base64, no comment
    server: str

    @property
    def line(self) -> str:
        return f"{self.pattern} {self.key} {self.server}"

    @classmethod
    def parse(cls, line: str) -> Entry | None:
        """The entry a line holds, or None for a comment, a blank or a line lab did not write."""
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith(("#", "@", "|")):
            return None
        server = fields[3] if len(fields) > 3 else ""
        return cls(fields[0], f"{fields[1]} {fields[2]}", server)


class KnownHosts:
    """The file, read and rewritten whole under a lock: servers are created in parallel
    threads, and two lab commands may run at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Entry]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        return [e for e in map(Entry.parse, text.splitlines()) if e is not None]

    def key_at(self, host: str, port: int) -> Entry | None:
        """The entry for an address, or None when lab knows no key there."""
        pattern = host_pattern(host, port)
        return next((e for e in self.entries() if e.pattern == pattern), None)

    def trust(self, server: str, host: str, port: int, public_key: str) -> None:
        """Record ``public_key`` (``ssh-ed25519 AAAA...``, any comment dropped) as the key of
        ``server`` at ``host:port``, replacing any line for that address or that server."""
        pattern = host_pattern(host, port)
        kind, blob, *_ = public_key.split()
        with self._editing() as entries:
            entries[:] = [e for e in entries if e.pattern != pattern and e.server != server]
            entries.append(Entry(pattern, f"{kind} {blob}", server))

    def follow(self, addresses: dict[str, tuple[str, int]]) -> None:
        """Move servers' lines to where they are reached now (server -> host, port): a
        restarted container may come back on another forwarded port, with the same key."""
        wanted = {server: host_pattern(*address) for server, address in addresses.items()}
        if all(wanted.get(e.server, e.pattern) == e.pattern for e in self.entries()):
            return  # the usual case: nothing moved, nothing written
        with self._editing() as entries:
            moved = [replace(e, pattern=wanted.get(e.server, e.pattern)) for e in entries]
            taken = {e.pattern for e in moved if e.server in wanted}
            entries[:] = [e for e in moved if e.server in wanted or e.pattern not in taken]

    def forget(self, servers: Iterable[str]) -> None:
        """Remove the lines of these servers (destroyed, or replaced because they died)."""
        doomed = set(servers)
        with self._editing() as entries:
            entries[:] = [e for e in entries if e.server not in doomed]

    def clear(self) -> None:
        """Remove every line: the lab was destroyed, no server of it is left."""
        with self._editing() as entries:
            entries.clear()

    @contextlib.contextmanager
    def _editing(self) -> Iterator[list[Entry]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            yield entries
            partial = self.path.with_name(self.path.name + ".tmp")
            partial.write_text("\n".join([HEADER, *(e.line for e in entries)]) + "\n",
                               encoding="ascii")
            os.replace(partial, self.path)  # ssh never reads half a file


# checking -----------------------------------------------------------------------------------


def host_key_refused(server: ServerRecord, key: KeyPair, stderr: str) -> HostKeyRefused | None:
    """The error for an ssh that refused ``server``'s host key (from its ``stderr``), or None
    when it failed for another reason or not at all."""
    if REFUSED not in stderr:
        return None
    address = f"{server.ssh_host}:{server.ssh_port}"
    known = KnownHosts(key.known_hosts).key_at(server.ssh_host, server.ssh_port)
    if known is None:
        why = f"lab has no host key for {address} in {key.known_hosts}"
        fix = ("if that file was lost or edited, `lab destroy` then `lab up` makes servers "
               "whose keys lab knows")
    else:
        whose = "" if known.server == server.name else f" (recorded for {known.server})"
        why = (f"it answered on {address} with a host key other than the one lab made for "
               f"it{whose}, in {key.known_hosts}")
        fix = ("something else may be answering on that address: find out what before "
               "trusting it; if the server was rebuilt outside lab, `lab destroy` then "
               "`lab up` makes a new one whose key lab knows")
    return HostKeyRefused(f"{server.name}: lab refused to connect: {why}; {fix}")


def refusal_note(text: str) -> str | None:
    """One short sentence for a report line (Ansible's unreachable host, a testinfra error)
    whose ``text`` is ssh refusing a host key, in place of ssh's banner; None otherwise."""
    if REFUSED not in text:
        return None
    return ("lab refused to connect: the server's SSH host key is not the one in "
            ".lab/known_hosts (something may be in the middle; `lab ssh` to it says more)")


def raise_if_refused(server: ServerRecord, key: KeyPair, stderr: str) -> None:
    """Raise :class:`HostKeyRefused` when ``stderr`` (of an ssh to ``server``) says that
    ssh refused its host key."""
    refused = host_key_refused(server, key, stderr)
    if refused is not None:
        raise refused


def scan_host_key(host: str, port: int, timeout: float = 10.0) -> str:
    """The ed25519 host key a server shows now (``ssh-ed25519 AAAA...``): trust on first
    use, for targets that cannot be handed a key. Raises :class:`TargetError` when none
    came back."""
    try:
        result = subprocess.run(
            ["ssh-keyscan", "-T", str(int(timeout)), "-t", "ed25519", "-p", str(port), host],
            capture_output=True, text=True, timeout=timeout + 5, stdin=subprocess.DEVNULL,
            check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"{host}:{port}: could not read its SSH host key ({exc})") from None
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "ssh-ed25519":
            return f"{fields[1]} {fields[2]}"
    detail = result.stderr.strip() or "no ed25519 key offered"
    raise TargetError(f"{host}:{port}: could not read its SSH host key ({detail})")
