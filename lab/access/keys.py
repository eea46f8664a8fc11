"""The SSH keys lab makes: its own login key, and each server's host key.

The login key is made once per lab, kept in ``.lab/keys``, never shared between labs. A host
key is made for each server as it is created and handed to it (copied in before start on
Docker; cloud-init user data on a cloud): only its public half stays with lab, in
``.lab/known_hosts`` (see :mod:`lab.access.knownhosts`), so every connection can check that it
reaches the server lab made and not whatever answers on its address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    """The lab's login key, and where the host keys it trusts are written."""

    private: Path
    public: Path

    @property
    def public_text(self) -> str:
        return self.public.read_text(encoding="ascii").strip()

    @property
    def known_hosts(self) -> Path:
        """``.lab/known_hosts`` beside ``.lab/keys``: the host keys lab trusts, checked
        strictly by every connection that uses this key."""
        return self.private.parent.parent.absolute() / "known_hosts"

    def for_server(self, own_key: str) -> Path:
        """The private key that opens a server: its own when it has one, else the lab's."""
        return Path(own_key) if own_key else self.private


def ensure_keypair(state_dir: Path, comment: str) -> KeyPair:
    """Return the lab's ed25519 key pair, making it on first use (files mode 0600)."""
    directory = state_dir / "keys"
    pair = KeyPair(directory / "id_ed25519", directory / "id_ed25519.pub")
    if pair.private.is_file() and pair.public.is_file():
        return pair
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    private, public = _new_ed25519()
    _write_private(pair.private, private)
    _write_private(pair.public, public + f" {comment}\n".encode())
    return pair


@dataclass(frozen=True)
class HostKey:
    """A server's SSH host key as text: ``private`` for the server's
    ``/etc/ssh/ssh_host_ed25519_key``, ``public`` (``ssh-ed25519 AAAA... comment``) for its
    ``.pub`` and for ``.lab/known_hosts``."""

    private: str
    public: str


def host_key_for(server: str, lab: str) -> HostKey:
    """A new ed25519 host key for ``server`` of ``lab``; lab keeps no copy of the private half.

    A fresh one per server, never reused: a server started from a baked image still gets its
    own, so one server's key never opens the door to impersonating another.
    """
    private, public = _new_ed25519()
    return HostKey(private.decode("ascii"), f"{public.decode('ascii')} {server}@lab-{lab}")


def _new_ed25519() -> tuple[bytes, bytes]:
    """A new ed25519 key: the private half in OpenSSH's PEM format, the public half as one
    ``ssh-ed25519 AAAA...`` line without a comment."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public


def _write_private(path: Path, content: bytes) -> None:
    """Create the file with mode 0600 from the start, so it is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    path.chmod(0o600)
