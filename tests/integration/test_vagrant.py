"""`target: vagrant`: the same lab, through the real `vagrant` binary and its docker provider.

The example lab (two web servers and a balancer) goes up, is provisioned, verified and
released, then destroyed, with nothing changed but the target. Vagrant's own commands in the
lab directory see the machines lab made. Without Vagrant the tests skip on a laptop and fail
under CI, like the Docker check in conftest.py.

The tests of this module share one lab and run in order; the last one destroys it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from labhelpers import Lab, lab_for_module, new_lab, teardown_lab

from lab.access.knownhosts import KnownHosts
from lab.access.ports import free_local_port

ROLES = {"web-1": "web", "web-2": "web", "lb-1": "lb"}



def versions(port: int, requests: int) -> Counter[str]:
    """Which version answers each request to the balancer (the page's last word)."""
    seen: Counter[str] = Counter()
    for _ in range(requests):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            page = response.read().decode().strip()
            seen[page.split()[-1] if response.status == 200 and page else "failed"] += 1
        except OSError:
            seen["failed"] += 1
        finally:
            connection.close()
    return seen


@pytest.fixture(scope="module")
def vagrant_binary() -> str:
    path = shutil.which("vagrant")
    if path is None:
        message = ("the vagrant tests need Vagrant "
                   "(Debian: apt-get install --no-install-recommends vagrant)")
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)",
                        pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def vagrant_lab(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
                vagrant_binary: str) -> Iterator[Lab]:
    """The example lab with `target: vagrant`, its balancer on a free port, 1 s steps; up."""

    def on_vagrant(lab: Lab) -> None:
        data = lab.read_yml()
        data["target"] = "vagrant"
        data["balancer"]["listen"] = free_local_port()
        data["release"]["step_seconds"] = 1
        lab.write_yml(data)

    with lab_for_module(docker_client, tmp_path_factory.mktemp("vagrant"), ("up",),
                        balancer=True, edit=on_vagrant) as lab:
        yield lab


def plain_vagrant(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """Vagrant as a user runs it in the lab directory: no help from lab's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "VAGRANT_"))}
    env["VAGRANT_CHECKPOINT_DISABLE"] = "1"  # no version check over the network
    return subprocess.run(["vagrant", *args], cwd=lab.dir, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def vagrant_states(lab: Lab) -> dict[str, str]:
    """`vagrant status --machine-readable`: machine -> state."""
    result = plain_vagrant(lab, "status", "--machine-readable")
    assert result.returncode == 0, result.stderr
    rows = [line.split(",", 3) for line in result.stdout.splitlines()]
    return {row[1]: row[3] for row in rows if len(row) == 4 and row[2] == "state"}


def test_up_makes_vagrant_machines_lab_can_find_by_label(vagrant_lab: Lab,
                                                         test_run_label: str) -> None:
    status = vagrant_lab.status()
    assert {name: s["role"] for name, s in status.items()} == ROLES
    for name, server in status.items():
        assert server["target"] == "vagrant" and server["status"] == "ready"
        assert server["ssh_user"] == "vagrant" and server["ssh_host"] == "127.0.0.1"
        # The key Vagrant made for the machine when it replaced its insecure one.
        assert server["ssh_key"] == str(
            vagrant_lab.dir / ".vagrant" / "machines" / name / "docker" / "private_key")
        assert server["address"], f"{name} has no address on the lab network"
    containers = {c.labels["lab.server"]: c for c in vagrant_lab.containers()}
    assert set(containers) == set(ROLES)
    key, _, value = test_run_label.partition("=")
    network = f"lab-{vagrant_lab.name}"
    for name, container in containers.items():
        assert container.labels[key] == value  # LAB_LABELS reach Vagrant's containers
        assert container.labels["lab.role"] == ROLES[name]
        assert container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"] == (
            status[name]["address"])
        for bindings in container.attrs["NetworkSettings"]["Ports"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or [])
        # Vagrant's machine made its own host key: lab recorded it at first contact.
        shown = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        entry = KnownHosts(vagrant_lab.dir / ".lab" / "known_hosts").key_at(
            "127.0.0.1", status[name]["ssh_port"])
        assert entry is not None and entry.server == name
        assert entry.key.split() == shown.output.decode().split()[:2]
    listen = vagrant_lab.read_yml()["balancer"]["listen"]
    assert status["lb-1"]["ports"] == {"80": listen}


def test_plain_vagrant_sees_the_machines_lab_made(vagrant_lab: Lab) -> None:
    states = vagrant_states(vagrant_lab)
    assert states == dict.fromkeys(vagrant_lab.status(), "running")
    result = plain_vagrant(vagrant_lab, "ssh", "web-1", "-c", "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "web-1"


def test_provision_verify_and_release_as_on_docker(vagrant_lab: Lab) -> None:
    vagrant_lab.run("provision", timeout=600)
    vagrant_lab.run("verify", timeout=600)
    port = vagrant_lab.read_yml()["balancer"]["listen"]
    assert versions(port, 10) == Counter({"v1": 10})
    vagrant_lab.run("release", "--set", "version=v2", timeout=900)
    assert versions(port, 40) == Counter({"v2": 40})
    report = json.loads(vagrant_lab.run("history", "--json").stdout)[-1]
    assert report["outcome"] == "promoted" and sorted(report["old"]) == ["web-1", "web-2"]
    # Vagrant follows: the old generation is gone from it, the new one is there.
    status = vagrant_lab.status()
    assert vagrant_states(vagrant_lab) == dict.fromkeys(status, "running")
    assert set(status) == {"lb-1", *report["new"]}


def test_destroy_leaves_nothing_behind(vagrant_lab: Lab, docker_client: docker.DockerClient,
                                       test_run_label: str) -> None:
    vagrant_lab.run("destroy", timeout=300)
    assert vagrant_lab.containers() == []
    assert vagrant_lab.networks() == []
    assert docker_client.containers.list(all=True, filters={"label": test_run_label,
                                                            "name": vagrant_lab.name}) == []
    listing = json.loads((vagrant_lab.dir / ".lab" / "vagrant" / "machines.json").read_text())
    assert listing["machines"] == []
    assert all(state == "not_created" for state in vagrant_states(vagrant_lab).values())
    assert vagrant_lab.status() == {}


def test_a_machine_removed_behind_vagrants_back_is_replaced(
        tmp_path: Path, docker_client: docker.DockerClient, vagrant_binary: str) -> None:
    """A container removed with docker rm: Vagrant says not created, lab says missing, and
    `lab up` makes a new one."""
    lab = new_lab(docker_client, tmp_path, count=1)
    data = lab.read_yml()
    data["target"] = "vagrant"
    lab.write_yml(data)
    try:
        lab.run("up")
        lab.container("web-1").remove(force=True)
        assert lab.status()["web-1"]["status"] == "missing"
        lab.run("up")
        status = lab.status()
        assert [(n, s["status"]) for n, s in status.items()] == [("web-2", "ready")]
        assert vagrant_states(lab) == {"web-2": "running"}
    finally:
        teardown_lab(lab)
    assert lab.containers() == [] and lab.networks() == []
