"""The target interface: what every backend (docker, vagrant, aws) must do, and nothing more.

A backend is one module with one :class:`Target` subclass. It creates servers from
:class:`ServerSpec`, finds the lab's servers by label in the real world, and destroys them.
Everything above it (state, provisioning, release) works from :class:`ServerRecord` alone.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

from lab.access.keys import KeyPair
from lab.access.knownhosts import KnownHosts
from lab.access.ssh import wait_until_ready
from lab.config import LabConfig, TargetSettings
from lab.errors import TargetError, UsageError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
from lab.state import ServerRecord
from lab.targets import registry

LABEL_PREFIX = "lab."
BOOT_TIMEOUT = "LAB_BOOT_TIMEOUT"  # seconds a server may take to accept SSH; default 90


@dataclass(frozen=True)
class ServerSpec:
    """A server to be made: which role, which generation, from which image."""

    name: str
    role: str
    generation: int
    image: str
    ports: list[int] = field(default_factory=list)  # published on a port the target picks
    fixed_ports: dict[int, int] = field(default_factory=dict)  # server port -> published port


@dataclass(frozen=True)
class Line:
    """One kind of thing a command will create: how many, and their hourly cost."""

    what: str
    count: int
    hourly: float | None  # for all ``count`` of them; None: the price is not known


@dataclass
class Plan:
    """What a command will create on a target that charges for it, and the estimated
    hourly cost: shown (and agreed to) before anything is made."""

    where: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def hourly(self) -> float:
        return sum(line.hourly or 0.0 for line in self.lines)

    @property
    def complete(self) -> bool:
        """Every line has a price (else the total is a lower bound)."""
        return all(line.hourly is not None for line in self.lines)

    def describe(self) -> list[str]:
        """The plan as lines for a person: each item, then the total."""
        out = [f"  {line.count} x {line.what}" + (f"  ~${line.hourly:.4f}/h"
               if line.hourly is not None else "  (price unknown)") for line in self.lines]
        at_least = "" if self.complete else "at least "
        out.append(f"  estimated cost: {at_least}${self.hourly:.3f} an hour ({self.where})")
        return out + [f"  {note}" for note in self.notes]


def labels_for(lab: str, spec: ServerSpec | None = None) -> dict[str, str]:
    """Labels (tags on AWS) that let lab find what it made even after state is lost.

    ``LAB_LABELS="k=v,k2=v2"`` adds labels, so a test run can mark everything it makes.
    """
    labels = {f"{LABEL_PREFIX}managed": "true", f"{LABEL_PREFIX}name": lab}
    if spec is not None:
        labels |= {
            f"{LABEL_PREFIX}server": spec.name,
            f"{LABEL_PREFIX}role": spec.role,
            f"{LABEL_PREFIX}generation": str(spec.generation),
        }
    return labels | extra_labels()


def extra_labels() -> dict[str, str]:
    """``LAB_LABELS="k=v,k2=v2"``: labels added to everything lab makes (a test run's)."""
    labels = {}
    for pair in filter(None, os.environ.get("LAB_LABELS", "").split(",")):
        key, _, value = pair.partition("=")
        labels[key.strip()] = value.strip()
    return labels


def boot_timeout(default: float = 90.0) -> float:
    """How long to wait for a server to boot: the target's ``default``, or
    ``LAB_BOOT_TIMEOUT`` seconds (a slow VM may need more; a test of a server that never
    boots wants less)."""
    text = os.environ.get(BOOT_TIMEOUT, f"{default:g}")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise UsageError(f"{BOOT_TIMEOUT}={text}: must be a number of seconds above 0")
    return value


class Target(ABC):
    """Where servers run. Subclasses set ``name`` and implement the abstract verbs."""

    name: ClassVar[str]
    # The model of this target's own section of lab.yml, named like the target (`vagrant:`);
    # None: the target takes no settings, and a section of its name is an unknown field.
    settings_model: ClassVar[type[TargetSettings] | None] = None
    # Whether servers here cost money: `lab up` then shows what it will make and asks.
    charges: ClassVar[bool] = False
    # Seconds a new server may take to accept SSH (LAB_BOOT_TIMEOUT overrides).
    boot_seconds: ClassVar[float] = 90.0
    # lab.yml's balancer kinds this target runs as another kind (aws: haproxy is an ALB).
    balancer_kinds: ClassVar[dict[str, str]] = {}

    def __init__(self, config: LabConfig, key: KeyPair) -> None:
        self.config = config
        self.key = key

    @property
    def known_hosts(self) -> KnownHosts:
        """Where :meth:`create` records each new server's host key (the one it handed the
        server, or the one seen at first contact) before anything connects to it."""
        return KnownHosts(self.key.known_hosts)

    @abstractmethod
    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        """Make the servers (in parallel where the backend allows) and return their records.

        Each server's host key is in :attr:`known_hosts` on return: lab connects to none
        without checking it.
        """

    @abstractmethod
    def list(self) -> list[ServerRecord]:
        """Every server of this lab that exists now, found by label, with its live status."""

    @abstractmethod
    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        """Remove the named servers, or everything the lab made when ``names`` is None."""

    def alive(self, names: list[str]) -> set[str]:
        """Which of ``names`` run now: one look at the real world, nothing written to state.

        A release asks this twice a second about its new servers. This default lists the
        lab; a target with a cheaper question (one filtered API call) answers it directly.
        """
        wanted = set(names)
        return {s.name for s in self.list() if s.name in wanted and not s.gone}

    def wait_ready(self, servers: list[ServerRecord], on_event: Listener = ignore) -> None:
        """Block until each server accepts its key over SSH and has finished booting.

        Every target lab drives is reached over SSH, so this default serves them all. A
        server that will never come up fails at once (:meth:`boot_failure`), and either way
        the error carries what the target saw of its boot (:meth:`boot_report`).
        """
        timeout = boot_timeout(self.boot_seconds)

        def wait(server: ServerRecord) -> None:
            started = time.monotonic()
            try:
                state = wait_until_ready(server, self.key, timeout,
                                         gave_up=lambda: self.boot_failure(server))
            except TargetError as exc:
                raise TargetError(f"{exc}{self.boot_report(server)}") from None
            took = time.monotonic() - started
            on_event(Event("ready", f"{server.name} ready ({state}, {took:.1f} s)", server.name))

        if servers:
            with ThreadPoolExecutor(max_workers=min(32, len(servers))) as pool:
                list(pool.map(wait, servers))

    def check_room(self, count: int) -> None:
        """Raise (a LabError saying what to raise) when ``count`` more servers would not fit
        where they run; asked before their names are taken. Targets without limits say
        nothing."""
        return None

    def boot_failure(self, server: ServerRecord) -> str | None:
        """Why ``server`` will never come up (its container stopped, say), or None while it
        still may. Asked about once a second while waiting; targets that cannot tell say None.
        """
        return None

    def boot_report(self, server: ServerRecord) -> str:
        """What the target saw of a boot that did not finish (console output, the engine),
        appended to the error as indented lines; empty when it knows nothing more."""
        return ""

    def plan(self, specs: list[ServerSpec]) -> Plan | None:
        """What creating ``specs`` makes and costs, for a target that charges (aws), checked
        as far as can be without making anything; None where nothing costs money."""
        return None

    def has_image(self, image: str) -> bool:
        """Whether servers can start from ``image`` here; targets without images say yes."""
        return True

    def bake(self, server: ServerRecord, tag: str, labels: dict[str, str]) -> str:
        """Snapshot a server into an image tagged ``tag``; returns the image reference."""
        raise NotImplementedError(f"the {self.name} target cannot bake images yet")

    def remove_images(self) -> list[str]:
        """Remove the images this lab baked; targets without images have none."""
        return []

    @classmethod
    def prerequisites(cls) -> list[Check]:
        """What this target needs on this machine, each ok or how to fix it: `lab doctor`
        shows them. Checks a lab can do without say ``required=False``."""
        return []

    @classmethod
    def standing(cls) -> list[Check]:
        """What the target holds now that a person should know of (aws: what bills), for
        `lab doctor` only: never a reason to refuse a command. Most targets say nothing."""
        return []

    @classmethod
    def owner(cls) -> str:
        """Who owns what this target makes, beyond this machine: on a cloud, the account's
        caller (two people in one account must not share a lab); "" where everything a lab
        makes lives on this machine. Part of a workspace's lab name."""
        return ""

    @classmethod
    def prepare_image(cls, config: LabConfig | None, rebuild: bool = False,
                      on_event: Listener = ignore) -> str | None:
        """Build what servers start from (`lab image build`): returns its name, or None when
        this target (or ``config``'s settings for it) has nothing to build."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most targets hold nothing open
        """Release connections; called once the target is no longer needed."""


def get_target(name: str) -> type[Target]:
    """The Target class for ``name`` (see :func:`lab.targets.registry.load`)."""
    cls: type[Target] = registry.load(name)
    return cls
