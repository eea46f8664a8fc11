"""Servers boot on the engine at hand, and a server that does not is explained, not timed out.

`make test` runs this module against both engines here: Docker 20.10 on cgroup v1 and
Docker 26 on cgroup v2 (scripts/engine26.sh), so the run mode lab chooses is proven on each.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import docker
import pytest
from labhelpers import RUN_LABEL, Lab

from lab.config import DEFAULT_IMAGE
from lab.docker.engine import engine_facts
from lab.docker.runmode import OVERRIDE, choose

MakeLab = Callable[..., Lab]

# An init that writes one line on the console and gives up, as systemd does when it cannot
# create its cgroup; and a server whose sshd never starts.
BROKEN = {
    "init-gives-up": "RUN rm /sbin/init && printf '#!/bin/sh\\necho \"lab-test: this init gives "
                     "up\"\\nexit 3\\n' > /sbin/init && chmod 755 /sbin/init",
    "no-sshd": "RUN systemctl mask ssh.service",
}


@pytest.fixture(scope="module")
def broken_images(docker_client: docker.DockerClient, test_run_label: str) -> Iterator[dict]:
    """Images from the base image that cannot become a server, removed after the module."""
    run = test_run_label.partition("=")[2][:8]
    made = {}
    try:
        for kind, step in BROKEN.items():
            tag = f"lab-test/{kind}:{run}"
            dockerfile = f"FROM {DEFAULT_IMAGE}\n{step}\n"
            docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag,
                                       rm=True, forcerm=True, labels={RUN_LABEL: run})
            made[kind] = tag
        yield made
    finally:
        for tag in made.values():
            docker_client.images.remove(tag, force=True)


def lab_on(make_lab: MakeLab, image: str) -> Lab:
    lab = make_lab(count=1)
    data = lab.read_yml()
    data["image"] = image
    lab.write_yml(data)
    return lab


def test_servers_boot_in_the_mode_chosen_for_this_engine(
        make_lab: MakeLab, docker_client: docker.DockerClient) -> None:
    facts = engine_facts(docker_client)
    mode = choose(facts)
    lab = make_lab(count=1)
    lab.run("up")
    container = lab.container("web-1")
    host = container.attrs["HostConfig"]
    assert host.get("CgroupnsMode") == mode.cgroupns
    assert container.attrs["Config"]["Cmd"] == mode.command
    assert container.attrs["Config"]["Tty"] is True
    # systemd runs, in the cgroup hierarchy the engine has, and sees only its own subtree.
    state = container.exec_run(["systemctl", "is-system-running"]).output.decode().strip()
    assert state in ("running", "degraded")
    fs_type = container.exec_run(["stat", "-fc", "%T", "/sys/fs/cgroup"]).output.decode()
    assert fs_type.strip() == ("cgroup2fs" if facts.cgroup_version == 2 else "tmpfs")
    if mode.name == "private-cgroup":
        assert container.exec_run(["cat", "/proc/1/cgroup"]).output.decode().endswith(
            "::/init.scope\n")
    doctor = lab.run("doctor", check=False).stdout
    assert f"cgroup v{facts.cgroup_version}" in doctor and mode.name in doctor


def test_a_server_whose_init_gives_up_is_reported_at_once_with_its_console(
        make_lab: MakeLab, docker_client: docker.DockerClient, broken_images: dict) -> None:
    lab = lab_on(make_lab, broken_images["init-gives-up"])
    result = lab.run("up", check=False)
    assert result.returncode == 1, result.stderr
    # Said only while lab is still waiting for the server (once its container has stopped),
    # never after the boot timeout, which says "not ready after": reported at once.
    assert "web-1: did not boot: its container exited with status 3" in result.stderr
    assert "console (last 1 lines):" in result.stderr
    assert "lab-test: this init gives up" in result.stderr
    assert f"engine: {engine_facts(docker_client).describe()}" in result.stderr
    assert "Traceback" not in result.stderr
    assert lab.containers() == []  # what `lab up` made is gone again


def test_a_server_that_never_answers_ssh_is_reported_with_systemds_lines(
        make_lab: MakeLab, broken_images: dict) -> None:
    lab = lab_on(make_lab, broken_images["no-sshd"])
    env = os.environ | {"LAB_BOOT_TIMEOUT": "12"}
    result = lab.run("up", check=False, env=env)
    assert result.returncode == 1, result.stderr
    assert "web-1: not ready after 12 s (sshd not answering yet)" in result.stderr
    assert "console (last 12 lines):" in result.stderr
    assert "Reached target" in result.stderr or "Started" in result.stderr, result.stderr
    assert lab.containers() == []


def test_the_recipe_lab_used_before_it_chose(make_lab: MakeLab,
                                             docker_client: docker.DockerClient) -> None:
    """`-v /sys/fs/cgroup:/sys/fs/cgroup:ro` boots on cgroup v1; on cgroup v2 systemd stops,
    and lab shows systemd's own words and the way back."""
    facts = engine_facts(docker_client)
    lab = make_lab(count=1)
    result = lab.run("up", check=False, env=os.environ | {OVERRIDE: "legacy"})
    if facts.cgroup_version == 1:
        assert result.returncode == 0, result.stderr
        assert lab.status()["web-1"]["status"] == "ready"
    else:
        assert result.returncode == 1, result.stderr
        assert "web-1: did not boot: its container exited with status 255" in result.stderr
        assert "Failed to allocate manager object: Read-only file system" in result.stderr
        assert f"run mode legacy\n  `lab doctor` shows how lab runs servers on this engine; " \
               f"unset {OVERRIDE} to let lab choose" in result.stderr
        assert lab.containers() == []
