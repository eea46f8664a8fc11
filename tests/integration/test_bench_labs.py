"""The labs the benchmarks use are code too: each must pass `lab test` as it is."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import docker
from labhelpers import Lab, teardown_lab, unique_lab_name

BENCH_LABS = Path(__file__).parents[2] / "bench" / "labs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_app_lab_provisions_idempotently_and_passes_its_tests(
        tmp_path: Path, docker_client: docker.DockerClient) -> None:
    name = unique_lab_name("app")
    directory = tmp_path / "app"
    shutil.copytree(BENCH_LABS / "app", directory)
    config = directory / "lab.yml"
    config.write_text(config.read_text().replace("__NAME__", name)
                      .replace("listen: 8080", f"listen: {free_port()}"))
    lab = Lab(name, directory, docker_client)
    try:
        result = lab.run("test", "--destroy", "always", timeout=900)
        assert "idempotence" in result.stdout and "passed" in result.stdout
    finally:
        teardown_lab(lab)
        teardown_lab(Lab(f"{name}-test", directory, docker_client))
