"""The labs the benchmarks use are code too: each must pass `lab test` as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
from labhelpers import Lab, teardown_lab, unique_lab_name

from lab.access.ports import free_local_port
from lab.scaffold import edit_lab_yml

BENCH_LABS = Path(__file__).parents[2] / "bench" / "labs"


def test_app_lab_provisions_idempotently_and_passes_its_tests(
        tmp_path: Path, docker_client: docker.DockerClient) -> None:
    name = unique_lab_name("app")
    directory = tmp_path / "app"
    shutil.copytree(BENCH_LABS / "app", directory)
    edit_lab_yml(directory / "lab.yml", name=name, listen=free_local_port())
    lab = Lab(name, directory, docker_client)
    try:
        result = lab.run("test", "--destroy", "always", timeout=900)
        assert "idempotence" in result.stdout and "passed" in result.stdout
    finally:
        teardown_lab(lab)
        teardown_lab(Lab(f"{name}-test", directory, docker_client))
