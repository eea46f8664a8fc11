"""A lab resolved once: lab.yml with the answers every command needs from it.

lab.yml names a target and a balancer kind; what they add to the lab (the balancer's own
roles, its inventory variables, the ports it must publish) is worked out here, once, when a
:class:`~lab.fleet.Fleet` is made, and carried from there to provision, verify, the release
and the grader. Nothing downstream asks the registries again, so a lab whose balancer cannot
run on its target fails at load with one line, never halfway through a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.access.inventory import write_inventory
from lab.balancers.base import Balancer, balancer_class
from lab.errors import ConfigError, LabError
from lab.events import Listener, ignore
from lab.targets.base import Target, get_target

if TYPE_CHECKING:
    from lab.access.keys import KeyPair
    from lab.config import LabConfig, Role
    from lab.state import ServerRecord


@dataclass(frozen=True)
class Lab:
    """lab.yml (``config``) and what its target and balancer make of it."""

    config: LabConfig
    target_class: type[Target]
    balancer_class: type[Balancer] | None
    roles: dict[str, Role]  # lab.yml's, then the balancer's own (HAProxy's lb): what `up` makes
    balancer_roles: frozenset[str]
    group_vars: dict[str, dict[str, Any]]  # inventory variables per role

    @classmethod
    def resolve(cls, config: LabConfig) -> Lab:
        """Ask the target and balancer registries once. A role of lab.yml may not take a
        name the balancer needs: ConfigError naming it."""
        balancer = balancer_class(config)
        own = balancer.roles(config) if balancer is not None else {}
        for name in own:
            if name in config.servers:
                raise ConfigError(f"lab.yml: servers.{name}: the name is reserved for the balancer")
        return cls(config=config, target_class=get_target(config.target),
                   balancer_class=balancer, roles=dict(config.servers) | own,
                   balancer_roles=frozenset(own),
                   group_vars=balancer.group_vars(config) if balancer is not None else {})

    def fixed_ports(self, role: str) -> dict[int, int]:
        """Server ports of ``role`` published on a chosen port (the balancer's listen port)."""
        if self.balancer_class is None:
            return {}
        return self.balancer_class.fixed_ports(self.config, role)

    def write_inventory(self, servers: list[ServerRecord], key: KeyPair) -> Path:
        """``.lab/inventory.yml`` and ``.lab/ssh_config`` listing ``servers``, with the
        balancer's variables: what Ansible, testinfra and people read."""
        return write_inventory(self.config.state_dir, servers, key, self.group_vars)

    def ensure_balancer(self, servers: list[ServerRecord], key: KeyPair,
                        on_event: Listener = ignore) -> None:
        """Make a managed balancer and put the balanced role behind it (Balancer.ensure)."""
        if self.balancer_class is not None:
            self.balancer_class.ensure(self.config, servers, key, on_event)

    def open_balancer(self, servers: list[ServerRecord], key: KeyPair) -> Balancer | None:
        """The lab's running balancer among ``servers``, or None when it has none."""
        if self.balancer_class is None:
            return None
        return self.balancer_class.find(self.config, servers, key)

    def rotation(self, servers: list[ServerRecord], key: KeyPair) -> dict[str, dict[str, object]]:
        """Each member's weight, health and share of new requests, as the balancer sees them.

        Empty when the lab has no running balancer or it cannot be asked: `lab status` must
        work whatever state the balancer is in.
        """
        try:
            balancer = self.open_balancer(servers, key)
            members = balancer.members() if balancer is not None else {}
        except (LabError, OSError):
            return {}
        return {name: {"weight": m.weight, "health": m.health, "share": round(m.share, 3)}
                for name, m in members.items()}
