"""An in-memory Docker engine: the parts of docker.DockerClient that lab's DockerEngine uses,
filtering labels and names as Docker does. The unit tests of the docker engine code and of the
vagrant target's docker provider run on it; the same code meets a real Docker in
tests/integration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.errors import APIError, ImageNotFound, NotFound


def matches(labels: dict[str, str], filters: dict[str, Any] | None) -> bool:
    """Docker's label filter: ``key`` has the label, ``key=value`` has it with that value."""
    wanted = (filters or {}).get("label")
    if wanted is None:
        return True
    for one in [wanted] if isinstance(wanted, str) else wanted:
        key, has_value, value = one.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


@dataclass
class Box:
    name: str
    labels: dict[str, str]
    status: str = "running"
    attrs: dict[str, Any] = field(default_factory=dict)
    engine: Engine | None = None
    archives: list[tuple[str, bytes]] = field(default_factory=list)  # put_archive's
    options: dict[str, Any] = field(default_factory=dict)  # what it was created with

    def put_archive(self, path: str, data: bytes) -> bool:
        assert self.status == "created", "files go in before the container starts"
        self.archives.append((path, data))
        return True

    def start(self) -> None:
        assert self.engine is not None
        self.status = "running"
        ports = {}
        for port, (host, published) in self.options["ports"].items():
            if published is None:  # the engine picks a free one
                published = self.engine.free_port = self.engine.free_port + 1
            ports[port] = [{"HostIp": host, "HostPort": str(published)}]
        self.attrs["NetworkSettings"] = {
            "Networks": {self.options["network"]: {"IPAddress": "172.30.0.7"}}, "Ports": ports}

    def reload(self) -> None: ...

    def logs(self, tail: int) -> bytes:
        assert tail == 200, "the end of the console is enough"
        if isinstance(self.attrs.get("Logs"), Exception):
            raise self.attrs["Logs"]
        return bytes(self.attrs.get("Logs", b""))

    def commit(self, repository: str, tag: str, changes: list[str], pause: bool) -> None:
        assert self.engine is not None
        self.engine.pictures.append(Image(f"sha-{len(self.engine.pictures)}",
                                          [f"{repository}:{tag}"], {"changes": str(changes),
                                                                    "paused": str(pause)}))

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force and v, "a server's container goes with its volumes, running or not"
        assert self.engine is not None
        if self not in self.engine.boxes:
            raise NotFound("gone")
        self.engine.boxes.remove(self)


@dataclass
class Net:
    name: str
    labels: dict[str, str]
    engine: Engine
    containers: list[Box] = field(default_factory=list)  # what others joined (the cache)
    refuse: Exception | None = None  # what the engine answers a removal with, if not done

    def reload(self) -> None: ...

    def disconnect(self, container: Box, force: bool = False) -> None:
        assert force, "a running container (the cache) leaves only when forced"
        if isinstance(container.attrs.get("refuse"), Exception):
            raise container.attrs["refuse"]
        self.containers.remove(container)

    def remove(self) -> None:
        if self.refuse is not None:
            raise self.refuse
        assert not self.containers, "the engine refuses to remove a network still joined"
        self.engine.nets.remove(self)


@dataclass
class Image:
    id: str
    tags: list[str]
    labels: dict[str, str]


class Engine:
    """The parts of docker.DockerClient that DockerEngine uses."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.nets: list[Net] = []
        self.pictures: list[Image] = []
        self.refused: dict[str, str] = {}  # image -> why the engine will not create from it
        self.free_port = 32000
        self.containers, self.networks, self.images = self, _Networks(self), _Images(self)

    def add(self, lab: str, server: str, **box: Any) -> Box:
        labels = {"lab.managed": "true", "lab.name": lab, "lab.server": server,
                  "lab.role": server.rsplit("-", 1)[0], "lab.generation": "1"}
        made = Box(f"{lab}-{server}", labels | box.pop("labels", {}), engine=self, **box)
        made.attrs = made.attrs or {"NetworkSettings": {}, "Config": {"Image": "lab/base"}}
        self.boxes.append(made)
        return made

    def list(self, all: bool = False, filters: dict[str, Any] | None = None,
             ignore_removed: bool = False) -> list[Box]:
        assert all, "a stopped container is still the lab's"
        assert ignore_removed, "a container removed between list and inspect is no error"
        return [b for b in self.boxes if matches(b.labels, filters)]

    def create(self, image: str, name: str, labels: dict[str, str], **options: Any) -> Box:
        if image in self.refused:
            raise APIError("refused", explanation=self.refused[image])
        made = Box(name, labels, status="created", engine=self,
                   attrs={"Config": {"Image": image}}, options=options)
        self.boxes.append(made)
        return made

    def get(self, name: str) -> Box:
        for box in self.boxes:
            if box.name == name:
                return box
        raise NotFound(name)

    def close(self) -> None:
        pass


@dataclass
class _Networks:
    engine: Engine

    def list(self, names: list[str] | None = None,
             filters: dict[str, Any] | None = None) -> list[Net]:
        # Docker's name filter matches substrings
        return [n for n in self.engine.nets if matches(n.labels, filters)
                and (names is None or any(x in n.name for x in names))]

    def create(self, name: str, driver: str, labels: dict[str, str]) -> Net:
        assert driver == "bridge"
        made = Net(name, labels, self.engine)
        self.engine.nets.append(made)
        return made


@dataclass
class _Images:
    engine: Engine
    refused: dict[str, Exception] = field(default_factory=dict)  # tag -> the engine's answer

    def get(self, name: str) -> Image:
        for image in self.engine.pictures:
            if name in image.tags:
                return image
        raise ImageNotFound(name)

    def list(self, filters: dict[str, Any] | None = None) -> list[Image]:
        return [i for i in self.engine.pictures if matches(i.labels, filters)]

    def remove(self, tag: str, force: bool = False) -> None:
        assert force, "a baked image goes even if a stopped container was made from it"
        if tag in self.refused:
            raise self.refused[tag]
        self.engine.pictures = [i for i in self.engine.pictures if tag not in i.tags]
