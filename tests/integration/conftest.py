"""Integration tests: a real Docker engine and the base image, driven through the real CLI.

Every test here is marked ``integration``. Without an engine or the image the tests are
skipped on a laptop, but fail under CI (``CI`` set): CI must never pass by skipping.

Everything the run makes carries ``lab.test-run=<uuid>`` (through ``LAB_LABELS``) and is
removed at the end of the session, even when tests fail or a ``lab destroy`` did not work.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from labhelpers import RUN_LABEL, Lab, lab_for_module, new_lab, teardown_lab

from lab.config import DEFAULT_IMAGE

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


# the engine ------------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    message = f"integration tests need Docker and {DEFAULT_IMAGE}: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.info()  # what `docker info` asks the engine
    except DockerException as exc:
        _unavailable(f"`docker info` failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    try:
        client.images.get(DEFAULT_IMAGE)
    except ImageNotFound:
        _unavailable(f"image {DEFAULT_IMAGE} is absent (run `lab image build`)")
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def test_run_label(docker_client: docker.DockerClient) -> Iterator[str]:
    """Label all the run makes; at the end, remove whatever still carries the label."""
    run = uuid.uuid4().hex
    label = f"{RUN_LABEL}={run}"
    # The run's own package cache name (lab/docker/cache.py): no test uses, joins or removes the
    # cache the user runs; only a test that starts this one has a cache at all.
    before = {key: os.environ.get(key) for key in ("LAB_LABELS", "LAB_CACHE")}
    os.environ["LAB_LABELS"] = label
    os.environ["LAB_CACHE"] = f"t-cache-{run[:8]}"
    try:
        yield label
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        remove_labelled(docker_client, label)


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    for container in client.containers.list(all=True, filters={"label": label},
                                            ignore_removed=True):
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)
    for network in client.networks.list(filters={"label": label}):
        with contextlib.suppress(NotFound):
            network.remove()
    for volume in client.volumes.list(filters={"label": label}):
        with contextlib.suppress(NotFound):
            volume.remove(force=True)
    # Images the run made (bakes, exercise start snapshots) carry the label too.
    for image in client.images.list(filters={"label": label}):
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(image.id, force=True)


@pytest.fixture
def make_lab(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Callable[..., Lab]]:
    """make_lab(name=None, count=2) -> a fresh lab (unique name t-xxxxxx); destroyed after."""
    labs: list[Lab] = []

    def make(name: str | None = None, count: int = 2, balancer: bool = False) -> Lab:
        lab = new_lab(docker_client, tmp_path, count, name, balancer)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        teardown_lab(lab)


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory: pytest.TempPathFactory,
                docker_client: docker.DockerClient) -> Iterator[Lab]:
    """One lab with two web servers, up, shared by the read-only tests of a module."""
    with lab_for_module(docker_client, tmp_path_factory.mktemp("running"), ("up",)) as lab:
        yield lab
