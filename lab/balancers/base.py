"""The balancer interface: what the release cycle, `lab provision` and `lab status` ask of the
thing in front of a role, in terms of *generations and shares*, not servers and weights.

A balancer has a URL users reach and members (the servers it sends traffic to), each with its
health and its share of new requests. A release joins a new generation at zero share, waits
until it is healthy, shifts a percentage of traffic from the old generation to the new one,
reads the new members' own failures, and retires members (drain, then remove). HAProxy on a
server of the lab's own is one balancer (``haproxy.py``); an AWS Application Load Balancer
will be another, without a line changed above this package.

``balancer_class`` at the end finds the class a lab.yml asks for; what it adds to the lab (its
own roles, their inventory variables and fixed ports) is resolved once, in ``lab/loaded.py``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from lab.balancers.registry import known
from lab.errors import ConfigError, UsageError
from lab.events import Listener, ignore

if TYPE_CHECKING:
    from lab.access.keys import KeyPair
    from lab.config import HealthCheck, LabConfig, Role
    from lab.state import ServerRecord


@dataclass(frozen=True)
class Member:
    """One server behind the balancer, as the balancer sees it now."""

    name: str
    health: str  # the balancer's own word for it, shown as is by `lab status` (HAProxy: UP, DOWN)
    healthy: bool  # passes its health checks
    share: float  # its expected share of new requests now, 0..1
    serving: bool  # meant to take traffic (it has a share once healthy): what provision waits on
    weight: int = 0  # the balancer's own figure behind the share, shown by `lab status`


@dataclass(frozen=True)
class Tally:
    """Requests members took and failed by the balancer's own counters, which only grow.

    Failed means what the member got wrong, whether or not users saw it: a balancer that
    retries a failed request elsewhere hides it from users (and from lab's probe), not from
    these counters.
    """

    requests: int = 0
    failed: int = 0

    def since(self, start: Tally) -> Tally:
        """What happened between ``start`` and this reading (never negative: a member that
        left and came back starts its counters again)."""
        return Tally(max(0, self.requests - start.requests), max(0, self.failed - start.failed))

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "failed": self.failed}


class Balancer(ABC):
    """The thing in front of a role. Subclasses set ``kind`` and implement the abstract verbs.

    Class methods say what the balancer adds to a lab before anything runs (its own roles,
    their variables and ports); instances talk to a running balancer, found by :meth:`find`.
    """

    kind: ClassVar[str]
    # The targets this balancer runs on; None: any (HAProxy is a server of the lab's own).
    targets: ClassVar[tuple[str, ...] | None] = None
    # How long the balancer's health checks take to see a change of a member's health: a
    # check read sooner after a change may be one from before it.
    notice_seconds: ClassVar[float] = 0.0
    # How often a release looks at the members while traffic is on the new generation: a
    # cloud's API has a rate limit per account that a class shares.
    poll_seconds: ClassVar[float] = 0.5
    # Where a long wait (an ALB's drain) reports its progress: whoever opened the balancer
    # sets it (a release: its listener), since the verbs below take no listener.
    _told: Listener | None = None

    @property
    def on_event(self) -> Listener:
        return self._told or ignore

    @on_event.setter
    def on_event(self, listener: Listener) -> None:
        self._told = listener

    # what the balancer adds to the lab ---------------------------------------------------

    @classmethod
    def roles(cls, config: LabConfig) -> dict[str, Role]:
        """Roles of servers the balancer runs on (HAProxy's ``lb``); none for a managed one."""
        return {}

    @classmethod
    def group_vars(cls, config: LabConfig) -> dict[str, dict[str, Any]]:
        """Inventory variables per role that the balancer's own playbooks need."""
        return {}

    @classmethod
    def fixed_ports(cls, config: LabConfig, role: str) -> dict[int, int]:
        """Server ports of ``role`` that must be published on a chosen port (the listen port)."""
        return {}

    @classmethod  # noqa: B027 - an optional hook: most balancers make nothing here
    def ensure(cls, config: LabConfig, servers: list[ServerRecord], key: KeyPair,
               on_event: Listener = ignore) -> None:
        """Make the balancer if it is a managed one (an ALB) and put the balanced role's
        servers behind it; `lab up` calls this once its servers exist. A balancer that is a
        server of the lab (HAProxy) is made by `lab up` and set up by `lab provision`."""

    @classmethod
    @abstractmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> Balancer | None:
        """The lab's running balancer (``servers`` are the lab's live ones), or None when it
        has none yet."""

    # a running balancer --------------------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """Where users reach the balanced role: what the release's probe measures."""

    @abstractmethod
    def members(self) -> dict[str, Member]:
        """Every member by name, with its health and share of traffic now."""

    @abstractmethod
    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        """Add servers as members at zero share, with ``health`` checked on them."""

    @abstractmethod
    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        """Send ``percent`` of new requests to the ``new`` members and the rest to ``old``.

        ``old`` is put back in service at the same time (a release interrupted while retiring
        it may have left it draining), so ``shift(old, new, 0)`` is the rollback's way back.
        Members of ``new`` that never joined have no share to take back at 0 %.
        """

    @abstractmethod
    def failures(self, names: list[str]) -> Tally | None:
        """The named members' own requests and failures so far, or None where this balancer
        cannot tell (then only what users see gates a canary step)."""

    @abstractmethod
    def retire(self, names: list[str], timeout: float = 10.0) -> list[str]:
        """Drain members (requests in flight finish), then remove them; returns any that
        would not go within ``timeout``."""

    def wait_healthy(self, names: list[str], timeout: float = 15.0,
                     give_up: threading.Event | None = None) -> list[str]:
        """Wait until each of ``names`` is a healthy member; returns those that are not.

        ``give_up`` ends the wait early (the release is over). Balancers with a stricter
        idea of a passed check override this.
        """
        deadline = time.monotonic() + timeout
        unhealthy = list(names)
        while time.monotonic() < deadline and not (give_up and give_up.is_set()):
            members = self.members()
            unhealthy = [n for n in names if n not in members or not members[n].healthy]
            if not unhealthy:
                return []
            time.sleep(0.1)
        return unhealthy


def get_balancer(kind: str) -> type[Balancer]:
    """The Balancer class for ``kind``; imported only when asked for."""
    where = known()
    if kind not in where:
        raise UsageError(f"balancer {kind!r} is not available (known: {', '.join(sorted(where))})")
    module, _, attribute = where[kind].partition(":")
    return getattr(import_module(module), attribute)


# a lab's balancer ------------------------------------------------------------------------


def balancer_class(config: LabConfig) -> type[Balancer] | None:
    """The class of the lab's balancer, or None when lab.yml has no ``balancer:``.

    The target may run a kind as another (on aws, ``haproxy`` is an ALB), so a local lab
    moves to a cloud by changing ``target:`` alone; a kind that cannot run on the target
    is a one-line ConfigError.
    """
    if config.balancer is None:
        return None
    from lab.targets.base import get_target

    written = config.balancer.kind
    kind = get_target(config.target).balancer_kinds.get(written, written)
    cls = get_balancer(kind)
    if cls.targets is not None and config.target not in cls.targets:
        raise ConfigError(f"lab.yml: balancer.kind: {written} runs only on target "
                          f"{' or '.join(cls.targets)}, not {config.target} (use haproxy)")
    return cls
