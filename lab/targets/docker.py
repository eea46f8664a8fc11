"""Docker target: each server is a systemd container with sshd, on a per-lab network.

Ports are published on 127.0.0.1 only. The lab's public key is copied in before the
container starts, so the first SSH attempt after boot succeeds.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from lab.engine import EngineFacts, docker_client, engine_facts
from lab.errors import PrerequisiteError, TargetError
from lab.events import Event, Listener, ignore
from lab.state import Liveness, ServerRecord
from lab.targets.base import LABEL_PREFIX, ServerSpec, Target, labels_for
from lab.targets.runmode import OVERRIDE, RunMode, choose

LOOPBACK = "127.0.0.1"
CONSOLE_LINES = 12  # of a server's console, in the report of a boot that did not finish
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a terminal's colours, in console output
# "created" is a container that was never started (a `lab up` killed between create and
# start, or a start that failed): it has no published ports and will not start by itself, so
# it counts as dead and `lab up` replaces it instead of waiting 90 s for SSH on port 0.
LIVE_STATUS = {"running": Liveness.RUNNING, "restarting": Liveness.RESTARTING}


class DockerTarget(Target):
    name = "docker"

    def __init__(self, config, key) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, key)
        self.client = docker_client()
        self.network_name = f"lab-{config.name}"

    @functools.cached_property
    def engine(self) -> EngineFacts:
        return engine_facts(self.client)

    @functools.cached_property
    def run_mode(self) -> RunMode:
        """How servers run on this engine so that systemd boots (see runmode.py)."""
        return choose(self.engine)

    # create --------------------------------------------------------------------------------

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        if not specs:
            return []
        for image in {s.image for s in specs}:
            self.require_image(image)
        self.run_mode  # noqa: B018 - an engine no mode suits stops here, before anything is made
        self._ensure_network()
        with ThreadPoolExecutor(max_workers=min(32, len(specs))) as pool:
            return list(pool.map(lambda spec: self._create_one(spec, on_event), specs))

    def _create_one(self, spec: ServerSpec, on_event: Listener) -> ServerRecord:
        ports = {"22/tcp": (LOOPBACK, None)} | {f"{p}/tcp": (LOOPBACK, None) for p in spec.ports}
        ports |= {f"{p}/tcp": (LOOPBACK, host) for p, host in spec.fixed_ports.items()}
        try:
            container = self.client.containers.create(
                spec.image,
                name=self.container_name(spec.name),
                hostname=spec.name,
                labels=labels_for(self.config.name, spec) | {f"{LABEL_PREFIX}image": spec.image},
                network=self.network_name,
                ports=ports,
                detach=True,
                **self.run_mode.sdk_options(),
            )
            container.put_archive("/root/.ssh", _authorized_keys_tar(self.key.public_text))
            container.start()
            container.reload()
        except APIError as exc:
            raise TargetError(
                f"{spec.name}: docker could not create it: {exc.explanation}"
            ) from None
        on_event(Event("created", f"{spec.name} started", subject=spec.name))
        return self._record(container)

    def has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except ImageNotFound:
            return False
        return True

    def require_image(self, image: str) -> None:
        if not self.has_image(image):
            raise PrerequisiteError(
                f"image {image} not found: run `lab image build` (or set `image:` in lab.yml)"
            )

    def _ensure_network(self) -> None:
        # Docker's name filter matches substrings: lab-t would find lab-t2 and skip creation.
        found = self.client.networks.list(names=[self.network_name])
        if not any(n.name == self.network_name for n in found):
            self.client.networks.create(
                self.network_name, driver="bridge", labels=labels_for(self.config.name)
            )

    # list / wait ---------------------------------------------------------------------------

    def list(self) -> list[ServerRecord]:
        return [self._record(c) for c in self._containers()]

    def boot_failure(self, server: ServerRecord) -> str | None:
        """A server whose container stopped will never answer: say so at once."""
        try:
            container = self.client.containers.get(self.container_name(server.name))
        except NotFound:
            return "its container is gone"
        if container.status in LIVE_STATUS:
            return None
        state = container.attrs.get("State") or {}
        error = f"; {state['Error']}" if state.get("Error") else ""
        return f"its container {container.status} with status {state.get('ExitCode')}{error}"

    def boot_report(self, server: ServerRecord) -> str:
        """The end of the server's console (systemd writes its boot there) and the engine."""
        return console_report(self.console(server.name), self.engine, self.run_mode)

    def console(self, server: str) -> str:
        """What the server's container wrote on its console, or "" when it has gone."""
        try:
            container = self.client.containers.get(self.container_name(server))
            return container.logs(tail=200).decode(errors="replace")
        except (NotFound, APIError):
            return ""

    # destroy -------------------------------------------------------------------------------

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        containers = self._containers()
        if names is not None:
            containers = [c for c in containers if c.labels.get(f"{LABEL_PREFIX}server") in names]

        def remove(container: Container) -> str:
            server = container.labels.get(f"{LABEL_PREFIX}server", container.name)
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
            on_event(Event("destroyed", f"{server} removed", subject=server))
            return server

        removed: list[str] = []
        if containers:
            with ThreadPoolExecutor(max_workers=min(32, len(containers))) as pool:
                removed = list(pool.map(remove, containers))
        if names is None:
            self._remove_networks()
        return removed

    def _remove_networks(self) -> None:
        for network in self.client.networks.list(filters={"label": self._lab_label()}):
            with contextlib.suppress(NotFound, APIError):
                network.remove()

    def bake(self, server: ServerRecord, tag: str, labels: dict[str, str]) -> str:
        container = self.client.containers.get(self.container_name(server.name))
        repository, _, version = tag.partition(":")
        changes = [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]
        container.commit(repository=repository, tag=version or "latest", changes=changes,
                         pause=True)
        return tag

    def remove_images(self) -> list[str]:
        """Remove the images this lab baked (labelled lab.name=<lab>, lab.version)."""
        removed = []
        for image in self.client.images.list(filters={"label": self._lab_label()}):
            if "lab.version" not in (image.labels or {}):
                continue
            for tag in image.tags or [image.id]:
                with contextlib.suppress(NotFound, APIError):
                    self.client.images.remove(tag, force=True)
                    removed.append(tag)
        return removed

    def close(self) -> None:
        self.client.close()

    # helpers -------------------------------------------------------------------------------

    def container_name(self, server: str) -> str:
        return f"{self.config.name}-{server}"

    def _lab_label(self) -> str:
        return f"{LABEL_PREFIX}name={self.config.name}"

    def _containers(self) -> list[Container]:
        # ignore_removed: the SDK lists, then inspects each container; one removed in between
        # (a concurrent destroy, a rolled-back create) would otherwise raise NotFound.
        return self.client.containers.list(
            all=True, filters={"label": self._lab_label()}, ignore_removed=True
        )

    def _record(self, container: Container) -> ServerRecord:
        labels = container.labels
        attrs = container.attrs
        networks = attrs["NetworkSettings"].get("Networks") or {}
        address = (networks.get(self.network_name) or {}).get("IPAddress", "")
        published: dict[int, int] = {}
        for port, bindings in (attrs["NetworkSettings"].get("Ports") or {}).items():
            if bindings:
                published[int(port.split("/")[0])] = int(bindings[0]["HostPort"])
        created = attrs.get("Created", "")
        return ServerRecord(
            name=labels.get(f"{LABEL_PREFIX}server", container.name),
            role=labels.get(f"{LABEL_PREFIX}role", "unknown"),
            target=self.name,
            address=address,
            ssh_host=LOOPBACK,
            ssh_port=published.pop(22, 0),
            ssh_user="root",
            image=labels.get(f"{LABEL_PREFIX}image", attrs["Config"].get("Image", "")),
            generation=int(labels.get(f"{LABEL_PREFIX}generation", "1")),
            liveness=LIVE_STATUS.get(container.status, Liveness.DEAD),
            ports=published,
            created=_docker_time(created),
        )


def console_report(console: str, engine: EngineFacts, mode: RunMode) -> str:
    """Indented lines for a boot failure: the console's last lines (colours and the carriage
    returns of a terminal removed), the engine, and where to go next."""
    lines = [line.strip() for line in ANSI.sub("", console).replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line][-CONSOLE_LINES:]
    shown = "\n".join(f"    {line}" for line in lines) if lines else "    (nothing)"
    other = (f"unset {OVERRIDE} to let lab choose" if mode.why.startswith("chosen by")
             else f"{OVERRIDE}=host-cgroup tries another way")
    return (f"\n  console (last {len(lines)} lines):\n{shown}\n"
            f"  engine: {engine.describe()}; run mode {mode.name}\n"
            f"  `lab doctor` shows how lab runs servers on this engine; {other}")


def _authorized_keys_tar(public_key: str) -> bytes:
    """A tar holding ``authorized_keys`` (0600, root), for ``put_archive`` into /root/.ssh."""
    data = (public_key + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("authorized_keys")
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _docker_time(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return time.time()
