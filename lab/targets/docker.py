"""Docker target: each server is a systemd container with sshd, on a per-lab network.

Ports are published on 127.0.0.1 only. The lab's public key, and a host key lab makes for
the server, are copied in before the container starts: the first SSH attempt after boot
succeeds, and checks that it reached this very server (see :mod:`lab.access.knownhosts`). What
this target shares with Vagrant's docker provider (the network, finding containers, records,
boot reports, baking) is :class:`~lab.docker.dockerengine.DockerEngine`'s.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from docker.errors import APIError

from lab.access.keys import HostKey, KeyPair, host_key_for
from lab.config import DEFAULT_IMAGE, LabConfig
from lab.docker.cache import PackageCache, cache_check, use_package_cache
from lab.docker.dockerengine import PUBLISH_ADDRESS, DockerEngine, console_report
from lab.docker.engine import EngineFacts, docker_client, engine_facts
from lab.docker.limits import check_room
from lab.docker.runmode import RunMode, choose
from lab.errors import ConfigError, LabError, TargetError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
from lab.state import ServerRecord
from lab.targets.base import LABEL_PREFIX, ServerSpec, Target, labels_for

HOME = f"{LABEL_PREFIX}home"  # the folder a container's lab is run from

__all__ = ["DockerTarget", "console_report"]


class DockerTarget(Target):
    name = "docker"

    def __init__(self, config: LabConfig, key: KeyPair) -> None:
        super().__init__(config, key)
        self.docker = DockerEngine(config.name)
        self.client = self.docker.client
        self.network_name = self.docker.network_name

    @property
    def run_mode(self) -> RunMode:
        """How servers run on this engine so that systemd boots (see :mod:`lab.docker.runmode`)."""
        return self.docker.run_mode

    # create --------------------------------------------------------------------------------

    def check_room(self, count: int) -> None:
        """The machine's shared limits (inotify first): a server past one dies at boot."""
        check_room(count)

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        if not specs:
            return []
        for image in {s.image for s in specs}:
            self.docker.require_image(image)
        self.run_mode  # noqa: B018 - an engine no mode suits stops here, before anything is made
        self.docker.ensure_network()
        with ThreadPoolExecutor(max_workers=min(32, len(specs))) as pool:
            records = list(pool.map(lambda spec: self._create_one(spec, on_event), specs))
        use_package_cache(self.client, self.network_name,
                          [self.container_name(s.name) for s in specs], on_event)
        return records

    def _create_one(self, spec: ServerSpec, on_event: Listener) -> ServerRecord:
        here = PUBLISH_ADDRESS
        ports = {"22/tcp": (here, None)} | {f"{p}/tcp": (here, None) for p in spec.ports}
        ports |= {f"{p}/tcp": (here, host) for p, host in spec.fixed_ports.items()}
        try:
            container = self.client.containers.create(
                spec.image,
                name=self.container_name(spec.name),
                hostname=spec.name,
                labels=labels_for(self.config.name, spec) | {f"{LABEL_PREFIX}image": spec.image,
                                                              HOME: self.home},
                network=self.network_name,
                ports=ports,
                detach=True,
                **self.run_mode.sdk_options(),
            )
            container.put_archive("/root/.ssh", _authorized_keys_tar(self.key.public_text))
            # Over whatever host key the image carries (a baked one): this server's own.
            host_key = host_key_for(spec.name, self.config.name)
            container.put_archive("/etc/ssh", _host_key_tar(host_key))
            container.start()
            container.reload()
        except APIError as exc:
            raise TargetError(
                f"{spec.name}: docker could not create it: {exc.explanation}"
            ) from None
        record = self.docker.record(container, self.name)
        self.known_hosts.trust(spec.name, record.ssh_host, record.ssh_port, host_key.public)
        on_event(Event("created", f"{spec.name} started", subject=spec.name))
        return record

    def has_image(self, image: str) -> bool:
        return self.docker.has_image(image)

    # list / wait ---------------------------------------------------------------------------

    def list(self) -> list[ServerRecord]:
        return [self.docker.record(c, self.name) for c in self._own(self.docker.containers())]

    @property
    def home(self) -> str:
        """The folder of the lab.yml this lab is run from, on each of its containers."""
        return str(self.config.directory.resolve())

    def _own(self, containers: list[Any]) -> list[Any]:
        """``containers``, when they are this lab's: a lab of the same name from another
        folder (two `lab init demo`) is refused, never adopted, nor destroyed from here."""
        theirs = sorted({c.labels.get(HOME) for c in containers} - {None, self.home})
        if theirs:
            name = self.config.name
            raise ConfigError(
                f"name: lab {name} already runs on this Docker engine for the lab in "
                f"{theirs[0]}: give this lab another `name:` in lab.yml (that folder moved or "
                f"gone? `lab destroy` there, or `docker rm -f` what `docker ps -a --filter "
                f"label=lab.name={name}` lists)")
        return containers

    def boot_failure(self, server: ServerRecord) -> str | None:
        return self.docker.boot_failure(server.name)

    def boot_report(self, server: ServerRecord) -> str:
        return self.docker.boot_report(server.name)

    # destroy -------------------------------------------------------------------------------

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        self._own(self.docker.containers())
        return self.docker.remove(names, on_event)

    def bake(self, server: ServerRecord, tag: str, labels: dict[str, str]) -> str:
        return self.docker.commit(server.name, tag, labels)

    def remove_images(self) -> list[str]:
        return self.docker.remove_images()

    def close(self) -> None:
        self.docker.close()

    def container_name(self, server: str) -> str:
        return self.docker.container_name(server)

    # what the target needs -----------------------------------------------------------------

    @classmethod
    def prerequisites(cls) -> list[Check]:
        """A Docker engine that answers, a run mode that boots systemd on it, the base image."""
        from lab.docker.image import image_is_current

        try:
            client = docker_client(timeout=10)
        except LabError as exc:
            fix = ("run `make setup` (installs docker.io and starts dockerd)" if os.geteuid() == 0
                   else "install Docker Engine or Docker Desktop and start it")
            return [Check("docker engine", False, str(exc).split(";")[0], fix)]
        try:
            facts = engine_facts(client)
            current = image_is_current(client, DEFAULT_IMAGE, facts.debian_arch)
            cache = cache_check(client)
        finally:
            client.close()
        image = Check("base image", current, DEFAULT_IMAGE if current else
                      f"{DEFAULT_IMAGE} missing or out of date", "run `lab image build`")
        return [Check("docker engine", True, facts.describe()), run_mode_check(facts), image,
                cache]

    @classmethod
    def prepare_image(cls, config: LabConfig | None, rebuild: bool = False,
                      on_event: Listener = ignore) -> str | None:
        """Build lab's base image (quick when it is current); returns its tag."""
        from lab.docker.image import build_base_image

        client = docker_client()
        try:
            return build_base_image(client, rebuild=rebuild, on_event=on_event,
                                    through=PackageCache(client).build_through)
        finally:
            client.close()


def run_mode_check(facts: EngineFacts) -> Check:
    """How servers will run on this engine so that systemd boots, or why they cannot."""
    try:
        mode = choose(facts)
    except LabError as exc:
        return Check("server run mode", False, "none works on this engine", str(exc))
    detail = "; ".join([f"{mode.name}: {mode.why}", *mode.notes])
    return Check("server run mode", True, detail)


def _authorized_keys_tar(public_key: str) -> bytes:
    """A tar holding ``authorized_keys`` (0600, root), for ``put_archive`` into /root/.ssh."""
    return _tar({"authorized_keys": (public_key + "\n", 0o600)})


def _host_key_tar(key: HostKey) -> bytes:
    """A tar holding sshd's ed25519 host key (the one key lab's image has sshd use), for
    ``put_archive`` into /etc/ssh."""
    return _tar({"ssh_host_ed25519_key": (key.private, 0o600),
                 "ssh_host_ed25519_key.pub": (key.public + "\n", 0o644)})


def _tar(files: dict[str, tuple[str, int]]) -> bytes:
    """A tar of text files owned by root: name -> (content, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
