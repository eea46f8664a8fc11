"""One lab on the Docker engine: what the docker target and Vagrant's docker provider share.

Both run servers as containers of lab's base image, on the lab's network ``lab-<name>``,
labelled ``lab.name=<name>``; both find them by label, read their address and published
ports, report a boot that did not finish, remove them, and bake images from them. This class
does each of those once, publicly, so neither target reaches into the other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from lab.docker.engine import EngineFacts, docker_client, engine_facts
from lab.docker.limits import console_hint
from lab.docker.runmode import OVERRIDE, RunMode, choose
from lab.errors import PrerequisiteError
from lab.events import Event, Listener, ignore
from lab.state import Liveness, ServerRecord
from lab.targets.base import LABEL_PREFIX, labels_for

# Where the engine publishes ports: lab asks for the loopback address only, so nothing
# beyond this machine reaches a server. Records carry it as ssh_host and ports_host.
PUBLISH_ADDRESS = "127.0.0.1"
CONSOLE_LINES = 12  # of a server's console, in the report of a boot that did not finish
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a terminal's colours, in console output
# Docker's default address pools give some 30 bridge networks per engine, one per lab.
NO_ADDRESS_POOL = (
    "Docker has no address range left for network {network} (its default pools hold about 30 "
    "networks, one per lab): `lab destroy` labs you are done with, or `docker network prune`; "
    "a classroom engine wants smaller pools, e.g. dockerd --default-address-pool "
    "base=10.200.0.0/16,size=24 (256 networks)")
# "created" is a container that was never started (a `lab up` killed between create and
# start, or a start that failed): it has no published ports and will not start by itself, so
# it counts as dead and `lab up` replaces it instead of waiting 90 s for SSH on port 0.
LIVE_STATUS = {"running": Liveness.RUNNING, "restarting": Liveness.RESTARTING}


class DockerEngine:
    """The containers, network and images of one lab on the local Docker engine."""

    def __init__(self, lab: str, client: docker.DockerClient | None = None) -> None:
        self.lab = lab
        self.client = client or docker_client()
        self.network_name = f"lab-{lab}"

    @functools.cached_property
    def facts(self) -> EngineFacts:
        return engine_facts(self.client)

    @functools.cached_property
    def run_mode(self) -> RunMode:
        """How servers run on this engine so that systemd boots (see runmode.py)."""
        return choose(self.facts)

    def container_name(self, server: str) -> str:
        return f"{self.lab}-{server}"

    @property
    def lab_label(self) -> str:
        return f"{LABEL_PREFIX}name={self.lab}"

    # images --------------------------------------------------------------------------------

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

    def commit(self, server: str, tag: str, labels: dict[str, str]) -> str:
        """Snapshot a server's container into image ``tag`` with ``labels``."""
        container = self.client.containers.get(self.container_name(server))
        repository, _, version = tag.partition(":")
        changes = [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]
        container.commit(repository=repository, tag=version or "latest", changes=changes,
                         pause=True)
        return tag

    def remove_images(self) -> list[str]:
        """Remove the images this lab baked (labelled lab.name=<lab>, lab.version)."""
        removed = []
        for image in self.client.images.list(filters={"label": self.lab_label}):
            if "lab.version" not in (image.labels or {}):
                continue
            for tag in image.tags or [image.id]:
                with contextlib.suppress(NotFound, APIError):
                    self.client.images.remove(tag, force=True)
                    removed.append(tag)
        return removed

    # network and containers ----------------------------------------------------------------

    def ensure_network(self) -> None:
        """The lab's bridge network, made once, labelled so destroy finds it."""
        # Docker's name filter matches substrings: lab-t would find lab-t2 and skip creation.
        found = self.client.networks.list(names=[self.network_name])
        if not any(n.name == self.network_name for n in found):
            try:
                self.client.networks.create(
                    self.network_name, driver="bridge", labels=labels_for(self.lab)
                )
            except APIError as exc:
                if "address pool" not in str(exc.explanation):
                    raise
                raise PrerequisiteError(NO_ADDRESS_POOL.format(network=self.network_name)) from None

    def containers(self) -> list[Container]:
        """Every container with the lab's label, running or not."""
        # ignore_removed: the SDK lists, then inspects each container; one removed in between
        # (a concurrent destroy, a rolled-back create) would otherwise raise NotFound.
        return self.client.containers.list(
            all=True, filters={"label": self.lab_label}, ignore_removed=True
        )

    def by_server(self) -> dict[str, Container]:
        """The lab's containers by the server name in their label."""
        return {c.labels.get(f"{LABEL_PREFIX}server", c.name): c for c in self.containers()}

    def record(self, container: Container, target: str) -> ServerRecord:
        """A server as its container shows it: address on the lab network, published ports
        on :data:`PUBLISH_ADDRESS`, liveness from the container's state."""
        labels = container.labels
        attrs = container.attrs
        networks = attrs["NetworkSettings"].get("Networks") or {}
        address = (networks.get(self.network_name) or {}).get("IPAddress", "")
        published: dict[int, int] = {}
        for port, bindings in (attrs["NetworkSettings"].get("Ports") or {}).items():
            if bindings:
                published[int(port.split("/")[0])] = int(bindings[0]["HostPort"])
        host = PUBLISH_ADDRESS
        if not published and address and container.status == "running":
            # On an --internal network (no route out: how lab proves a course runs offline)
            # the engine publishes nothing; this machine still reaches the server's address.
            host = address
            published = {int(p.split("/")[0]): int(p.split("/")[0])
                         for p in attrs["Config"].get("ExposedPorts") or {}}
        return ServerRecord(
            name=labels.get(f"{LABEL_PREFIX}server", container.name),
            role=labels.get(f"{LABEL_PREFIX}role", "unknown"),
            target=target,
            address=address,
            ssh_host=host,
            ssh_port=published.pop(22, 0),
            ssh_user="root",
            image=labels.get(f"{LABEL_PREFIX}image", attrs["Config"].get("Image", "")),
            generation=int(labels.get(f"{LABEL_PREFIX}generation", "1")),
            liveness=LIVE_STATUS.get(container.status, Liveness.DEAD),
            ports=published,
            ports_host=host,
            created=_docker_time(attrs.get("Created", "")),
        )

    def remove(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        """Remove the named servers' containers, or with ``names`` None every container and
        network with the lab's label; returns the servers removed."""
        containers = self.containers()
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
            for network in self.client.networks.list(filters={"label": self.lab_label}):
                with contextlib.suppress(NotFound, APIError):
                    _leave(network)
                    network.remove()
        return removed

    # a boot that did not finish -------------------------------------------------------------

    def boot_failure(self, server: str) -> str | None:
        """A server whose container stopped will never answer: say so at once."""
        try:
            container = self.client.containers.get(self.container_name(server))
        except NotFound:
            return "its container is gone"
        if container.status in LIVE_STATUS:
            return None
        state = container.attrs.get("State") or {}
        error = f"; {state['Error']}" if state.get("Error") else ""
        return f"its container {container.status} with status {state.get('ExitCode')}{error}"

    def boot_report(self, server: str) -> str:
        """The end of the server's console (systemd writes its boot there) and the engine."""
        return console_report(self.console(server), self.facts, self.run_mode)

    def console(self, server: str) -> str:
        """What the server's container wrote on its console, or "" when it has gone."""
        try:
            container = self.client.containers.get(self.container_name(server))
            return container.logs(tail=200).decode(errors="replace")
        except (NotFound, APIError):
            return ""

    def close(self) -> None:
        self.client.close()


def console_report(console: str, engine: EngineFacts, mode: RunMode) -> str:
    """Indented lines for a boot failure: the console's last lines (colours and the carriage
    returns of a terminal removed), the machine's limit it shows was reached if it does, the
    engine, and where to go next."""
    lines = [line.strip() for line in ANSI.sub("", console).replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line][-CONSOLE_LINES:]
    shown = "\n".join(f"    {line}" for line in lines) if lines else "    (nothing)"
    other = (f"unset {OVERRIDE} to let lab choose" if mode.why.startswith("chosen by")
             else f"{OVERRIDE}=host-cgroup tries another way")
    return (f"\n  console (last {len(lines)} lines):\n{shown}\n{console_hint(console)}"
            f"  engine: {engine.describe()}; run mode {mode.name}\n"
            f"  `lab doctor` shows how lab runs servers on this engine; {other}")


def _leave(network: Network) -> None:
    """Disconnect what others joined to a lab's network (lab's package cache, shared by
    every lab), which the engine would otherwise refuse to remove."""
    network.reload()
    for container in network.containers:
        with contextlib.suppress(NotFound, APIError):
            network.disconnect(container, force=True)


def _docker_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return time.time()
