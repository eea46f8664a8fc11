"""Start snapshots: an exercise's starting state, made once per Docker engine, kept as images.

An exercise's start runs its ``start:`` actions: servers created from lab's base image,
provisioned by Ansible, changed by hand. Right after a start made that way, each of its
servers is committed to an image (host keys, machine id and the lab's key scrubbed, as
``lab bake`` does) labelled with the logbook lines the start wrote about it. Every later
start or reset of the exercise on this engine, in any workspace, creates its servers from
those images and writes the same lines (provisioned, drift...) in its own logbook, so the
grader reads what it reads after a provisioned start. What differs per workspace (lab name,
ports, lab key, host key) is handed to each container when it is created, as for any
server. Ansible does not run, unless a server's files name another server's address or the
lab's name (HAProxy's backends do): that server's start actions run again on each one.

A snapshot is keyed by a hash of what makes the start: exercise.yml, start/, lab's own
playbooks a start can run (the balancer's), lab's version and the base image's id. When any
changes, the next start makes a new one and the exercise's older ones go. Only starts whose
actions a snapshot can hold (up, provision, ssh, drift, verify; one server per role; on the
docker target) have one; any other start is made as before, said in one line.

Images are ``lab/snapshot-<exercise>:<key>-<server>``, labelled ``lab.snapshot=<key>``:
nothing leaves the engine, nothing needs a registry. `lab exercise snapshots` lists them,
``--remove`` removes them; ``LAB_SNAPSHOTS=0`` makes every start the usual way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

import lab
from lab.config import CONFIG_FILE, DEFAULT_IMAGE, LabConfig
from lab.course.exercises import Action, Exercise
from lab.docker.dockerengine import DockerEngine
from lab.docker.engine import docker_client
from lab.errors import LabError, TargetError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.loaded import Lab
from lab.release.bake import SCRUB
from lab.state import EventKind, Stage, event_kind
from lab.targets.base import extra_labels

OFF = "LAB_SNAPSHOTS"  # 0, off, no: every start made the usual way
SCHEME = "1"  # part of every key: raise it when what a snapshot holds, or how, changes
KEY = "lab.snapshot"
PREFIX = f"{KEY}."
HELD = ("up", "provision", "ssh", "drift", "verify")  # actions whose result an image holds
# What a start writes in the logbook about its servers beyond their making (named, created,
# ready: a workspace's own `up` writes those): written again by a start from a snapshot.
REPLAYED = frozenset({Stage.PROVISIONED, Stage.VERIFIED, Stage.VERIFY_FAILED, EventKind.DRIFT})
# Labels a committed server carries that belong to one lab: blanked on a snapshot (each
# workspace's containers are given their own when created).
PER_LAB = ("lab.managed", "lab.name", "lab.home", "lab.server", "lab.role", "lab.generation",
           "lab.image")
# Where a playbook writes what a server is configured with; the engine's own per-container
# files are left out.
SEARCHED = "/etc /srv /opt /var/www /usr/local /root /home"
ENGINE_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
# lab's own files a start can run: the balancer's playbook and tests.
LAB_FILES = Path(lab.__file__).parent / "data" / "balancer"


@dataclass(frozen=True)
class Logged:
    """A logbook line a start wrote about one of its servers, written again on each start
    from the snapshot (``order``: its place in the original logbook)."""

    order: int
    server: str
    kind: str
    detail: str


@dataclass(frozen=True)
class Held:
    """One server of a snapshot: its image, and the files of it that name another server's
    address or the lab (its start actions then run again on each start)."""

    server: str
    role: str
    tag: str
    size: int  # bytes over the base image
    names_others: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """An exercise's starting state on this engine: an image per server, and the logbook."""

    exercise: str
    key: str
    made: float
    servers: tuple[str, ...]  # every server of the start
    images: dict[str, Held]  # by server; all of them once complete
    log: tuple[Logged, ...]

    @property
    def short(self) -> str:
        return self.key[:12]

    @property
    def complete(self) -> bool:
        return set(self.images) == set(self.servers)

    @property
    def again(self) -> list[str]:
        """The servers whose start actions run again on each start from it."""
        return sorted(name for name, held in self.images.items() if held.names_others)

    @property
    def size(self) -> int:
        return sum(held.size for held in self.images.values())

    def image_of(self, role: str) -> str:
        return next(held.tag for held in self.images.values() if held.role == role)

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "key": self.key, "made": self.made,
                "servers": list(self.servers), "complete": self.complete,
                "images": {name: held.tag for name, held in self.images.items()},
                "again": self.again, "size_bytes": self.size}


@dataclass(frozen=True)
class Plan:
    """How a workspace's start is made: from ``found``, or the usual way and then kept."""

    key: str
    found: Snapshot | None


# which starts, under which key -------------------------------------------------------------


def enabled() -> bool:
    return os.environ.get(OFF, "1").strip().lower() not in ("0", "off", "no", "false")


def worth_keeping(actions: Iterable[Action]) -> bool:
    """A start that does more than create servers: a snapshot would save that work."""
    return any(action.do != "up" for action in actions)


def cannot_hold(exercise: Exercise, config: LabConfig) -> str | None:
    """Why a snapshot cannot hold this start (a phrase), or None when it can."""
    actions = exercise.spec.start
    other = [action.do for action in actions if action.do not in HELD]
    if other:
        return f"its start has `{other[0]}`"
    if not actions or actions[0].do != "up":
        return "its start does not begin with `up`"
    if config.target != "docker":
        return f"its lab runs on {config.target}"
    crowded = [name for name, role in Lab.resolve(config).roles.items() if role.count != 1]
    if crowded:  # one image per role: servers of a role may differ (a change on web-1 only)
        return f"role {crowded[0]} has more than one server"
    return None


def fingerprint(exercise: Exercise, base: str) -> str:
    """The key of the exercise's start made from base image ``base`` (its id): a hash of
    its folder's name, exercise.yml, every file of start/, lab's own playbooks a start can
    run, lab's version and the scheme. No lab's name or port is in it: workspaces share it."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("scheme", SCHEME.encode())
    add("lab", lab.__version__.encode())
    add("base", base.encode())
    add("exercise", exercise.id.encode())  # a copy under another number has its own
    add("exercise.yml", (exercise.folder / "exercise.yml").read_bytes())
    for folder, label in ((exercise.start_dir, "start"), (LAB_FILES, "lab")):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                add(f"{label}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    return digest.hexdigest()


def base_image(exercise: Exercise) -> str:
    """The image the exercise's servers start from (start/lab.yml's `image:`)."""
    try:
        data = yaml.safe_load((exercise.start_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return DEFAULT_IMAGE
    image = data.get("image") if isinstance(data, dict) else None
    return image if isinstance(image, str) else DEFAULT_IMAGE


def plan(exercise: Exercise, config: LabConfig, on_event: Listener = ignore) -> Plan | None:
    """How to make a workspace's start (``config``: its lab.yml as laid down): None for the
    usual way, said in one line when a snapshot could have saved work but cannot hold it."""
    if not enabled() or not worth_keeping(exercise.spec.start):
        return None
    reason = cannot_hold(exercise, config)
    if reason is not None:
        on_event(Event("phase", f"no start snapshot: {reason} (a snapshot holds up, provision, "
                                "ssh, drift and verify on docker): made the usual way"))
        return None
    client = docker_client()
    try:
        base = _image_id(client, config.image)
        if base is None:
            return None  # the usual way says what is missing
        key = fingerprint(exercise, base)
        return Plan(key, find(client, exercise.id, key))
    finally:
        client.close()


def current_keys(client: Any, exercises: Iterable[Exercise]) -> dict[str, str]:
    """The key each exercise's start would have now on this engine (its base image there)."""
    keys = {}
    for exercise in exercises:
        base = _image_id(client, base_image(exercise))
        if base is not None:
            keys[exercise.id] = fingerprint(exercise, base)
    return keys


# a start from a snapshot -------------------------------------------------------------------


def start_from(config: LabConfig, snapshot: Snapshot, on_event: Listener = ignore) -> list[str]:
    """The start's servers, created from ``snapshot``'s images (each with this lab's name,
    ports, key and host key), and the logbook lines the start wrote about them. Returns the
    servers whose start actions must run again (they name another server or the lab)."""
    age = _age(time.time() - snapshot.made)
    on_event(Event("phase", f"from start snapshot {snapshot.short} (made {age} ago): servers "
                            "from its images, nothing provisioned", subject=snapshot.short))
    again = set(snapshot.again)
    with Fleet(config, on_event) as fleet:
        for role in fleet.roles:  # each role from its image, under the names `up` gives
            fleet.add_generation(role, snapshot.image_of(role))
        fleet.up()  # what `up` does beyond servers (a managed balancer), the inventory
        made = sorted(s.name for s in fleet.state.servers())
        if made != sorted(snapshot.servers):
            raise TargetError(f"start snapshot {snapshot.short} holds {', '.join(snapshot.servers)}"
                              f" but this lab made {', '.join(made)}: `lab exercise snapshots "
                              "--remove`, then `lab exercise reset`")
        for line in sorted(snapshot.log, key=lambda logged: logged.order):
            if line.server in again:
                continue  # its actions run again, and write their own lines
            kind = event_kind(line.kind)
            if isinstance(kind, Stage):
                fleet.mark([line.server], kind, line.detail)
            else:
                fleet.state.log(kind, line.server, line.detail)
    if again:
        on_event(Event("phase", f"{', '.join(sorted(again))}: names another server's address "
                                "or the lab, so the start's actions run on it again"))
    return sorted(again)


# making one --------------------------------------------------------------------------------


def capture(config: LabConfig, exercise: Exercise, key: str,
            on_event: Listener = ignore) -> Snapshot:
    """Keep the start just made in this lab (nothing else done to it yet) as the exercise's
    snapshot under ``key``; the exercise's older snapshots go, unless servers run from them.
    Each server is paused for the moment its container is committed, and never changed."""
    began = time.monotonic()
    client = docker_client()
    try:
        found = find(client, exercise.id, key)
        if found is not None:
            return found  # another workspace made it meanwhile
        base = client.images.get(config.image)
        with Fleet(config) as fleet:
            servers = fleet.live()
            events = fleet.state.events()
        names = tuple(sorted(s.name for s in servers))
        marks = sorted({s.address for s in servers if s.address} | {config.name})
        engine = DockerEngine(config.name, client)
        made = time.time()
        for server in servers:
            log = [[e.id, str(e.kind), _replayed_detail(e.kind, e.detail, key)]
                   for e in events if e.server == server.name and e.kind in REPLAYED]
            tag = f"lab/snapshot-{exercise.id}:{key[:12]}-{server.name}"
            labels = {KEY: key, f"{PREFIX}exercise": exercise.id,
                      f"{PREFIX}server": server.name, f"{PREFIX}role": server.role,
                      f"{PREFIX}servers": ",".join(names), f"{PREFIX}tag": tag,
                      f"{PREFIX}made": f"{made:.0f}", f"{PREFIX}log": json.dumps(log)}
            _commit(client, engine.container_name(server.name), tag, labels, marks,
                    base.attrs["Config"].get("Cmd") or ["/sbin/init"], int(base.attrs["Size"]))
        snapshot = find(client, exercise.id, key)
        if snapshot is None:
            raise TargetError(f"start snapshot {key[:12]}: its images are not all there")
        prune(client, exercise.id, keep=key)
    finally:
        client.close()
    on_event(Event("image", f"start snapshot {snapshot.short} made ({time.monotonic() - began:.1f}"
                            f" s): the next start or reset of {exercise.id} on this engine "
                            "starts from it", subject=snapshot.short))
    return snapshot


def keep(config: LabConfig, exercise: Exercise, key: str, on_event: Listener = ignore) -> None:
    """:func:`capture`, best effort: a start that worked is never failed for want of its
    snapshot (the next start tries again)."""
    try:
        capture(config, exercise, key, on_event)
    except (LabError, DockerException, OSError, ValueError) as exc:  # OSError: the engine's API
        said = (str(exc) or repr(exc)).splitlines()[0]
        on_event(Event("warning", f"no start snapshot kept: {said}"))


def _commit(client: Any, container_name: str, tag: str, labels: dict[str, str],
            marks: list[str], command: list[str], base_size: int) -> None:
    """Commit a running server, then scrub a copy of it (a container that only runs a shell,
    on no network) and commit that under ``tag``: the server itself is never changed. A tag
    already there (the same key: the same start) is kept, never moved and orphaned."""
    if _image_id(client, tag) is not None:
        return
    raw = client.containers.get(container_name).commit(pause=True)
    patterns = " ".join(f"-e {_quote(mark)}" for mark in marks)
    skipped = " ".join(f"-e {path}" for path in ENGINE_FILES)
    script = (f"rm -f /root/.ssh/authorized_keys && {SCRUB} && "
              f"{{ grep -rlwF {patterns} {SEARCHED} 2>/dev/null | grep -vxF {skipped}; true; }}")
    blank = {label: "" for label in PER_LAB}
    scrub = client.containers.create(raw.id, command=["sh", "-c", script], network_mode="none",
                                     labels=blank | extra_labels())
    try:
        scrub.start()
        status = scrub.wait(timeout=120).get("StatusCode")
        found = scrub.logs(stdout=True, stderr=False).decode(errors="replace")
        if status != 0:
            raise TargetError(f"{container_name}: scrubbing its copy failed (exit {status})")
        named = [line for line in found.splitlines() if line.startswith("/")]
        size = max(0, int(raw.attrs.get("Size", 0)) - base_size)
        labels = blank | labels | extra_labels() | {f"{PREFIX}again": ",".join(named),
                                                     f"{PREFIX}size": str(size)}
        repository, _, version = tag.rpartition(":")
        changes = [f"CMD {json.dumps(command)}",
                   *(f"LABEL {name}={json.dumps(value)}" for name, value in labels.items())]
        scrub.commit(repository=repository, tag=version, changes=changes)
    finally:
        with contextlib.suppress(NotFound, APIError):
            scrub.remove(force=True)
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(raw.id)  # gone unless the snapshot's image stands on it


def _replayed_detail(kind: object, detail: str, key: str) -> str:
    """A provisioned line says which snapshot it came from; its Ansible runs were not here."""
    if kind != Stage.PROVISIONED or not detail.startswith("{"):
        return detail
    data = json.loads(detail)
    return json.dumps(data | {"runs": [], "snapshot": key[:12]}, default=str)


# finding, listing, removing ----------------------------------------------------------------


def find(client: Any, exercise_id: str, key: str) -> Snapshot | None:
    """The exercise's complete snapshot under ``key`` on this engine, or None."""
    images = client.images.list(filters={"label": f"{KEY}={key}"})
    for snapshot in _gather(images):
        if snapshot.exercise == exercise_id and snapshot.complete:
            return snapshot
    return None


def listing(client: Any) -> list[Snapshot]:
    """Every start snapshot on this engine, by exercise then age."""
    snapshots = _gather(client.images.list(filters={"label": KEY}))
    return sorted(snapshots, key=lambda s: (s.exercise, -s.made))


@dataclass
class Removed:
    """What :func:`remove` did: the image tags removed, and those kept with why."""

    tags: list[str]
    kept: dict[str, str]  # tag -> why it stays (servers run from it)


def remove(client: Any, exercise_id: str | None = None, other_than: str | None = None) -> Removed:
    """Remove the start snapshots (of one exercise, and not under key ``other_than`` when
    given). An image servers run from stays, said in ``kept``: removing it would only untag
    it, and its layers would stay on the engine with no name to remove them by."""
    done = Removed([], {})
    for snapshot in listing(client):
        if exercise_id not in (None, snapshot.exercise) or snapshot.key == other_than:
            continue
        for held in snapshot.images.values():
            try:
                client.images.remove(held.tag)
                done.tags.append(held.tag)
            except ImageNotFound:
                continue
            except APIError as exc:
                done.kept[held.tag] = str(exc.explanation or exc).splitlines()[0]
    return done


def prune(client: Any, exercise_id: str, keep: str) -> Removed:
    """The exercise's snapshots other than the one under ``keep`` (made from files or a base
    image that changed since): removed, unless servers still run from them."""
    return remove(client, exercise_id, other_than=keep)


def _gather(images: Iterable[Any]) -> list[Snapshot]:
    """Snapshots from their images. An image that only inherited the labels (one `lab bake`
    made from a server started from a snapshot) is not one of them: it lacks the tag."""
    parts: dict[tuple[str, str], list[tuple[dict[str, str], str]]] = {}
    for image in images:
        labels = image.labels or {}
        tag = labels.get(f"{PREFIX}tag", "")
        if labels.get(KEY) and tag in (image.tags or []):
            which = (labels.get(f"{PREFIX}exercise", ""), labels[KEY])
            parts.setdefault(which, []).append((labels, tag))
    snapshots = []
    for (_, key), found in parts.items():
        first = found[0][0]
        log = []
        images_of: dict[str, Held] = {}
        for labels, tag in found:
            server = labels.get(f"{PREFIX}server", "")
            again = tuple(filter(None, labels.get(f"{PREFIX}again", "").split(",")))
            images_of[server] = Held(server, labels.get(f"{PREFIX}role", ""), tag,
                                     _int(labels.get(f"{PREFIX}size")), again)
            with contextlib.suppress(ValueError, TypeError):
                log += [Logged(int(order), server, kind, detail)
                        for order, kind, detail in json.loads(labels.get(f"{PREFIX}log", "[]"))]
        snapshots.append(Snapshot(
            exercise=first.get(f"{PREFIX}exercise", ""), key=key,
            made=float(_int(first.get(f"{PREFIX}made"))),
            servers=tuple(filter(None, first.get(f"{PREFIX}servers", "").split(","))),
            images=images_of, log=tuple(sorted(log, key=lambda line: line.order))))
    return snapshots


def _image_id(client: Any, image: str) -> str | None:
    try:
        return str(client.images.get(image).id)
    except ImageNotFound:
        return None


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
