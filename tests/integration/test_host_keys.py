"""SSH that cannot be intercepted: each server shows the host key lab made for it, and a
server showing any other key is refused, with a lab error that names it and says what to do.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import docker
import pytest
from docker.errors import ImageNotFound
from labhelpers import Lab, lab_for_module

from lab.access.inventory import write_inventory
from lab.access.knownhosts import KnownHosts
from lab.config import load_config
from lab.docker.dockerengine import DockerEngine
from lab.fleet import Fleet


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory,
        docker_client: docker.DockerClient) -> Iterator[Lab]:
    """One server, up; the last test of the module changes its host key."""
    with lab_for_module(docker_client, tmp_path_factory.mktemp("hostkeys"), ("up",),
                        count=1) as made:
        yield made


def write_ssh_config(lab: Lab) -> None:
    """``.lab/ssh_config`` as provision and verify write it, for the servers there are now."""
    with Fleet(load_config(lab.dir / "lab.yml")) as fleet:
        write_inventory(fleet.config.state_dir, fleet.live(), fleet.key)


def known(lab: Lab) -> KnownHosts:
    return KnownHosts(lab.dir / ".lab" / "known_hosts")


def shown_key(port: int) -> str:
    """The ed25519 host key sshd presents on 127.0.0.1:port, as ssh-keyscan reads it."""
    result = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                            capture_output=True, text=True, timeout=30, check=True)
    kind, blob = result.stdout.split()[1:3]
    return f"{kind} {blob}"


def plain_ssh(lab: Lab, server: str, *command: str) -> subprocess.CompletedProcess[str]:
    """ssh as a user runs it with lab's ssh_config, on a connection of its own (not the one
    lab shares), so the host key is checked by this very handshake."""
    return subprocess.run(
        ["ssh", "-F", str(lab.dir / ".lab" / "ssh_config"), "-o", "ControlMaster=no",
         "-o", "ControlPath=none", "-o", "BatchMode=yes", server, *command],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def test_the_server_shows_the_host_key_lab_made(lab: Lab) -> None:
    port = lab.status()["web-1"]["ssh_port"]
    entry = known(lab).key_at("127.0.0.1", port)
    assert entry is not None and entry.server == "web-1"
    inside = lab.container("web-1").exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    assert inside.output.decode().split()[:2] == entry.key.split()
    assert shown_key(port) == entry.key
    write_ssh_config(lab)
    result = plain_ssh(lab, "web-1", "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "web-1"


def test_a_server_from_a_baked_image_gets_its_own_key(lab: Lab,
                                                      docker_client: docker.DockerClient) -> None:
    # The worst case: an image committed with web-1's host key still inside (lab bake
    # scrubs it; a hand-made image may not).
    tag = f"lab/{lab.name}-web:hostkeys"
    engine = DockerEngine(lab.name, docker_client)
    engine.commit("web-1", tag, {"lab.name": lab.name, "lab.version": "hostkeys"})
    try:
        with Fleet(load_config(lab.dir / "lab.yml")) as fleet:
            [new] = fleet.add_generation("web", image=tag)  # waits, checking its key
            entry = known(lab).key_at("127.0.0.1", new.ssh_port)
            assert entry is not None and entry.server == new.name
            assert shown_key(new.ssh_port) == entry.key
            assert entry.key != known(lab).key_at("127.0.0.1",
                                                  lab.status()["web-1"]["ssh_port"]).key
            assert lab.run("ssh", new.name, "--", "hostname").stdout.strip() == new.name
            fleet.destroy_servers([new.name])
        assert [e.server for e in known(lab).entries()] == ["web-1"]
    finally:
        with contextlib.suppress(ImageNotFound):
            docker_client.images.remove(tag, force=True)


def test_a_different_host_key_is_refused(lab: Lab) -> None:
    """Last in the module: web-1 now answers with a key lab did not make, as a server in
    the middle would."""
    port = lab.status()["web-1"]["ssh_port"]
    write_ssh_config(lab)
    before = (lab.dir / ".lab" / "known_hosts").read_text()
    changed = lab.container("web-1").exec_run(["sh", "-c", (
        "rm -f /etc/ssh/ssh_host_ed25519_key* && "
        "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "
        "systemctl restart ssh")])
    assert changed.exit_code == 0, changed.output
    # The connection lab shares was checked when it opened, and outlives sshd's restart:
    # close it, so the next command meets the new key.
    subprocess.run(["ssh", "-F", str(lab.dir / ".lab" / "ssh_config"), "-O", "exit", "web-1"],
                   capture_output=True, timeout=30, check=False)
    assert shown_key(port) != known(lab).key_at("127.0.0.1", port).key

    result = lab.run("ssh", "web-1", "--", "hostname", check=False)
    assert result.returncode == 1, result
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: web-1: lab refused to connect: it answered on "
                              f"127.0.0.1:{port} with a host key other than the one lab made")
    assert "`lab destroy` then `lab up`" in message
    assert "REMOTE HOST IDENTIFICATION" not in message

    refused = plain_ssh(lab, "web-1", "hostname")
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr

    # Ansible (through the inventory) and testinfra (through ssh_config) refuse it too
    for command in ("provision", "verify"):
        result = lab.run(command, check=False)
        assert result.returncode == 1, (command, result)
        output = " ".join((result.stdout + result.stderr).split())
        assert "lab refused to connect: the server's SSH host key is not the one" in output, (
            command, output)
    assert (lab.dir / ".lab" / "known_hosts").read_text() == before  # nothing learned
