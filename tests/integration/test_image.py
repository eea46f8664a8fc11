"""`lab image build` on a real engine: when the base image is current it builds nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
from labhelpers import lab_command

from lab.config import DEFAULT_IMAGE


def image_build(where: Path) -> subprocess.CompletedProcess[str]:
    """`lab image build --verbose` (every build line shown) where there is no lab.yml."""
    result = subprocess.run(lab_command("image", "build", "--verbose"), cwd=where,
                            capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_image_build_returns_at_once_when_the_image_is_current(
        tmp_path: Path, docker_client: docker.DockerClient) -> None:
    image_build(tmp_path)  # current now, whatever it was before
    before = docker_client.images.get(DEFAULT_IMAGE)
    again = image_build(tmp_path)
    assert again.stdout.strip() == DEFAULT_IMAGE
    assert f"{DEFAULT_IMAGE} is up to date" in again.stderr
    # A build, even one answered from the engine's cache (same image id), reports itself
    # and each Dockerfile step: none of that may appear.
    assert f"building {DEFAULT_IMAGE}" not in again.stderr, again.stderr
    assert "Step " not in again.stderr and "pulling" not in again.stderr, again.stderr
    after = docker_client.images.get(DEFAULT_IMAGE)
    assert after.id == before.id
