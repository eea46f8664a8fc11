"""The lab lifecycle against a real Docker engine, through the real `lab` command."""

from __future__ import annotations

import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from labhelpers import RUN_LABEL, Lab, readme_commands, shared_sockets

from lab.access.keys import ensure_keypair
from lab.config import DEFAULT_IMAGE, load_config
from lab.targets.docker import DockerTarget

MakeLab = Callable[..., Lab]

SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
]  # fmt: skip


def ssh_direct(key: Path, port: int, *command: str) -> subprocess.CompletedProcess[str]:
    """Plain ssh with the lab's key, checking the host key against the lab's known_hosts."""
    known_hosts = key.parent.parent / "known_hosts"
    return subprocess.run(
        ["ssh", *SSH_OPTIONS, "-o", f"UserKnownHostsFile={known_hosts}", "-i", str(key),
         "-p", str(port), "root@127.0.0.1", *command],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )


def assert_nothing_left(lab: Lab, client: docker.DockerClient) -> None:
    containers = client.containers.list(all=True, filters={"label": lab.label},
                                        ignore_removed=True)
    networks = client.networks.list(filters={"label": lab.label})
    assert [c.name for c in containers] == []
    assert [n.name for n in networks] == []
    assert client.networks.list(names=[f"lab-{lab.name}"]) == []


# one lab, two servers, looked at in many ways -------------------------------------------------


def test_up_makes_two_ready_servers(running_lab: Lab) -> None:
    servers = running_lab.status()
    assert sorted(servers) == ["web-1", "web-2"]
    for server in servers.values():
        assert server["status"] == "ready"
        assert server["role"] == "web"
        assert server["target"] == "docker"
        assert server["generation"] == 1
        assert server["image"] == DEFAULT_IMAGE
        assert server["ssh_host"] == "127.0.0.1"
        assert server["ssh_port"] > 0
        assert set(server["ports"]) == {"80"}
    assert len({s["ssh_port"] for s in servers.values()}) == 2


def test_readme_commands_reach_the_servers_right_after_up(running_lab: Lab,
                                                          tmp_path: Path) -> None:
    """README's `ansible -i .lab/inventory.yml`, `ssh -F .lab/ssh_config` and testinfra's
    `ansible://` work on lab's files before anything was provisioned or verified."""
    assert not (running_lab.dir / ".lab" / "runs").exists()  # no Ansible or testinfra run yet
    names = set(running_lab.status())
    assert readme_commands(running_lab, tmp_path) == {
        "ansible": names, "ssh": names, "testinfra": names}


def test_systemd_is_running(running_lab: Lab) -> None:
    result = running_lab.run("ssh", "web-1", "--", "systemctl", "is-system-running")
    assert result.stdout.strip() == "running"


def test_the_aws_deadline_is_a_systemd_timer_set_at_each_boot(running_lab: Lab) -> None:
    """The boot command an EC2 instance runs at every boot (lab.aws.userdata), run on a real
    systemd server: the power-off is a transient timer with the seconds left (stopped after:
    the server is shared); a deadline already past powers off at once (shown by an echo in
    its place, not on the shared server)."""
    from lab.aws.userdata import EXPIRY

    future = EXPIRY.format(deadline=int(time.time()) + 3600)
    running_lab.run("ssh", "web-1", "--", "sh", "-c", future)
    try:
        shown = running_lab.run("ssh", "web-1", "--", "systemctl", "show", "lab-expiry.timer",
                                "-p", "ActiveState", "-p", "Description").stdout
        assert "ActiveState=active" in shown and "lab lifetime over" in shown
        left = running_lab.run("ssh", "web-1", "--", "systemctl", "list-timers",
                               "lab-expiry.timer", "--no-legend").stdout
        assert "lab-expiry.timer" in left and ("59min" in left or "1h" in left)
    finally:
        running_lab.run("ssh", "web-1", "--", "systemctl", "stop", "lab-expiry.timer",
                        check=False)
    past = EXPIRY.format(deadline=int(time.time()) - 5).replace(
        "systemctl poweroff --no-block", "echo powering off")
    said = running_lab.run("ssh", "web-1", "--", "sh", "-c", past).stdout
    assert said.strip() == "powering off"


def test_lab_ssh_reaches_the_named_server(running_lab: Lab) -> None:
    assert running_lab.run("ssh", "web-2", "--", "hostname").stdout.strip() == "web-2"


def test_lab_ssh_to_unknown_server_is_a_usage_error(running_lab: Lab) -> None:
    result = running_lab.run("ssh", "web-99", "--", "true", check=False)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "no server 'web-99'" in result.stderr


def test_plain_ssh_with_the_lab_key(running_lab: Lab, tmp_path: Path) -> None:
    port = running_lab.status()["web-1"]["ssh_port"]
    key = running_lab.dir / ".lab" / "keys" / "id_ed25519"
    result = ssh_direct(key, port, "cat", "/etc/hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "web-1"
    # and another key is refused: the lab key is what lets us in
    stranger = ensure_keypair(tmp_path, comment="stranger")
    (tmp_path / "known_hosts").write_text((running_lab.dir / ".lab" / "known_hosts").read_text())
    refused = ssh_direct(stranger.private, port, "true")
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr


def test_ports_are_published_on_loopback_only(running_lab: Lab) -> None:
    containers = running_lab.containers()
    assert len(containers) == 2
    for container in containers:
        container.reload()
        published = container.attrs["NetworkSettings"]["Ports"]
        bound = {port: b for port, b in published.items() if b}
        assert set(bound) == {"22/tcp", "80/tcp"}, published
        for port, bindings in bound.items():
            for binding in bindings:
                assert binding["HostIp"] == "127.0.0.1", (container.name, port, binding)
        requested = container.attrs["HostConfig"]["PortBindings"]
        assert requested, container.name
        for port, bindings in requested.items():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (port, bindings)


def test_key_files_are_private(running_lab: Lab) -> None:
    keys = running_lab.dir / ".lab" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("id_ed25519", "id_ed25519.pub"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    assert (keys / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")


def test_labels_and_network(running_lab: Lab, test_run_label: str) -> None:
    run_key, run_value = test_run_label.split("=")
    assert run_key == RUN_LABEL
    network_name = f"lab-{running_lab.name}"
    for container in running_lab.containers():
        labels = container.labels
        server = labels["lab.server"]
        assert container.name == f"{running_lab.name}-{server}"
        assert labels["lab.name"] == running_lab.name
        assert labels["lab.role"] == "web"
        assert labels["lab.generation"] == "1"
        assert labels[RUN_LABEL] == run_value  # LAB_LABELS reaches containers
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [network_name]
    [network] = running_lab.networks()
    assert network.name == network_name
    assert network.attrs["Labels"][RUN_LABEL] == run_value  # ... and the network


def test_up_again_is_idempotent(running_lab: Lab) -> None:
    before = {c.labels["lab.server"]: c.id for c in running_lab.containers()}
    result = running_lab.run("up")
    after = {c.labels["lab.server"]: c.id for c in running_lab.containers()}
    assert after == before
    assert sorted(after) == ["web-1", "web-2"]
    assert "creating" not in result.stderr
    servers = running_lab.status()
    assert sorted(servers) == ["web-1", "web-2"]
    assert {s["status"] for s in servers.values()} == {"ready"}


# labs of their own ----------------------------------------------------------------------------


def test_killed_server_shows_dead_and_is_replaced(make_lab: MakeLab) -> None:
    lab = make_lab(count=2)
    lab.run("up")
    survivor = lab.container("web-2").id
    lab.container("web-1").kill()

    servers = lab.status()
    assert servers["web-1"]["status"] == "dead"
    assert servers["web-2"]["status"] == "ready"

    lab.run("up")
    servers = lab.status()
    assert sorted(servers) == ["web-2", "web-3"]  # a new name: numbers are not reused
    assert {s["status"] for s in servers.values()} == {"ready"}
    assert lab.container("web-2").id == survivor
    assert sorted(c.labels["lab.server"] for c in lab.containers()) == ["web-2", "web-3"]
    assert lab.run("ssh", "web-3", "--", "hostname").stdout.strip() == "web-3"
    # the dead server's host key went with it; the new one's was recorded
    known = (lab.dir / ".lab" / "known_hosts").read_text().splitlines()
    assert sorted(line.split()[-1] for line in known[1:]) == ["web-2", "web-3"]


def test_destroy_removes_everything(make_lab: MakeLab, docker_client: docker.DockerClient) -> None:
    lab = make_lab(count=2)
    lab.run("up")
    assert len(lab.containers()) == 2
    assert len(lab.networks()) == 1
    known_hosts = lab.dir / ".lab" / "known_hosts"
    assert len(known_hosts.read_text().splitlines()) == 3  # a header and one line per server
    sockets = shared_sockets(lab, ["web-1", "web-2"])
    assert all(path.is_socket() for path in sockets.values())
    lab.run("destroy")
    assert_nothing_left(lab, docker_client)
    assert lab.status() == {}
    assert len(known_hosts.read_text().splitlines()) == 1  # their ports go to other servers
    # Their shared connections closed with them; nothing names a server that is gone.
    assert [path for path in sockets.values() if path.exists()] == []
    assert not (lab.dir / ".lab" / "inventory.yml").exists()
    assert not (lab.dir / ".lab" / "ssh_config").exists()


def test_destroy_without_state_db(make_lab: MakeLab, docker_client: docker.DockerClient) -> None:
    lab = make_lab(count=2)
    lab.run("up")
    assert len(lab.containers()) == 2
    (lab.dir / ".lab" / "state.db").unlink()
    lab.run("destroy")
    assert_nothing_left(lab, docker_client)


def test_destroy_after_up_is_killed(make_lab: MakeLab, docker_client: docker.DockerClient) -> None:
    lab = make_lab(count=8)
    up = lab.popen("up")
    # Kill it once it has reached Docker (the first container exists), whatever the machine.
    deadline = time.monotonic() + 20
    while not lab.containers() and up.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    up.send_signal(signal.SIGKILL)
    _, stderr = up.communicate(timeout=30)
    # it was killed, it did not finish (or fail) by itself
    assert up.returncode == -signal.SIGKILL, stderr
    assert lab.containers() or lab.networks(), "killed before it made anything: no test"
    lab.run("destroy")
    assert_nothing_left(lab, docker_client)
    time.sleep(1.0)  # nothing the killed process had asked for turns up late
    assert_nothing_left(lab, docker_client)


def test_never_started_container_is_replaced(make_lab: MakeLab,
                                             docker_client: docker.DockerClient,
                                             test_run_label: str) -> None:
    """What a `lab up` killed between create and start leaves: `lab up` must not hang on it."""
    lab = make_lab(count=2)
    lab.run("up")
    lab.container("web-2").remove(force=True)
    run_key, run_value = test_run_label.split("=")
    orphan = docker_client.containers.create(
        DEFAULT_IMAGE, name=f"{lab.name}-web-2", command=["/sbin/init"], network=f"lab-{lab.name}",
        labels={"lab.managed": "true", "lab.name": lab.name, "lab.server": "web-2",
                "lab.role": "web", "lab.generation": "1", run_key: run_value},
    )
    assert lab.status()["web-2"]["status"] != "ready"

    lab.run("up", timeout=60)  # returns (no hang on the never-started container)
    servers = lab.status()
    assert sorted(servers) == ["web-1", "web-3"]
    assert {s["status"] for s in servers.values()} == {"ready"}
    assert orphan.id not in {c.id for c in lab.containers()}


def test_listing_survives_containers_vanishing(make_lab: MakeLab,
                                               docker_client: docker.DockerClient,
                                               test_run_label: str) -> None:
    """A container removed while lab lists the lab's containers must not crash the listing."""
    lab = make_lab(count=1)
    config = load_config(lab.dir / "lab.yml")
    target = DockerTarget(config, ensure_keypair(config.state_dir, comment="test"))
    run_key, run_value = test_run_label.split("=")
    labels = {"lab.name": lab.name, "lab.server": "web-99", "lab.role": "web", run_key: run_value}
    stop = threading.Event()
    churned = 0

    def churn() -> None:
        nonlocal churned
        while not stop.is_set():
            docker_client.containers.create(DEFAULT_IMAGE, command=["true"],
                                            labels=labels).remove(force=True)
            churned += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        # Until both sides have done enough, whatever the load (bounded at 60 s).
        deadline = time.monotonic() + 60
        listed = 0
        while time.monotonic() < deadline and (listed < 200 or churned <= 5):
            records = target.list()
            assert all(r.name == "web-99" for r in records)
            listed += 1
    finally:
        stop.set()
        thread.join(timeout=30)
        target.close()
    assert churned > 5, "the churn did not run: nothing was tested"


def test_lab_whose_name_prefixes_another(make_lab: MakeLab) -> None:
    """Network lab-t-x must be made even when lab-t-x-long exists (docker filters by prefix)."""
    short = make_lab(count=1)
    long = make_lab(name=f"{short.name}-long", count=1)
    long.run("up")
    short.run("up")
    assert list(short.status()) == ["web-1"]
    [container] = short.containers()
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"lab-{short.name}"]
    long.run("destroy")
    assert short.status()["web-1"]["status"] == "ready"  # destroying one leaves the other


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["servers"]["web"].update(count=0),
         "lab.yml: servers.web.count: must be >= 1, got 0"),
        (lambda d: d.update(name="a;rm -rf /"), "lab.yml: name: must be 1-32 lowercase letters"),
        (lambda d: d["servers"]["web"].update(playbook="nope.yml"),
         "lab.yml: servers.web.playbook: file not found: nope.yml"),
    ],
    ids=["count-zero", "shell-name", "missing-playbook"],
)
def test_bad_lab_yml_creates_nothing(make_lab: MakeLab, docker_client: docker.DockerClient,
                                     edit: Callable[[dict], None], expected: str) -> None:
    lab = make_lab(count=2)
    data = lab.read_yml()
    edit(data)
    lab.write_yml(data)
    result = lab.run("up", check=False)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (lab.dir / ".lab").exists()
    assert_nothing_left(lab, docker_client)
    assert docker_client.containers.list(all=True, filters={"name": lab.name},
                                        ignore_removed=True) == []
