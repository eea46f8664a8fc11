"""The lab's own SSH key: made once per lab, kept in ``.lab/keys``, never shared between labs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    @property
    def public_text(self) -> str:
        return self.public.read_text(encoding="ascii").strip()

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
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_private(pair.private, private)
    _write_private(pair.public, public + f" {comment}\n".encode())
    return pair


def _write_private(path: Path, content: bytes) -> None:
    """Create the file with mode 0600 from the start, so it is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    path.chmod(0o600)
