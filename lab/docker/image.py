"""The base image every docker (and Vagrant docker) server starts from: ``lab image build``.

The Dockerfile lives in ``lab/data/image``. It builds ``FROM debian:bookworm``; where that
cannot be pulled (no registry reachable) and ``debootstrap`` can run, a minimal Debian root
file system is bootstrapped locally and imported under that tag first. The image carries a
label with the Dockerfile's hash, so a changed Dockerfile triggers a rebuild and an unchanged
one returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from importlib.resources import files
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from lab.config import DEFAULT_IMAGE
from lab.docker.engine import engine_facts
from lab.errors import PrerequisiteError, TargetError
from lab.events import Event, Listener, ignore

BASE = "debian:bookworm"
DEBOOTSTRAP_PACKAGES = "python3,openssh-server,sudo,iproute2"
HASH_LABEL = "lab.dockerfile-sha256"


def context_dir(name: str = "image") -> Path:
    """A build context of lab's own under ``lab/data/``: ``image`` (the base image) or
    ``cache`` (the package cache, built from the base image)."""
    return Path(str(files("lab") / "data" / name))


def dockerfile_hash(context: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in sorted((context or context_dir()).iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def image_is_current(client: docker.DockerClient, tag: str = DEFAULT_IMAGE,
                     arch: str | None = None, context: Path | None = None) -> bool:
    """The image exists, was built from this Dockerfile, and for the engine's architecture
    (an amd64 image on Apple silicon would run under emulation, where systemd does not).
    ``arch`` is the engine's (Debian's name), when the caller has asked the engine already."""
    try:
        image = client.images.get(tag)
    except ImageNotFound:
        return False
    if (image.labels or {}).get(HASH_LABEL) != dockerfile_hash(context):
        return False
    built_for = image.attrs.get("Architecture")
    return not built_for or built_for == (arch or engine_facts(client).debian_arch)


# Where a build's packages come from: lab.docker.cache.PackageCache.build_through, or none.
Through = Callable[[Listener], AbstractContextManager[dict[str, Any]]]


def build_base_image(
    client: docker.DockerClient,
    tag: str = DEFAULT_IMAGE,
    rebuild: bool = False,
    on_event: Listener = ignore,
    through: Through | None = None,
) -> str:
    """Make sure ``tag`` exists and matches the Dockerfile; returns the tag. ``rebuild``:
    build it again whatever, every step (so with the packages the mirror has today).

    ``through``: the package cache's :meth:`~lab.docker.cache.PackageCache.build_through`, asked
    only when there is something to build. While the cache runs the build fetches through it,
    so after `lab cache warm` the base image can be made again with no network
    (``debian:bookworm`` must be here already, as any earlier build leaves it)."""
    if not rebuild and image_is_current(client, tag):
        on_event(Event("image", f"{tag} is up to date", subject=tag))
        return tag
    ensure_debian_base(client, on_event)
    with (through or _direct)(on_event) as arguments:
        return build_image(client, context_dir(), tag, on_event, fresh=rebuild, **arguments)


@contextlib.contextmanager
def _direct(on_event: Listener) -> Iterator[dict[str, Any]]:
    """Packages straight from the mirror: no build arguments."""
    yield {}


def build_image(client: docker.DockerClient, context: Path, tag: str,
                on_event: Listener = ignore, fresh: bool = False, **through: Any) -> str:
    """Build ``tag`` from the Dockerfile in ``context``, labelled with its hash (so
    :func:`image_is_current` can tell); the build it replaces is removed.

    ``fresh``: every step runs again (docker's layer cache unused), so packages are fetched
    anew. ``through``: from :meth:`lab.docker.cache.PackageCache.build_through`, to fetch them
    through lab's package cache."""
    previous = _image_id(client, tag)
    on_event(Event("image", f"building {tag}", subject=tag))
    try:
        stream = client.api.build(
            path=str(context), tag=tag, rm=True, forcerm=True, decode=True, nocache=fresh,
            labels={HASH_LABEL: dockerfile_hash(context)}, **through,
        )
        for chunk in stream:
            if "error" in chunk:
                raise TargetError(f"building {tag} failed: {chunk['error'].strip()}")
            line = (chunk.get("stream") or "").strip()
            if line:
                on_event(Event("build-log", line, subject=tag))
    except (APIError, BuildError) as exc:
        raise TargetError(f"building {tag} failed: {exc}") from None
    on_event(Event("image", f"built {tag}", subject=tag))
    if previous and previous != _image_id(client, tag):
        # The old build is now untagged: remove it, unless servers still run from it.
        with contextlib.suppress(APIError):
            client.images.remove(previous)
    return tag


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except ImageNotFound:
        return None


def ensure_debian_base(client: docker.DockerClient, on_event: Listener = ignore) -> None:
    """Have ``debian:bookworm`` locally: present, pulled, or bootstrapped with debootstrap."""
    try:
        client.images.get(BASE)
        return
    except ImageNotFound:
        pass
    on_event(Event("image", f"pulling {BASE}", subject=BASE))
    try:
        client.images.pull("debian", tag="bookworm")
        return
    except APIError as exc:
        on_event(Event("image", f"pull failed ({exc.explanation}); bootstrapping locally"))
    bootstrap_debian(client, on_event)


def debootstrap_command(root: str, arch: str) -> list[str]:
    """A minimal bookworm for the engine's architecture (Debian's name: amd64, arm64)."""
    return ["debootstrap", "--variant=minbase", f"--arch={arch}",
            f"--include={DEBOOTSTRAP_PACKAGES}", "bookworm", root]


def bootstrap_debian(client: docker.DockerClient, on_event: Listener = ignore) -> None:
    """debootstrap a minimal bookworm and import it as ``debian:bookworm`` (about a minute)."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise PrerequisiteError(
            f"{BASE} cannot be pulled and cannot be bootstrapped here: run as root with "
            "debootstrap installed (`apt-get install -y debootstrap`), or make the registry "
            "reachable and run `docker pull debian:bookworm`"
        )
    arch = engine_facts(client).debian_arch
    here = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if here and here != arch:
        raise PrerequisiteError(
            f"{BASE} cannot be pulled, and the engine runs {arch} while this machine is {here}: "
            f"make the registry reachable (`docker pull debian:bookworm`), or run `lab image "
            f"build` on a {arch} machine"
        )
    with tempfile.TemporaryDirectory(prefix="lab-rootfs-") as root:
        command = debootstrap_command(root, arch)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                on_event(Event("build-log", line.rstrip(), subject=BASE))
        if process.returncode != 0:
            raise TargetError(f"debootstrap failed (exit {process.returncode}); see output above")
        on_event(Event("image", f"importing {BASE}", subject=BASE))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            client.api.import_image_from_stream(tar.stdout, repository="debian", tag="bookworm")
        finally:
            tar.stdout.close()
            tar.wait()
