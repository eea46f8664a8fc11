"""lab's package cache: Debian's apt-cacher-ng in one container every lab on the engine shares.

Thirty laptops installing nginx at once over a conference network is where workshops fail.
With the cache warm (``lab cache warm``, online), servers fetch their packages from it, and a
course runs with no network at all. It is one container (``lab-cache``, image
``lab/cache:bookworm``, built from lab's base image by ``lab/data/cache/Dockerfile``) with its
data on a named volume of the same name, labelled ``lab.cache`` and never ``lab.name``: no
``lab destroy`` removes it, ``lab cache clear`` does. It publishes no port. Servers reach it
because it joins each lab's network under the alias ``lab-cache`` when that lab creates
servers (:func:`use_package_cache`), and each new server gets an apt setting that asks for the
cache when it answers within a second and goes straight to the mirror otherwise: apt never
waits on a cache that has stopped, and a lab made while no cache runs fetches as it always did.

apt-cacher-ng revalidates index files with the mirror on every request; with no mirror it
would fail them. So whenever a lab joins it, the cache is told whether the mirror answers
(its ``Offlinemode``): offline, it serves what it holds and answers 503 for what it does not,
which :func:`missing_packages_hint` turns into a sentence naming the packages.

``LAB_CACHE`` names another cache (container and volume): the tests run their own, and leave
the user's alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab.errors import TargetError, UsageError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
from lab.targets.base import LABEL_PREFIX, extra_labels

NAME_ENV = "LAB_CACHE"
DEFAULT_NAME = "lab-cache"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
IMAGE = "lab/cache:bookworm"
ALIAS = "lab-cache"  # what servers call it, on their lab's network
PORT = 3142
DATA = "/var/cache/apt-cacher-ng"
LOG = "/var/log/apt-cacher-ng/apt-cacher.log"
MODE_FILE = "/etc/apt-cacher-ng/zz_lab.conf"
MIRROR = "deb.debian.org"  # where apt-cacher-ng fetches Debian from (its backends_debian)
LABEL = f"{LABEL_PREFIX}cache"

# What a server gets at creation, when the cache runs: apt asks the script for a proxy.
APT_CONF = "etc/apt/apt.conf.d/01lab-cache"
APT_SCRIPT = "etc/apt/lab-cache-proxy"
APT_CONF_TEXT = f"""\
// lab's package cache (`lab cache status`), when it answers; else Debian's mirror directly.
Acquire::http::Proxy-Auto-Detect "/{APT_SCRIPT}";
Acquire::EnableSrvRecords "false";
"""
APT_SCRIPT_TEXT = f"""\
#!/bin/sh
# Written by lab: the proxy apt uses. lab's package cache when it answers within a second,
# else DIRECT (Debian's mirror), so apt never waits on a cache that has stopped.
if timeout 1 bash -c 'exec 3<>/dev/tcp/{ALIAS}/{PORT}' 2>/dev/null; then
  echo http://{ALIAS}:{PORT}
else
  echo DIRECT
fi
"""


def cache_name() -> str:
    """The cache's container and volume name: ``LAB_CACHE``, else ``lab-cache``."""
    name = os.environ.get(NAME_ENV, "") or DEFAULT_NAME
    if not NAME.match(name):
        raise UsageError(f"{NAME_ENV}={name!r}: must be lowercase letters, digits or '-', "
                         "starting with a letter")
    return name


@dataclass(frozen=True)
class Traffic:
    """What the cache served since its container was made, from apt-cacher-ng's log."""

    hits: int = 0  # files served from the cache
    misses: int = 0  # files it had to fetch from the mirror
    errors: int = 0  # files it could not serve (offline and not cached, mirror errors)
    served_bytes: int = 0
    fetched_bytes: int = 0


def read_traffic(log: str) -> Traffic:
    """apt-cacher-ng's transfer log: ``time|O|bytes|client|file`` for each file served,
    after ``I`` lines for what it fetched from the mirror to serve it (a miss: one or more,
    a large file may take two), ``E`` for each file it could not serve."""
    hits = misses = errors = served = fetched = 0
    fetching: set[str] = set()
    for line in log.splitlines():
        parts = line.split("|", 4)
        if len(parts) < 5:
            continue
        kind, size, path = parts[1], parts[2], parts[4]
        amount = int(size) if size.isdigit() else 0
        if kind == "I":
            fetching.add(path)
            fetched += amount
        elif kind == "O":
            served += amount
            if path in fetching:
                fetching.discard(path)
                misses += 1
            else:
                hits += 1
        elif kind == "E":
            errors += 1
    return Traffic(hits, misses, errors, served, fetched)


@dataclass(frozen=True)
class CacheStatus:
    """The cache as the engine shows it now."""

    name: str
    running: bool
    exists: bool  # the container, running or not
    volume: bool
    offline: bool | None = None  # serving only what it holds (no mirror answered); None: unknown
    size_bytes: int | None = None
    traffic: Traffic = Traffic()
    networks: tuple[str, ...] = ()  # the labs' networks it has joined

    def describe(self) -> str:
        """One line, as `lab doctor` shows it."""
        if not self.running:
            kept = "; its volume is kept" if self.volume else ""
            return f"{self.name} not running: servers fetch from Debian's mirror{kept}"
        mode = "offline (serves what it holds)" if self.offline else "online"
        size = f"{self.size_bytes / 1e6:.0f} MB" if self.size_bytes is not None else "? MB"
        return (f"{self.name} running, {mode}, {size}, {self.traffic.hits} hits, "
                f"{self.traffic.misses} misses")


class PackageCache:
    """The cache container and its volume on the local engine."""

    def __init__(self, client: docker.DockerClient, name: str | None = None) -> None:
        self.client = client
        self.name = name or cache_name()

    # the container -------------------------------------------------------------------------

    def container(self) -> Container | None:
        try:
            return self.client.containers.get(self.name)
        except NotFound:
            return None

    def running(self) -> Container | None:
        container = self.container()
        return container if container is not None and container.status == "running" else None

    def start(self, on_event: Listener = ignore) -> Container:
        """Build the image if needed, make the volume and container if needed, start it."""
        container = self.container()
        if container is None:
            self._build_image(on_event)
            container = self._create(on_event)
        if container.status != "running":
            container.start()
            container.reload()
        on_event(Event("cache", f"{self.name} running", subject=self.name))
        self.follow_network(container, on_event)
        return container

    def _build_image(self, on_event: Listener) -> None:
        from lab.docker.image import build_base_image, build_image, context_dir, image_is_current

        context = context_dir("cache")
        if image_is_current(self.client, IMAGE, context=context):
            return
        build_base_image(self.client, on_event=on_event)  # FROM lab's base image
        build_image(self.client, context, IMAGE, on_event)

    def _create(self, on_event: Listener) -> Container:
        labels = self.labels()
        try:
            self.client.volumes.get(self.name)
        except NotFound:
            self.client.volumes.create(self.name, labels=labels)
        on_event(Event("cache", f"creating {self.name} (volume {self.name})", subject=self.name))
        try:
            return self.client.containers.create(
                IMAGE, name=self.name, hostname=ALIAS, labels=labels, detach=True,
                volumes={self.name: {"bind": DATA, "mode": "rw"}},
                restart_policy={"Name": "unless-stopped"},
            )
        except APIError as exc:
            raise TargetError(f"{self.name}: docker could not create the package cache: "
                              f"{exc.explanation}") from None

    def labels(self) -> dict[str, str]:
        """lab's own, never ``lab.name``: no lab's destroy finds it."""
        return {f"{LABEL_PREFIX}managed": "true", LABEL: self.name} | extra_labels()

    # labs join it --------------------------------------------------------------------------

    def join(self, network: str) -> bool:
        """Join a lab's network under :data:`ALIAS`; False when the cache is not running."""
        container = self.running()
        if container is None:
            return False
        joined = (container.attrs["NetworkSettings"].get("Networks") or {})
        if network not in joined:
            try:
                self.client.networks.get(network).connect(container, aliases=[ALIAS])
            except APIError as exc:
                if "already exists" not in str(exc):  # another lab command joined it first
                    raise TargetError(f"{self.name} could not join {network}: "
                                      f"{exc.explanation}") from None
        return True

    @contextlib.contextmanager
    def build_through(self, on_event: Listener = ignore) -> Iterator[dict[str, Any]]:
        """Arguments for ``client.api.build`` that send a build's apt through the cache, when
        it runs ({} when it does not: the build fetches from the mirror, as without lab's).

        The build's steps run on a network of their own with no route out (``internal``),
        where the cache answers as :data:`ALIAS`: whatever the steps fetch comes from the
        cache, which fetches from the mirror when online and serves what it holds when not.
        The network goes when the build is done."""
        container = self.running()
        if container is None:
            yield {}
            return
        network = self.client.networks.create(
            f"{self.name}-build-{secrets.token_hex(3)}", driver="bridge", internal=True,
            labels=self.labels())
        try:
            network.connect(container, aliases=[ALIAS])
            self.follow_network(container, on_event)
            on_event(Event("cache", f"building through {self.name}", subject=self.name))
            yield {"network_mode": network.name,
                   "buildargs": {"http_proxy": f"http://{ALIAS}:{PORT}"}}
        finally:
            with contextlib.suppress(APIError):
                network.disconnect(container, force=True)
            with contextlib.suppress(APIError):
                network.remove()

    def follow_network(self, container: Container, on_event: Listener = ignore) -> bool:
        """Serve offline when the mirror does not answer, online when it does (apt-cacher-ng
        reads its mode at start, so a change restarts it: a second). Returns offline."""
        # One exec: the mode it runs in, then whether the mirror takes a connection.
        probe = (f"cat {MODE_FILE}; timeout 5 bash -c 'exec 3<>/dev/tcp/{MIRROR}/80' "
                 "2>/dev/null && echo reached")
        answer = container.exec_run(["sh", "-c", probe]).output or b""
        offline = b"reached" not in answer
        if (b"Offlinemode: 1" in answer) != offline:
            container.exec_run(["sh", "-c", f"printf 'Offlinemode: {int(offline)}\\n' > "
                                            f"{MODE_FILE}"], user="root")
            container.restart(timeout=5)
            _wait_listening(container)
            now = "does not answer: offline" if offline else "answers: online"
            on_event(Event("cache", f"{self.name}: {MIRROR} {now}", subject=self.name))
        return offline

    @staticmethod
    def _offline(container: Container) -> bool:
        result = container.exec_run(["cat", MODE_FILE])
        return b"Offlinemode: 1" in (result.output or b"")

    # status and clear ----------------------------------------------------------------------

    def status(self) -> CacheStatus:
        container = self.container()
        volume = self._volume() is not None
        if container is None or container.status != "running":
            return CacheStatus(self.name, False, container is not None, volume)
        size = container.exec_run(["du", "-sb", DATA]).output.split(b"\t")[0]
        log = container.exec_run(["cat", LOG]).output or b""
        networks = tuple(n for n in container.attrs["NetworkSettings"]["Networks"]
                         if n != "bridge")
        return CacheStatus(self.name, True, True, volume, self._offline(container),
                           int(size) if size.isdigit() else None,
                           read_traffic(log.decode(errors="replace")), networks)

    def _volume(self) -> Any:
        try:
            return self.client.volumes.get(self.name)
        except NotFound:
            return None

    def clear(self, on_event: Listener = ignore) -> list[str]:
        """Remove the container and its volume (what it cached); returns what was removed."""
        removed = []
        container = self.container()
        if container is not None:
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
            removed.append(f"container {self.name}")
        volume = self._volume()
        if volume is not None:
            with contextlib.suppress(NotFound):
                volume.remove(force=True)
            removed.append(f"volume {self.name}")
        for item in removed:
            on_event(Event("destroyed", f"{item} removed", subject=self.name))
        return removed


def cache_check(client: docker.DockerClient) -> Check:
    """For `lab doctor`: a lab does without the cache, so it is never required."""
    status = PackageCache(client).status()
    return Check("package cache", status.running, status.describe(),
                 "`lab cache warm` (online) starts it and fills it", required=False)


def use_package_cache(client: docker.DockerClient, network: str, containers: list[str],
                      on_event: Listener = ignore) -> bool:
    """What a target calls once its servers' containers exist: when the cache runs, it joins
    the lab's network and each container gets the apt setting that uses it. False (and
    nothing done) when no cache runs: the servers fetch from the mirror, as without lab's."""
    cache = PackageCache(client)
    container = cache.running()
    if container is None or not cache.join(network):
        return False
    cache.follow_network(container, on_event)
    archive = apt_proxy_archive()
    for name in containers:
        try:
            client.containers.get(name).put_archive("/", archive)
        except (NotFound, APIError) as exc:
            raise TargetError(f"{name}: could not give it the package cache's apt setting: "
                              f"{exc}") from None
    on_event(Event("cache", f"{', '.join(containers)}: packages through {cache.name}"))
    return True


def apt_proxy_archive() -> bytes:
    """A tar for ``put_archive("/")``: apt's setting and the script it asks for a proxy."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text, mode in ((APT_CONF, APT_CONF_TEXT, 0o644),
                                 (APT_SCRIPT, APT_SCRIPT_TEXT, 0o755)):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _wait_listening(container: Container, seconds: float = 10.0) -> None:
    """Until apt-cacher-ng accepts connections again after a restart."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = ["timeout", "1", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{PORT}"]
        if container.exec_run(probe).exit_code == 0:
            return
        time.sleep(0.2)
    raise TargetError(f"{container.name}: apt-cacher-ng did not come back after a restart; "
                      f"see `docker logs {container.name}`")


# A .deb apt could not fetch (the package: its file name up to the first "_"), for any reason
# but 404, which is a stale package index rather than a missing network.
FAILED_FETCH = re.compile(r"Failed to fetch \S*/pool/\S*?/([a-z0-9][a-z0-9+.-]*)_\S+\.deb\s+"
                          r"(?=\S)(?!404\b)")


def missing_packages_hint(text: str) -> str | None:
    """apt's words for packages it could not fetch (from the cache offline, or a mirror it
    cannot reach) as one sentence that names them and says what to do; None otherwise."""
    found = list(dict.fromkeys(m.group(1) for m in FAILED_FETCH.finditer(text)))
    if not found:
        return None
    return (f"package{'s' if len(found) > 1 else ''} {', '.join(found)} could not be "
            f"fetched: not in lab's package cache and no Debian mirror answered; run "
            f"`lab cache warm` while online (and `lab cache status` to see the cache)")
