"""The lab's own SSH key: private files, made once, ed25519, matching halves."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.access.keys import ensure_keypair


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path / ".lab", comment="lab-demo")
    assert pair.private == tmp_path / ".lab" / "keys" / "id_ed25519"
    assert pair.public == tmp_path / ".lab" / "keys" / "id_ed25519.pub"
    assert mode(pair.private) == 0o600
    assert mode(pair.public) == 0o600
    assert mode(pair.private.parent) == 0o700


def test_files_are_private_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        pair = ensure_keypair(tmp_path, comment="lab-demo")
    finally:
        os.umask(old)
    assert mode(pair.private) == 0o600
    assert mode(pair.public) == 0o600
    assert mode(pair.private.parent) == 0o700


def test_public_key_format(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path, comment="lab-demo")
    text = pair.public_text
    assert text.startswith("ssh-ed25519 ")
    assert text.endswith(" lab-demo")
    assert len(text.split()) == 3
    assert pair.private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_halves_match(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path, comment="lab-demo")
    private = serialization.load_ssh_private_key(pair.private.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    derived = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    assert pair.public_text.split()[:2] == derived.split()[:2]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_openssh_reads_the_private_key(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path, comment="lab-demo")
    result = subprocess.run(["ssh-keygen", "-y", "-f", str(pair.private)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == pair.public_text.split()[:2]


def test_key_is_reused(tmp_path: Path) -> None:
    first = ensure_keypair(tmp_path, comment="lab-demo")
    private, public = first.private.read_bytes(), first.public.read_bytes()
    second = ensure_keypair(tmp_path, comment="another-comment")
    assert second == first
    assert second.private.read_bytes() == private
    assert second.public.read_bytes() == public


def test_each_lab_gets_its_own_key(tmp_path: Path) -> None:
    a = ensure_keypair(tmp_path / "a", comment="lab-a")
    b = ensure_keypair(tmp_path / "b", comment="lab-b")
    assert a.public_text.split()[1] != b.public_text.split()[1]
