"""Fleet.reconcile on a fake target: liveness comes from the target on every look, the stage
is lab's own and survives them, and what users see as `status` joins the two."""

from __future__ import annotations

from pathlib import Path

import pytest
import release_fakes
import yaml
from release_fakes import FakeTarget, World

import lab.targets.registry
from lab.config import load_config
from lab.fleet import Fleet
from lab.state import Liveness, ServerRecord, Stage


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.setattr(release_fakes, "world", World())
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    (tmp_path / "lab.yml").write_text("name: rec\ntarget: fake\nservers: {web: {count: 2}}\n")
    return Fleet(load_config(tmp_path / "lab.yml"))


def world(fleet: Fleet) -> dict[str, ServerRecord]:
    target = fleet.target
    assert isinstance(target, FakeTarget)
    return target.world.servers


def shown(fleet: Fleet) -> dict[str, str]:
    return {s.name: s.status for s in fleet.reconcile()}


def test_up_marks_ready_and_stages_survive_reconciles(fleet: Fleet) -> None:
    assert [s.status for s in fleet.up()] == ["ready", "ready"]
    fleet.mark(["web-1"], Stage.VERIFIED)
    assert shown(fleet) == {"web-1": "verified", "web-2": "ready"}
    assert fleet.state.server("web-1").stage is Stage.VERIFIED  # type: ignore[union-attr]
    assert [e.kind for e in fleet.state.events("web-1")][-1] == "verified"


def test_a_dead_server_keeps_its_stage_apart_and_starts_over_when_back(fleet: Fleet) -> None:
    fleet.up()
    fleet.mark(["web-1"], Stage.PROVISIONED)
    world(fleet)["web-1"].liveness = Liveness.DEAD
    assert shown(fleet) == {"web-1": "dead", "web-2": "ready"}
    dead = fleet.state.server("web-1")
    assert dead is not None and (dead.liveness, dead.stage) == (Liveness.DEAD,
                                                                Stage.PROVISIONED)
    assert [e.kind for e in fleet.state.events("web-1")][-1] == "died"
    # Back from the dead it must be seen ready again: `lab up` waits for it.
    world(fleet)["web-1"].liveness = Liveness.RUNNING
    assert shown(fleet) == {"web-1": "running", "web-2": "ready"}
    assert {s.name: s.status for s in fleet.up()} == {"web-1": "ready", "web-2": "ready"}


def test_a_server_gone_from_the_target_is_missing(fleet: Fleet) -> None:
    fleet.up()
    del world(fleet)["web-2"]
    assert shown(fleet) == {"web-1": "ready", "web-2": "missing"}
    assert [s.name for s in fleet.live()] == ["web-1"]
    assert [e.kind for e in fleet.state.events("web-2")][-1] == "missing"


def listed(fleet: Fleet) -> dict[str, list[str]]:
    """Hosts named by .lab/inventory.yml and .lab/ssh_config; absent files list nothing."""
    directory = fleet.config.state_dir
    inventory = directory / "inventory.yml"
    ssh_config = directory / "ssh_config"
    groups = (yaml.safe_load(inventory.read_text())["all"]["children"]
              if inventory.exists() else {})
    return {
        "inventory": sorted(h for g in groups.values() for h in g["hosts"]),
        "ssh_config": sorted(line.split()[1] for line in ssh_config.read_text().splitlines()
                             if line.startswith("Host ")) if ssh_config.exists() else [],
    }


def test_inventory_and_ssh_config_follow_the_servers(fleet: Fleet) -> None:
    fleet.up()
    assert listed(fleet) == {"inventory": ["web-1", "web-2"], "ssh_config": ["web-1", "web-2"]}
    fleet.add_generation("web")  # what a release does first
    both = ["web-1", "web-2", "web-3", "web-4"]
    assert listed(fleet) == {"inventory": both, "ssh_config": both}
    fleet.destroy_servers(["web-1", "web-2"])  # a promote; a rollback destroys the new ones
    assert listed(fleet) == {"inventory": ["web-3", "web-4"], "ssh_config": ["web-3", "web-4"]}
    fleet.destroy()
    assert listed(fleet) == {"inventory": [], "ssh_config": []}
    assert not (fleet.config.state_dir / "ssh_config").exists()
