"""``.lab/known_hosts`` bookkeeping: one line per server, replaced when a port is reused,
removed on destroy, moved when a server comes back on another port; and the host keys lab
makes for servers. test_host_keys.py shows real sshd and ssh honouring all of it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.access.inventory import build_inventory, write_ssh_config
from lab.access.keys import ensure_keypair, host_key_for
from lab.access.knownhosts import (
    Entry,
    KnownHosts,
    host_key_refused,
    host_pattern,
    refusal_note,
    trust_settings,
)
from lab.provision import _message
from lab.state import ServerRecord
from lab.verify import read_junit

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
REFUSAL = ("No ED25519 host key is known for [127.0.0.1]:32770 and you have requested strict "
           "checking.\r\nHost key verification failed.\r\n")


@pytest.fixture
def known(tmp_path: Path) -> KnownHosts:
    return KnownHosts(tmp_path / ".lab" / "known_hosts")


def lines(known: KnownHosts) -> list[str]:
    return [e.line for e in known.entries()]


def test_a_new_server_gets_a_line_in_openssh_format(known: KnownHosts) -> None:
    known.trust("web-1", "127.0.0.1", 32770, KEY_A + " web-1@lab-demo")
    assert lines(known) == [f"[127.0.0.1]:32770 {KEY_A} web-1"]
    assert known.key_at("127.0.0.1", 32770) == Entry("[127.0.0.1]:32770", KEY_A, "web-1")
    assert known.key_at("127.0.0.1", 32771) is None


def test_port_22_is_written_as_the_bare_host() -> None:
    assert host_pattern("203.0.113.7", 22) == "203.0.113.7"
    assert host_pattern("127.0.0.1", 2200) == "[127.0.0.1]:2200"


def test_a_new_server_on_a_reused_port_replaces_the_old_line(known: KnownHosts) -> None:
    known.trust("web-1", "127.0.0.1", 32770, KEY_A)
    known.trust("web-2", "127.0.0.1", 32771, KEY_A)
    known.trust("web-3", "127.0.0.1", 32770, KEY_B)  # web-1 died; its port went to web-3
    assert lines(known) == [f"[127.0.0.1]:32771 {KEY_A} web-2",
                            f"[127.0.0.1]:32770 {KEY_B} web-3"]


def test_destroyed_servers_lose_their_lines(known: KnownHosts) -> None:
    for port, name in enumerate(["web-1", "web-2", "lb-1"], start=32770):
        known.trust(name, "127.0.0.1", port, KEY_A)
    known.forget(["web-1", "lb-1", "never-was"])
    assert [e.server for e in known.entries()] == ["web-2"]
    known.clear()
    assert known.entries() == []
    assert known.path.read_text().startswith("# Written by lab")


def test_a_server_back_on_another_port_keeps_its_key(known: KnownHosts) -> None:
    known.trust("web-1", "127.0.0.1", 32770, KEY_A)
    known.trust("web-2", "127.0.0.1", 32771, KEY_B)
    known.follow({"web-1": ("127.0.0.1", 32771), "web-2": ("127.0.0.1", 32772)})
    assert lines(known) == [f"[127.0.0.1]:32771 {KEY_A} web-1",
                            f"[127.0.0.1]:32772 {KEY_B} web-2"]


def test_a_moved_server_takes_over_its_address(known: KnownHosts) -> None:
    known.trust("web-1", "127.0.0.1", 32770, KEY_A)
    known.trust("web-2", "127.0.0.1", 32771, KEY_B)  # web-2 is gone, not yet forgotten
    known.follow({"web-1": ("127.0.0.1", 32771)})
    assert lines(known) == [f"[127.0.0.1]:32771 {KEY_A} web-1"]


def test_nothing_moved_nothing_written(known: KnownHosts) -> None:
    known.trust("web-1", "127.0.0.1", 32770, KEY_A)
    before = known.path.stat().st_ino
    known.follow({"web-1": ("127.0.0.1", 32770), "not-listed": ("127.0.0.1", 1)})
    assert known.path.stat().st_ino == before  # every write replaces the file


def test_lines_lab_did_not_write_are_ignored() -> None:
    assert Entry.parse("# a comment") is None
    assert Entry.parse("") is None
    assert Entry.parse("|1|salt=|hash= ssh-ed25519 AAAA") is None
    assert Entry.parse("@revoked [h]:1 ssh-ed25519 AAAA x") is None
    assert Entry.parse("[h]:1 ssh-ed25519 AAAA") == Entry("[h]:1", "ssh-ed25519 AAAA", "")


def test_servers_made_in_parallel_all_get_their_line(known: KnownHosts) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: known.trust(f"web-{i}", "127.0.0.1", 32000 + i, KEY_A),
                      range(40)))
    assert sorted(e.server for e in known.entries()) == sorted(f"web-{i}" for i in range(40))


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_openssh_finds_the_key_lab_wrote(known: KnownHosts) -> None:
    host_key = host_key_for("web-1", "demo")
    known.trust("web-1", "127.0.0.1", 32770, host_key.public)
    found = subprocess.run(["ssh-keygen", "-F", "[127.0.0.1]:32770", "-f", str(known.path)],
                           capture_output=True, text=True, timeout=30, check=False)
    assert found.returncode == 0, found.stderr
    assert host_key.public.split()[1] in found.stdout
    missing = subprocess.run(["ssh-keygen", "-F", "[127.0.0.1]:32771", "-f", str(known.path)],
                             capture_output=True, text=True, timeout=30, check=False)
    assert missing.returncode == 1


# the host keys lab makes ---------------------------------------------------------------------


def test_host_key_halves_match_and_name_the_server() -> None:
    key = host_key_for("web-1", "demo")
    private = serialization.load_ssh_private_key(key.private.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    derived = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode()
    assert key.public == f"{derived} web-1@lab-demo"


def test_every_server_gets_its_own_host_key() -> None:
    keys = {host_key_for("web-1", "demo").public.split()[1] for _ in range(5)}
    assert len(keys) == 5


# how connections are told to check -----------------------------------------------------------


def test_every_connection_checks_strictly_against_the_labs_file(tmp_path: Path) -> None:
    key = ensure_keypair(tmp_path / "my lab" / ".lab", comment="lab-demo")
    settings = trust_settings(key)
    assert settings["StrictHostKeyChecking"] == "yes"
    assert settings["UserKnownHostsFile"] == f'"{tmp_path}/my lab/.lab/known_hosts"'
    assert settings["GlobalKnownHostsFile"] == "/dev/null"
    server = ServerRecord("web-1", "web", "docker", ssh_port=32770)
    common = build_inventory([server], key)["all"]["vars"]["ansible_ssh_common_args"]
    assert f'UserKnownHostsFile="{tmp_path}/my lab/.lab/known_hosts"' in shlex.split(common)
    assert "StrictHostKeyChecking=no" not in common
    config = write_ssh_config(tmp_path / "ssh_config", [server], key).read_text()
    assert "  StrictHostKeyChecking yes\n" in config
    assert f'  UserKnownHostsFile "{tmp_path}/my lab/.lab/known_hosts"\n' in config


def test_a_refusal_names_the_server_and_what_to_do(tmp_path: Path) -> None:
    key = ensure_keypair(tmp_path / ".lab", comment="lab-demo")
    server = ServerRecord("web-1", "web", "docker", ssh_port=32770)
    assert host_key_refused(server, key, "Permission denied (publickey).") is None
    unknown = str(host_key_refused(server, key, REFUSAL))
    assert unknown.startswith("web-1: lab refused to connect: lab has no host key for "
                              "127.0.0.1:32770")
    assert "`lab destroy` then `lab up`" in unknown
    KnownHosts(key.known_hosts).trust("web-1", "127.0.0.1", 32770, KEY_A)
    changed = str(host_key_refused(server, key, "Host key verification failed."))
    assert "with a host key other than the one lab made for it" in changed
    assert "something else may be answering" in changed
    KnownHosts(key.known_hosts).trust("web-7", "127.0.0.1", 32770, KEY_B)
    other = str(host_key_refused(server, key, "Host key verification failed."))
    assert "(recorded for web-7)" in other


def test_reports_say_refused_instead_of_sshs_banner(tmp_path: Path) -> None:
    banner = ("Failed to connect to the host via ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
              "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
              "Host key verification failed.")
    expected = refusal_note(banner)
    assert expected is not None and expected.startswith("lab refused to connect")
    assert _message({"msg": banner, "unreachable": True}) == expected
    # pytest's JUnit report: the message attribute cut short, the whole traceback as text
    report = tmp_path / "web-1.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="test_web" name="test_nginx[ssh://web-1]">'
        "<failure message=\"RuntimeError: CommandResult(exit_status=255, _stderr=b'@@\">"
        f"E RuntimeError: CommandResult(exit_status=255, _stderr=b'{REFUSAL}')"
        "</failure></testcase></testsuite></testsuites>")
    [outcome] = read_junit(report, "web-1")
    assert (outcome.test, outcome.status, outcome.message) == ("test_web::test_nginx", "failed",
                                                               expected)
    assert _message({"msg": "Permission denied (publickey)."}) == "Permission denied (publickey)."
