"""Where a server is reached, from its container as the engine shows it.

The --internal case is proven for real by tests/integration/test_cache_offline.py.
"""

from __future__ import annotations

from typing import Any

from docker.models.containers import Container

from lab.docker.dockerengine import DockerEngine


def container(ports: dict[str, Any], status: str = "running") -> Container:
    return Container(attrs={
        "Name": "/t-web-1", "Created": "2026-11-27T15:00:00.000000000Z",
        "State": {"Status": status},
        "Config": {"Labels": {"lab.server": "web-1", "lab.role": "web"}, "Image": "img",
                   "ExposedPorts": {"22/tcp": {}, "80/tcp": {}}},
        "NetworkSettings": {"Ports": ports,
                            "Networks": {"lab-t": {"IPAddress": "172.20.0.2"}}},
    })


def test_published_ports_are_reached_on_loopback() -> None:
    record = DockerEngine("t", client=object()).record(container({
        "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}],
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32769"}]}), "docker")
    assert (record.ssh_host, record.ssh_port) == ("127.0.0.1", 32768)
    assert (record.ports_host, record.ports) == ("127.0.0.1", {80: 32769})


def test_on_an_internal_network_nothing_is_published_so_the_address_is_used() -> None:
    record = DockerEngine("t", client=object()).record(container({}), "docker")
    assert (record.ssh_host, record.ssh_port) == ("172.20.0.2", 22)
    assert (record.ports_host, record.ports) == ("172.20.0.2", {80: 80})


def test_a_container_never_started_has_no_ssh_port() -> None:
    record = DockerEngine("t", client=object()).record(container({}, "created"), "docker")
    assert record.ssh_port == 0  # so `lab up` replaces it instead of waiting on it
